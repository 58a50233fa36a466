"""The report as one self-contained HTML page: the Met's table and three charts as inline SVG.

Nothing is fetched when the page is viewed: the charts are matplotlib SVG
(text drawn as paths, so no font is needed either) written into the page,
and the style is inline. The figures are the report's own rows and the
time-to-locate values of the aggregates, so the page survives retention
like the report does.

Charts:

- time to locate, fixed cameras against vans: a box plot (median, quartiles,
  whiskers at 1.5 IQR) and the empirical cumulative distribution per mode;
- alerts and arrests per deployment, by start date;
- false-alert rate per deployment against the NPL's published reference of
  1 in 6,000 faces (at threshold 0.60 with a 10,000-image watchlist).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sinks.report import MET_HEADINGS, duration_text, parse_instant

NPL_FALSE_ALERT_RATE = 1 / 6000
MODE_COLOURS = {"FIXED_REMOTE": "#1f77b4", "VAN": "#d62728"}
_DAY_S = 86_400.0

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: right; }
th { background: #f0f0f0; vertical-align: bottom; }
td.text { text-align: left; } td { white-space: nowrap; }
div.wide { overflow-x: auto; }
tr.running td { background: #fff8e1; } tr.cancelled td { color: #888; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; max-width: 60em; }
p.note { font-size: 0.85em; color: #555; max-width: 60em; }
"""


def _svg(figure: Any) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no dates)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "path"
    matplotlib.rcParams["svg.hashsalt"] = "lfr-report"
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def time_to_locate_chart(values_by_mode: Mapping[str, Sequence[float]]) -> str:
    """Box plot and ECDF of time to locate (days) per deployment mode."""
    figure = _figure(10, 3.6)
    box, ecdf = figure.subplots(1, 2)
    modes = [m for m in sorted(values_by_mode) if values_by_mode[m]]
    if not modes:
        box.text(0.5, 0.5, "no confirmed true match was located", ha="center",
                 transform=box.transAxes)  # fmt: skip
        ecdf.set_axis_off()
        return _svg(figure)
    days = [[v / _DAY_S for v in sorted(values_by_mode[m])] for m in modes]
    parts = box.boxplot(days, orientation="horizontal", tick_labels=modes, patch_artist=True)
    for patch, mode in zip(parts["boxes"], modes, strict=True):
        patch.set_facecolor(MODE_COLOURS.get(mode, "#888888"))
        patch.set_alpha(0.5)
    box.set_xlabel("days from wanted_since to located_at")
    box.set_title("Distribution by mode")
    for mode, values in zip(modes, days, strict=True):
        n = len(values)
        ecdf.step(values, [(i + 1) / n for i in range(n)], where="post",
                  color=MODE_COLOURS.get(mode), label=f"{mode} (n={n})")  # fmt: skip
    ecdf.set_xlabel("days from wanted_since to located_at")
    ecdf.set_ylabel("share located within")
    ecdf.set_ylim(0, 1.02)
    ecdf.legend(loc="lower right")
    ecdf.set_title("Cumulative share located")
    return _svg(figure)


def _dated(rows: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, Mapping[str, Any]]]:
    return sorted(((parse_instant(r["starts_at"]), r) for r in rows), key=lambda p: p[0])


def alerts_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """Total alerts and arrests per deployment, at each deployment's start."""
    figure = _figure(10, 3.4)
    axes = figure.subplots()
    dated = _dated(rows)
    when = [d for d, _ in dated]
    axes.vlines(when, 0, [r["total_alerts"] for _, r in dated], color="#bbbbbb", linewidth=3)
    axes.plot(when, [r["total_alerts"] for _, r in dated], "o", color="#555555",
              label="total alerts")  # fmt: skip
    axes.plot(when, [r["outcome_arrest"] for _, r in dated], "D", color="#2ca02c",
              label="arrests")  # fmt: skip
    axes.set_ylabel("per deployment")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left")
    axes.set_title("Alerts and arrests per deployment over time")
    figure.autofmt_xdate()
    return _svg(figure)


def false_alert_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """False-alert rate per deployment (per 10,000 faces) against the NPL reference."""
    figure = _figure(10, 3.6)
    axes = figure.subplots()
    dated = _dated(rows)
    labels = [f"{r['date']} {r['deployment_id']}" for _, r in dated]
    rates = [r["false_alert_rate"] * 10_000 for _, r in dated]
    colours = [MODE_COLOURS.get(r["mode"], "#888888") for _, r in dated]
    axes.bar(range(len(rates)), rates, color=colours)
    axes.axhline(NPL_FALSE_ALERT_RATE * 10_000, color="black", linestyle="--",
                 label="NPL 2023 reference: 1 in 6,000 faces")  # fmt: skip
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("false alerts per 10,000 faces")
    axes.legend(loc="upper right")
    axes.set_title("False-alert rate per deployment (blue: fixed cameras, red: vans)")
    return _svg(figure)


def _cell(key: str, row: Mapping[str, Any], now: datetime) -> tuple[str, bool]:
    """(text, is_text_column) of one table cell."""
    value = row.get(key)
    if key == "duration_s":
        return duration_text(row, now), False
    if key == "false_alert_rate":
        return ("0" if not value else f"{value * 100:.4f}% (1 in {round(1 / value):,})"), False
    if key == "min_threshold":
        return f"{value:.2f}", False
    if isinstance(value, str):
        return value, True
    return ("" if value is None else str(value)), False


def table(rows: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """The per-deployment table with the Met's column names (plus id, mode, median)."""
    columns = [("deployment_id", "Deployment"), *MET_HEADINGS, ("mode", "Mode"),
               ("median_time_to_locate_s", "Median time to locate (s)")]  # fmt: skip
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        running = row.get("status") == "ACTIVE" and row["duration_s"] is None
        css = "running" if running else "cancelled" if row.get("status") == "CANCELLED" else ""
        cells = []
        for key, _ in columns:
            text, is_text = _cell(key, row, now)
            if key == "median_time_to_locate_s" and row.get(key) is not None:
                text = f"{row[key]:.1f}"
            opening = '<td class="text">' if is_text else "<td>"
            cells.append(f"{opening}{html.escape(text)}</td>")
        body.append(f'<tr class="{css}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _ttl_summary(ttl: Mapping[str, Any]) -> str:
    parts = []
    for r in ttl["by_mode"]:
        median, p90 = r["median_s"] / _DAY_S, r["p90_s"] / _DAY_S
        parts.append(f"{r['mode']}: {r['located']} located, median {median:.2f} d, p90 {p90:.2f} d")
    reduction = ttl["median_reduction_fixed_vs_van"]
    if reduction is not None:
        parts.append(f"median FIXED_REMOTE against VAN: {reduction * 100:.1f}% lower")
    return "; ".join(parts) or "no confirmed true match was located"


def render_html(
    rows: Sequence[Mapping[str, Any]],
    values_by_mode: Mapping[str, Sequence[float]],
    ttl: Mapping[str, Any],
    timezone: str,
    now: datetime | None = None,
) -> str:
    """The whole page. ``values_by_mode``: time-to-locate seconds of every located match."""
    at = now or datetime.now(UTC)
    covered = [r for r in rows if r.get("status") != "CANCELLED"]
    sections = [
        "<h2>Per deployment</h2>",
        f'<p class="note">Dates are local dates in {html.escape(timezone)} of each '
        "deployment's start. A running deployment shows its duration so far, marked "
        "<em>+ running</em>. Medians are the mean of the two middle values for an even "
        "count; see docs/analysts.md for every definition.</p>",
        f'<div class="wide">{table(rows, at)}</div>',
        "<h2>Time to locate: fixed cameras against vans</h2>",
        f"<figure>{time_to_locate_chart(values_by_mode)}<figcaption>Confirmed true matches "
        f"only, from wanted_since to located_at. {html.escape(_ttl_summary(ttl))}.</figcaption>"
        "</figure>",
    ]
    if covered:
        sections += [
            "<h2>Alerts and arrests</h2>",
            f"<figure>{alerts_chart(covered)}</figure>",
            "<h2>False-alert rate</h2>",
            f"<figure>{false_alert_chart(covered)}<figcaption>False alerts (confirmed and "
            "unconfirmed) divided by faces seen; the dashed line is the National Physical "
            "Laboratory's 2023 figure of about 1 in 6,000.</figcaption></figure>",
        ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>LFR deployments report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Live facial recognition: deployments report</h1>"
        f'<p class="note">{len(covered)} deployments; generated '
        f"{at.strftime('%Y-%m-%d %H:%M UTC')}.</p>" + "".join(sections) + "</body></html>\n"
    )
    return page
