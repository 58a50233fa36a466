"""Exceptions of the ClickHouse side (``sinks``), all under :class:`LfrError`."""

from __future__ import annotations

from streams.errors import LfrError


class SinkError(LfrError):
    """Base class of every error raised on purpose by the ``sinks`` package."""


class MigrationError(SinkError):
    """A migration file is malformed, was edited after being applied, or failed."""


class ClickHouseUnavailable(SinkError):
    """The server cannot be reached (network error, refused connection, timeout)."""


class ClickHouseRejected(SinkError):
    """The server answered but refused a statement or a block of rows."""

    reason = "rejected_by_clickhouse"

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class UnmappableRecord(SinkError):
    """A decoded record that cannot become a row (missing field, value out of range)."""

    reason = "unmappable"


class RetentionRefused(SinkError):
    """A partition was kept because its rows are not rolled up yet."""
