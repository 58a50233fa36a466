"""The per-deployment report (the Met's published columns) and the time-to-locate comparison.

Counts come from the ``deployment_metrics`` view, which reads only rolled-up
aggregates, so the report survives retention. The derived figures are
computed here, in plain Python over those counts, with these exact
definitions (the simulator's ground truth uses the same ones; docs/analysts.md
states them for analysts):

- ``duration_s = (ends_at - starts_at)`` in milliseconds ``/ 1000``: instants
  are UTC, so a deployment across a clock change lasts what it lasted;
  ``None`` while ``ends_at`` is null (a running deployment has no duration
  yet, so the figure never depends on when the report runs; the table view
  shows the time so far, marked) and for a cancelled deployment;
- ``minutes_in_use = duration_s / 60`` (``None`` with the duration);
- ``false_alert_rate = (false confirmed + false unconfirmed) / faces_seen``, 0
  when no faces were seen;
- ``minutes_per_arrest = minutes_in_use / outcome_arrest``, ``None`` when no
  arrest (or no duration);
- ``arrest_rate = outcome_arrest / faces_seen``, ``None`` when no faces;
- ``date`` = the local date of ``starts_at`` in ``LFR_REPORT_TIMEZONE``
  (default Europe/London, as the Met publishes), ISO ``YYYY-MM-DD``;
  ``starts_at`` = the UTC instant, ISO with milliseconds and ``Z``;
- time to locate = ``located_at - wanted_since`` over the deployment's
  *confirmed true matches* (a confirmed false alert also has a located_at,
  but the person stopped was not the wanted one);
- ``median_time_to_locate_s``: the median of those values (mean of the two
  middle values for an even count), ``None`` when none; p90 interpolates
  linearly (sinks/report_stats.py);
- Means use ``math.fsum`` (exactly rounded, so independent of summation order).

A deployment appears once its latest OperationWindow version (greatest
``updated_at``) is ACTIVE or ENDED; PLANNED ones covered no faces and are left
out; CANCELLED ones only when asked (``include_cancelled``), with zero counts.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sinks.db import Database, sql_literal
from sinks.ddl import check_identifier
from sinks.report_stats import mean, median, quantile

DEFAULT_TIMEZONE = "Europe/London"

REPORT_KEYS: tuple[str, ...] = (
    "deployment_id", "location", "date", "starts_at", "status", "duration_s", "use_case",
    "watchlist_size", "min_threshold", "total_alerts", "true_alerts_confirmed",
    "true_alerts_unconfirmed", "false_alerts_confirmed", "false_alerts_unconfirmed",
    "false_alert_rate", "outcome_arrest", "outcome_other", "no_action", "faces_seen", "mode",
    "cameras", "minutes_in_use", "minutes_per_arrest", "arrest_rate", "median_time_to_locate_s",
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
    "deployment_id", "location", "starts_at_epoch_ms", "status", "duration_ms", "use_case",
    "watchlist_size", "min_threshold", "total_alerts", "true_alerts_confirmed",
    "true_alerts_unconfirmed", "false_alerts_confirmed", "false_alerts_unconfirmed",
    "outcome_arrest", "outcome_other", "no_action", "faces_seen", "mode", "cameras",
    "time_to_locate_values_s",
)  # fmt: skip


def iso_instant(epoch_ms: int) -> str:
    """``2025-10-02T08:00:00.250Z``: a UTC instant, exact to the millisecond."""
    instant = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"


def local_date(epoch_ms: int, timezone: str = DEFAULT_TIMEZONE) -> str:
    """The ISO date, in ``timezone``, of the instant ``epoch_ms``."""
    instant = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return instant.astimezone(ZoneInfo(timezone)).date().isoformat()


def derive(raw: Mapping[str, Any], timezone: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """One report row (``REPORT_KEYS``) from the view's counts: the documented arithmetic."""
    faces = int(raw["faces_seen"])
    arrests = int(raw["outcome_arrest"])
    false_alerts = int(raw["false_alerts_confirmed"]) + int(raw["false_alerts_unconfirmed"])
    duration_ms = raw["duration_ms"]
    duration_s = None if duration_ms is None else int(duration_ms) / 1000
    minutes = None if duration_s is None else duration_s / 60
    starts_ms = int(raw["starts_at_epoch_ms"])
    located = [float(v) for v in raw["time_to_locate_values_s"]]
    row: dict[str, Any] = {
        "deployment_id": str(raw["deployment_id"]),
        "location": str(raw["location"]),
        "date": local_date(starts_ms, timezone),
        "starts_at": iso_instant(starts_ms),
        "status": str(raw["status"]),
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
        "median_time_to_locate_s": median(located),
    }
    return row


def deployment_report(
    db: Database,
    database: str,
    deployment: str | None = None,
    since: date | None = None,
    until: date | None = None,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    include_cancelled: bool = False,
) -> list[dict[str, Any]]:
    """Report rows, ordered by date then deployment id.

    ``since``/``until`` are inclusive local dates in ``timezone``, filtered
    here (the view's own ``date`` column is Europe/London's).
    """
    statuses = ("ACTIVE", "ENDED", "CANCELLED") if include_cancelled else ("ACTIVE", "ENDED")
    conditions = [f"status IN ({', '.join(sql_literal(s) for s in statuses)})"]
    if deployment is not None:
        conditions.append(f"deployment_id = {sql_literal(deployment)}")
    rows = db.execute(
        f"SELECT {', '.join(_RAW_COLUMNS)} FROM {check_identifier(database)}.deployment_metrics"  # noqa: S608
        f" WHERE {' AND '.join(conditions)}"
    )
    report = [derive(dict(zip(_RAW_COLUMNS, r, strict=True)), timezone) for r in rows]
    if since is not None:
        report = [r for r in report if r["date"] >= since.isoformat()]
    if until is not None:
        report = [r for r in report if r["date"] <= until.isoformat()]
    report.sort(key=lambda r: (r["date"], r["deployment_id"]))
    return report


def _summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "located": len(values),
        "mean_s": mean(values),
        "median_s": median(values),
        "p90_s": quantile(values, 0.9),
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


def located_values(
    db: Database, database: str, deployments: Sequence[str] | None = None
) -> list[tuple[str, str, list[float]]]:
    """``(mode, category, seconds)`` per deployment, day and category, from the aggregates.

    ``deployments``: only these (``None``: all).
    """
    db_name = check_identifier(database)
    only = ""
    if deployments is not None:
        if not deployments:
            return []
        only = f" AND deployment_id IN ({', '.join(sql_literal(d) for d in deployments)})"
    rows = db.execute(
        "SELECT mode, category, values_s FROM ("  # noqa: S608
        f"SELECT deployment_id, category, values_s FROM {db_name}.agg_time_to_locate FINAL "
        f"WHERE located > 0{only}) AS t ALL INNER JOIN ("
        f"SELECT deployment_id, mode FROM {db_name}.deployments"
        ") AS d USING deployment_id"
    )
    return [(str(m), str(c), [float(x) for x in v]) for m, c, v in rows]


def time_to_locate_report(db: Database, database: str) -> dict[str, Any]:
    """Time to locate by mode and category, and the FIXED_REMOTE vs VAN median reduction."""
    return summarise_time_to_locate(located_values(db, database))


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


def parse_instant(text: str) -> datetime:
    """The aware UTC datetime of a report's ``starts_at`` (``...T08:00:00.250Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def duration_text(row: Mapping[str, Any], now: datetime) -> str:
    """The Duration cell: ``h:mm``; a running deployment's time so far, marked; cancelled.

    Only views for people show the time so far; JSON and CSV keep ``duration_s``
    null while a deployment runs, so they never depend on when the report ran.
    """
    status = row.get("status")
    if status == "CANCELLED":
        return "cancelled"
    if row["duration_s"] is not None:
        return format_duration(row["duration_s"])
    starts = row.get("starts_at")
    if status == "ACTIVE" and starts:
        so_far = max((now - parse_instant(starts)).total_seconds(), 0.0)
        return f"{format_duration(so_far)}+ running"
    return "running"


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
