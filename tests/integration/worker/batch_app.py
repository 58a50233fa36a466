"""A Faust app whose only input is a batch source (a test launcher, never shipped).

Every record a batch hands over is written to ``BATCH_OUT`` as
``partition offset value`` (one line each, flushed per batch), and each
batch bumps a co-partitioned table keyed by the records' keys, as the
detections path does with its site clock. Environment:

- ``BATCH_BOOTSTRAP``, ``BATCH_APP_ID``, ``BATCH_TOPIC``, ``BATCH_PARTITIONS``,
  ``BATCH_STATE`` (a directory), ``BATCH_OUT`` (a file);
- ``BATCH_FAIL``: the handler raises on a batch holding a record with this value;
- ``BATCH_DELAY_S``: seconds each batch takes (a slow handler, for rebalances).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import faust

from streams.worker.runtime.batch_source import install_batch_handler
from streams.worker.runtime.tables import Changelogs, byte_keyed
from streams.worker.source import SourceRecord
from streams.worker.stage import TableChange


def build() -> faust.App:
    partitions = int(os.environ["BATCH_PARTITIONS"])
    app = faust.App(
        os.environ["BATCH_APP_ID"],
        broker=f"kafka://{os.environ['BATCH_BOOTSTRAP']}",
        store="memory://",
        datadir=str(Path(os.environ["BATCH_STATE"]) / "{conf.name}"),
        topic_partitions=partitions,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
    )
    counts = byte_keyed(
        app.Table("counts", partitions=partitions, use_partitioner=True, key_type=bytes)
    )
    changelogs = Changelogs(app, {"counts": counts})
    out = open(os.environ["BATCH_OUT"], "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the app
    fail = os.environ.get("BATCH_FAIL", "").encode() or None
    delay = float(os.environ.get("BATCH_DELAY_S", "0"))

    async def handle(records: list[SourceRecord]) -> None:
        if fail is not None and any(r.value == fail for r in records):
            raise RuntimeError("injected handler failure")
        if delay:
            await asyncio.sleep(delay)
        per_key: dict[bytes, int] = {}
        for r in records:
            if r.key is not None:
                per_key[r.key] = per_key.get(r.key, 0) + 1
        await changelogs.apply(
            TableChange("counts", key, (counts.get(key) or 0) + n) for key, n in per_key.items()
        )
        out.write(
            "".join(f"{r.partition} {r.offset} {(r.value or b'').decode()}\n" for r in records)
        )
        out.flush()

    install_batch_handler(app, os.environ["BATCH_TOPIC"], handle, max_batch=200)
    return app


def main() -> Any:
    logging.basicConfig(level=logging.INFO)
    worker = faust.Worker(build(), loglevel=logging.INFO, redirect_stdouts=False)
    return worker.execute_from_commandline()


if __name__ == "__main__":
    sys.exit(main())
