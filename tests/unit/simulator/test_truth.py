"""The ground truth's definitions, on hand-made records and on the small scenario."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from streams.simulator.events import alert_id, instant
from streams.simulator.population import to_wire, unit_rows
from streams.simulator.truth import TruthBuilder, median, quantile, to_ms

REPORT_KEYS = [
    "deployment_id", "location", "date", "starts_at", "status", "duration_s", "use_case",
    "watchlist_size", "min_threshold", "total_alerts", "true_alerts_confirmed",
    "true_alerts_unconfirmed", "false_alerts_confirmed", "false_alerts_unconfirmed",
    "false_alert_rate", "outcome_arrest", "outcome_other", "no_action", "faces_seen", "mode",
    "cameras", "minutes_in_use", "minutes_per_arrest", "arrest_rate", "median_time_to_locate_s",
]  # fmt: skip

T0 = to_ms(instant(1_760_000_000_000))
MIN = 60_000


def _basis(dim: int = 16) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)


def _vec_at(base: np.ndarray, other: np.ndarray, cos: float) -> bytes:
    v = cos * base + math.sqrt(1 - cos * cos) * other
    return to_wire(unit_rows(v[None, :]))[0].tobytes()


def _window(status: str, **over: Any) -> dict[str, Any]:
    record = {
        "deployment_id": "D1",
        "site_id": "s1",
        "location": "Somewhere",
        "use_case": "Crime hotspot",
        "mode": "VAN",
        "camera_ids": ["c1", "c2"],
        "watchlist_id": "W1",
        "watchlist_size": 2,
        "match_threshold": 0.6,
        "authorised_by": "SUPT-1",
        "authorised_at": instant(T0 - 60 * MIN),
        "starts_at": instant(T0),
        "ends_at": instant(T0 + 90 * MIN),
        "status": status,
        "officers_present": 4,
        "updated_at": instant(T0),
    }
    record.update(over)
    return record


def _entry(subject: str, template: bytes, wanted_ms: int) -> dict[str, Any]:
    return {
        "subject_id": subject,
        "watchlist_id": "W1",
        "op": "ADD",
        "category": "wanted_by_court",
        "wanted_since": instant(wanted_ms),
        "template": template,
        "template_model": "m",
        "updated_at": instant(T0 - 30 * MIN),
    }


def _detection(event_id: str, at_ms: int, template: bytes, camera: str = "c1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "camera_id": camera,
        "site_id": "s1",
        "captured_at": instant(at_ms),
        "face_quality": 0.8,
        "template": template,
        "template_model": "m",
    }


def _adjudication(aid: str, verdict: str, confirmed: bool, outcome: str, located: int | None,
                  decided: int) -> dict[str, Any]:  # fmt: skip
    return {
        "alert_id": aid,
        "officer_ref": "OFF-1",
        "verdict": verdict,
        "confirmed": confirmed,
        "outcome": outcome,
        "located_at": instant(located) if located is not None else None,
        "decided_at": instant(decided),
    }


@pytest.fixture
def fed() -> tuple[TruthBuilder, dict[str, str]]:
    """A builder fed a window, two entries, detections on every gating edge, adjudications."""
    e = _basis()
    a_tpl = to_wire(e[:1])[0].tobytes()
    b_tpl = to_wire(e[1:2])[0].tobytes()
    b = TruthBuilder()
    b.feed("operations", b"s1", _window("PLANNED"))
    b.feed("watchlist", b"W1:A", _entry("A", a_tpl, T0 - 10 * 86_400_000))
    b.feed("watchlist", b"W1:B", _entry("B", b_tpl, T0 - 20 * 86_400_000))
    b.feed("detections", b"s1", _detection("planned", T0 + MIN, a_tpl))  # window only PLANNED
    b.feed("operations", b"s1", _window("ACTIVE", updated_at=instant(T0 + 2 * MIN)))
    b.feed("detections", b"s1", _detection("before", T0 - 1, a_tpl))
    b.feed("detections", b"s1", _detection("at-start", T0, a_tpl))  # alert on A
    b.feed("detections", b"s1", _detection("other-cam", T0 + 5 * MIN, a_tpl, camera="c9"))
    b.feed("detections", b"s1", _detection("weak", T0 + 6 * MIN, _vec_at(e[1], e[5], 0.5)))
    b.feed("detections", b"s1", _detection("top1", T0 + 7 * MIN, _vec_at(e[1], e[0], 0.8)))
    b.feed("detections", b"s1", _detection("passer", T0 + 8 * MIN, _vec_at(e[7], e[8], 0.9)))
    b.feed("detections", b"s1", _detection("at-end", T0 + 90 * MIN, a_tpl))
    b.feed("operations", b"s1", _window("ENDED", updated_at=instant(T0 + 92 * MIN)))
    ids = {
        "at-start": alert_id("at-start", "W1", "A"),
        "top1": alert_id("top1", "W1", "B"),
    }
    # the first verdict on at-start is superseded by a later one
    b.feed("adjudications", None, _adjudication(ids["at-start"], "FALSE_ALERT", False, "NONE",
                                                None, T0 + 3 * MIN))  # fmt: skip
    b.feed("adjudications", None, _adjudication(ids["at-start"], "TRUE_MATCH", True, "ARREST",
                                                T0 + 4 * MIN, T0 + 9 * MIN))  # fmt: skip
    b.feed("adjudications", None, _adjudication(ids["top1"], "FALSE_ALERT", True, "NONE",
                                                T0 + 17 * MIN, T0 + 20 * MIN))  # fmt: skip
    b.feed("watchlist", b"W1:A", None)
    b.feed("watchlist", b"W1:B", {**_entry("B", b_tpl, 0), "op": "REMOVE", "template": None})
    return b, ids


def test_gate_is_half_open_camera_bound_and_needs_an_active_window(
    fed: tuple[TruthBuilder, dict[str, str]],
) -> None:
    builder, ids = fed
    assert builder.detections == 8
    # at-start, weak, top1, passer are scans; planned, before, other-cam, at-end are not
    assert builder.gated_out == 4
    assert set(builder.alerts) == set(ids.values())
    assert builder.watchlists["W1"] == {}


def test_report_row_follows_the_documented_definitions(
    fed: tuple[TruthBuilder, dict[str, str]],
) -> None:
    builder, _ = fed
    (row,) = builder.report()
    assert list(row) == REPORT_KEYS
    assert row["date"] == "2025-10-09"  # 08:53 UTC, 09:53 in London
    assert row["starts_at"] == "2025-10-09T08:53:20.000Z"
    assert row["status"] == "ENDED"
    assert row["duration_s"] == 5400.0
    assert row["minutes_in_use"] == 90.0
    assert (row["faces_seen"], row["total_alerts"]) == (4, 2)
    assert (row["true_alerts_confirmed"], row["false_alerts_confirmed"]) == (1, 1)
    assert (row["true_alerts_unconfirmed"], row["false_alerts_unconfirmed"]) == (0, 0)
    assert (row["outcome_arrest"], row["outcome_other"], row["no_action"]) == (1, 0, 0)
    assert row["false_alert_rate"] == 1 / 4
    assert row["minutes_per_arrest"] == 90.0
    assert row["arrest_rate"] == 1 / 4
    assert (row["cameras"], row["mode"], row["min_threshold"]) == (2, "VAN", 0.6)
    # located: A after 10 days + 4 min; B's confirmed *false* alert (a look-alike was
    # engaged after 20 days + 17 min) is not the time to locate a wanted person
    assert row["median_time_to_locate_s"] == (10 * 86_400_000 + 4 * MIN) / 1000
    assert builder.time_to_locate()["by_mode"][0]["located"] == 1


def test_score_equal_to_threshold_alerts() -> None:
    e = _basis()
    template = to_wire(e[:1])[0].tobytes()
    probe = np.frombuffer(template, dtype="<f2").astype(np.float32)
    score = float(np.dot(unit_rows(probe[None, :])[0], unit_rows(probe[None, :])[0]))
    builder = TruthBuilder()
    builder.feed("operations", b"s1", _window("ACTIVE", match_threshold=score))
    builder.feed("watchlist", b"W1:A", _entry("A", template, T0 - MIN))
    builder.feed("detections", b"s1", _detection("eq", T0 + MIN, template))
    assert list(builder.alerts) == [alert_id("eq", "W1", "A")]


def test_cancelled_and_planned_windows_have_no_report_row() -> None:
    builder = TruthBuilder()
    builder.feed("operations", b"s1", _window("PLANNED"))
    builder.feed("operations", b"s1", _window("CANCELLED", deployment_id="D1"))
    builder.feed("operations", b"s1", _window("PLANNED", deployment_id="D2"))
    assert builder.report() == []


def test_no_arrest_and_no_faces_give_nulls() -> None:
    builder = TruthBuilder()
    builder.feed("operations", b"s1", _window("ACTIVE"))
    (row,) = builder.report()
    assert row["faces_seen"] == 0
    assert row["false_alert_rate"] == 0.0
    assert row["arrest_rate"] is None
    assert row["minutes_per_arrest"] is None
    assert row["median_time_to_locate_s"] is None


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 10, 11, 20])
def test_median_and_p90_are_numpys(n: int) -> None:
    seconds = [((i * 7919) % 1009) / 1000 for i in range(n)]
    assert median(seconds) == float(np.median(seconds))
    assert quantile(seconds, 0.9) == pytest.approx(float(np.quantile(seconds, 0.9)), rel=1e-15)


def test_even_median_is_the_mean_of_the_two_middle_values() -> None:
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_truth_equals_the_simulators_own_prediction(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    predicted = small_run["simulation"].predicted_alerts
    assert set(truth["alert_ids"]) == {a.alert_id for a in predicted}
    assert truth["totals"]["false_alerts"] == sum(not a.true_match for a in predicted)
    assert truth["totals"]["orphan_adjudications"] == 0


def test_truth_equals_a_plain_double_loop(small_run: dict[str, Any]) -> None:
    """Per face, per entry: float32 cosine, first maximum, >= threshold."""
    windows: dict[str, dict[str, Any]] = {}
    entries: dict[str, dict[str, np.ndarray]] = {}
    alerts = set()
    for item in small_run["records"]:
        v = item.value
        if item.topic == "operations":
            windows[v["deployment_id"]] = v
        elif item.topic == "watchlist":
            wl, _, subject = item.key.decode().partition(":")
            if v is None or v["op"] == "REMOVE":
                entries.get(wl, {}).pop(subject, None)
            else:
                vec = np.frombuffer(v["template"], dtype="<f2").astype(np.float32)
                entries.setdefault(wl, {})[subject] = vec
        elif item.topic == "detections":
            for w in windows.values():
                if (w["site_id"] == v["site_id"] and w["status"] in ("ACTIVE", "ENDED")
                        and v["camera_id"] in w["camera_ids"]
                        and w["starts_at"] <= v["captured_at"] < w["ends_at"]):  # fmt: skip
                    probe = np.frombuffer(v["template"], dtype="<f2").astype(np.float32)
                    best, best_score = None, -2.0
                    for subject, vec in entries.get(w["watchlist_id"], {}).items():
                        num = np.float32(np.dot(vec, probe))
                        score = float(num / (np.linalg.norm(vec) * np.linalg.norm(probe)))
                        if score > best_score:
                            best, best_score = subject, score
                    if best is not None and best_score >= w["match_threshold"]:
                        alerts.add(alert_id(v["event_id"], w["watchlist_id"], best))
    assert alerts == set(small_run["truth"]["alert_ids"])


def test_report_is_consistent_and_holds_no_subject_ids(small_run: dict[str, Any]) -> None:
    truth = small_run["truth"]
    assert len(truth["deployments"]) == 3
    for row in truth["deployments"]:
        assert list(row) == REPORT_KEYS
        assert row["total_alerts"] == (
            row["true_alerts_confirmed"] + row["true_alerts_unconfirmed"]
            + row["false_alerts_confirmed"] + row["false_alerts_unconfirmed"]
        )  # fmt: skip
        assert row["true_alerts_confirmed"] == (
            row["outcome_arrest"] + row["outcome_other"] + row["no_action"]
        )
    text = json.dumps(truth)
    assert "SUBJ-" not in text
    assert sum(r["faces_seen"] for r in truth["deployments"]) == truth["totals"]["faces_seen"]


def test_time_to_locate_shape(small_run: dict[str, Any]) -> None:
    ttl = small_run["truth"]["time_to_locate"]
    modes = [m["mode"] for m in ttl["by_mode"]]
    assert modes == ["FIXED_REMOTE", "VAN"]
    assert sum(m["located"] for m in ttl["by_mode"]) == sum(
        c["located"] for c in ttl["by_mode_category"]
    )
    for stats in ttl["by_mode"] + ttl["by_mode_category"]:
        assert set(stats) >= {"located", "mean_s", "median_s", "p90_s"}
        assert stats["median_s"] <= stats["p90_s"]
    fvv = small_run["truth"]["fixed_vs_van"]
    assert fvv["median_reduction"] == 1 - fvv["fixed_remote_median_s"] / fvv["van_median_s"]
    assert ttl["median_reduction_fixed_vs_van"] == fvv["median_reduction"]
