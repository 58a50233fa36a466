"""When the worker's tables forget an alert: pure functions over table entries.

The alerts table holds what the adjudication join needs about each alert
(subject_ref, site, camera, times): personal data, so it must go. An entry
is deleted at the earlier of

- ``ttl`` after the worker stored it (LFR_ALERT_TABLE_TTL_S, at most the
  published 31 days; an alert is stored as it is raised, so in live
  operation this is 31 days after the alert), and
- ``keep_after_outcome`` after its outcome was emitted
  (LFR_ALERT_TABLE_KEEP_AFTER_OUTCOME_S), long enough for a corrected or
  redelivered adjudication to join again.

Held adjudications already leave after the hold time (orphan dead letter);
that hold is capped at the same ``ttl``. Both clocks are the wall clock: a
table entry's life is about storage, not event time, so a replay of old
events is not deleted on arrival. A deletion from a Faust table writes a
tombstone to its changelog, which compaction then applies
(:mod:`streams.topics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from streams.worker.stage import StageResult, TableChange

ALERTS_TABLE = "alerts"
"""The table of alerts awaiting their adjudication, keyed by the alert_id bytes."""
STORED_AT = "stored_at_ms"
OUTCOME_AT = "outcome_at_ms"

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class AlertExpiry:
    """The alerts table's deletion rule."""

    ttl_ms: int
    keep_after_outcome_ms: int

    def expires_at(self, state: Mapping[str, Any]) -> int:
        """Wall-clock ms at which the entry must be gone."""
        stored = state.get(STORED_AT)
        # an entry from before this rule has no stamp: count from the alert itself
        start = int(stored) if stored is not None else int(state["alerted_at"])
        due = start + self.ttl_ms
        outcome = state.get(OUTCOME_AT)
        if outcome is not None:
            due = min(due, int(outcome) + self.keep_after_outcome_ms)
        return due

    def due(self, items: Iterable[tuple[K, Mapping[str, Any]]], now_ms: int) -> list[K]:
        """Keys of the entries to delete at ``now_ms``."""
        return [key for key, state in items if self.expires_at(state) <= now_ms]


def expire_alerts(
    alerts: Iterable[tuple[bytes, Mapping[str, Any]]], rule: AlertExpiry, now_ms: int
) -> StageResult:
    """The timer's stage: delete the ``alerts`` table entries due at ``now_ms``."""
    due = rule.due(alerts, now_ms)
    return StageResult(changes=[TableChange(ALERTS_TABLE, key, deleted=True) for key in due])


def stamp_stored(state: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The state with the time the worker stored it."""
    state[STORED_AT] = now_ms
    return state


def stamp_outcome(state: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The state with the time its (latest) outcome was emitted."""
    state[OUTCOME_AT] = now_ms
    return state


def sweep_interval_s(*periods_s: float) -> float:
    """How often to look for due entries: a tenth of the shortest period, 0.5 s to 60 s."""
    return max(0.5, min(60.0, min(periods_s) / 10))
