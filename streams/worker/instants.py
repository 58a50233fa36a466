"""Event-time instants as integer epoch milliseconds.

The worker compares instants as ``int`` milliseconds: exact, hashable, cheap
to store in a Faust table as JSON, and the unit of Avro ``timestamp-millis``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def to_millis(value: datetime | int) -> int:
    """Epoch milliseconds of an aware datetime (or an int already in milliseconds)."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime: event time must be timezone-aware UTC")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def optional_millis(value: datetime | int | None) -> int | None:
    """:func:`to_millis`, passing ``None`` through."""
    return None if value is None else to_millis(value)


def from_millis(millis: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
