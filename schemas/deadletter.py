"""Dead letters: a rejected record's coordinates and reason, never its biometrics.

A stage that cannot process a record calls :func:`dead_letter` and produces
the result to the dead-letter topic (key: the source topic). The reason comes
from the exception: every project error class carries a ``reason`` attribute
naming a ``DeadLetterReason`` symbol. For biometric topics the payload is
dropped; only its SHA-256 and size are kept, enough to match it against the
source without keeping it. Watchlist keys (``<watchlist_id>:<subject_id>``)
lose their subject part for the same reason.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from schemas.codec import shared_codec
from schemas.errors import SchemaFileError

MAX_MESSAGE_CHARS = 500

_BYTES_LITERAL = re.compile(r"""b(['"]).*?(?<!\\)\1|bytearray\(.*?\)""", re.DOTALL)
_ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")
_LONG_HEX = re.compile(r"[0-9a-fA-F]{64,}")


@functools.cache
def reasons() -> frozenset[str]:
    """The symbols of the DeadLetterReason enum, read from the current schema."""
    schema = shared_codec().schemas.latest("DeadLetter").raw
    for field in schema["fields"]:
        if field["name"] == "reason":
            return frozenset(field["type"]["symbols"])
    raise SchemaFileError("DeadLetter schema has no reason field")


def reason_for(error: BaseException) -> str:
    """The DeadLetterReason symbol of an exception (``other`` when it names none)."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) and reason in reasons() else "other"


def scrub_message(message: str) -> str:
    """Remove anything that looks like raw bytes from an error message, and cap its length."""
    message = _BYTES_LITERAL.sub("<bytes>", message)
    message = _ESCAPED_BYTES.sub("<bytes>", message)
    message = _LONG_HEX.sub("<hex>", message)
    return message[:MAX_MESSAGE_CHARS]


def _key_text(key: bytes, *, redact_subject: bool) -> str:
    text = bytes(key).decode("utf-8", errors="replace")
    if redact_subject and ":" in text:
        # watchlist keys are "<watchlist_id>:<subject_id>": the subject id must not leave
        return text.partition(":")[0] + ":<redacted>"
    return text


def _now_millis() -> datetime:
    # the wire keeps milliseconds; truncating here makes a dead letter round-trip exactly
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    error: BaseException,
    stage: str,
    biometric: Collection[str],
    failed_at: datetime | None = None,
) -> dict[str, Any]:
    """A DeadLetter record for a record that failed at ``stage``.

    ``biometric`` lists the topics whose payload must not be kept and whose
    keys lose their subject part: the topic catalogue's
    ``streams.topics.biometric_topic_names(settings)``, or the source topic
    itself when the caller knows the input is biometric. There is no default:
    a renamed topic must never fall back to being treated as non-biometric.
    """
    raw = bytes(payload) if payload is not None else b""
    is_biometric = topic in biometric
    return {
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": None if key is None else _key_text(key, redact_subject=is_biometric),
        "stage": stage,
        "reason": reason_for(error),
        "error_class": type(error).__name__,
        "message": scrub_message(str(error)),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_size": len(raw),
        "payload": raw if payload is not None and not is_biometric else None,
        "failed_at": failed_at or _now_millis(),
    }
