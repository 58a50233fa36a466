"""Who caused a failure: the record (dead-letter it) or the environment (stop and retry).

The fail-safe rule of the pipeline: an error a record causes dead-letters
that record; an error the environment causes (credentials, authorisation, a
missing table, an unreachable server) stops and retries without committing.
This module classifies Kafka and network exceptions; ``sinks.errors`` adds
ClickHouse's server codes on top of it. Anything not listed is
"environment": on doubt, nothing is drained into the dead letters.

The ``cause`` is a short label from :data:`CAUSES` (a bounded metric label and
the words of the one-line CLI message).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

ErrorClass = Literal["record", "environment"]

# every cause label an environment failure can carry (metric label values)
CAUSES: tuple[str, ...] = (
    "authentication",
    "authorization",
    "tls",
    "unreachable",
    "timeout",
    "unknown_database",
    "unknown_table",
    "schema",
    "read_only",
    "too_many_parts",
    "memory",
    "disk",
    "overloaded",
    "kafka_unassigned",
    "kafka_stalled",
    "kafka",
    "unknown",
)


@dataclass(frozen=True)
class Classified:
    """The class of a failure and, for the environment, its cause."""

    error_class: ErrorClass
    cause: str


RECORD = Classified("record", "record")


def environment(cause: str) -> Classified:
    """An environment failure of ``cause`` (one of :data:`CAUSES`)."""
    return Classified("environment", cause)


def _kafka_table() -> list[tuple[type[BaseException], Classified]]:
    """Kafka exception classes in the order they are tried (subclasses first)."""
    from kafka import errors as k

    return [
        # the record itself is wrong for the broker (too large, invalid)
        (k.MessageSizeTooLargeError, RECORD),
        (k.RecordListTooLargeError, RECORD),
        (k.InvalidRecordError, RECORD),
        (k.CorruptRecordError, RECORD),
        # credentials and permissions
        (k.SaslAuthenticationFailedError, environment("authentication")),
        (k.UnsupportedSaslMechanismError, environment("authentication")),
        (k.IllegalSaslStateError, environment("authentication")),
        (k.AuthorizationError, environment("authorization")),
        (k.UnknownTopicOrPartitionError, environment("kafka")),
        # the broker is away or slow
        (k.KafkaConnectionError, environment("unreachable")),
        (k.NodeNotReadyError, environment("unreachable")),
        (k.KafkaTimeoutError, environment("timeout")),
        (k.RequestTimedOutError, environment("timeout")),
        (k.KafkaError, environment("kafka")),
    ]


def classify_exception(exc: BaseException) -> Classified:
    """The class and cause of a Kafka, TLS or socket exception; unknown -> environment."""
    if isinstance(exc, ssl.SSLError):
        return environment("tls")
    for kind, verdict in _kafka_table():
        if isinstance(exc, kind):
            if verdict.cause == "unreachable" and _mentions_tls(exc):
                return environment("tls")
            return verdict
    if isinstance(exc, TimeoutError):
        return environment("timeout")
    if isinstance(exc, ConnectionError | EOFError | OSError):
        return environment("unreachable")
    return environment("unknown")


def _mentions_tls(exc: BaseException) -> bool:
    text = str(exc)
    return "SSL" in text or "certificate" in text or "Handshake failed" in text


class ClientFailureRecorder(logging.Handler):
    """Keeps the last exception kafka-python logged while connecting.

    kafka-python retries a failing bootstrap until its timeout and then raises
    a bare ``KafkaTimeoutError("Unable to bootstrap ...")``; the reason
    (connection refused, a TLS failure, SASL authentication failed) is only
    passed to its log calls. This handler picks that exception out of the
    log record's arguments so the command can name the cause.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lock_seen = threading.Lock()
        self._seen: BaseException | None = None
        self._rank = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Remember an exception passed as a log argument (the rest is ignored)."""
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                # a refused login explains more than "connection lost", which explains
                # more than the final "Unable to bootstrap" timeout
                rank = _TELLING.get(classify_exception(arg).cause, 1)
                with self._lock_seen:
                    if rank >= self._rank:
                        self._seen, self._rank = arg, rank
                return

    def cause(self) -> BaseException | None:
        """The most telling exception seen (None before any)."""
        return self._seen


_TELLING = {"authentication": 3, "authorization": 3, "tls": 3, "unreachable": 2}


@contextmanager
def recording_client_failures() -> Iterator[ClientFailureRecorder]:
    """Record exceptions kafka-python logs (logger ``kafka``) for the duration."""
    recorder = ClientFailureRecorder()
    logger = logging.getLogger("kafka")
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)


def kafka_failure_line(
    exc: BaseException,
    bootstrap: str,
    recorded: BaseException | None = None,
    *,
    sasl: bool = False,
) -> str | None:
    """One line naming the cause of a Kafka failure, or None when ``exc`` is not one.

    ``recorded`` is what :class:`ClientFailureRecorder` saw; it explains a bare
    bootstrap timeout. ``sasl``: the client logs in; a broker that accepted the
    connection and then dropped it most likely refused the login (seen with a
    wrong SCRAM password: the broker's close can overtake its error response).
    """
    from kafka.errors import KafkaError

    if not isinstance(exc, KafkaError | ssl.SSLError):
        return None
    reason = exc
    if recorded is not None and classify_exception(exc).cause in ("timeout", "unreachable"):
        reason = recorded
    cause = classify_exception(reason).cause
    detail = str(reason).strip().rstrip(":")
    if not detail.startswith(type(reason).__name__):
        detail = f"{type(reason).__name__}: {detail}".rstrip(": ")
    words = {
        "authentication": "authentication failed (check LFR_KAFKA_SASL_*)",
        "authorization": "not authorised (check the ACLs of the user)",
        "tls": "TLS failed (check LFR_KAFKA_SSL_* and the broker's certificate)",
        "unreachable": "no broker answers (is it running, is the address right?)",
        "timeout": "timed out",
    }.get(cause, "failed")
    if sasl and cause == "unreachable" and "disconnected" in str(reason):
        words = (
            "the broker closed the connection during the login "
            "(authentication failed? check LFR_KAFKA_SASL_*)"
        )
    return f"Kafka at {bootstrap}: {words}: {detail}"[:400].replace("\n", " ")
