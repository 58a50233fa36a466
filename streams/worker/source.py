"""Where an input record came from, and its dead letter when it is rejected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.deadletter import dead_letter


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed Kafka record: coordinates, raw key and value, record timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    def __repr__(self) -> str:
        # The value may be a biometric template: never let it reach a log line.
        size = -1 if self.value is None else len(self.value)
        return f"SourceRecord({self.topic}[{self.partition}]@{self.offset}, {size} bytes)"

    @property
    def key_text(self) -> str | None:
        """The key as text (lossy), for ids such as site_id or alert_id."""
        return None if self.key is None else self.key.decode("utf-8", errors="replace")


def reject(
    record: SourceRecord, error: BaseException, stage: str, *, biometric: bool
) -> dict[str, Any]:
    """The DeadLetter record for ``record``.

    ``biometric`` inputs (detections, watchlist) keep only the payload's
    sha256 and size, and a watchlist key loses its subject id, whatever the
    topic is called.
    """
    letter = dead_letter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value,
        error=error,
        stage=stage,
        biometric=(record.topic,) if biometric else (),
    )
    if biometric:
        letter["payload"] = None
    return letter
