"""The DetectionEvent rules of :mod:`schemas.validation`, checked for a whole batch at once.

The worker's hot path validates hundreds of detections per batch; checking
each template on its own (parse, finiteness, norm) costs several numpy calls
per record. Here the batch's templates of one length become one matrix whose
row norms are computed in one call, and the other fields get inline type
tests. A record these fast checks cannot clear (a failing row, or one close
to a bound where float rounding could decide) is checked again by
:func:`schemas.validation.validate`, which gives its exact error, so the
verdict and the error of every record are those of ``validate`` by
construction; the fast checks only ever clear records that ``validate``
passes (tests compare the two over random good and bad records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from schemas.errors import SchemaError
from schemas.templates import WIRE_DTYPE
from schemas.validation import (
    MAX_FUTURE,
    MAX_TEMPLATE_DIM,
    MIN_TEMPLATE_DIM,
    NORM_TOLERANCE,
    validate,
)

NORM_MARGIN = 1e-3
"""Rows whose norm lies this close to the tolerance are left to ``validate``.

Both the batch's and ``validate``'s norms sum at most 4,096 float32 squares,
each within about 1.2e-4 (4,096 x float32 epsilon / 2) of the exact norm of a
near-unit vector, so they differ by less than a quarter of this margin: the
batch never clears a row that ``validate`` would reject.
"""

_ID_FIELDS = ("event_id", "camera_id", "site_id", "template_model")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _templates_clear(templates: Sequence[Any], template_dim: int | None) -> np.ndarray:
    """Per template: True when it is certainly a finite unit vector of an allowed dimension."""
    clear = np.zeros(len(templates), dtype=bool)
    by_size: dict[int, list[int]] = {}
    for i, template in enumerate(templates):
        if type(template) is bytes:
            by_size.setdefault(len(template), []).append(i)
    for size, rows in by_size.items():
        dim, odd = divmod(size, WIRE_DTYPE.itemsize)
        if odd or not MIN_TEMPLATE_DIM <= dim <= MAX_TEMPLATE_DIM:
            continue
        if template_dim is not None and dim != template_dim:
            continue
        joined = b"".join([templates[i] for i in rows])
        matrix = np.frombuffer(joined, dtype=WIRE_DTYPE).reshape(len(rows), dim)
        matrix = matrix.astype(np.float32)
        # a non-finite value makes the norm inf or nan, which fails the comparison:
        # a finite norm within the tolerance implies every value is finite
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        matrix.fill(0.0)  # as the matcher does with its queries: no float copy lingers
        del joined
        clear[rows] = np.abs(norms - 1.0) <= NORM_TOLERANCE - NORM_MARGIN
    return clear


def _fields_clear(record: Mapping[str, Any], latest: datetime, latest_ms: int) -> bool:
    """True when ids, captured_at and face_quality certainly pass ``validate``."""
    for field in _ID_FIELDS:
        value = record.get(field)
        if type(value) is not str or not value.strip():
            return False
    captured = record.get("captured_at")
    if type(captured) is datetime:
        if captured.tzinfo is None or captured > latest:
            return False
    elif type(captured) is not int or not 0 <= captured < latest_ms:
        return False
    quality = record.get("face_quality")
    return type(quality) is float and 0.0 <= quality <= 1.0


def check_detections(
    records: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
    template_dim: int | None = None,
) -> list[SchemaError | None]:
    """``validate("DetectionEvent", r)`` of every record: its error, or None when it passes.

    One ``now`` (default: the wall clock) bounds future instants for the whole batch.
    """
    now = now or datetime.now(UTC)
    latest = now + max_future
    latest_ms = (latest - _EPOCH) // _ONE_MS
    clear = _templates_clear([r.get("template") for r in records], template_dim).tolist()
    errors: list[SchemaError | None] = [None] * len(records)
    for i, record in enumerate(records):
        if clear[i] and _fields_clear(record, latest, latest_ms):
            continue
        try:
            validate(
                "DetectionEvent", record, now=now, max_future=max_future, template_dim=template_dim
            )
        except SchemaError as exc:
            errors[i] = exc
    return errors
