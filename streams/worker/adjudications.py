"""The adjudication join as pure functions over the two tables' entries.

Alerts are kept by alert_id (an agent over lfr.alerts fills the table); an
adjudication that finds its alert becomes an Outcome. One outcome per alert:
a repeated adjudication with the same or a later ``decided_at`` is emitted
again under the same id (the sink keeps the latest), an older one is
dropped. An adjudication whose alert has not arrived is held, and after the
hold time dead-lettered as ``orphan_adjudication``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.worker.errors import OrphanAdjudicationError
from streams.worker.instants import to_millis
from streams.worker.records import build_outcome
from streams.worker.source import SourceRecord, reject

STAGE = "worker.adjudications"
LAST_DECIDED = "last_decided_at"


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What to do with one adjudication."""

    outcome: dict[str, Any] | None
    alert_state: dict[str, Any] | None  # the alert entry to store back (None: unchanged)
    hold: bool


def join(adjudication: Mapping[str, Any], alert_state: Mapping[str, Any] | None) -> JoinResult:
    """Join an adjudication with the stored alert (``None`` when it has not arrived)."""
    if alert_state is None:
        return JoinResult(None, None, hold=True)
    decided_at = to_millis(adjudication["decided_at"])
    last = alert_state.get(LAST_DECIDED)
    if last is not None and decided_at < last:
        return JoinResult(None, None, hold=False)
    updated = dict(alert_state)
    updated[LAST_DECIDED] = decided_at
    return JoinResult(build_outcome(alert_state, adjudication), updated, hold=False)


def pending_entry(record: SourceRecord, decided_at_ms: int, held_since_ms: int) -> dict[str, Any]:
    """A held adjudication as a JSON-serialisable table value (payload kept: not biometric)."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": None if record.key is None else base64.b64encode(record.key).decode(),
        "value": None if record.value is None else base64.b64encode(record.value).decode(),
        "timestamp_ms": record.timestamp_ms,
        "decided_at_ms": decided_at_ms,
        "held_since_ms": held_since_ms,
    }


def pending_record(entry: Mapping[str, Any]) -> SourceRecord:
    """The source record of a held adjudication."""
    key, value = entry.get("key"), entry.get("value")
    return SourceRecord(
        topic=entry["topic"],
        partition=int(entry["partition"]),
        offset=int(entry["offset"]),
        key=None if key is None else base64.b64decode(key),
        value=None if value is None else base64.b64decode(value),
        timestamp_ms=int(entry["timestamp_ms"]),
    )


def should_replace_pending(held: Mapping[str, Any] | None, decided_at_ms: int) -> bool:
    """Whether a new adjudication replaces the one already held (latest decided_at wins)."""
    return held is None or decided_at_ms >= int(held["decided_at_ms"])


def is_expired(entry: Mapping[str, Any], now_ms: int, hold_ms: int) -> bool:
    """Whether a held adjudication has waited longer than ``hold_ms`` (wall clock)."""
    return now_ms - int(entry["held_since_ms"]) >= hold_ms


def orphan_dead_letter(entry: Mapping[str, Any], hold_ms: int) -> dict[str, Any]:
    """The dead letter of an adjudication whose alert never arrived."""
    error = OrphanAdjudicationError(f"no alert arrived within {hold_ms / 1000:.0f} s")
    return reject(pending_record(entry), error, STAGE, biometric=False)
