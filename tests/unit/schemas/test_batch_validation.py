"""check_detections gives every record the verdict and error of validate, record by record."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import batch_validation
from schemas.batch_validation import check_detections
from schemas.errors import SchemaError
from schemas.templates import template_to_bytes
from schemas.validation import MAX_FUTURE, validate
from tests.unit.schemas.avro_strategies import NOW, detection, records, unit_template

NOW_MS = int(NOW.timestamp() * 1000)
LATEST_MS = NOW_MS + int(MAX_FUTURE / timedelta(milliseconds=1))


def _scaled(dim: int, seed: int, norm: float) -> bytes:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return template_to_bytes(vector / np.linalg.norm(vector) * norm)


def _spoiled(dim: int, seed: int, value: float, at: int) -> bytes:
    vector = np.frombuffer(unit_template(dim, seed), dtype="<f2").copy()
    vector[at % dim] = value
    return vector.tobytes()


_dims = st.sampled_from([8, 15, 16, 17, 64, 512, 4096, 4097])
templates = st.one_of(
    st.builds(unit_template, dim=_dims, seed=st.integers(0, 50)),
    # norms on both sides of the tolerance, some within float rounding of it
    st.builds(
        _scaled,
        dim=st.sampled_from([16, 512, 4096]),
        seed=st.integers(0, 50),
        norm=st.one_of(st.floats(0.97, 1.03), st.sampled_from([0.99, 1.01, 0.9899, 1.0101])),
    ),
    st.builds(
        _spoiled,
        dim=st.sampled_from([16, 512]),
        seed=st.integers(0, 50),
        value=st.sampled_from([float("nan"), float("inf"), -float("inf"), 65504.0, 0.0]),
        at=st.integers(0, 4096),
    ),
    st.binary(max_size=70),
    st.sampled_from([b"", b"\x00", None, "text", 7]),
    st.builds(bytearray, st.builds(unit_template, dim=st.just(16))),
)
ids = st.one_of(
    st.sampled_from(["cam-1", "", " ", "\t\n", " x ", "\u00a0", None, 5, b"id"]),
    st.text(max_size=4),
)
instants = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),  # naive: rejected
    st.integers(-(2**63), 2**63 - 1),
    st.integers(LATEST_MS - 3, LATEST_MS + 3),
    st.integers(-3, 3),
    st.builds(lambda ms: NOW + timedelta(milliseconds=ms), st.integers(-3, 3)).map(
        lambda d: d + MAX_FUTURE
    ),
    st.sampled_from([None, 1.5, True, "2025-10-14"]),
)
qualities = st.one_of(
    st.floats(-0.5, 1.5),
    st.sampled_from(
        [0.0, 1.0, -0.0, float("nan"), float("inf"), 0, 1, True, None, np.float32(0.5)]
    ),
)


FIELDS = {
    "event_id": ids,
    "camera_id": ids,
    "site_id": ids,
    "template_model": ids,
    "captured_at": instants,
    "face_quality": qualities,
    "template": templates,
}


@st.composite
def detections(draw: st.DrawFn) -> dict[str, Any]:
    """A valid DetectionEvent with a few fields redrawn good or bad, or an arbitrary Avro one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(records("DetectionEvent"))
    record = detection()
    # mostly one field at a time, so that each bound is reached by an otherwise good record
    changed = draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True))
    for field in changed:
        record[field] = draw(FIELDS[field])
    if draw(st.integers(0, 19)) == 0:
        del record[draw(st.sampled_from(sorted(record)))]
    return record


def one_by_one(batch: list[dict[str, Any]], **kw: Any) -> list[tuple[type, str] | None]:
    verdicts: list[tuple[type, str] | None] = []
    for record in batch:
        try:
            validate("DetectionEvent", record, now=NOW, **kw)
        except SchemaError as exc:
            verdicts.append((type(exc), str(exc)))
        else:
            verdicts.append(None)
    return verdicts


def batched(batch: list[dict[str, Any]], **kw: Any) -> list[tuple[type, str] | None]:
    return [
        None if e is None else (type(e), str(e)) for e in check_detections(batch, now=NOW, **kw)
    ]


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(detections(), max_size=12), pinned=st.sampled_from([None, 16, 512]))
def test_the_batch_check_agrees_with_validate_record_by_record(
    batch: list[dict[str, Any]], pinned: int | None
) -> None:
    assert batched(batch, template_dim=pinned) == one_by_one(batch, template_dim=pinned)


def test_a_mixed_batch_rejects_exactly_the_bad_rows() -> None:
    batch = [
        detection(),
        detection(template=_scaled(512, 1, 1.02)),
        detection(site_id=" "),
        detection(captured_at=NOW + MAX_FUTURE + timedelta(milliseconds=1)),
        detection(template=_spoiled(512, 2, float("nan"), 3)),
        detection(template=unit_template(64)),
        detection(face_quality=float("nan")),
        # the future bound, as the decoder's datetime and as epoch milliseconds
        detection(captured_at=NOW + MAX_FUTURE),
        detection(captured_at=LATEST_MS),
        detection(captured_at=LATEST_MS + 1),
        detection(captured_at=-1),
    ]
    verdicts = batched(batch)
    assert verdicts == one_by_one(batch)
    passed = [v is None for v in verdicts]
    assert passed == [True, False, False, False, False, True, False, True, True, False, True]


def test_good_records_are_cleared_without_validating_each(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(batch_validation, "validate", lambda *a, **k: calls.append(a))
    batch = [detection(template=unit_template(512, seed)) for seed in range(50)]
    batch += [detection(captured_at=NOW_MS), detection(template=unit_template(16))]
    assert check_detections(batch, now=NOW) == [None] * len(batch)
    assert calls == []
