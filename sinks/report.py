"""The per-deployment report (the Met's published columns) and the time-to-locate comparison.

Counts come from the ``deployment_metrics`` view, which reads only rolled-up
aggregates, so the report survives retention. The derived figures are
computed here, in plain Python over those counts, with these exact
definitions (the simulator's ground truth uses the same ones):

- ``duration_s = (ends_at - starts_at)`` in milliseconds ``/ 1000``; ``None``
  while ``ends_at`` is null (a running deployment has no duration yet, so the
  figure never depends on when the report runs);
- ``minutes_in_use = duration_s / 60`` (``None`` with the duration);
- ``false_alert_rate = (false confirmed + false unconfirmed) / faces_seen``, 0
  when no faces were seen;
- ``minutes_per_arrest = minutes_in_use / outcome_arrest``, ``None`` when no
  arrest (or no duration);
- ``arrest_rate = outcome_arrest / faces_seen``, ``None`` when no faces;
- ``date`` = UTC date of ``starts_at``, ISO ``YYYY-MM-DD``;
- ``median_time_to_locate_s`` = ClickHouse ``quantileExact(0.5)`` over the
  deployment's outcomes with ``located_at``: the element at index
  ``floor(n * 0.5)`` of the sorted values (the upper median for even n),
  ``None`` when none was located. p90 is index ``floor(n * 0.9)``.
- Means use ``math.fsum`` (exactly rounded, so independent of summation order).

A deployment appears once its latest OperationWindow version (greatest
``updated_at``) is ACTIVE or ENDED; PLANNED and CANCELLED ones covered no
faces and are left out.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sinks.db import Database, sql_literal
from sinks.ddl import check_identifier

REPORT_KEYS: tuple[str, ...] = (
    "deployment_id", "location", "date", "duration_s", "use_case", "watchlist_size",
    "min_threshold", "total_alerts", "true_alerts_confirmed", "true_alerts_unconfirmed",
    "false_alerts_confirmed", "false_alerts_unconfirmed", "false_alert_rate",
    "outcome_arrest", "outcome_other", "no_action", "faces_seen", "mode", "cameras",
    "minutes_in_use", "minutes_per_arrest", "arrest_rate", "median_time_to_locate_s",
)  # fmt: skip

# The Met's published column headings, in their order, for the table format.
MET_HEADINGS: tuple[tuple[str, str], ...] = (
    ("location", "Deployment Location"), ("date", "Date"), ("duration_s", "Duration"),
    ("use_case", "LFR Use Case"), ("watchlist_size", "Watchlist Size"),
    ("min_threshold", "Min Threshold Setting"), ("total_alerts", "Total Alerts"),
    ("true_alerts_confirmed", "True Alerts Confirmed"),
    ("true_alerts_unconfirmed", "True Alerts Unconfirmed"),
    ("false_alerts_confirmed", "False Alerts Confirmed"),
    ("false_alerts_unconfirmed", "False Alerts Unconfirmed"),
    ("false_alert_rate", "False Alert Rate"), ("outcome_arrest", "Outcome - Arrest"),
    ("outcome_other", "Outcome - Other"), ("no_action", "No action"),
    ("faces_seen", "Faces seen"),
)  # fmt: skip

_RAW_COLUMNS: tuple[str, ...] = (
    "deployment_id", "location", "date", "duration_ms", "use_case", "watchlist_size",
    "min_threshold", "total_alerts", "true_alerts_confirmed", "true_alerts_unconfirmed",
    "false_alerts_confirmed", "false_alerts_unconfirmed", "outcome_arrest", "outcome_other",
    "no_action", "faces_seen", "mode", "cameras", "median_time_to_locate_s",
)  # fmt: skip


def quantile_exact(values: Sequence[float], level: float) -> float | None:
    """ClickHouse ``quantileExact(level)``: sorted[floor(n * level)] (last for level >= 1)."""
    n = len(values)
    if n == 0:
        return None
    ordered = sorted(values)
    index = n - 1 if level >= 1 else min(int(level * n), n - 1)
    return ordered[index]


def derive(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One report row (``REPORT_KEYS``) from the view's counts: the documented arithmetic."""
    faces = int(raw["faces_seen"])
    arrests = int(raw["outcome_arrest"])
    false_alerts = int(raw["false_alerts_confirmed"]) + int(raw["false_alerts_unconfirmed"])
    duration_ms = raw["duration_ms"]
    duration_s = None if duration_ms is None else int(duration_ms) / 1000
    minutes = None if duration_s is None else duration_s / 60
    median = raw["median_time_to_locate_s"]
    row: dict[str, Any] = {
        "deployment_id": str(raw["deployment_id"]),
        "location": str(raw["location"]),
        "date": str(raw["date"]),
        "duration_s": duration_s,
        "use_case": str(raw["use_case"]),
        "watchlist_size": int(raw["watchlist_size"]),
        "min_threshold": float(raw["min_threshold"]),
        "total_alerts": int(raw["total_alerts"]),
        "true_alerts_confirmed": int(raw["true_alerts_confirmed"]),
        "true_alerts_unconfirmed": int(raw["true_alerts_unconfirmed"]),
        "false_alerts_confirmed": int(raw["false_alerts_confirmed"]),
        "false_alerts_unconfirmed": int(raw["false_alerts_unconfirmed"]),
        "false_alert_rate": 0.0 if faces == 0 else false_alerts / faces,
        "outcome_arrest": arrests,
        "outcome_other": int(raw["outcome_other"]),
        "no_action": int(raw["no_action"]),
        "faces_seen": faces,
        "mode": str(raw["mode"]),
        "cameras": int(raw["cameras"]),
        "minutes_in_use": minutes,
        "minutes_per_arrest": None if minutes is None or arrests == 0 else minutes / arrests,
        "arrest_rate": None if faces == 0 else arrests / faces,
        "median_time_to_locate_s": None if median is None else float(median),
    }
    return row


def deployment_report(
    db: Database,
    database: str,
    deployment: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[dict[str, Any]]:
    """Report rows, ordered by date then deployment id; since/until are inclusive dates."""
    conditions = []
    if deployment is not None:
        conditions.append(f"deployment_id = {sql_literal(deployment)}")
    if since is not None:
        conditions.append(f"date >= {sql_literal(since.isoformat())}")
    if until is not None:
        conditions.append(f"date <= {sql_literal(until.isoformat())}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = db.execute(
        f"SELECT {', '.join(_RAW_COLUMNS)} FROM {check_identifier(database)}.deployment_metrics"  # noqa: S608
        f"{where} ORDER BY date, deployment_id"
    )
    return [derive(dict(zip(_RAW_COLUMNS, r, strict=True))) for r in rows]


def _summary(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    return {
        "located": n,
        "mean_s": math.fsum(values) / n if n else None,
        "median_s": quantile_exact(values, 0.5),
        "p90_s": quantile_exact(values, 0.9),
    }


def summarise_time_to_locate(rows: Sequence[tuple[str, str, Sequence[float]]]) -> dict[str, Any]:
    """The comparison from ``(mode, category, values)`` rows: pure arithmetic."""
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_mode: dict[str, list[float]] = defaultdict(list)
    for mode, category, values in rows:
        by_pair[(mode, category)].extend(float(v) for v in values)
        by_mode[mode].extend(float(v) for v in values)
    fixed = _summary(by_mode.get("FIXED_REMOTE", []))
    van = _summary(by_mode.get("VAN", []))
    reduction = None
    if fixed["median_s"] is not None and van["median_s"]:
        reduction = 1 - fixed["median_s"] / van["median_s"]
    return {
        "by_mode_category": [
            {"mode": m, "category": c, **_summary(v)} for (m, c), v in sorted(by_pair.items())
        ],
        "by_mode": [{"mode": m, **_summary(v)} for m, v in sorted(by_mode.items())],
        "median_reduction_fixed_vs_van": reduction,
    }


def time_to_locate_report(db: Database, database: str) -> dict[str, Any]:
    """Time to locate by mode and category, and the FIXED_REMOTE vs VAN median reduction."""
    db_name = check_identifier(database)
    rows = db.execute(
        "SELECT mode, category, values_s FROM ("  # noqa: S608
        f"SELECT deployment_id, category, values_s FROM {db_name}.agg_time_to_locate FINAL"
        ") AS t ALL INNER JOIN ("
        f"SELECT deployment_id, mode FROM {db_name}.deployments"
        ") AS d USING deployment_id"
    )
    return summarise_time_to_locate([(str(m), str(c), list(v)) for m, c, v in rows])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_duration(seconds: float | None) -> str:
    """``h:mm`` as the Met publishes durations."""
    if seconds is None:
        return "running"
    minutes = int(seconds // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def render_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON list (keys of ``REPORT_KEYS``)."""
    return json.dumps([{k: row[k] for k in REPORT_KEYS} for row in rows], indent=2)


def render_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV with ``REPORT_KEYS`` as the header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_KEYS)
    for row in rows:
        writer.writerow([_cell(row[k]) if row[k] is not None else "" for k in REPORT_KEYS])
    return out.getvalue()
