"""The idempotent rollup: aggregates recomputed for whole days from deduplicated rows.

Why not materialized views: a view fires on every inserted block, so a
redelivered batch would be counted twice. Instead each run recomputes every
aggregate key of the chosen days from the row tables (``uniqExact`` over
natural ids, ``argMax`` by version) and inserts the result with a higher
version into a ReplacingMergeTree keyed by what it aggregates; readers use
FINAL. Running it again replaces rows, never adds to them.

Retention drops row partitions by whole day and the aggregates are keyed by
day, so a day whose rows are gone is simply not recomputed: its aggregates
stay as last computed. For alert counts a day is recomputed only while its
``alerts`` partition exists (outcomes alone would lose pending alerts).

After aggregating, each (table, day) is recorded in ``rollup_log`` with the
number of distinct rows counted *before* aggregating; retention drops a day
only while the table still holds exactly that many distinct rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sinks.db import Database, sql_literal
from sinks.ddl import check_identifier

log = logging.getLogger(__name__)

# table -> (instant column that partitions it, natural id)
ROLLED_TABLES: dict[str, tuple[str, str]] = {
    "scans": ("captured_at", "event_id"),
    "alerts": ("captured_at", "alert_id"),
    "outcomes": ("captured_at", "alert_id"),
}


@dataclass
class RollupResult:
    """Days recomputed per source table."""

    days: dict[str, list[str]] = field(default_factory=dict)
    version: int = 0


def _day_list(days: Iterable[str]) -> str:
    return ", ".join(sql_literal(d) for d in sorted(days))


def present_days(db: Database, database: str, table: str, days: Iterable[str] | None) -> list[str]:
    """Days (ISO) that still have rows in ``table``, optionally within ``days``."""
    column, _ = ROLLED_TABLES[table]
    where = ""
    if days is not None:
        wanted = list(days)
        if not wanted:
            return []
        where = f" WHERE toString(toDate({column})) IN ({_day_list(wanted)})"
    rows = db.execute(
        f"SELECT DISTINCT toString(toDate({column})) AS d FROM {database}.{table}{where} ORDER BY d"  # noqa: S608
    )
    return [str(r[0]) for r in rows]


def distinct_counts(db: Database, database: str, table: str, days: list[str]) -> dict[str, int]:
    """Distinct natural ids per day of ``table`` (for rollup_log and retention)."""
    if not days:
        return {}
    column, ident = ROLLED_TABLES[table]
    rows = db.execute(
        f"SELECT toString(toDate({column})) AS d, uniqExact({ident}) FROM {database}.{table} "  # noqa: S608
        f"WHERE d IN ({_day_list(days)}) GROUP BY d"
    )
    return {str(d): int(n) for d, n in rows}


def faces_sql(database: str, days: list[str], version: int) -> str:
    """Faces seen per deployment, site, camera and minute of the given days."""
    return (
        f"INSERT INTO {database}.agg_faces_minute "  # noqa: S608
        "(deployment_id, site_id, camera_id, minute, day, faces, matched, version) "
        "SELECT deployment_id, site_id, camera_id, toStartOfMinute(captured_at) AS m, "
        f"toDate(captured_at) AS d, uniqExact(event_id), uniqExactIf(event_id, matched = 1), "
        f"toUInt64({version}) FROM {database}.scans "
        f"WHERE toString(toDate(captured_at)) IN ({_day_list(days)}) "
        "GROUP BY deployment_id, site_id, camera_id, m, d"
    )


def alert_counts_sql(database: str, days: list[str], version: int) -> str:
    """Alert and outcome counts per deployment, day, site, camera and threshold.

    Each alert is one row after grouping the alerts and outcomes tables by
    alert_id; its adjudication is the outcome with the greatest version
    (decided_at), an alert without one counts as pending.
    """
    day_filter = f"toString(toDate(captured_at)) IN ({_day_list(days)})"
    return (
        f"INSERT INTO {database}.agg_alert_counts (deployment_id, day, site_id, camera_id, "  # noqa: S608
        "threshold, total_alerts, pending_alerts, true_alerts_confirmed, "
        "true_alerts_unconfirmed, false_alerts_confirmed, false_alerts_unconfirmed, "
        "outcome_arrest, outcome_other, no_action, version) "
        "SELECT a_deployment, a_day, a_site, a_camera, a_threshold, count(), "
        "countIf(a_verdict = ''), "
        "countIf(a_verdict = 'TRUE_MATCH' AND a_confirmed = 1), "
        "countIf(a_verdict = 'TRUE_MATCH' AND a_confirmed = 0), "
        "countIf(a_verdict = 'FALSE_ALERT' AND a_confirmed = 1), "
        "countIf(a_verdict = 'FALSE_ALERT' AND a_confirmed = 0), "
        "countIf(a_verdict = 'TRUE_MATCH' AND a_confirmed = 1 AND a_outcome = 'ARREST'), "
        "countIf(a_verdict = 'TRUE_MATCH' AND a_confirmed = 1 AND a_outcome = 'OTHER'), "
        "countIf(a_verdict = 'TRUE_MATCH' AND a_confirmed = 1 AND a_outcome = 'NO_ACTION'), "
        f"toUInt64({version}) FROM ("
        "SELECT alert_id, any(u_deployment) AS a_deployment, any(u_day) AS a_day, "
        "any(u_site) AS a_site, any(u_camera) AS a_camera, any(u_threshold) AS a_threshold, "
        "argMax(u_verdict, u_version) AS a_verdict, argMax(u_confirmed, u_version) AS a_confirmed, "
        "argMax(u_outcome, u_version) AS a_outcome FROM ("
        "SELECT alert_id, toString(deployment_id) AS u_deployment, toDate(captured_at) AS u_day, "
        "toString(site_id) AS u_site, toString(camera_id) AS u_camera, threshold AS u_threshold, "
        "'' AS u_verdict, toUInt8(0) AS u_confirmed, '' AS u_outcome, toUInt64(0) AS u_version "
        f"FROM {database}.alerts WHERE {day_filter} "
        "UNION ALL "
        "SELECT alert_id, toString(deployment_id) AS u_deployment, toDate(captured_at) AS u_day, "
        "toString(site_id) AS u_site, toString(camera_id) AS u_camera, threshold AS u_threshold, "
        "toString(verdict) AS u_verdict, confirmed AS u_confirmed, toString(outcome) AS u_outcome, "
        "version + 1 AS u_version "
        f"FROM {database}.outcomes WHERE {day_filter}"
        ") GROUP BY alert_id"
        ") GROUP BY a_deployment, a_day, a_site, a_camera, a_threshold"
    )


def time_to_locate_sql(database: str, days: list[str], version: int) -> str:
    """Sorted time-to-locate and response values per deployment, day and category.

    Only confirmed true matches count: a confirmed false alert also has a
    ``located_at`` (officers stopped the look-alike), but that is not the time
    it took to locate a wanted person. ``located`` and the arrays hold exactly
    the values the report's median and quantiles are computed from, so they
    stay exact after retention has dropped the outcomes.
    """
    return (
        f"INSERT INTO {database}.agg_time_to_locate (deployment_id, day, category, located, "  # noqa: S608
        "sum_s, values_s, response_values_s, version) "
        "SELECT o_deployment, o_day, o_category, count(), sum(o_ttl), "
        "arraySort(groupArray(o_ttl)), arraySort(groupArray(o_response)), "
        f"toUInt64({version}) FROM ("
        "SELECT alert_id, any(toString(deployment_id)) AS o_deployment, "
        "any(toDate(captured_at)) AS o_day, any(toString(category)) AS o_category, "
        "argMax(isNotNull(located_at), version) AS o_located, "
        "argMax(toString(verdict), version) AS o_verdict, "
        "argMax(confirmed, version) AS o_confirmed, "
        "argMax(ifNull(time_to_locate_s, 0.), version) AS o_ttl, "
        "argMax(ifNull(response_s, 0.), version) AS o_response "
        f"FROM {database}.outcomes "
        f"WHERE toString(toDate(captured_at)) IN ({_day_list(days)}) GROUP BY alert_id"
        ") WHERE o_located = 1 AND o_verdict = 'TRUE_MATCH' AND o_confirmed = 1 "
        "GROUP BY o_deployment, o_day, o_category"
    )


def clear_time_to_locate_sql(database: str, days: list[str], version: int) -> str:
    """An empty row (version ``version``) for every time-to-locate key of ``days``.

    Written just before the recomputed rows (``version + 1``), so a key that no
    longer has any value (its only outcome was re-adjudicated, or was a false
    alert counted by an earlier definition) is replaced by nothing instead of
    keeping its old values.
    """
    return (
        f"INSERT INTO {database}.agg_time_to_locate (deployment_id, day, category, located, "  # noqa: S608
        "sum_s, values_s, response_values_s, version) "
        "SELECT deployment_id, day, category, toUInt64(0), 0., "
        f"CAST([] AS Array(Float64)), CAST([] AS Array(Float64)), toUInt64({version}) "
        f"FROM {database}.agg_time_to_locate FINAL "
        f"WHERE toString(day) IN ({_day_list(days)}) AND located > 0"
    )


LOG_COLUMNS = ("source_table", "day", "distinct_rows", "rolled_at", "version")


def log_rows(
    table: str, counts: dict[str, int], rolled_at: datetime, version: int
) -> list[list[object]]:
    """``rollup_log`` columns for ``counts``: one ``rolled_at`` for every day of a run.

    The instant is computed once, here, and sent as data: a ``now()`` per
    ``UNION ALL`` branch is a constant per branch, and a server may refuse to
    merge two such constants that differ (18.16: "Cannot convert column r
    because it is constant but values of constants are different").
    """
    days = sorted(counts)
    return [
        [table] * len(days),
        [date.fromisoformat(d) for d in days],
        [counts[d] for d in days],
        [rolled_at] * len(days),
        [version] * len(days),
    ]


def rollup(db: Database, database: str, days: Iterable[date | str] | None = None) -> RollupResult:
    """Recompute every aggregate of ``days`` (every day with rows when None)."""
    database = check_identifier(database)
    wanted = None if days is None else [d if isinstance(d, str) else d.isoformat() for d in days]
    version = time.time_ns() // 1000
    rolled_at = datetime.now(UTC).replace(microsecond=0)
    result = RollupResult(version=version)
    scan_days = present_days(db, database, "scans", wanted)
    alert_days = present_days(db, database, "alerts", wanted)
    outcome_days = present_days(db, database, "outcomes", wanted)
    counts = {
        "scans": distinct_counts(db, database, "scans", scan_days),
        "alerts": distinct_counts(db, database, "alerts", alert_days),
        "outcomes": distinct_counts(db, database, "outcomes", outcome_days),
    }
    if scan_days:
        db.execute(faces_sql(database, scan_days, version))
    if alert_days:
        db.execute(alert_counts_sql(database, alert_days, version))
    if outcome_days:
        db.execute(clear_time_to_locate_sql(database, outcome_days, version))
        db.execute(time_to_locate_sql(database, outcome_days, version + 1))
    # outcome days whose alerts are gone did not feed the alert counts again,
    # but their outcomes were rolled before the alerts could be dropped
    for table, table_counts in counts.items():
        if table_counts:
            columns: Sequence[str] = LOG_COLUMNS
            rows = log_rows(table, table_counts, rolled_at, version)
            db.insert(f"{database}.rollup_log", columns, rows)
    result.days = {"scans": scan_days, "alerts": alert_days, "outcomes": outcome_days}
    log.info(
        "rollup: %d scan days, %d alert days, %d outcome days",
        len(scan_days), len(alert_days), len(outcome_days),
    )  # fmt: skip
    return result
