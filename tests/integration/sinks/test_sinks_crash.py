"""The sink on the real broker and server: SIGKILL at any point, counts stay exact."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from schemas.codec import encode
from sinks.db import NativeDatabase
from sinks.migrate import migrate
from sinks.report import deployment_report
from sinks.rollup import rollup
from tests.synthetic import generate

from .sinkproc import committed_all, kill, produce, start_sink, topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _bad_records(settings: Settings, data: Any) -> list[tuple[str, bytes]]:
    future = {**data.scans[0], "event_id": "far-future",
              "captured_at": datetime(2200, 1, 1, tzinfo=UTC)}  # fmt: skip
    return [(settings.topic_scans, b"\x00garbage"), (settings.topic_alerts, b"\xc3\x01short"),
            (settings.topic_scans, encode("Scan", future))]  # fmt: skip


def test_sigkill_between_insert_and_commit_and_at_random_points(
    test_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = test_settings(sink_metrics_port=0)
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    data = generate(41, deployments=4, scans_per_deployment=400, start=start)
    db = NativeDatabase(**settings.clickhouse_config() | {"database": "default"})
    name = settings.clickhouse_database
    migrate(db, name)
    log = tmp_path / "sink.log"
    try:
        with topics(settings):
            produce(settings, data, _bad_records(settings, data))
            # killed right after an insert, before its offsets are committed
            for n in (1, 4):
                proc = start_sink(settings, log, kill_after_inserts=n)
                assert proc.wait(timeout=120) == -9, log.read_text()[-2000:]
            # killed at random points
            rng = random.Random(7)  # noqa: S311 - crash timing, not a secret
            for _ in range(2):
                proc = start_sink(settings, log)
                time.sleep(rng.uniform(1.0, 4.0))
                kill(proc)
            proc = start_sink(settings, log)
            try:
                wait_until(lambda: committed_all(settings), 180, "the sink to commit everything")
            finally:
                kill(proc)
            rollup(db, name)
            scans = db.execute(f"SELECT count(), uniqExact(event_id) FROM {name}.scans FINAL")
            assert scans[0] == (len(data.scans), len(data.scans))
            for table, expected in (("alerts", len(data.alerts)),
                                    ("outcomes", len(data.alerts))):  # fmt: skip
                assert db.execute(f"SELECT count() FROM {name}.{table} FINAL")[0][0] == expected
            report = deployment_report(db, name)
            assert report == [data.expected[k] for k in sorted(data.expected)]
            # dead letters: one row per bad record (however often the DLQ repeated it)
            dead = db.execute(
                f"SELECT DISTINCT source_topic, source_offset, reason FROM {name}.dead_letters"
            )
            reasons = sorted(r[2] for r in dead)
            assert reasons == ["undecodable", "undecodable", "unmappable"], dead
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.close()
