"""One validation for every window: what the operations agent dead-letters gates nothing.

The broadcast view (``WatchlistService``) gates detections; the operations
agent dead-letters invalid windows. Both go through ``parse_window``, so a
window the agent rejects (an unauthorised one, say) never lets a face in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from common.settings import Settings
from schemas.codec import Codec, encode
from schemas.errors import SchemaError
from streams.worker.deletion import DeletionPolicy
from streams.worker.errors import WorkerError
from streams.worker.gating import GateReason, gate
from streams.worker.watchlist import WatchlistService
from streams.worker.windows import parse_window

from .conftest import T0, window_record

T0_MS = int(T0.timestamp() * 1000)

UNAUTHORISED: dict[str, dict[str, Any]] = {
    # ended, naming an authoriser but not when: the old view let it cover its hours
    "ended_without_authorised_at": {"status": "ENDED", "authorised_at": None},
    "active_without_authoriser": {"authorised_by": None, "authorised_at": None},
    "authorised_at_without_authoriser": {"status": "ENDED", "authorised_by": None},
}


def message(record: dict[str, Any], offset: int = 0) -> ConsumerRecord:
    value = encode("OperationWindow", record)
    return ConsumerRecord(
        "lfr.operations", 0, offset, 0, 0, b"S1", value, None, len(b"S1"), len(value), []
    )


def service() -> WatchlistService:
    return WatchlistService(Settings(), codec=Codec(), policy=DeletionPolicy(grace_s=120.0))


@pytest.mark.parametrize("name", sorted(UNAUTHORISED))
def test_a_window_the_agent_rejects_gates_nothing(name: str) -> None:
    record = window_record(**UNAUTHORISED[name])
    with pytest.raises((SchemaError, WorkerError)):
        parse_window(record, "S1")  # what the operations agent dead-letters
    view = service()
    view._apply_window(message(record))
    windows = view.reference.windows_of("S1")
    decision = gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=windows)
    assert windows == [] and decision.reason is GateReason.UNKNOWN_SITE


def test_an_invalid_version_leaves_the_valid_one_in_force() -> None:
    view = service()
    view._apply_window(message(window_record()))
    later = T0 + timedelta(minutes=30)
    view._apply_window(message(window_record(authorised_by=None, updated_at=later), 1))
    (window,) = view.reference.windows_of("S1")
    assert window.authorised_by == "Supt A"
    assert gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=[window]).passed


def test_a_valid_window_gates_in() -> None:
    view = service()
    view._apply_window(message(window_record()))
    windows = view.reference.windows_of("S1")
    assert gate(camera_id="c1", captured_at_ms=T0_MS + 60_000, windows=windows).passed
