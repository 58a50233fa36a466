"""Semantic checks beyond Avro types, one function per record.

Avro guarantees a string is a string; these rules guarantee it means
something: ids are not empty, a template is a finite unit vector of a sane
dimension, a threshold lies in (0, 1], a window ends after it starts, an
ACTIVE window was authorised, an outcome agrees with its verdict. Every
failure is a :class:`schemas.errors.ValidationError` subclass; messages name
the field, never a template or a subject id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from schemas.errors import (
    InconsistentRecordError,
    InstantError,
    MissingValueError,
    OutOfRangeError,
    TemplateError,
    UnknownSchemaError,
)
from schemas.templates import template_from_bytes

MAX_FUTURE = timedelta(days=366)
"""How far ahead of ``now`` an instant may lie (planned windows, simulations, clock skew)."""
NORM_TOLERANCE = 0.01
"""Allowed |norm - 1| of a float16 template (float16 rounding alone stays under 0.001)."""
MIN_TEMPLATE_DIM = 16
MAX_TEMPLATE_DIM = 4096

_Record = Mapping[str, Any]


class _Context:
    """The per-call settings of the checks."""

    def __init__(self, now: datetime, max_future: timedelta, template_dim: int | None) -> None:
        self.latest = now + max_future
        self.template_dim = template_dim


def _require_ids(record: _Record, fields: Iterable[str]) -> None:
    for field in fields:
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            raise MissingValueError(f"{field} must be a non-empty string")


def _as_datetime(field: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InstantError(f"{field} is a naive datetime; instants must be timezone-aware")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InstantError(f"{field} is out of the representable range") from None
    raise InstantError(f"{field} must be a datetime or epoch milliseconds")


def _instants(record: _Record, ctx: _Context, fields: Iterable[str]) -> dict[str, datetime]:
    """Check the present instants and return them as aware datetimes."""
    found: dict[str, datetime] = {}
    for field in fields:
        value = record.get(field)
        if value is None:
            continue
        instant = _as_datetime(field, value)
        if instant > ctx.latest:
            raise InstantError(f"{field} is absurdly far in the future")
        found[field] = instant
    return found


def _unit_interval(field: str, value: Any, *, open_low: bool = False) -> None:
    if not isinstance(value, int | float | np.floating) or not math.isfinite(value):
        raise OutOfRangeError(f"{field} must be a finite number")
    if (value <= 0 if open_low else value < 0) or value > 1:
        raise OutOfRangeError(f"{field} must be in {'(0' if open_low else '[0'}, 1]")


def _finite(field: str, value: Any) -> None:
    if not isinstance(value, int | float | np.floating) or not math.isfinite(value):
        raise OutOfRangeError(f"{field} must be a finite number")


def _non_negative(record: _Record, fields: Iterable[str]) -> None:
    for field in fields:
        value = record.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise OutOfRangeError(f"{field} must be a non-negative integer")


def check_template(data: Any, *, template_dim: int | None = None) -> np.ndarray:
    """Check a wire template (length, dimension, finiteness, unit norm); return it as float32."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TemplateError("template must be bytes")
    vector = template_from_bytes(bytes(data))
    dim = vector.shape[0]
    if template_dim is not None and dim != template_dim:
        raise TemplateError(f"template has {dim} dimensions, expected {template_dim}")
    if not MIN_TEMPLATE_DIM <= dim <= MAX_TEMPLATE_DIM:
        raise TemplateError(
            f"template has {dim} dimensions, outside {MIN_TEMPLATE_DIM}..{MAX_TEMPLATE_DIM}"
        )
    if not np.isfinite(vector).all():
        raise TemplateError("template has non-finite values")
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise TemplateError(f"template is not L2-normalised (norm {norm:.4f})")
    return vector


def _detection(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("event_id", "camera_id", "site_id", "template_model"))
    _instants(record, ctx, ("captured_at",))
    _unit_interval("face_quality", record.get("face_quality"))
    check_template(record.get("template"), template_dim=ctx.template_dim)


def _watchlist(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("subject_id", "watchlist_id", "template_model"))
    _instants(record, ctx, ("wanted_since", "updated_at"))
    template = record.get("template")
    if record.get("op") == "REMOVE":
        if template is not None:
            raise InconsistentRecordError("a REMOVE entry must not carry a template")
    elif template is None:
        raise InconsistentRecordError(f"an {record.get('op')} entry needs a template")
    else:
        check_template(template, template_dim=ctx.template_dim)


def _operation(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("deployment_id", "site_id", "location", "use_case", "watchlist_id"))
    cameras = record.get("camera_ids")
    if not isinstance(cameras, list | tuple) or not cameras:
        raise MissingValueError("camera_ids must list at least one camera")
    if any(not isinstance(c, str) or not c.strip() for c in cameras):
        raise MissingValueError("camera_ids must not contain empty ids")
    if len(set(cameras)) != len(cameras):
        raise InconsistentRecordError("camera_ids has duplicates")
    _non_negative(record, ("watchlist_size", "officers_present"))
    _unit_interval("match_threshold", record.get("match_threshold"), open_low=True)
    instants = _instants(record, ctx, ("authorised_at", "starts_at", "ends_at", "updated_at"))
    if "ends_at" in instants and instants["ends_at"] <= instants["starts_at"]:
        raise InstantError("ends_at must be after starts_at")
    authoriser = record.get("authorised_by")
    if authoriser is not None and not authoriser.strip():
        raise MissingValueError("authorised_by must be non-empty when set")
    if (authoriser is None) != ("authorised_at" not in instants):
        raise InconsistentRecordError("authorised_by and authorised_at go together")
    status = record.get("status")
    if status in ("ACTIVE", "ENDED") and authoriser is None:
        raise InconsistentRecordError(f"an {status} window must name who authorised it")
    if status == "ENDED" and "ends_at" not in instants:
        raise InconsistentRecordError("an ENDED window needs ends_at")


def _verdict(record: _Record, instants: Mapping[str, datetime]) -> None:
    confirmed_true = record.get("verdict") == "TRUE_MATCH" and record.get("confirmed") is True
    outcome = record.get("outcome")
    if confirmed_true and outcome == "NONE":
        raise InconsistentRecordError("a confirmed TRUE_MATCH needs ARREST, OTHER or NO_ACTION")
    if not confirmed_true and outcome != "NONE":
        raise InconsistentRecordError(f"outcome {outcome} needs a confirmed TRUE_MATCH")
    if record.get("confirmed") is not True and "located_at" in instants:
        raise InconsistentRecordError("located_at is set only when the person was engaged")
    if record.get("confirmed") is True and "located_at" not in instants:
        raise InconsistentRecordError("a confirmed alert needs located_at")


def _adjudication(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("alert_id", "officer_ref"))
    _verdict(record, _instants(record, ctx, ("located_at", "decided_at")))


def _scan(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("event_id", "deployment_id", "site_id", "camera_id"))
    _instants(record, ctx, ("captured_at",))
    _unit_interval("face_quality", record.get("face_quality"))


def _alert_fields(record: _Record) -> None:
    _require_ids(
        record,
        ("alert_id", "event_id", "deployment_id", "site_id", "camera_id", "subject_ref"),
    )
    _finite("score", record.get("score"))
    _unit_interval("threshold", record.get("threshold"), open_low=True)


def _alert(record: _Record, ctx: _Context) -> None:
    _alert_fields(record)
    _require_ids(record, ("watchlist_id", "template_model"))
    _instants(record, ctx, ("captured_at", "alerted_at", "wanted_since"))
    if record["score"] < record["threshold"]:
        raise InconsistentRecordError("an alert's score is below its threshold")
    _non_negative(record, ("watchlist_version",))


def _outcome(record: _Record, ctx: _Context) -> None:
    _alert_fields(record)
    _require_ids(record, ("officer_ref",))
    instants = _instants(
        record,
        ctx,
        ("captured_at", "alerted_at", "wanted_since", "located_at", "decided_at"),
    )
    _verdict(record, instants)
    for field in ("time_to_locate_s", "response_s"):
        value = record.get(field)
        if (value is None) != ("located_at" not in instants):
            raise InconsistentRecordError(f"{field} is set exactly when located_at is")
        if value is not None:
            _finite(field, value)


def _dead_letter(record: _Record, ctx: _Context) -> None:
    _require_ids(record, ("source_topic", "stage", "error_class", "payload_sha256"))
    _non_negative(record, ("source_partition", "source_offset", "payload_size"))
    _instants(record, ctx, ("failed_at",))
    sha = record["payload_sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise OutOfRangeError("payload_sha256 must be 64 lowercase hex digits")


_RULES: dict[str, Callable[[_Record, _Context], None]] = {
    "DetectionEvent": _detection,
    "WatchlistEntry": _watchlist,
    "OperationWindow": _operation,
    "Adjudication": _adjudication,
    "Scan": _scan,
    "Alert": _alert,
    "Outcome": _outcome,
    "DeadLetter": _dead_letter,
}


def validate(
    name: str,
    record: Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_future: timedelta = MAX_FUTURE,
    template_dim: int | None = None,
) -> None:
    """Check the semantic rules of record ``name``; raise a ValidationError subclass if broken.

    ``now`` bounds future instants (default: the wall clock; pass the stream's time
    in a replay). ``template_dim`` pins the template dimension when the caller knows
    the model's.
    """
    try:
        rules = _RULES[name]
    except KeyError:
        raise UnknownSchemaError(f"unknown record schema {name!r}") from None
    rules(record, _Context(now or datetime.now(UTC), max_future, template_dim))
