"""Report arithmetic and the published consistency rules, over generated data."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.report import (
    REPORT_KEYS,
    derive,
    render_csv,
    render_json,
    summarise_time_to_locate,
)
from tests.synthetic import generate

RAW = {
    "deployment_id": "d", "location": "L", "starts_at_epoch_ms": 1_793_574_000_250,
    "status": "ENDED", "duration_ms": 7_200_500,
    "use_case": "u", "watchlist_size": 15000, "min_threshold": 0.64, "total_alerts": 10,
    "true_alerts_confirmed": 6, "true_alerts_unconfirmed": 2, "false_alerts_confirmed": 1,
    "false_alerts_unconfirmed": 1, "outcome_arrest": 4, "outcome_other": 1, "no_action": 1,
    "faces_seen": 20000, "mode": "VAN", "cameras": 3,
    "time_to_locate_values_s": [10.0, 12.0, 13.0, 40.0],
}  # fmt: skip


def test_derive_uses_the_documented_definitions() -> None:
    row = derive(RAW)
    assert row["duration_s"] == 7200.5
    assert row["minutes_in_use"] == 7200.5 / 60
    assert row["minutes_per_arrest"] == (7200.5 / 60) / 4
    assert row["false_alert_rate"] == 2 / 20000
    assert row["arrest_rate"] == 4 / 20000
    assert row["median_time_to_locate_s"] == 12.5
    assert set(row) == set(REPORT_KEYS)


def test_derive_edge_cases() -> None:
    row = derive({**RAW, "faces_seen": 0, "outcome_arrest": 0, "duration_ms": None,
                  "time_to_locate_values_s": []})  # fmt: skip
    assert row["false_alert_rate"] == 0.0
    assert row["arrest_rate"] is None
    assert row["minutes_per_arrest"] is None
    assert row["duration_s"] is None and row["minutes_in_use"] is None


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(0, 12))
def test_published_consistency_rules_hold(seed: int, deployments: int, alerts: int) -> None:
    data = generate(seed, deployments=deployments, scans_per_deployment=max(alerts, 1),
                    alerts_per_deployment=alerts)  # fmt: skip
    for row in data.expected.values():
        four = (row["true_alerts_confirmed"] + row["true_alerts_unconfirmed"]
                + row["false_alerts_confirmed"] + row["false_alerts_unconfirmed"])  # fmt: skip
        assert row["total_alerts"] == four
        assert (row["outcome_arrest"] + row["outcome_other"] + row["no_action"]
                == row["true_alerts_confirmed"])  # fmt: skip


def test_renderers_keep_the_report_keys() -> None:
    row = derive(RAW)
    assert json.loads(render_json([row])) == [row]
    assert render_csv([row]).splitlines()[0].split(",") == list(REPORT_KEYS)


def test_time_to_locate_summary_and_reduction() -> None:
    out = summarise_time_to_locate([
        ("FIXED_REMOTE", "missing", [10.0, 30.0]), ("FIXED_REMOTE", "other", [20.0]),
        ("VAN", "missing", [100.0, 50.0, 80.0]),
    ])  # fmt: skip
    fixed = next(r for r in out["by_mode"] if r["mode"] == "FIXED_REMOTE")
    assert fixed == {"mode": "FIXED_REMOTE", "located": 3, "mean_s": 20.0, "median_s": 20.0,
                     "p90_s": 28.0}  # fmt: skip
    # p90 of [10, 20, 30]: h = 2 * 0.9 = 1.8, so 20 + (30 - 20) * 0.8
    assert out["median_reduction_fixed_vs_van"] == 1 - 20.0 / 80.0
