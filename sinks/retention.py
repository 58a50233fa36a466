"""Retention: whole-day partition drops, audited, never of rows not yet rolled up.

Row-level tables that concern a person (alerts, outcomes, dead_letters) keep
``person_days`` (31 by default, the published commitment); scans keep
``scan_days``. Aggregates are never dropped. Each drop writes a row to
``retention_log``. A day of a rolled-up table is dropped only while it holds
exactly the number of distinct rows the last rollup recorded for it; alerts
go before outcomes because the alert counts of a day need both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sinks.db import Database, sql_literal
from sinks.ddl import check_identifier
from sinks.rollup import ROLLED_TABLES, distinct_counts

log = logging.getLogger(__name__)

PERSON_DAYS = 31
SCAN_DAYS = 90


@dataclass
class RetentionResult:
    """Partitions dropped and kept (not rolled up) per table."""

    dropped: dict[str, list[str]] = field(default_factory=dict)
    kept_unrolled: dict[str, list[str]] = field(default_factory=dict)


def cutoff_day(now: datetime, days: int) -> date:
    """The first day kept: partitions of earlier days are due."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).date() - timedelta(days=days)


def due_days(db: Database, database: str, table: str, column: str, cutoff: date) -> list[str]:
    """Days of ``table`` older than ``cutoff`` that still have rows."""
    rows = db.execute(
        f"SELECT DISTINCT toString(toDate({column})) AS d FROM {database}.{table} "  # noqa: S608
        f"WHERE toDate({column}) < toDate({sql_literal(cutoff.isoformat())}) ORDER BY d"
    )
    return [str(r[0]) for r in rows]


def rolled_counts(db: Database, database: str, table: str) -> dict[str, int]:
    """Distinct rows recorded by the last rollup of each day of ``table``."""
    rows = db.execute(
        f"SELECT toString(day), distinct_rows FROM {database}.rollup_log FINAL "  # noqa: S608
        f"WHERE source_table = {sql_literal(table)}"
    )
    return {str(d): int(n) for d, n in rows}


def _drop(
    db: Database, database: str, table: str, day: str, rows: int, cutoff: date, days: int
) -> None:
    db.execute(f"ALTER TABLE {database}.{table} DROP PARTITION {sql_literal(day)}")
    db.execute(
        f"INSERT INTO {database}.retention_log "
        "(dropped_at, table_name, day, distinct_rows, cutoff, retention_days) "
        f"SELECT now(), {sql_literal(table)}, toDate({sql_literal(day)}), toUInt64({rows}), "
        f"toDate({sql_literal(cutoff.isoformat())}), toUInt32({days})"
    )
    log.info("retention dropped %s partition %s (%d rows)", table, day, rows)


def run_retention(
    db: Database,
    database: str,
    now: datetime,
    person_days: int = PERSON_DAYS,
    scan_days: int = SCAN_DAYS,
) -> RetentionResult:
    """Drop every due partition whose rows are rolled up; audit each drop."""
    database = check_identifier(database)
    result = RetentionResult()
    plan = (("alerts", person_days), ("outcomes", person_days), ("scans", scan_days))
    for table, days in plan:
        column, _ = ROLLED_TABLES[table]
        cutoff = cutoff_day(now, days)
        due = due_days(db, database, table, column, cutoff)
        current = distinct_counts(db, database, table, due)
        rolled = rolled_counts(db, database, table)
        outcome_current: dict[str, int] = {}
        outcome_rolled: dict[str, int] = {}
        if table == "alerts":
            outcome_current = distinct_counts(db, database, "outcomes", due)
            outcome_rolled = rolled_counts(db, database, "outcomes")
        for day in due:
            ok = rolled.get(day) == current.get(day)
            if table == "alerts" and day in outcome_current:
                ok = ok and outcome_rolled.get(day) == outcome_current[day]
            if not ok:
                result.kept_unrolled.setdefault(table, []).append(day)
                log.warning("retention kept %s partition %s: not rolled up yet", table, day)
                continue
            _drop(db, database, table, day, current.get(day, 0), cutoff, days)
            result.dropped.setdefault(table, []).append(day)
    cutoff = cutoff_day(now, person_days)
    for day in due_days(db, database, "dead_letters", "failed_at", cutoff):
        _drop(db, database, "dead_letters", day, 0, cutoff, person_days)
        result.dropped.setdefault("dead_letters", []).append(day)
    return result
