"""Gating: half-open windows, cameras, statuses, overlaps and lateness."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.worker.errors import InvalidWindowError
from streams.worker.gating import GateReason, gate
from streams.worker.instants import to_millis
from streams.worker.windows import apply_window, window_from_record

from .conftest import T0, window_record

START = to_millis(T0)
END = to_millis(T0 + timedelta(hours=2))


def w(**kw: object):  # noqa: ANN201
    return window_from_record(window_record(**kw))


@pytest.mark.parametrize(
    ("at", "passed"),
    [(START - 1, False), (START, True), (END - 1, True), (END, False)],
)
def test_window_is_half_open(at: int, passed: bool) -> None:
    result = gate(camera_id="c1", captured_at_ms=at, windows=[w()])
    assert result.passed is passed
    assert result.reason is (None if passed else GateReason.OUTSIDE_WINDOW)


def test_open_ended_window_covers_everything_after_start() -> None:
    window = w(ends_at=None)
    assert gate(camera_id="c1", captured_at_ms=START + 10**10, windows=[window]).passed


def test_camera_outside_the_window_is_gated() -> None:
    result = gate(camera_id="c9", captured_at_ms=START + 1, windows=[w()])
    assert result.reason is GateReason.CAMERA_NOT_IN_WINDOW


@pytest.mark.parametrize("status", ["PLANNED", "CANCELLED"])
def test_planned_and_cancelled_windows_cover_nothing(status: str) -> None:
    window = w(status=status)
    result = gate(camera_id="c1", captured_at_ms=START + 1, windows=[window])
    assert result.reason is GateReason.OUTSIDE_WINDOW


def test_ended_window_still_covers_its_interval() -> None:
    site = apply_window({}, w())
    site = apply_window(site, w(status="ENDED", updated_at=T0 + timedelta(hours=2)))
    assert gate(camera_id="c1", captured_at_ms=START + 1, windows=site.values()).passed
    assert not gate(camera_id="c1", captured_at_ms=END, windows=site.values()).passed


def test_unknown_site() -> None:
    assert gate(camera_id="c1", captured_at_ms=START, windows=[]).reason is GateReason.UNKNOWN_SITE


def test_overlapping_windows_pick_the_latest_start_whatever_the_order() -> None:
    first = w(deployment_id="D1")
    second = w(deployment_id="D2", starts_at=T0 + timedelta(minutes=30), camera_ids=["c1"])
    at = START + 45 * 60_000
    for order in ([first, second], [second, first]):
        assert gate(camera_id="c1", captured_at_ms=at, windows=order).window == second
    # before D2 starts, and for a camera only D1 has, D1 wins
    assert gate(camera_id="c1", captured_at_ms=START + 1, windows=[first, second]).window == first
    assert gate(camera_id="c2", captured_at_ms=at, windows=[first, second]).window == first


def test_lateness_is_off_by_default_and_measured_against_the_site() -> None:
    windows = [w()]
    newest = START + 600_000
    old = START + 1
    assert gate(
        camera_id="c1", captured_at_ms=old, windows=windows, site_high_water_ms=newest
    ).passed
    late = gate(
        camera_id="c1",
        captured_at_ms=old,
        windows=windows,
        site_high_water_ms=newest,
        allowed_lateness_ms=60_000,
    )
    assert late.reason is GateReason.TOO_LATE
    in_time = gate(
        camera_id="c1",
        captured_at_ms=newest - 60_000,
        windows=windows,
        site_high_water_ms=newest,
        allowed_lateness_ms=60_000,
    )
    assert in_time.passed


def test_older_window_version_does_not_overwrite_newer() -> None:
    site = apply_window({}, w(status="ENDED", updated_at=T0 + timedelta(hours=3)))
    site = apply_window(site, w(status="ACTIVE", updated_at=T0))
    assert site["D1"].status == "ENDED"


@pytest.mark.parametrize(
    "overrides",
    [
        {"authorised_by": None, "authorised_at": None},
        {"match_threshold": 0.0},
        {"ends_at": T0},
        {"status": "ENDED", "ends_at": None},
    ],
)
def test_invalid_windows_are_refused(overrides: dict) -> None:
    with pytest.raises(InvalidWindowError):
        w(**overrides)


def test_window_state_round_trips() -> None:
    window = w()
    from streams.worker.windows import OperationWindow

    assert OperationWindow.from_state(window.to_state()) == window
