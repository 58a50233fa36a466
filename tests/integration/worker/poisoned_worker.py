"""``lfr worker`` with a fault injected into processing (a test launcher, never shipped).

- ``LFR_TEST_POISON``: the detections stage raises ``RuntimeError`` for any
  batch holding a detection whose encoded record contains it (its event id),
  ``LFR_TEST_POISON_TIMES`` times in this process. The record decodes fine:
  the failure is inside processing, after the batch source handed the batch
  over and before anything acknowledges it (Faust's own agents would
  acknowledge a failed record; the guard and the source must not).
  ``LFR_TEST_RETRY_LIMIT_S`` shortens the guard's retry bound.
- ``LFR_TEST_FORGET_CHANGELOGS``: before every table write the producer's
  cluster metadata loses the table's changelog topic, as after a metadata
  refresh taken while the broker reported the topic in error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, cast

import streams.worker.runtime.agents as worker_agents
import streams.worker.runtime.guard as guard
from streams.cli import main
from streams.worker.detections import BatchResult, process_batch
from streams.worker.runtime.tables import Changelogs
from streams.worker.source import SourceRecord

POISON = os.environ.get("LFR_TEST_POISON", "\0never\0").encode()
TIMES = int(os.environ.get("LFR_TEST_POISON_TIMES", "1"))
raised = 0


def poisoned(records: Iterable[SourceRecord], ctx: Any) -> BatchResult:
    global raised
    batch = list(records)
    if raised < TIMES and any(POISON in (r.value or b"") for r in batch):
        raised += 1
        raise RuntimeError(f"injected fault {raised} of {TIMES}")
    return process_batch(batch, ctx)


worker_agents.process_batch = poisoned  # the fault under test
ensure = Changelogs._ensure


async def forgetful_ensure(self: Changelogs, table: Any) -> None:
    producer = cast(Any, self.app.producer)._ensure_producer()
    topic = table.changelog_topic.get_topic_name()
    producer.client.cluster._partitions.pop(topic, None)  # the race, provoked
    await ensure(self, table)


if os.environ.get("LFR_TEST_FORGET_CHANGELOGS"):
    Changelogs._ensure = forgetful_ensure  # type: ignore[method-assign]
if "LFR_TEST_RETRY_LIMIT_S" in os.environ:
    guard.RETRY_LIMIT_S = float(os.environ["LFR_TEST_RETRY_LIMIT_S"])

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
