"""The terminal view of the report shows every Met column, totals that add up, no wrapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sinks.report import MET_HEADINGS
from sinks.report_table import ALERT_COLUMNS, DEPLOYMENT_COLUMNS, render_report

ROW: dict[str, Any] = {
    "deployment_id": "CROY-20251002", "location": "Croydon town centre (North End)",
    "date": "2025-10-02", "duration_s": 15300.0, "use_case": "Wanted offenders",
    "mode": "FIXED_REMOTE", "cameras": 13, "watchlist_size": 620, "min_threshold": 0.64,
    "faces_seen": 6577, "minutes_per_arrest": 42.5, "total_alerts": 9,
    "true_alerts_confirmed": 7, "true_alerts_unconfirmed": 1, "false_alerts_confirmed": 1,
    "false_alerts_unconfirmed": 0, "false_alert_rate": 1 / 6577, "outcome_arrest": 6,
    "outcome_other": 0, "no_action": 1,
}  # fmt: skip


def test_every_met_column_is_shown() -> None:
    shown = {c.key for c in (*DEPLOYMENT_COLUMNS, *ALERT_COLUMNS)} | {"duration_s"}
    assert "duration_text" in shown  # the Met's Duration, as h:mm
    assert {key for key, _ in MET_HEADINGS} <= shown


def test_totals_and_formatting() -> None:
    other = {**ROW, "deployment_id": "VAN-1", "faces_seen": 100, "total_alerts": 2,
             "false_alerts_confirmed": 0, "false_alert_rate": 0.0}  # fmt: skip
    text = render_report([ROW, other])
    lines = text.splitlines()
    totals = [line for line in lines if line.startswith("total (2)")]
    assert len(totals) == 2
    assert totals[0].split()[-1] == "6677"  # faces seen add up
    assert totals[1].split()[2] == "11"  # total alerts add up
    assert "4:15" in text  # 15300 s as h:mm
    assert "0.0152% (1 in 6,577)" in text
    assert "Croydon town centre (North En…" in text  # long text is cut, not wrapped
    assert max(len(line) for line in lines) < 170


def test_no_rows_says_why() -> None:
    assert "ACTIVE or ENDED" in render_report([])


def test_running_deployment_shows_its_time_so_far_marked() -> None:
    running = {**ROW, "deployment_id": "RUN-1", "status": "ACTIVE", "duration_s": None,
               "starts_at": "2025-10-02T08:00:00.000Z"}  # fmt: skip
    cancelled = {**ROW, "deployment_id": "CAN-1", "status": "CANCELLED", "duration_s": None}
    now = datetime(2025, 10, 2, 10, 35, 59, tzinfo=UTC)
    text = render_report([ROW, running, cancelled], now=now)
    run_line = next(line for line in text.splitlines() if line.startswith("RUN-1"))
    assert "2:35+ running" in run_line
    assert "cancelled" in next(line for line in text.splitlines() if line.startswith("CAN-1"))
    assert "duration so far, at 2025-10-02 10:35 UTC" in text
