"""Hypothesis strategies derived from the Avro schemas themselves, plus record factories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import strategies as st

from schemas.codec import shared_codec
from schemas.templates import template_to_bytes

RECORD_NAMES = tuple(shared_codec().schemas.versions)


def _instant() -> st.SearchStrategy[datetime]:
    # hypothesis takes naive bounds and attaches the zone from `timezones`
    low, high = datetime(1900, 1, 1), datetime(2200, 1, 1)  # noqa: DTZ001
    return st.datetimes(min_value=low, max_value=high, timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    )


def strategy_for(schema: Any) -> st.SearchStrategy[Any]:
    """Any value the (expanded or inline) Avro type ``schema`` can hold."""
    if isinstance(schema, list):
        return st.one_of([strategy_for(branch) for branch in schema])
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return _instant()
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, dict | list):
        return strategy_for(kind)
    primitives: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        "string": st.text(max_size=40),
        "bytes": st.binary(max_size=2048),
    }
    if kind in primitives:
        return primitives[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(strategy_for(schema["items"]), max_size=5)
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: strategy_for(f["type"]) for f in schema["fields"]})
    raise AssertionError(f"no strategy for {kind!r}")


def records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary Avro-valid records of ``name`` (semantically anything goes)."""
    return strategy_for(shared_codec().schemas.latest(name).raw)


def unit_template(dim: int = 512, seed: int = 0) -> bytes:
    """An L2-normalised float16 template."""
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return template_to_bytes(vector / np.linalg.norm(vector))


NOW = datetime(2025, 10, 14, 12, 0, tzinfo=UTC)


def detection(**overrides: Any) -> dict[str, Any]:
    """A valid DetectionEvent."""
    record = {
        "event_id": str(uuid.uuid4()),
        "camera_id": "croydon-cam-01",
        "site_id": "croydon",
        "captured_at": NOW - timedelta(minutes=5),
        "face_quality": 0.75,
        "template": unit_template(),
        "template_model": "demo@1",
    }
    return {**record, **overrides}


def watchlist_entry(**overrides: Any) -> dict[str, Any]:
    """A valid ADD WatchlistEntry."""
    record = {
        "subject_id": "subject-1",
        "watchlist_id": "wl-1",
        "op": "ADD",
        "category": "wanted_by_court",
        "wanted_since": NOW - timedelta(days=30),
        "template": unit_template(seed=1),
        "template_model": "demo@1",
        "updated_at": NOW - timedelta(hours=2),
    }
    return {**record, **overrides}


def operation_window(**overrides: Any) -> dict[str, Any]:
    """A valid ACTIVE OperationWindow."""
    record = {
        "deployment_id": "dep-1",
        "site_id": "croydon",
        "location": "North End, Croydon",
        "use_case": "Crime hotspot",
        "mode": "FIXED_REMOTE",
        "camera_ids": ["croydon-cam-01", "croydon-cam-02"],
        "watchlist_id": "wl-1",
        "watchlist_size": 16000,
        "match_threshold": 0.64,
        "authorised_by": "supt-0042",
        "authorised_at": NOW - timedelta(days=1),
        "starts_at": NOW - timedelta(hours=1),
        "ends_at": None,
        "status": "ACTIVE",
        "officers_present": 6,
        "updated_at": NOW - timedelta(hours=1),
    }
    return {**record, **overrides}


def adjudication(**overrides: Any) -> dict[str, Any]:
    """A valid Adjudication: a confirmed true match that ended in an arrest."""
    record = {
        "alert_id": str(uuid.uuid4()),
        "officer_ref": "pc-1234",
        "verdict": "TRUE_MATCH",
        "confirmed": True,
        "outcome": "ARREST",
        "located_at": NOW - timedelta(minutes=3),
        "decided_at": NOW - timedelta(minutes=4),
    }
    return {**record, **overrides}


def alert(**overrides: Any) -> dict[str, Any]:
    """A valid Alert."""
    record = {
        "alert_id": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "deployment_id": "dep-1",
        "site_id": "croydon",
        "camera_id": "croydon-cam-01",
        "subject_ref": "ab" * 16,
        "watchlist_id": "wl-1",
        "category": "missing",
        "score": 0.71,
        "threshold": 0.64,
        "watchlist_version": 7,
        "template_model": "demo@1",
        "captured_at": NOW - timedelta(minutes=5),
        "alerted_at": NOW - timedelta(minutes=5),
        "wanted_since": NOW - timedelta(days=30),
    }
    return {**record, **overrides}


def outcome(**overrides: Any) -> dict[str, Any]:
    """A valid Outcome (confirmed true match, arrested)."""
    base = alert()
    for name in ("watchlist_id", "watchlist_version", "template_model"):
        del base[name]
    record = {
        **base,
        "officer_ref": "pc-1234",
        "verdict": "TRUE_MATCH",
        "confirmed": True,
        "outcome": "ARREST",
        "located_at": NOW - timedelta(minutes=2),
        "decided_at": NOW - timedelta(minutes=4),
        "time_to_locate_s": 30 * 86400.0 - 120,
        "response_s": 180.0,
    }
    return {**record, **overrides}


def scan(**overrides: Any) -> dict[str, Any]:
    """A valid Scan."""
    record = {
        "event_id": str(uuid.uuid4()),
        "deployment_id": "dep-1",
        "site_id": "croydon",
        "camera_id": "croydon-cam-01",
        "captured_at": NOW - timedelta(minutes=5),
        "face_quality": 0.5,
        "matched": False,
    }
    return {**record, **overrides}


VALID = {
    "DetectionEvent": detection,
    "WatchlistEntry": watchlist_entry,
    "OperationWindow": operation_window,
    "Adjudication": adjudication,
    "Alert": alert,
    "Outcome": outcome,
    "Scan": scan,
}


def json_line(record: dict[str, Any]) -> str:
    """The ``lfr publish`` input line for ``record``: ISO instants, base64 bytes."""
    import base64
    import json

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        return value

    return json.dumps({name: convert(value) for name, value in record.items()})
