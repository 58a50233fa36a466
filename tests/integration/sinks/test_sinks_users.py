"""The ClickHouse users of deploy/local/clickhouse/users.xml on the shared 18.16 server.

The analyst reads only; the ingest user inserts (and runs the rollup's
INSERT ... SELECT) but has no DDL; ``lfr sink`` writes as ingest and
``lfr report`` reads as analyst, proven by giving the admin login a wrong
password. 18.16 has no wildcard in ``allow_databases``, so these tests use the
one database users.xml grants for them, ``lfr_roles_test``, and take a file
lock so that two runs on the same server do not share it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import Settings
from sinks import rows as R
from sinks.db import NativeDatabase, connect
from sinks.errors import ClickHouseRefused
from sinks.report import deployment_report
from sinks.rollup import rollup
from tests.synthetic import generate

from .conftest import ROLES_DB
from .sinkproc import committed_all, kill, produce, sink_env, start_sink, topics, wait_until

pytestmark = pytest.mark.integration


def _scan_block(seed: int) -> tuple[tuple[str, ...], list[list[object]]]:
    data = generate(seed, deployments=1, scans_per_deployment=5, alerts_per_deployment=0)
    rows = [R.SCANS.map_record(s) for s in data.scans]
    return R.SCANS.columns, R.columnar(R.SCANS.columns, rows)


def _refused(db: NativeDatabase, sql: str) -> ClickHouseRefused:
    # rights are the environment's doing, never the rows': the sink blocks on them
    with pytest.raises(ClickHouseRefused) as caught:
        db.execute(sql)
    return caught.value


def test_analyst_cannot_insert_or_drop(roles: Settings) -> None:
    analyst = connect(roles, "analyst")
    columns, block = _scan_block(1)
    with pytest.raises(ClickHouseRefused, match="readonly"):
        analyst.insert(f"{ROLES_DB}.scans", columns, block)
    assert "readonly" in str(_refused(analyst, f"DROP TABLE {ROLES_DB}.scans"))
    _refused(analyst, f"ALTER TABLE {ROLES_DB}.scans DROP PARTITION '2026-01-01'")
    _refused(analyst, f"TRUNCATE TABLE {ROLES_DB}.alerts")
    _refused(analyst, f"INSERT INTO {ROLES_DB}.rollup_log SELECT * FROM {ROLES_DB}.rollup_log")
    admin = connect(roles, "admin")
    assert admin.execute(f"SELECT count() FROM {ROLES_DB}.scans") == [(0,)]
    assert {r[0] for r in admin.execute(f"SHOW TABLES FROM {ROLES_DB}")} >= {"scans", "alerts"}
    analyst.close()
    admin.close()


def test_ingest_inserts_and_rolls_up_but_cannot_drop_or_alter(roles: Settings) -> None:
    ingest = connect(roles, "ingest")
    columns, block = _scan_block(2)
    ingest.insert(f"{ROLES_DB}.scans", columns, block)
    result = rollup(ingest, ROLES_DB)  # its INSERT ... SELECT is within the ingest rights
    assert result.days["scans"]
    for sql in (
        f"DROP TABLE {ROLES_DB}.scans",
        f"ALTER TABLE {ROLES_DB}.scans DROP PARTITION '{result.days['scans'][0]}'",
        f"ALTER TABLE {ROLES_DB}.scans ADD COLUMN x UInt8",
        f"ALTER TABLE {ROLES_DB}.scans DELETE WHERE 1",
        f"TRUNCATE TABLE {ROLES_DB}.scans",
        f"CREATE TABLE {ROLES_DB}.intruder (x UInt8) ENGINE = Memory",
        f"OPTIMIZE TABLE {ROLES_DB}.scans FINAL",
    ):
        assert "DDL queries are prohibited" in str(_refused(ingest, sql)), sql
    admin = connect(roles, "admin")
    assert admin.execute(f"SELECT count() FROM {ROLES_DB}.scans") == [(5,)]
    faces = admin.execute(f"SELECT sum(faces) FROM {ROLES_DB}.agg_faces_minute FINAL")
    assert faces == [(5,)]
    ingest.close()
    admin.close()


@pytest.mark.slow
def test_sink_writes_as_ingest_and_report_reads_as_analyst(roles: Settings, tmp_path: Path) -> None:
    # the admin login is wrong: only the ingest and analyst users can make this pass
    settings = roles.model_copy(update={"clickhouse_password": SecretStr("not-the-admin-one")})
    with pytest.raises(ClickHouseRefused, match="password"):
        connect(settings, "admin").execute("SELECT 1")
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    data = generate(17, deployments=2, scans_per_deployment=60, start=start)
    expected = [data.expected[k] for k in sorted(data.expected)]
    analyst = connect(settings, "analyst")
    log = tmp_path / "sink.log"
    with topics(settings):
        produce(settings, data, [])
        proc = start_sink(settings, log)
        try:
            wait_until(lambda: committed_all(settings), 120, "the sink to commit everything")
            # the sink's own rollup (as ingest) feeds the report's aggregates
            wait_until(lambda: deployment_report(analyst, ROLES_DB) == expected, 60,
                       "the sink's rollup")  # fmt: skip
        finally:
            kill(proc)
            analyst.close()
    report = subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", "--format", "json"],
        env=sink_env(settings), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr + log.read_text()[-2000:]
    assert json.loads(report.stdout) == expected
