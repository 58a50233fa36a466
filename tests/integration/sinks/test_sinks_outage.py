"""ClickHouse down for 30 seconds mid-stream: nothing lost, nothing doubled, memory bounded."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.settings import Settings
from sinks.db import NativeDatabase
from sinks.migrate import migrate
from sinks.report import deployment_report
from sinks.rollup import rollup
from tests.synthetic import SyntheticData, generate

from .chserver import PrivateServer, free_port
from .sinkproc import committed_all, kill, produce, start_sink, topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = int(os.environ.get("LFR_TEST_OUTAGE_S", "30"))


def _part(data: SyntheticData, deployments: set[str]) -> SyntheticData:
    keep = SyntheticData()
    for name in ("operations", "scans", "alerts", "outcomes"):
        records = [r for r in getattr(data, name) if r["deployment_id"] in deployments]
        setattr(keep, name, records)
    return keep


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _paused(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()  # noqa: S310 - local
    except OSError:
        return -1.0
    for line in text.decode().splitlines():
        if line.startswith("lfr_sink_paused_partitions "):
            return float(line.split()[1])
    return -1.0


def test_clickhouse_outage_of_30_seconds(
    test_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    server = PrivateServer(tmp_path / "ch")
    server.start()
    metrics_port = free_port()
    settings = test_settings(clickhouse_port=server.tcp_port, sink_metrics_port=metrics_port)
    name = settings.clickhouse_database
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    data = generate(51, deployments=4, scans_per_deployment=500, start=start)
    deployments = sorted(data.expected)
    db = NativeDatabase(host="127.0.0.1", port=server.tcp_port)
    migrate(db, name)
    sink = None
    try:
        with topics(settings):
            produce(settings, _part(data, set(deployments[:2])), [])
            sink = start_sink(settings, tmp_path / "sink.log")
            wait_until(lambda: db.execute(f"SELECT count() FROM {name}.scans")[0][0] > 0,
                       120, "first rows")  # fmt: skip
            server.kill()
            rss_before = _rss_kb(sink.pid)
            produce(settings, _part(data, set(deployments[2:])), [])
            paused_seen = 0.0
            rss_max = rss_before
            deadline = time.monotonic() + OUTAGE_S
            while time.monotonic() < deadline:
                assert sink.poll() is None, "the sink must survive the outage"
                paused_seen = max(paused_seen, _paused(metrics_port))
                rss_max = max(rss_max, _rss_kb(sink.pid))
                time.sleep(1)
            assert paused_seen >= 1, "partitions are paused while ClickHouse is down"
            assert rss_max - rss_before < 64 * 1024, "memory stays bounded during the outage"
            server.start()
            db = NativeDatabase(host="127.0.0.1", port=server.tcp_port)
            wait_until(lambda: committed_all(settings), 180, "the sink to catch up")
            kill(sink)
            rollup(db, name)
            rows = db.execute(f"SELECT count(), uniqExact(event_id) FROM {name}.scans FINAL")
            assert rows[0] == (len(data.scans), len(data.scans))
            assert db.execute(f"SELECT count() FROM {name}.outcomes FINAL")[0][0] == len(
                data.alerts
            )
            assert deployment_report(db, name) == [data.expected[k] for k in deployments]
    finally:
        if sink is not None:
            kill(sink)
        server.kill()
