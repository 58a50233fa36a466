"""bench/chaos_pipeline.py's verdict: which report fields differ from the truth, and its table.

The driver itself runs by hand (most of an hour); these pure pieces decide
what its rows say, so they are checked here without any service.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "chaos_pipeline.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_pipeline", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CHAOS = load()
TRUTH: dict[str, Any] = {
    "deployments": [
        {"deployment_id": "A", "total_alerts": 24, "arrests": 3},
        {"deployment_id": "B", "total_alerts": 5, "arrests": 0},
    ],
    "time_to_locate": {"fixed": 100.0},
}


def test_an_equal_report_has_no_differences() -> None:
    got = ([dict(r) for r in TRUTH["deployments"]], dict(TRUTH["time_to_locate"]))
    assert CHAOS.differences(got, TRUTH) == []


def test_each_differing_field_is_named_with_both_values() -> None:
    rows = [{"deployment_id": "A", "total_alerts": 15, "arrests": 3}]
    diffs = CHAOS.differences((rows, {"fixed": 90.0}), TRUTH)
    assert diffs[0] == "total_alerts in all: 15 (truth 29)"
    assert "A.total_alerts: 15 (truth 24)" in diffs
    assert "B: missing" in diffs
    assert "time_to_locate differs" in diffs
    assert not any(d.startswith("A.arrests") for d in diffs)


def row(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "fault": "broker SIGKILL", "equal": True, "differences": [], "difference_count": 0,
        "settle_s": 12.5, "settle_after_fault_s": 12.5, "restarts": {}, "unexpected_exits": [],
        "dead_letters": {}, "poison_sent": 0, "notes": [], "outside_contract": "",
    }  # fmt: skip
    base.update(over)
    return base


def test_the_table_says_equal_or_not_with_the_details() -> None:
    text = CHAOS.table([
        row(),
        row(fault="watchlist first", equal=False, differences=["A.total_alerts: 0 (truth 24)"],
            difference_count=1, settle_s=None, restarts={"worker (SIGKILL)": 3},
            dead_letters={"detections/worker.detections:unknown_watchlist": 2403}),
    ])  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "| fault | result | detail |"
    assert lines[2].startswith("| broker SIGKILL | equal | settled 12.5s after the last record")
    assert "| watchlist first | NOT EQUAL: A.total_alerts: 0 (truth 24) |" in lines[3]
    assert "never settled" in lines[3]
    assert "worker (SIGKILL) x3" in lines[3]
    assert "unknown_watchlist 2403" in lines[3]
