"""The adjudication join as pure functions over the two tables' entries.

Alerts are kept by alert_id (an agent over lfr.alerts fills the table); an
adjudication that finds its alert becomes an Outcome. One outcome per alert:
a repeated adjudication with the same or a later ``decided_at`` is emitted
again under the same id (the sink keeps the latest), an older one is
dropped. An adjudication whose alert has not arrived is held, and after the
hold time dead-lettered as ``orphan_adjudication``.

The stages over the two tables (``alerts`` and ``pending_adjudications``,
keyed by the alert_id bytes): :func:`on_alerts`, :func:`on_adjudications`
and the timer's :func:`expire_orphans`, each returning its outputs, dead
letters and table changes (:mod:`streams.worker.stage`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from schemas.codec import decode as shared_decode
from streams.topics import BY_SHORT
from streams.worker.errors import OrphanAdjudicationError
from streams.worker.expiry import ALERTS_TABLE, stamp_outcome, stamp_stored
from streams.worker.instants import to_millis
from streams.worker.records import alert_to_state, build_outcome
from streams.worker.source import Admitted, Decode, Input, KeyRule, SourceRecord, reject
from streams.worker.stage import OUTCOMES, Output, StageResult, StateChanges, TableChange, run_stage

STAGE = "worker.adjudications"
LAST_DECIDED = "last_decided_at"
PENDING_TABLE = "pending_adjudications"

ALERTS = Input(BY_SHORT["alerts"], "worker.alerts", key=KeyRule.REQUIRED, validate=False)
"""lfr.alerts: the worker's own output, read back to fill the alerts table."""
ADJUDICATIONS = Input(BY_SHORT["adjudications"], STAGE)


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


def on_alerts(
    records: Iterable[SourceRecord],
    tables: Mapping[str, Mapping[bytes, Any]],
    now_ms: int,
    decode: Decode = shared_decode,
) -> StageResult:
    """Store each alert (the first copy wins) and join the adjudication held for it, if any."""
    return run_stage(records, ALERTS, tables, partial(_alert, now_ms, decode), decode)


def on_adjudications(
    records: Iterable[SourceRecord],
    tables: Mapping[str, Mapping[bytes, Any]],
    now_ms: int,
    decode: Decode = shared_decode,
) -> StageResult:
    """Join each adjudication with its alert, or hold it until the alert arrives."""
    return run_stage(records, ADJUDICATIONS, tables, partial(_adjudication, now_ms), decode)


def _alert(
    now_ms: int, decode: Decode, item: Admitted, state: StateChanges, result: StageResult
) -> None:
    assert item.value is not None and item.record.key is not None  # noqa: S101  (ALERTS)
    key = item.record.key
    alert_state = state.get(ALERTS_TABLE, key)
    if alert_state is None:
        # a redelivered alert has a later alerted_at: keep the first
        alert_state = stamp_stored(alert_to_state(item.value), now_ms)
        state.put(ALERTS_TABLE, key, alert_state)
    held = state.get(PENDING_TABLE, key)
    if held is not None:
        adjudication = decode("Adjudication", base64.b64decode(held["value"]))
        _emit_outcome(key, adjudication, alert_state, state, result, now_ms)
        state.delete(PENDING_TABLE, key)


def _adjudication(now_ms: int, item: Admitted, state: StateChanges, result: StageResult) -> None:
    assert item.value is not None and item.record.key is not None  # noqa: S101  (ADJUDICATIONS)
    key = item.record.key
    if _emit_outcome(key, item.value, state.get(ALERTS_TABLE, key), state, result, now_ms):
        return
    decided = to_millis(item.value["decided_at"])
    if should_replace_pending(state.get(PENDING_TABLE, key), decided):
        state.put(PENDING_TABLE, key, pending_entry(item.record, decided, now_ms))


def _emit_outcome(
    key: bytes,
    adjudication: Mapping[str, Any],
    alert_state: Mapping[str, Any] | None,
    state: StateChanges,
    result: StageResult,
    now_ms: int,
) -> bool:
    """Add the join's outcome to ``result``; False when the adjudication must be held."""
    joined = join(adjudication, alert_state)
    if joined.outcome is None:
        return not joined.hold
    result.outputs.append(Output(OUTCOMES, joined.outcome))
    state.put(ALERTS_TABLE, key, stamp_outcome(dict(joined.alert_state or {}), now_ms))
    return True


def expire_orphans(
    pending: Iterable[tuple[bytes, Mapping[str, Any]]], now_ms: int, hold_ms: int
) -> StageResult:
    """Dead-letter and delete the held adjudications that waited ``hold_ms`` or longer."""
    result = StageResult()
    for key, entry in pending:
        if is_expired(entry, now_ms, hold_ms):
            result.dead_letters.append(orphan_dead_letter(entry, hold_ms))
            result.changes.append(TableChange(PENDING_TABLE, key, deleted=True))
    return result
