"""Exceptions of the ClickHouse side (``sinks``), all under :class:`LfrError`.

A server error is one of two kinds (the fail-safe rule: a failure of the
environment never turns good records into dead letters):

- :class:`ClickHouseRejected`: the rows are wrong (a value that does not parse
  or fit its column). The sink bisects the block and dead-letters the rows
  that stay rejected on their own.
- :class:`ClickHouseRefused`: the environment is wrong (credentials, rights, a
  missing database or table, a read-only or overloaded server, the network).
  No row is to blame: the sink stops, commits nothing and retries the same
  batch. :class:`ClickHouseUnavailable` (unreachable, timed out) is one of them.

:data:`CLICKHOUSE_CODES` is the table; a code it does not list is
"environment", so a doubt never turns good records into dead letters.
"""

from __future__ import annotations

import re

from common.errors import LfrError
from common.failures import RECORD, Classified, environment

# ClickHouse server error codes (ErrorCodes.cpp; clickhouse-driver's ServerException.code)
CLICKHOUSE_CODES: dict[int, Classified] = {
    # the values of a row: parse, type, range -> dead-letter the row that keeps failing
    6: RECORD,  # CANNOT_PARSE_TEXT
    19: RECORD,  # SIZE_OF_FIXED_STRING_DOESNT_MATCH
    27: RECORD,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38: RECORD,  # CANNOT_PARSE_DATE
    41: RECORD,  # CANNOT_PARSE_DATETIME
    53: RECORD,  # TYPE_MISMATCH
    69: RECORD,  # ARGUMENT_OUT_OF_BOUND
    70: RECORD,  # CANNOT_CONVERT_TYPE
    72: RECORD,  # CANNOT_PARSE_NUMBER
    117: RECORD,  # INCORRECT_DATA
    128: RECORD,  # TOO_LARGE_ARRAY_SIZE
    131: RECORD,  # TOO_LARGE_STRING_SIZE
    321: RECORD,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349: RECORD,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    # who is asking
    192: environment("authentication"),  # UNKNOWN_USER
    193: environment("authentication"),  # WRONG_PASSWORD
    194: environment("authentication"),  # REQUIRED_PASSWORD
    195: environment("authentication"),  # IP_ADDRESS_NOT_ALLOWED
    516: environment("authentication"),  # AUTHENTICATION_FAILED
    291: environment("authorization"),  # DATABASE_ACCESS_DENIED
    392: environment("authorization"),  # QUERY_IS_PROHIBITED (allow_ddl=0)
    497: environment("authorization"),  # ACCESS_DENIED
    164: environment("read_only"),  # READONLY
    242: environment("read_only"),  # TABLE_IS_READ_ONLY
    # where the rows go
    81: environment("unknown_database"),  # UNKNOWN_DATABASE
    60: environment("unknown_table"),  # UNKNOWN_TABLE
    16: environment("schema"),  # NO_SUCH_COLUMN_IN_TABLE (migrations behind)
    47: environment("schema"),  # UNKNOWN_IDENTIFIER
    # the server's state
    252: environment("too_many_parts"),  # TOO_MANY_PARTS
    241: environment("memory"),  # MEMORY_LIMIT_EXCEEDED
    173: environment("memory"),  # CANNOT_ALLOCATE_MEMORY
    243: environment("disk"),  # NOT_ENOUGH_SPACE
    202: environment("overloaded"),  # TOO_MANY_SIMULTANEOUS_QUERIES
    203: environment("overloaded"),  # NO_FREE_CONNECTION
    201: environment("overloaded"),  # QUOTA_EXPIRED
    159: environment("timeout"),  # TIMEOUT_EXCEEDED
    209: environment("timeout"),  # SOCKET_TIMEOUT
    210: environment("unreachable"),  # NETWORK_ERROR
    279: environment("unreachable"),  # ALL_CONNECTION_TRIES_FAILED
    319: environment("unreachable"),  # UNKNOWN_STATUS_OF_INSERT
}

UNKNOWN_CODE = environment("unknown")

# 252 is also "Too many partitions for single INSERT block": the block spans too many
# days. That is the rows' doing, and bisection splits it until it fits.
_PARTITIONS_PER_BLOCK = "partitions for single insert block"


def classify_code(code: int | None, message: str = "") -> Classified:
    """The class of a ClickHouse server error by its code; unknown codes -> environment."""
    if code is None:
        return UNKNOWN_CODE
    if code == 252 and _PARTITIONS_PER_BLOCK in message.lower():
        return RECORD
    return CLICKHOUSE_CODES.get(code, UNKNOWN_CODE)


_CODE = re.compile(r"Code: (\d+)")


def code_in(message: str) -> int | None:
    """The ``Code: N`` of a server message (chDB raises text, not a code)."""
    found = _CODE.search(message)
    return int(found.group(1)) if found else None


class SinkError(LfrError):
    """Base class of every error raised on purpose by the ``sinks`` package."""


class MigrationError(SinkError):
    """A migration file is malformed, was edited after being applied, or failed."""


class ClickHouseError(SinkError):
    """A statement did not run; ``code`` is the server's error code where it sent one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClickHouseRejected(ClickHouseError):
    """The server refused a block because of its rows: bisect and dead-letter."""

    reason = "rejected_by_clickhouse"


class ClickHouseRefused(ClickHouseError):
    """The environment failed (``cause``: authentication, unknown_database, ...): stop and retry."""

    def __init__(self, message: str, code: int | None = None, cause: str = "unknown") -> None:
        super().__init__(message, code)
        self.cause = cause

    def __str__(self) -> str:
        return f"ClickHouse {self.cause.replace('_', ' ')}: {super().__str__()}"


class ClickHouseUnavailable(ClickHouseRefused):
    """The server cannot be reached (network error, refused connection, timeout)."""

    def __init__(self, message: str, code: int | None = None, cause: str = "unreachable") -> None:
        super().__init__(message, code, cause)


def server_error(message: str, code: int | None) -> ClickHouseError:
    """The exception for a server error: rejected rows or a refusing environment."""
    verdict = classify_code(code, message)
    if verdict.error_class == "record":
        return ClickHouseRejected(message, code)
    if verdict.cause in ("unreachable", "timeout"):
        return ClickHouseUnavailable(message, code, verdict.cause)
    return ClickHouseRefused(message, code, verdict.cause)


class UnmappableRecord(SinkError):
    """A decoded record that cannot become a row (missing field, value out of range)."""

    reason = "unmappable"


class RetentionRefused(SinkError):
    """A partition was kept because its rows are not rolled up yet."""


class SinkBlockedTooLong(SinkError):
    """The sink could not write for longer than LFR_SINK_MAX_BLOCKED_S: exit for a restart."""
