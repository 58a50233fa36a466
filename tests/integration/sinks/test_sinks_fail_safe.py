"""Invariant 7 on the real broker and server: a wrong environment drains nothing.

The sink starts with the ingest user's password wrong (the user exists), so
every insert would fail. It must dead-letter nothing, commit nothing, answer
503 on /readyz with the cause, log the block once, and exit 1 after
LFR_SINK_MAX_BLOCKED_S; restarted with the right password, every row lands
exactly once. A table missing under a running sink (the insert path rather
than the login) blocks the same way and resumes when the table is back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import Settings
from sinks.db import connect
from sinks.migrate import migrate
from sinks.report import deployment_report
from sinks.rollup import rollup
from tests.synthetic import SyntheticData, generate

from .chserver import free_port
from .conftest import ROLES_DB
from .sinkproc import committed_all, kill, produce, start_sink, topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310 - loopback
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return -1, ""


def _metric(port: int, sample: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()  # noqa: S310 - loopback
    except OSError:
        return None
    for line in text.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _group_offsets(settings: Settings) -> dict[object, object]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        return dict(admin.list_group_offsets({f"{settings.app_id}-sink": None}).get(
            f"{settings.app_id}-sink", {}))  # fmt: skip
    finally:
        admin.close()


def _records_in(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends, begins = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()


def _data() -> SyntheticData:
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    return generate(23, deployments=2, scans_per_deployment=150, start=start)


def _exactly_once(settings: Settings, data: SyntheticData) -> None:
    admin = connect(settings, "admin")
    try:
        for table, key, records in (("scans", "event_id", data.scans),
                                    ("alerts", "alert_id", data.alerts),
                                    ("outcomes", "alert_id", data.outcomes)):  # fmt: skip
            ids = sorted(r[0] for r in admin.execute(f"SELECT {key} FROM {ROLES_DB}.{table} FINAL"))  # noqa: S608
            # one row per id (a re-adjudication replaces its outcome), every id present
            assert ids == sorted({str(r[key]) for r in records}), table
        rollup(admin, ROLES_DB)  # the sink was killed: its last rollup may not have run
        assert deployment_report(admin, ROLES_DB) == [
            data.expected[k] for k in sorted(data.expected)
        ]
    finally:
        admin.close()


def test_wrong_clickhouse_password_dead_letters_and_commits_nothing(
    roles: Settings, tmp_path: Path
) -> None:
    port = free_port()
    right = roles.model_copy(update={"sink_metrics_port": port})
    wrong = right.model_copy(update={"clickhouse_ingest_password": SecretStr("not-the-password")})
    data = _data()
    log = tmp_path / "sink.log"
    with topics(right):
        produce(right, data, [(right.topic_scans, b"\x00garbage")])
        proc = start_sink(wrong, log)
        try:
            errors = 'lfr_sink_environment_errors_total{cause="authentication"}'
            wait_until(lambda: (_metric(port, errors) or 0) >= 4, 60, "four failed attempts")
            status, body = _readyz(port)
            assert status == 503 and "authentication" in body and "password" in body, body
            assert _metric(port, 'lfr_sink_blocked{cause="authentication"}') == 1.0
            assert _group_offsets(right) == {}  # nothing committed
            assert _records_in(right, right.topic_dlq) == 0  # nothing dead-lettered
        finally:
            kill(proc)
        text = log.read_text()
        assert text.count("sink blocked (authentication)") == 1, text[-3000:]

        # blocked longer than LFR_SINK_MAX_BLOCKED_S: exit 1, one line naming the cause
        impatient = wrong.model_copy(update={"sink_max_blocked_s": 2.0})
        started = time.monotonic()
        proc = start_sink(impatient, tmp_path / "impatient.log")
        assert proc.wait(timeout=60) == 1
        assert time.monotonic() - started < 30
        last = (tmp_path / "impatient.log").read_text().strip().splitlines()[-1]
        assert last.startswith("lfr: blocked (authentication) for ") and "password" in last, last
        assert "Traceback" not in (tmp_path / "impatient.log").read_text()
        assert _group_offsets(right) == {} and _records_in(right, right.topic_dlq) == 0

        # the right password: everything lands, exactly once, and only the garbage is dead
        proc = start_sink(right, log)
        try:
            wait_until(lambda: committed_all(right), 120, "the sink to commit everything")
            wait_until(lambda: _readyz(port)[0] == 200, 30, "/readyz 200")
            assert _metric(port, 'lfr_sink_blocked{cause="authentication"}') == 0.0
        finally:
            kill(proc)
        _exactly_once(right, data)
        assert _records_in(right, right.topic_dlq) == 1


def test_a_table_gone_under_a_running_sink_blocks_until_it_is_back(
    roles: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = roles.model_copy(update={"sink_metrics_port": port})
    data = _data()
    admin = connect(settings, "admin")
    admin.execute(f"DROP TABLE {ROLES_DB}.scans")
    log = tmp_path / "sink.log"
    try:
        with topics(settings):
            produce(settings, data, [])
            proc = start_sink(settings, log)
            try:
                wait_until(lambda: _metric(port, 'lfr_sink_blocked{cause="unknown_table"}') == 1.0,
                           60, "the sink to block on the missing table")  # fmt: skip
                status, body = _readyz(port)
                assert status == 503 and "unknown table" in body.replace("_", " "), body
                assert _records_in(settings, settings.topic_dlq) == 0
                assert not committed_all(settings)
                # the table is back
                _recreate_scans(settings)
                wait_until(lambda: committed_all(settings), 120, "the sink to commit everything")
            finally:
                kill(proc)
            assert _records_in(settings, settings.topic_dlq) == 0
            assert log.read_text().count("sink unblocked after") == 1
        _exactly_once(settings, data)
    finally:
        admin.close()


def _recreate_scans(settings: Settings) -> None:
    """Re-apply the migrations from scratch into a fresh copy, then swap ``scans`` back in."""
    admin = connect(settings, "admin", database="default")
    spare = f"{ROLES_DB}_spare"
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {spare}")
        migrate(admin, spare)
        admin.execute(f"RENAME TABLE {spare}.scans TO {ROLES_DB}.scans")
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {spare}")
        admin.close()


def test_unknown_database_blocks_before_consuming_and_exits_after_the_bound(
    test_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()
    # the database was never migrated: the sink's login names one that does not exist
    settings = test_settings(sink_metrics_port=port, sink_max_blocked_s=8.0)
    log = tmp_path / "sink.log"
    with topics(settings):
        produce(settings, _data(), [])
        proc = start_sink(settings, log)
        try:
            wait_until(lambda: _readyz(port)[0] == 503, 30, "/readyz 503")
            status, body = _readyz(port)
            assert "unknown database" in body and settings.clickhouse_database in body, body
            assert proc.wait(timeout=60) == 1
        finally:
            kill(proc)
        assert _group_offsets(settings) == {}
        assert _records_in(settings, settings.topic_dlq) == 0
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("lfr: blocked (unknown_database) for "), last
