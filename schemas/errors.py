"""Exceptions of the data contracts.

Every class carries ``reason``: the ``DeadLetterReason`` symbol a dead letter
gets when this error rejects a record, so :func:`schemas.deadletter.dead_letter`
needs no lookup table. Messages never contain payload or template bytes.
"""

from __future__ import annotations

from common.errors import LfrError


class SchemaError(LfrError):
    """Base class of every error raised by the ``schemas`` package."""

    reason: str = "other"


class UnknownSchemaError(SchemaError):
    """A record name that is not one of the project's schemas."""


class SchemaFileError(SchemaError):
    """A schema file or the schema history is missing, unreadable or malformed."""


class EncodeError(SchemaError):
    """A record does not match its Avro schema and cannot be encoded."""

    reason = "invalid"


class DecodeError(SchemaError):
    """Bytes that cannot be decoded as the requested record."""

    reason = "undecodable"


class OversizeError(DecodeError):
    """A payload larger than the configured limit; rejected before any parsing."""

    reason = "oversize"


class TruncatedError(DecodeError):
    """A payload too short to hold the framing header."""


class BadMagicError(DecodeError):
    """A payload that does not start with the expected framing marker."""


class UnknownFingerprintError(DecodeError):
    """A writer schema fingerprint (or registry id) that no known version has."""

    reason = "unknown_fingerprint"


class WrongRecordError(UnknownFingerprintError):
    """A fingerprint of a known schema, but of another record than the one asked for."""


class UndecodableError(DecodeError):
    """A body that does not parse under its writer schema (corrupt or trailing bytes)."""


class ValidationError(SchemaError):
    """A record that is well-typed Avro but semantically invalid."""

    reason = "invalid"


class MissingValueError(ValidationError):
    """A required id or string is empty."""


class OutOfRangeError(ValidationError):
    """A number outside its allowed range, or not finite."""


class InstantError(ValidationError):
    """A timestamp that is naive, absurdly far in the future, or out of order."""


class TemplateError(ValidationError):
    """A biometric template of the wrong length or dimension, non-finite, or not unit norm."""


class InconsistentRecordError(ValidationError):
    """Fields that contradict each other (e.g. an outcome on an unconfirmed alert)."""


class CompatibilityError(SchemaError):
    """A schema change that is not FULL-compatible with every earlier version."""
