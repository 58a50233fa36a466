"""Decoded records -> table rows: pure functions, one per record type.

Instants become ``(epoch seconds, milliseconds)`` pairs for a ``DateTime``
column and its ``*_ms`` column. A value that cannot be stored as it is (an
instant outside DateTime's range, an over-long string, a missing field)
raises :class:`~sinks.errors.UnmappableRecord`; the sink dead-letters that
record and inserts the rest of its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.errors import UnmappableRecord

# DateTime is an unsigned 32-bit count of seconds.
MIN_EPOCH_S = 0
MAX_EPOCH_S = 2**32 - 1
MAX_STRING = 4096
MAX_MESSAGE = 16384

Row = dict[str, Any]


@dataclass(frozen=True)
class TableSpec:
    """A row-level table the sink writes."""

    name: str
    record: str
    columns: tuple[str, ...]
    map_record: Callable[[Mapping[str, Any]], Row]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def epoch_ms(value: Any) -> int:
    """Epoch milliseconds (floor) of an aware datetime or an int of milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UnmappableRecord("naive datetime")
        # timedelta // timedelta is exact integer arithmetic, in C
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise UnmappableRecord(f"not an instant: {type(value).__name__}")


def split_instant(value: Any, field: str) -> tuple[int, int]:
    """``(seconds, milliseconds)`` for a DateTime column pair."""
    if type(value) is datetime and value.tzinfo is not None:
        ms = (value - _EPOCH) // _ONE_MS  # the decoder's case, without epoch_ms's checks
    else:
        ms = epoch_ms(value)
    seconds, millis = divmod(ms, 1000)
    if not MIN_EPOCH_S <= seconds <= MAX_EPOCH_S:
        raise UnmappableRecord(f"{field} outside ClickHouse DateTime range")
    return seconds, millis


def _absent(record: Mapping[str, Any], field: str) -> UnmappableRecord:
    return UnmappableRecord(f"null {field}" if field in record else f"missing field {field}")


def _get(record: Mapping[str, Any], field: str) -> Any:
    value = record.get(field)
    if value is None:
        raise _absent(record, field)
    return value


# The helpers below run for every field of every row: each does its work in
# one call, with the type test first (the decoder already gives the Avro types).


def _text(record: Mapping[str, Any], field: str, limit: int = MAX_STRING) -> str:
    value = record.get(field)
    if type(value) is not str:
        raise (
            _absent(record, field)
            if value is None
            else UnmappableRecord(f"{field} is not a string")
        )
    if len(value) > limit:
        raise UnmappableRecord(f"{field} longer than {limit} characters")
    return value


def _opt_text(record: Mapping[str, Any], field: str) -> str | None:
    return None if record.get(field) is None else _text(record, field)


def _number(record: Mapping[str, Any], field: str) -> float:
    value = record.get(field)
    if type(value) is not float:
        if value is None:
            raise _absent(record, field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnmappableRecord(f"{field} is not a number")
        value = float(value)
    if not math.isfinite(value):
        raise UnmappableRecord(f"{field} is not finite")
    return value


def _opt_number(record: Mapping[str, Any], field: str) -> float | None:
    return None if record.get(field) is None else _number(record, field)


def _uint(record: Mapping[str, Any], field: str, bits: int = 32) -> int:
    value = _get(record, field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise UnmappableRecord(f"{field} is not an unsigned {bits}-bit integer")
    return value


def _int64(record: Mapping[str, Any], field: str) -> int:
    value = _get(record, field)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise UnmappableRecord(f"{field} is not a 64-bit integer")
    return value


def _instant(row: Row, record: Mapping[str, Any], field: str) -> None:
    value = record.get(field)
    if value is None:
        raise _absent(record, field)
    row[field], row[_MS[field]] = split_instant(value, field)


def _opt_instant(row: Row, record: Mapping[str, Any], field: str) -> None:
    value = record.get(field)
    if value is None:
        row[field], row[_MS[field]] = None, None
    else:
        row[field], row[_MS[field]] = split_instant(value, field)


def _symbol(record: Mapping[str, Any], field: str) -> str:
    return _text(record, field, 64)


def scan_row(record: Mapping[str, Any]) -> Row:
    """A Scan record as a ``scans`` row."""
    row: Row = {
        "event_id": _text(record, "event_id"),
        "deployment_id": _text(record, "deployment_id"),
        "site_id": _text(record, "site_id"),
        "camera_id": _text(record, "camera_id"),
        "face_quality": _number(record, "face_quality"),
        "matched": 1 if _get(record, "matched") else 0,
    }
    _instant(row, record, "captured_at")
    return row


def _alert_common(record: Mapping[str, Any]) -> Row:
    row: Row = {
        "alert_id": _text(record, "alert_id"),
        "event_id": _text(record, "event_id"),
        "deployment_id": _text(record, "deployment_id"),
        "site_id": _text(record, "site_id"),
        "camera_id": _text(record, "camera_id"),
        "subject_ref": _text(record, "subject_ref", 128),
        "category": _symbol(record, "category"),
        "score": _number(record, "score"),
        "threshold": _number(record, "threshold"),
    }
    for field in ("captured_at", "alerted_at", "wanted_since"):
        _instant(row, record, field)
    return row


def alert_row(record: Mapping[str, Any]) -> Row:
    """An Alert record as an ``alerts`` row."""
    row = _alert_common(record)
    row["watchlist_id"] = _text(record, "watchlist_id")
    row["watchlist_version"] = _int64(record, "watchlist_version")
    row["template_model"] = _text(record, "template_model", 256)
    return row


def outcome_row(record: Mapping[str, Any]) -> Row:
    """An Outcome record as an ``outcomes`` row; version = decided_at in ms."""
    row = _alert_common(record)
    row["officer_ref"] = _text(record, "officer_ref")
    row["verdict"] = _symbol(record, "verdict")
    row["confirmed"] = 1 if _get(record, "confirmed") else 0
    row["outcome"] = _symbol(record, "outcome")
    _opt_instant(row, record, "located_at")
    _instant(row, record, "decided_at")
    row["time_to_locate_s"] = _opt_number(record, "time_to_locate_s")
    row["response_s"] = _opt_number(record, "response_s")
    row["version"] = epoch_ms(_get(record, "decided_at"))
    return row


def operation_row(record: Mapping[str, Any]) -> Row:
    """An OperationWindow record as an ``operation_windows`` row; version = updated_at ms."""
    cameras = _get(record, "camera_ids")
    if not isinstance(cameras, Sequence) or isinstance(cameras, str):
        raise UnmappableRecord("camera_ids is not a list")
    row: Row = {
        "deployment_id": _text(record, "deployment_id"),
        "site_id": _text(record, "site_id"),
        "location": _text(record, "location"),
        "use_case": _text(record, "use_case"),
        "mode": _symbol(record, "mode"),
        "camera_ids": [str(c) for c in cameras],
        "watchlist_id": _text(record, "watchlist_id"),
        "watchlist_size": _uint(record, "watchlist_size"),
        "match_threshold": _number(record, "match_threshold"),
        "authorised_by": _opt_text(record, "authorised_by"),
        "status": _symbol(record, "status"),
        "officers_present": _uint(record, "officers_present"),
    }
    _opt_instant(row, record, "authorised_at")
    _instant(row, record, "starts_at")
    _opt_instant(row, record, "ends_at")
    _instant(row, record, "updated_at")
    row["version"] = epoch_ms(_get(record, "updated_at"))
    return row


def dead_letter_row(record: Mapping[str, Any], partition: int, offset: int) -> Row:
    """A DeadLetter record (metadata only: the payload is never stored)."""
    key = record.get("key")
    row: Row = {
        "dlq_partition": partition,
        "dlq_offset": offset,
        "source_topic": _text(record, "source_topic"),
        "source_partition": int(_get(record, "source_partition")),
        "source_offset": _int64(record, "source_offset"),
        "key": None if key is None else str(key)[:MAX_STRING],
        "stage": _text(record, "stage", 256),
        "reason": _symbol(record, "reason"),
        "error_class": _text(record, "error_class", 256),
        "message": str(_get(record, "message"))[:MAX_MESSAGE],
        "payload_sha256": _text(record, "payload_sha256", 64),
        "payload_size": _int64(record, "payload_size"),
    }
    _instant(row, record, "failed_at")
    return row


# the milliseconds column of every instant column (no string building per row)
_MS: dict[str, str] = {
    f: f + "_ms"
    for f in ("captured_at", "alerted_at", "wanted_since", "located_at", "decided_at",
              "authorised_at", "starts_at", "ends_at", "updated_at", "failed_at")
}  # fmt: skip


def _with_ms(*fields: str) -> tuple[str, ...]:
    return tuple(x for f in fields for x in (f, f + "_ms"))


_ALERT_BASE = (
    "alert_id", "event_id", "deployment_id", "site_id", "camera_id", "subject_ref",
    "category", "score", "threshold",
    *_with_ms("captured_at", "alerted_at", "wanted_since"),
)  # fmt: skip

SCANS = TableSpec(
    "scans",
    "Scan",
    ("event_id", "deployment_id", "site_id", "camera_id", *_with_ms("captured_at"),
     "face_quality", "matched"),
    scan_row,
)  # fmt: skip
ALERTS = TableSpec(
    "alerts",
    "Alert",
    (*_ALERT_BASE, "watchlist_id", "watchlist_version", "template_model"),
    alert_row,
)
OUTCOMES = TableSpec(
    "outcomes",
    "Outcome",
    (*_ALERT_BASE, "officer_ref", "verdict", "confirmed", "outcome",
     *_with_ms("located_at", "decided_at"), "time_to_locate_s", "response_s", "version"),
    outcome_row,
)  # fmt: skip
OPERATION_WINDOWS = TableSpec(
    "operation_windows",
    "OperationWindow",
    ("deployment_id", "site_id", "location", "use_case", "mode", "camera_ids",
     "watchlist_id", "watchlist_size", "match_threshold", "authorised_by",
     *_with_ms("authorised_at", "starts_at", "ends_at"), "status", "officers_present",
     *_with_ms("updated_at"), "version"),
    operation_row,
)  # fmt: skip
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "dlq_partition", "dlq_offset", "source_topic", "source_partition", "source_offset",
    "key", "stage", "reason", "error_class", "message", "payload_sha256", "payload_size",
    *_with_ms("failed_at"),
)  # fmt: skip


def columnar(columns: Sequence[str], rows: Sequence[Row]) -> list[list[Any]]:
    """Rows as one list per column, in ``columns`` order."""
    return [[row[c] for row in rows] for c in columns]
