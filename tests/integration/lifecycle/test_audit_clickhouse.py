"""``lfr audit retention`` on the real ClickHouse server: old rows are a breach."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from common.settings import Settings
from sinks.db import NativeDatabase
from sinks.migrate import migrate
from streams.audit import audit
from tests.integration.sinks.conftest import load
from tests.integration.worker.conftest import settings_env
from tests.synthetic import generate

pytestmark = [pytest.mark.integration]


def test_rows_past_their_days_are_reported_and_fail_the_command(
    test_settings: Callable[..., Settings],
) -> None:
    settings = test_settings()
    db = NativeDatabase(**settings.clickhouse_config() | {"database": "default"})
    name = settings.clickhouse_database
    migrate(db, name)
    try:
        recent = generate(3, deployments=1, start=datetime.now(UTC) - timedelta(days=2))
        load(db, name, recent, ("scans", "alerts", "outcomes"))
        stores = {s.store: s for s in audit(settings) if s.store.startswith("clickhouse:")}
        assert set(stores) == {"clickhouse:alerts", "clickhouse:outcomes",
                               "clickhouse:dead_letters", "clickhouse:scans"}  # fmt: skip
        assert not any(s.breach for s in stores.values())
        assert stores["clickhouse:alerts"].records == len(recent.alerts)
        assert stores["clickhouse:dead_letters"].oldest_age_s is None

        # 40 days old: past the 31 days (+1 for day partitions) of alerts, within 90 of scans
        old = generate(4, deployments=1, start=datetime.now(UTC) - timedelta(days=40))
        load(db, name, old, ("scans", "alerts"))
        run = subprocess.run(
            [sys.executable, "-m", "streams.cli", "audit", "retention", "--format", "json"],
            env={**settings_env(settings)}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
        report = {s["store"]: s for s in json.loads(run.stdout)}
        assert report["clickhouse:alerts"]["breach"] is True
        assert report["clickhouse:scans"]["breach"] is False
        assert report["clickhouse:outcomes"]["breach"] is False
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.close()
