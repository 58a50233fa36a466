"""One validation for every window: what the operations agent dead-letters gates nothing.

The broadcast view (``read_windows`` into ``ReferenceData``) gates
detections; the operations stage (``apply_operations``) dead-letters invalid
windows. Both admit windows through the same input and checks, so a window
the stage rejects (an unauthorised one, say) never lets a face in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from schemas.codec import encode
from streams.worker.deletion import DeletionPolicy
from streams.worker.gating import GateReason, gate
from streams.worker.reference import ReferenceData, read_windows
from streams.worker.source import SourceRecord
from streams.worker.windows import apply_operations

from .conftest import T0, window_record

T0_MS = int(T0.timestamp() * 1000)

UNAUTHORISED: dict[str, dict[str, Any]] = {
    # ended, naming an authoriser but not when: the old view let it cover its hours
    "ended_without_authorised_at": {"status": "ENDED", "authorised_at": None},
    "active_without_authoriser": {"authorised_by": None, "authorised_at": None},
    "authorised_at_without_authoriser": {"status": "ENDED", "authorised_by": None},
}


def message(record: dict[str, Any], offset: int = 0) -> SourceRecord:
    value = encode("OperationWindow", record)
    return SourceRecord("lfr.operations", 0, offset, b"S1", value, 0)


class View:
    """The broadcast view as the reference service feeds it."""

    def __init__(self) -> None:
        self.reference = ReferenceData(DeletionPolicy(grace_s=120.0))

    def apply(self, record: SourceRecord) -> None:
        read_windows([record], self.reference, 0.0)


def service() -> View:
    return View()


@pytest.mark.parametrize("name", sorted(UNAUTHORISED))
def test_a_window_the_agent_rejects_gates_nothing(name: str) -> None:
    record = window_record(**UNAUTHORISED[name])
    rejected = apply_operations([message(record)], {})  # what the operations agent does
    assert [d["reason"] for d in rejected.dead_letters] == ["invalid"] and not rejected.changes
    view = service()
    view.apply(message(record))
    windows = view.reference.windows_of("S1")
    decision = gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=windows)
    assert windows == [] and decision.reason is GateReason.UNKNOWN_SITE


def test_an_invalid_version_leaves_the_valid_one_in_force() -> None:
    view = service()
    view.apply(message(window_record()))
    later = T0 + timedelta(minutes=30)
    view.apply(message(window_record(authorised_by=None, updated_at=later), 1))
    (window,) = view.reference.windows_of("S1")
    assert window.authorised_by == "Supt A"
    assert gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=[window]).passed


def test_a_valid_window_gates_in() -> None:
    view = service()
    view.apply(message(window_record()))
    windows = view.reference.windows_of("S1")
    assert gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=windows).passed
