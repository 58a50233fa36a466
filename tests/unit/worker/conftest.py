"""Factories for the worker's unit tests: windows, watchlist records, detections."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from schemas.codec import encode
from schemas.templates import template_to_bytes
from streams.worker.source import SourceRecord
from streams.worker.windows import OperationWindow, window_from_record

T0 = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
DIM = 32


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    """A reproducible random unit vector."""
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


def window_record(**overrides: Any) -> dict[str, Any]:
    """A valid ACTIVE OperationWindow record at site S1, 09:00-11:00, cameras c1/c2."""
    record: dict[str, Any] = {
        "deployment_id": "D1",
        "site_id": "S1",
        "location": "North End, Croydon",
        "use_case": "wanted persons",
        "mode": "FIXED_REMOTE",
        "camera_ids": ["c1", "c2"],
        "watchlist_id": "W1",
        "watchlist_size": 3,
        "match_threshold": 0.64,
        "authorised_by": "Supt A",
        "authorised_at": T0 - timedelta(hours=2),
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=2),
        "status": "ACTIVE",
        "officers_present": 6,
        "updated_at": T0 - timedelta(hours=1),
    }
    record.update(overrides)
    return record


@pytest.fixture
def make_window() -> Callable[..., OperationWindow]:
    return lambda **kw: window_from_record(window_record(**kw))


def watchlist_record(subject_id: str, vec: np.ndarray | None, **overrides: Any) -> dict[str, Any]:
    """A WatchlistEntry record (ADD by default, REMOVE when ``vec`` is None)."""
    record: dict[str, Any] = {
        "subject_id": subject_id,
        "watchlist_id": "W1",
        "op": "ADD" if vec is not None else "REMOVE",
        "category": "wanted_by_court",
        "wanted_since": T0 - timedelta(days=30),
        "template": None if vec is None else template_to_bytes(vec),
        "template_model": "demo-512",
        "updated_at": T0 - timedelta(hours=3),
    }
    record.update(overrides)
    return record


_offsets = iter(range(10**9))


def detection(
    vec: np.ndarray,
    *,
    camera_id: str = "c1",
    site_id: str = "S1",
    at: datetime = T0 + timedelta(minutes=5),
    event_id: str | None = None,
    topic: str = "lfr.detections",
    template: bytes | None = None,
) -> SourceRecord:
    """A detection as the consumer would hand it over."""
    offset = next(_offsets)
    value = encode(
        "DetectionEvent",
        {
            "event_id": event_id or f"e{offset}",
            "camera_id": camera_id,
            "site_id": site_id,
            "captured_at": at,
            "face_quality": 0.9,
            "template": template if template is not None else template_to_bytes(vec),
            "template_model": "demo-512",
        },
    )
    return SourceRecord(topic, 0, offset, site_id.encode(), value, 1_759_309_200_000)
