"""The broadcast window view: versions, the windows of a site, when a watchlist retires."""

from __future__ import annotations

from datetime import timedelta

from streams.worker.window_view import Retirement, WindowView
from streams.worker.windows import window_from_record

from .conftest import T0, window_record

T0_MS = int(T0.timestamp() * 1000)
LATER = T0 + timedelta(hours=3)


def view_of(*records: dict) -> tuple[WindowView, list[Retirement | None]]:
    view = WindowView()
    return view, [view.apply(window_from_record(r)) for r in records]


def test_retires_when_the_last_live_user_closes_with_the_latest_covered_end() -> None:
    view, steps = view_of(
        window_record(),
        window_record(deployment_id="D2", site_id="S2", ends_at=T0 + timedelta(hours=4)),
        window_record(status="ENDED", updated_at=LATER),
        window_record(
            deployment_id="D2", site_id="S2", status="ENDED",
            ends_at=T0 + timedelta(hours=4), updated_at=LATER + timedelta(hours=2),
        ),
    )  # fmt: skip
    assert steps[:3] == [None, None, None]
    assert steps[3] == Retirement("W1", int((LATER + timedelta(hours=2)).timestamp() * 1000),
                                  T0_MS + 4 * 3600_000)  # fmt: skip
    assert view.sites_of("W1") == {"S1", "S2"}
    assert view.newest_update("W1") == int((LATER + timedelta(hours=2)).timestamp() * 1000)


def test_a_cancelled_deployment_covered_nothing() -> None:
    _, steps = view_of(
        window_record(status="PLANNED", authorised_by=None),
        window_record(status="CANCELLED", authorised_by=None, updated_at=LATER),
    )
    assert steps[1] is not None and steps[1].end_ms is None


def test_an_older_version_is_ignored_and_retires_nothing() -> None:
    view, steps = view_of(
        window_record(status="ENDED", updated_at=LATER),
        window_record(status="ENDED", updated_at=T0),
    )
    assert steps[0] is not None and steps[1] is None
    (window,) = view.windows_of("S1")
    assert window.updated_at_ms == int(LATER.timestamp() * 1000)
    assert view.windows_of("S9") == [] and view.active_count == 0
