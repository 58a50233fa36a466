"""Migrations, rollup, views, report and retention on ClickHouse 18.16 and on chDB."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sinks.db import Database, NativeDatabase
from sinks.ddl import Migration
from sinks.errors import MigrationError
from sinks.migrate import load_migrations, migrate
from sinks.report import deployment_report, time_to_locate_report
from sinks.retention import run_retention
from sinks.rollup import rollup
from tests.synthetic import generate

from .conftest import load, normalise

pytestmark = pytest.mark.integration

# one start for every generate() of a test, so both servers get identical rows
START = (datetime.now(UTC) - timedelta(days=3)).replace(hour=1, minute=0, second=0, microsecond=0)

VIEWS = ("deployments", "deployment_metrics", "time_to_locate", "time_to_locate_by_mode",
         "time_to_locate_reduction", "false_alerts", "faces_daily")  # fmt: skip

ANALYST_QUERIES = (
    # per-site trend of faces seen
    "SELECT site_id, day, sum(faces) FROM {db}.faces_daily GROUP BY site_id, day",
    # false alerts by threshold
    "SELECT threshold, sum(false_alerts), sum(faces_seen) FROM {db}.false_alerts "
    "GROUP BY threshold",
    # time to locate by category
    "SELECT category, sum(located), max(p90_s) FROM {db}.time_to_locate GROUP BY category",
)


def test_migrations_apply_once_on_both(databases: list[tuple[str, Database, str]]) -> None:
    count = len(load_migrations())
    for _, db, name in databases:
        first = migrate(db, name)
        second = migrate(db, name)
        assert first.applied == list(range(1, count + 1))
        assert second.applied == [] and second.already == first.applied
        rows = db.execute(f"SELECT count() FROM {name}.schema_migrations FINAL")
        assert rows[0][0] == count


def test_an_edited_migration_is_refused(databases: list[tuple[str, Database, str]]) -> None:
    _, db, name = databases[0]
    migrate(db, name)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited\n") for m in load_migrations()]
    with pytest.raises(MigrationError, match="edited"):
        migrate(db, name, edited)


def test_two_migrators_at_once(real_stack: Any, databases: list[tuple[str, Database, str]]
                               ) -> None:  # fmt: skip
    _, native, name = databases[0]
    assert isinstance(native, NativeDatabase)
    errors: list[BaseException] = []

    def run() -> None:
        db = NativeDatabase(host=real_stack.settings.clickhouse_host,
                            port=real_stack.settings.clickhouse_port)  # fmt: skip
        try:
            migrate(db, name)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate(native, name).applied == []
    assert native.execute(f"EXISTS TABLE {name}.deployment_metrics")[0][0] == 1


def _prepare(db: Database, name: str, seed: int) -> dict[str, dict[str, object]]:
    data = generate(seed, start=START)
    migrate(db, name)
    load(db, name, data)
    load(db, name, data)  # a redelivered copy of every batch
    rollup(db, name)
    rollup(db, name)
    return data.expected


def test_views_agree_on_both_servers_and_report_equals_truth(
    databases: list[tuple[str, Database, str]],
) -> None:
    results = {}
    for label, db, name in databases:
        expected = _prepare(db, name, seed=11)
        report = deployment_report(db, name)
        assert report == [expected[k] for k in sorted(expected)], label
        per_view = {v: normalise(db.execute(f"SELECT * FROM {name}.{v}")) for v in VIEWS}
        per_query = [normalise(db.execute(q.format(db=name))) for q in ANALYST_QUERIES]
        results[label] = (per_view, per_query, time_to_locate_report(db, name))
        assert all(per_view[v] for v in VIEWS), f"{label}: a view returned no rows"
    (a_views, a_queries, a_ttl), (b_views, b_queries, b_ttl) = results.values()
    for view in VIEWS:
        assert a_views[view] == b_views[view], view
    assert a_queries == b_queries
    assert a_ttl == b_ttl


def test_report_filters(databases: list[tuple[str, Database, str]]) -> None:
    _, db, name = databases[1]
    expected = _prepare(db, name, seed=12)
    some = sorted(expected)[1]
    assert deployment_report(db, name, deployment=some) == [expected[some]]
    day = expected[some]["date"]
    assert isinstance(day, str)
    since = datetime.fromisoformat(day).date()
    rows = deployment_report(db, name, since=since, until=since)
    assert rows and all(r["date"] == day for r in rows)


def test_report_survives_redelivery_rollup_and_retention(
    databases: list[tuple[str, Database, str]],
) -> None:
    for label, db, name in databases:
        data = generate(21, start=START)
        migrate(db, name)
        load(db, name, data)
        rollup(db, name)
        before = deployment_report(db, name)
        ttl_before = time_to_locate_report(db, name)
        load(db, name, data, ("alerts", "outcomes", "scans"))  # redelivery
        rollup(db, name)
        assert deployment_report(db, name) == before, label
        later = datetime.now(UTC) + timedelta(days=60)
        result = run_retention(db, name, later, person_days=31, scan_days=31)
        assert set(result.dropped) == {"alerts", "outcomes", "scans"}, label
        assert not result.kept_unrolled
        for table in ("alerts", "outcomes", "scans"):
            assert db.execute(f"SELECT count() FROM {name}.{table}")[0][0] == 0, (label, table)
        audit = db.execute(f"SELECT count() FROM {name}.retention_log")[0][0]
        assert audit == sum(len(d) for d in result.dropped.values())
        rollup(db, name)  # nothing left to recompute: the aggregates must stay
        assert deployment_report(db, name) == before, label
        assert time_to_locate_report(db, name) == ttl_before, label
        assert before == [data.expected[k] for k in sorted(data.expected)]


def test_retention_never_drops_rows_not_rolled_up(
    databases: list[tuple[str, Database, str]],
) -> None:
    for label, db, name in databases:
        data = generate(31, deployments=2, start=START)
        migrate(db, name)
        load(db, name, data)
        later = datetime.now(UTC) + timedelta(days=60)
        result = run_retention(db, name, later, person_days=31, scan_days=31)
        assert result.dropped == {}, label
        assert set(result.kept_unrolled) == {"alerts", "outcomes", "scans"}
        rollup(db, name)
        extra = generate(32, deployments=1, start=data.scans[0]["captured_at"])
        load(db, name, extra, ("scans",))  # new rows on an already rolled day
        result = run_retention(db, name, later, person_days=31, scan_days=31)
        assert "scans" in result.kept_unrolled, label
        assert db.execute(f"SELECT count() FROM {name}.scans")[0][0] > 0
