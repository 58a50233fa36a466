"""Operation windows: when and where a deployment may match faces.

A site's state is a mapping ``deployment_id -> OperationWindow`` (every
window the site ever had, as the Faust table keeps them); the latest version
of a deployment, by ``updated_at``, wins. Everything here is pure:
:func:`apply_operations` is the operations stage (lfr.operations records ->
the ``windows`` table's changes and dead letters).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from schemas.codec import decode as shared_decode
from streams.topics import BY_SHORT
from streams.worker.errors import InvalidWindowError, WorkerError
from streams.worker.instants import optional_millis, to_millis
from streams.worker.source import Admitted, Decode, Input, SourceRecord
from streams.worker.stage import StageResult, StateChanges, run_stage

log = logging.getLogger(__name__)

OPERATIONS = Input(BY_SHORT["operations"], "worker.operations", tombstones=True)
"""lfr.operations as the operations stage and the broadcast view read it.

Both admit a record through this and then :func:`window_from_record`: the
stage dead-letters what they reject (once, in the worker owning the
partition), the view skips it, so an invalid or unauthorised window gates
nothing anywhere.
"""
WINDOWS_TABLE = "windows"
"""The table of every window each site had, keyed by the site_id bytes."""

LIVE_STATUSES = frozenset({"PLANNED", "ACTIVE"})
"""Statuses of a deployment that has not finished (its watchlist must stay)."""

CLOSED_STATUSES = frozenset({"ENDED", "CANCELLED"})
"""Statuses after which a deployment's watchlist is dropped."""


@dataclass(frozen=True, slots=True)
class OperationWindow:
    """One version of a deployment's window, instants in epoch milliseconds."""

    deployment_id: str
    site_id: str
    location: str
    use_case: str
    mode: str
    camera_ids: frozenset[str]
    watchlist_id: str
    watchlist_size: int
    match_threshold: float
    authorised_by: str | None
    authorised_at_ms: int | None
    starts_at_ms: int
    ends_at_ms: int | None
    status: str
    officers_present: int
    updated_at_ms: int
    was_active: bool = False

    @property
    def covers_anything(self) -> bool:
        """ACTIVE, or ENDED after having been active; PLANNED/CANCELLED cover nothing."""
        if self.status == "ACTIVE":
            return True
        return self.status == "ENDED" and (self.was_active or self.authorised_by is not None)

    def covers(self, captured_at_ms: int) -> bool:
        """Whether event time ``captured_at_ms`` lies in [starts_at, ends_at)."""
        if not self.covers_anything or captured_at_ms < self.starts_at_ms:
            return False
        return self.ends_at_ms is None or captured_at_ms < self.ends_at_ms

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable dict for the Faust table."""
        state = asdict(self)
        state["camera_ids"] = sorted(self.camera_ids)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OperationWindow:
        """Inverse of :meth:`to_state`."""
        values = dict(state)
        values["camera_ids"] = frozenset(values["camera_ids"])
        return cls(**values)


def window_from_record(record: Mapping[str, Any]) -> OperationWindow:
    """Build and check a window from a decoded ``OperationWindow`` record.

    Raises :class:`InvalidWindowError` for a window that must not be used.
    """
    window = OperationWindow(
        deployment_id=record["deployment_id"],
        site_id=record["site_id"],
        location=record["location"],
        use_case=record["use_case"],
        mode=record["mode"],
        camera_ids=frozenset(record["camera_ids"]),
        watchlist_id=record["watchlist_id"],
        watchlist_size=int(record["watchlist_size"]),
        match_threshold=float(record["match_threshold"]),
        authorised_by=record.get("authorised_by"),
        authorised_at_ms=optional_millis(record.get("authorised_at")),
        starts_at_ms=to_millis(record["starts_at"]),
        ends_at_ms=optional_millis(record.get("ends_at")),
        status=record["status"],
        officers_present=int(record["officers_present"]),
        updated_at_ms=to_millis(record["updated_at"]),
        was_active=record["status"] == "ACTIVE",
    )
    check_window(window)
    return window


def check_window(window: OperationWindow) -> None:
    """Raise :class:`InvalidWindowError` unless the window is safe to gate with."""
    where = f"deployment {window.deployment_id!r} at site {window.site_id!r}"
    if window.status == "ACTIVE" and not (window.authorised_by and window.authorised_at_ms):
        raise InvalidWindowError(f"{where} is ACTIVE without an authoriser")
    if not (math.isfinite(window.match_threshold) and 0.0 < window.match_threshold <= 1.0):
        raise InvalidWindowError(f"{where} has a match threshold outside (0, 1]")
    if window.ends_at_ms is not None and window.ends_at_ms <= window.starts_at_ms:
        raise InvalidWindowError(f"{where} ends before it starts")
    if window.status == "ENDED" and window.ends_at_ms is None:
        raise InvalidWindowError(f"{where} is ENDED without ends_at")
    if window.status == "ACTIVE" and not window.camera_ids:
        raise InvalidWindowError(f"{where} is ACTIVE with no cameras")
    if not window.watchlist_id:
        raise InvalidWindowError(f"{where} names no watchlist")


def apply_window(
    site: Mapping[str, OperationWindow], window: OperationWindow
) -> dict[str, OperationWindow]:
    """The site's windows after ``window``; an older version than the one held is ignored.

    ``was_active`` carries over, so a window that ends still covers the time it
    was active even when the ENDED version itself carries no authorisation.
    """
    current = site.get(window.deployment_id)
    updated = dict(site)
    if current is not None:
        if window.updated_at_ms < current.updated_at_ms:
            return updated
        window = replace(window, was_active=window.was_active or current.was_active)
    updated[window.deployment_id] = window
    return updated


def site_to_state(site: Mapping[str, OperationWindow]) -> dict[str, Any]:
    """A site's windows as a JSON-serialisable dict."""
    return {deployment: w.to_state() for deployment, w in site.items()}


def site_from_state(state: Mapping[str, Any] | None) -> dict[str, OperationWindow]:
    """Inverse of :func:`site_to_state`; ``None`` (no entry) is an empty site."""
    if not state:
        return {}
    return {deployment: OperationWindow.from_state(w) for deployment, w in state.items()}


def count_active(sites: Mapping[str, Mapping[str, OperationWindow]]) -> int:
    """Number of windows currently ACTIVE (for the ``lfr_operation_windows_active`` gauge)."""
    return sum(1 for site in sites.values() for w in site.values() if w.status == "ACTIVE")


def apply_operations(
    records: Iterable[SourceRecord], windows: Mapping[bytes, Any], decode: Decode = shared_decode
) -> StageResult:
    """The operations stage: each valid window applied to its site's entry of ``windows``."""
    return run_stage(records, OPERATIONS, {WINDOWS_TABLE: windows}, _operation, decode)


def _operation(item: Admitted, state: StateChanges, result: StageResult) -> None:
    if item.value is None:
        # a compaction tombstone for a site: the table keeps its windows for audit
        log.info("operations tombstone for %s ignored", item.record.key_text)
        return
    try:
        window = window_from_record(item.value)
    except WorkerError as exc:
        result.dead_letters.append(OPERATIONS.reject(item.record, exc))
        return
    key = window.site_id.encode()
    site = apply_window(site_from_state(state.get(WINDOWS_TABLE, key)), window)
    state.put(WINDOWS_TABLE, key, site_to_state(site))
    log.info("window %s at %s is %s", window.deployment_id, window.site_id, window.status)
