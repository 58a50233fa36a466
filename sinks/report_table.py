"""The report as fixed-width text for a terminal, readable without a wide window.

The Met's table has sixteen columns, too many for one screen width; the
text view splits it in two tables of about 100 characters that share the
deployment id (deployment and use; alerts and outcomes), with a total row
where adding up makes sense. CSV and JSON carry every column unsplit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sinks.report import duration_text

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """One column: report key, two header lines, formatter, whether totals add up."""

    key: str
    head: tuple[str, str]
    show: Callable[[Any], str] = str
    total: bool = False
    left: bool = False


def _text(limit: int) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return show


def _number(digits: int) -> Callable[[Any], str]:
    return lambda v: "" if v is None else f"{v:.{digits}f}"


def _rate(value: Any) -> str:
    """A false-alert rate as a percentage and as one in N faces."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    return f"{value * 100:.4f}% (1 in {round(1 / value):,})"


DEPLOYMENT_COLUMNS = (
    Column("deployment_id", ("Deployment", ""), left=True),
    Column("location", ("Location", ""), _text(30), left=True),
    Column("date", ("Date", ""), left=True),
    Column("duration_text", ("Duration", "h:mm")),
    Column("use_case", ("Use case", ""), _text(24), left=True),
    Column("mode", ("Mode", ""), left=True),
    Column("cameras", ("Cameras", "")),
    Column("watchlist_size", ("Watchlist", "size")),
    Column("min_threshold", ("Min", "threshold"), _number(2)),
    Column("faces_seen", ("Faces", "seen"), total=True),
    Column("minutes_per_arrest", ("Minutes", "per arrest"), _number(1)),
)
ALERT_COLUMNS = (
    Column("deployment_id", ("Deployment", ""), left=True),
    Column("total_alerts", ("Total", "alerts"), total=True),
    Column("true_alerts_confirmed", ("True alerts", "confirmed"), total=True),
    Column("true_alerts_unconfirmed", ("True alerts", "unconfirmed"), total=True),
    Column("false_alerts_confirmed", ("False alerts", "confirmed"), total=True),
    Column("false_alerts_unconfirmed", ("False alerts", "unconfirmed"), total=True),
    Column("false_alert_rate", ("False alert", "rate"), _rate),
    Column("outcome_arrest", ("Outcome", "arrest"), total=True),
    Column("outcome_other", ("Outcome", "other"), total=True),
    Column("no_action", ("No", "action"), total=True),
)


def render(rows: Sequence[Row], columns: Sequence[Column], title: str) -> str:
    """One fixed-width table with a two-line header and, where any column adds up, totals."""
    body = [[col.show(row[col.key]) for col in columns] for row in rows]
    if rows and any(col.total for col in columns):
        totals = [str(sum(r[c.key] or 0 for r in rows)) if c.total else "" for c in columns]
        totals[0] = f"total ({len(rows)})"
        body.append(totals)
    widths = [
        max(len(col.head[0]), len(col.head[1]), *(len(line[i]) for line in body))
        for i, col in enumerate(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if col.left else cell.rjust(w)
            for cell, w, col in zip(cells, widths, columns, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title, line([c.head[0] for c in columns]), line([c.head[1] for c in columns]), rule]
    for i, cells in enumerate(body):
        if i == len(rows):
            out.append(rule)
        out.append(line(cells))
    return "\n".join(out)


def render_report(rows: Sequence[Row], now: datetime | None = None) -> str:
    """The per-deployment report as two tables (``now`` dates a running deployment's time)."""
    if not rows:
        return "No deployments match (a deployment shows once it is ACTIVE or ENDED)."
    at = now or datetime.now(UTC)
    shown = [{**row, "duration_text": duration_text(row, at)} for row in rows]
    text = "\n\n".join([
        render(shown, DEPLOYMENT_COLUMNS, "Deployments"),
        render(shown, ALERT_COLUMNS, "Alerts and outcomes"),
    ])  # fmt: skip
    if any(row.get("status") == "ACTIVE" and row["duration_s"] is None for row in rows):
        text += "\n\n+ running: still in use; the duration so far, at " + at.strftime(
            "%Y-%m-%d %H:%M UTC"
        )
    return text


def _days(seconds: Any) -> str:
    return "" if seconds is None else f"{seconds / 86400:.1f} d"


TTL_COLUMNS = (
    Column("mode", ("Mode", ""), left=True),
    Column("category", ("Category", ""), left=True),
    Column("located", ("Located", ""), total=False),
    Column("mean_s", ("Mean", ""), _days),
    Column("median_s", ("Median", ""), _days),
    Column("p90_s", ("p90", ""), _days),
)


def render_time_to_locate(ttl: Mapping[str, Any]) -> str:
    """Time to locate by mode, then by mode and category, and the fixed-vs-van reduction."""
    rows = [{**r, "category": "(all)"} for r in ttl["by_mode"]] + list(ttl["by_mode_category"])
    reduction = ttl["median_reduction_fixed_vs_van"]
    verdict = "n/a" if reduction is None else f"{reduction * 100:.1f}% lower"
    return "\n".join([
        render(rows, TTL_COLUMNS, "Time to locate (wanted_since to located_at)"),
        "",
        f"Median time to locate, FIXED_REMOTE against VAN: {verdict}",
    ])  # fmt: skip
