"""The report's statistics and dates on ClickHouse 18.16 and on chDB, from hand-made records.

Each case writes operation windows, alerts and outcomes as the sink would,
rolls up, and reads the report and the analyst views; every case runs on
both engines and the two must give the same doubles.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from sinks import rows as R
from sinks.db import Database
from sinks.migrate import migrate
from sinks.report import deployment_report, time_to_locate_report
from sinks.retention import run_retention
from sinks.rollup import rollup

pytestmark = pytest.mark.integration

# recent enough that retention keeps the rows until a test moves the clock on
BASE = (datetime.now(UTC) - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)


def window(dep: str, starts: datetime, ends: datetime | None, mode: str = "VAN",
           status: str = "ENDED") -> dict[str, Any]:  # fmt: skip
    return {
        "deployment_id": dep, "site_id": "s1", "location": f"Street {dep}",
        "use_case": "Wanted by court", "mode": mode, "camera_ids": ["c1", "c2"],
        "watchlist_id": f"wl-{dep}", "watchlist_size": 16000, "match_threshold": 0.64,
        "authorised_by": "Supt A", "authorised_at": starts - timedelta(hours=1),
        "starts_at": starts, "ends_at": ends, "status": status, "officers_present": 4,
        "updated_at": ends or starts,
    }  # fmt: skip


def alert_and_outcome(dep: str, n: int, captured: datetime, ttl_s: float | None,
                      verdict: str = "TRUE_MATCH", confirmed: bool = True,
                      ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """One alert and its adjudication; ``ttl_s`` seconds from wanted_since to located_at."""
    located = None if ttl_s is None else captured + timedelta(seconds=600)
    wanted = captured - timedelta(days=5) if ttl_s is None else (
        captured + timedelta(seconds=600) - timedelta(seconds=ttl_s))  # fmt: skip
    alert = {
        "alert_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dep}:{n}")),
        "event_id": f"ev-{dep}-{n}", "deployment_id": dep, "site_id": "s1", "camera_id": "c1",
        "subject_ref": f"{n:032x}", "watchlist_id": f"wl-{dep}",
        "category": "wanted_by_court", "score": 0.7,
        "threshold": 0.64, "watchlist_version": 1, "template_model": "m",
        "captured_at": captured, "alerted_at": captured + timedelta(milliseconds=100),
        "wanted_since": wanted,
    }  # fmt: skip
    outcome = {
        **{k: v for k, v in alert.items() if k not in ("watchlist_id", "watchlist_version",
                                                        "template_model")},
        "officer_ref": "PC-1", "verdict": verdict, "confirmed": confirmed,
        "outcome": "ARREST" if verdict == "TRUE_MATCH" and confirmed else "NONE",
        "located_at": located, "decided_at": captured + timedelta(minutes=30),
        "time_to_locate_s": None if located is None else (located - wanted).total_seconds(),
        "response_s": None if located is None else 600.0,
    }  # fmt: skip
    return alert, outcome


def write(db: Database, name: str, windows: list[dict[str, Any]],
          pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:  # fmt: skip
    migrate(db, name)
    for spec, records in ((R.OPERATION_WINDOWS, windows), (R.ALERTS, [a for a, _ in pairs]),
                          (R.OUTCOMES, [o for _, o in pairs])):  # fmt: skip
        if records:
            rows = [spec.map_record(r) for r in records]
            db.insert(f"{name}.{spec.name}", spec.columns, R.columnar(spec.columns, rows))
    rollup(db, name)


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["deployment_id"]: r for r in rows}


TTL = {  # deployment -> time-to-locate values (s) of its confirmed true matches
    "odd": [300.0, 100.0, 200.0],
    "even": [400.0, 100.0, 300.0, 200.0, 1000.0, 600.0, 900.0, 500.0, 800.0, 700.0],
    "one": [123.25],
    "none": [],
}


@pytest.fixture
def statistics_case(databases: list[tuple[str, Database, str]]
                    ) -> list[tuple[str, Database, str]]:  # fmt: skip
    """Four deployments with odd, even, one and no located values, plus a confirmed
    false alert (located, far slower) and an unconfirmed true match that must not count."""
    windows, pairs = [], []
    for i, (dep, values) in enumerate(TTL.items()):
        starts = BASE + timedelta(hours=i)
        windows.append(window(dep, starts, starts + timedelta(minutes=50),
                              mode="FIXED_REMOTE" if dep == "even" else "VAN"))  # fmt: skip
        for n, ttl in enumerate(values):
            pairs.append(alert_and_outcome(dep, n, starts + timedelta(minutes=n + 1), ttl))
        pairs.append(alert_and_outcome(dep, 90, starts + timedelta(minutes=40), 99_999.0,
                                       verdict="FALSE_ALERT"))  # fmt: skip
        pairs.append(alert_and_outcome(dep, 91, starts + timedelta(minutes=41), None,
                                       confirmed=False))  # fmt: skip
    for _, db, name in databases:
        write(db, name, windows, pairs)
    return databases


def test_median_of_odd_even_one_and_no_values(
    statistics_case: list[tuple[str, Database, str]],
) -> None:
    results = []
    for label, db, name in statistics_case:
        rows = by_id(deployment_report(db, name))
        assert rows["odd"]["median_time_to_locate_s"] == 200.0, label
        assert rows["even"]["median_time_to_locate_s"] == 550.0, label  # (500 + 600) / 2
        assert rows["one"]["median_time_to_locate_s"] == 123.25, label
        assert rows["none"]["median_time_to_locate_s"] is None, label
        for dep, values in TTL.items():
            if values:
                assert rows[dep]["median_time_to_locate_s"] == float(np.median(values)), label
            # the confirmed false alert (99,999 s) counts as a false alert, never as located
            assert rows[dep]["false_alerts_confirmed"] == 1, label
            assert rows[dep]["true_alerts_unconfirmed"] == 1, label
        view = dict(db.execute(
            f"SELECT deployment_id, median_time_to_locate_s FROM {name}.deployment_metrics"
        ))  # fmt: skip
        assert view == {d: r["median_time_to_locate_s"] for d, r in rows.items()}, label
        results.append(rows)
    assert results[0] == results[1]


def test_p90_interpolates_and_views_equal_the_report(
    statistics_case: list[tuple[str, Database, str]],
) -> None:
    answers = []
    for label, db, name in statistics_case:
        ttl = time_to_locate_report(db, name)
        modes = {r["mode"]: r for r in ttl["by_mode"]}
        fixed = TTL["even"]
        van = TTL["odd"] + TTL["one"]
        assert modes["FIXED_REMOTE"]["located"] == len(fixed), label
        assert modes["VAN"]["located"] == len(van), label
        assert modes["FIXED_REMOTE"]["median_s"] == float(np.median(fixed))
        assert modes["VAN"]["median_s"] == float(np.median(van))
        for mode, values in (("FIXED_REMOTE", fixed), ("VAN", van)):
            assert modes[mode]["p90_s"] == pytest.approx(np.quantile(values, 0.9), rel=1e-12)
        view = {m: (n, med, p90) for m, n, med, p90 in db.execute(
            f"SELECT mode, located, median_s, p90_s FROM {name}.time_to_locate_by_mode"
        )}  # fmt: skip
        assert view == {m: (r["located"], r["median_s"], r["p90_s"]) for m, r in modes.items()}
        (reduction,) = db.execute(f"SELECT median_reduction FROM {name}.time_to_locate_reduction")
        assert reduction[0] == ttl["median_reduction_fixed_vs_van"], label
        answers.append(ttl)
    assert answers[0] == answers[1]


def test_report_unchanged_after_retention_drops_the_rows(
    statistics_case: list[tuple[str, Database, str]],
) -> None:
    for label, db, name in statistics_case:
        before = deployment_report(db, name)
        ttl_before = time_to_locate_report(db, name)
        result = run_retention(db, name, datetime.now(UTC) + timedelta(days=60), 31, 31)
        assert {"alerts", "outcomes"} <= set(result.dropped), label
        assert db.execute(f"SELECT count() FROM {name}.outcomes")[0][0] == 0, label
        rollup(db, name)
        assert deployment_report(db, name) == before, label
        assert time_to_locate_report(db, name) == ttl_before, label


def test_dates_are_london_dates_and_durations_cross_dst_exactly(
    databases: list[tuple[str, Database, str]],
) -> None:
    late = datetime(2025, 7, 14, 23, 30, tzinfo=UTC)  # 00:30 BST on 15 July
    dst_end = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # 01:30 BST; clocks go back at 01:00 UTC
    dst_start = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # 00:30 GMT; forward at 01:00 UTC
    windows = [
        window("late", late, late + timedelta(hours=2)),
        window("autumn", dst_end, dst_end + timedelta(hours=3, milliseconds=250)),
        window("spring", dst_start, dst_start + timedelta(hours=2)),
    ]
    for label, db, name in databases:
        write(db, name, windows, [])
        rows = by_id(deployment_report(db, name))
        assert rows["late"]["date"] == "2025-07-15", label
        assert rows["late"]["starts_at"] == "2025-07-14T23:30:00.000Z", label
        assert rows["autumn"]["date"] == "2025-10-26", label
        assert rows["autumn"]["duration_s"] == 3 * 3600 + 0.25, label  # not 4 h of wall clock
        assert rows["spring"]["duration_s"] == 2 * 3600.0, label  # not 3 h of wall clock
        utc = by_id(deployment_report(db, name, timezone="UTC"))
        assert utc["late"]["date"] == "2025-07-14", label
        view = dict(db.execute(f"SELECT deployment_id, date FROM {name}.deployment_metrics"))
        assert view == {d: r["date"] for d, r in rows.items()}, label
        since = datetime(2025, 7, 15, tzinfo=UTC).date()
        assert [r["deployment_id"] for r in deployment_report(db, name, since=since,
                                                              until=since)] == ["late"]  # fmt: skip


def test_running_and_cancelled_deployments(databases: list[tuple[str, Database, str]]) -> None:
    windows = [
        window("running", BASE, None, status="ACTIVE"),
        window(
            "cancelled", BASE + timedelta(hours=1), BASE + timedelta(hours=3), status="CANCELLED"
        ),
    ]
    for label, db, name in databases:
        write(db, name, windows, [])
        rows = by_id(deployment_report(db, name))
        assert set(rows) == {"running"}, label
        assert rows["running"]["duration_s"] is None and rows["running"]["status"] == "ACTIVE"
        every = by_id(deployment_report(db, name, include_cancelled=True))
        cancelled = every["cancelled"]
        assert cancelled["status"] == "CANCELLED", label
        assert cancelled["duration_s"] is None, label
        counts = ("faces_seen", "total_alerts", "true_alerts_confirmed", "outcome_arrest")
        assert all(cancelled[k] == 0 for k in counts), label


def test_re_adjudicated_outcome_leaves_no_stale_time_to_locate(
    databases: list[tuple[str, Database, str]],
) -> None:
    """A located true match later judged a false alert must leave the aggregates."""
    starts = BASE
    alert, outcome = alert_and_outcome("d", 1, starts + timedelta(minutes=5), 400.0)
    for label, db, name in databases:
        write(db, name, [window("d", starts, starts + timedelta(hours=1))], [(alert, outcome)])
        assert by_id(deployment_report(db, name))["d"]["median_time_to_locate_s"] == 400.0
        later = {**outcome, "verdict": "FALSE_ALERT", "outcome": "NONE",
                 "decided_at": outcome["decided_at"] + timedelta(minutes=5)}  # fmt: skip
        row = R.OUTCOMES.map_record(later)
        db.insert(f"{name}.outcomes", R.OUTCOMES.columns, R.columnar(R.OUTCOMES.columns, [row]))
        rollup(db, name)
        assert by_id(deployment_report(db, name))["d"]["median_time_to_locate_s"] is None, label
        assert time_to_locate_report(db, name)["by_mode"] == [], label


def test_rollup_log_has_one_rolled_at_per_run_over_many_days(
    databases: list[tuple[str, Database, str]],
) -> None:
    days = [BASE - timedelta(days=d) for d in range(6)]
    windows = [window(f"d{i}", day, day + timedelta(hours=1)) for i, day in enumerate(days)]
    pairs = [alert_and_outcome(f"d{i}", 0, day + timedelta(minutes=5), 60.0)
             for i, day in enumerate(days)]  # fmt: skip
    for label, db, name in databases:
        write(db, name, windows, pairs)
        rows = db.execute(
            f"SELECT source_table, version, uniqExact(rolled_at), count() "
            f"FROM {name}.rollup_log GROUP BY source_table, version"
        )
        assert {(t, n) for t, _, _, n in rows} == {("alerts", 6), ("outcomes", 6)}, label
        assert all(distinct == 1 for _, _, distinct, _ in rows), label
