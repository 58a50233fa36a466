"""The alerts and adjudications inputs run side by side: neither may miss the other's write.

Each reads the alerts and pending tables, awaits its outputs' acks, then
writes the tables. Interleaved, an adjudication held while its alert is
being stored would never become an outcome (seen in the e2e truth test once
both inputs ran as concurrent batch sources: 3 outcomes of one deployment
missing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.codec import Codec
from streams.worker.adjudications import PENDING_TABLE
from streams.worker.expiry import ALERTS_TABLE
from streams.worker.runtime.agents import Handlers
from streams.worker.stage import StageResult

from .conftest import detection, unit
from .memory import MemoryRuntime
from .test_stages import adjudication_of, alert_records, detect, worker_state


class SlowWriter:
    """Carries out a result as the runtime does, after a wait for the broker's acks."""

    def __init__(self, runtime: MemoryRuntime) -> None:
        self.runtime = runtime

    async def write(self, stage: str, result: StageResult) -> None:
        await asyncio.sleep(0.01)
        self.runtime.carry_out(result)


def handlers(runtime: MemoryRuntime, lock: Any) -> Handlers:
    tables = runtime.tables_of(ALERTS_TABLE, PENDING_TABLE)
    return Handlers(
        SlowWriter(runtime), tables, Codec(),  # type: ignore[arg-type]
        reference=None, detection_context=None, progress=None,  # type: ignore[arg-type]
        outcome_tables=lock,
    )  # fmt: skip


def test_an_alert_and_its_adjudication_arriving_together_make_one_outcome() -> None:
    runtime, _ref, ctx = worker_state()
    detect(runtime, ctx, [detection(unit(2), event_id="hit")])
    (alert,) = alert_records(runtime)
    alert_id = runtime.records("alerts")[0]["alert_id"]
    inputs = handlers(runtime, asyncio.Lock())

    async def both() -> None:
        await asyncio.gather(
            inputs.adjudications([adjudication_of(alert_id)]), inputs.alerts([alert])
        )

    asyncio.run(both())
    (outcome,) = runtime.records("outcomes")
    assert outcome["alert_id"] == alert_id
    assert runtime.table(PENDING_TABLE) == {}
