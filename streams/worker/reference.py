"""What detections are gated and matched against: windows and watchlists (pure).

The broadcast service feeds it lfr.operations and lfr.watchlist records as
it reads them; the detections agent reads windows and snapshots from it and
reports the stream time it has processed. The only clock is the ``now_s``
the caller passes to :meth:`ReferenceData.sweep`, and it only decides when
memory is freed (see :mod:`streams.worker.deletion`), never a match.

:func:`read_entries` and :func:`read_windows` are the broadcast stages: a
batch of lfr.watchlist or lfr.operations records through the input adapter
into a :class:`ReferenceData`. That state is the worker's memory, not a
table, so a stage changes it in place and returns only what is left to do
(dead letters, retirements to log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from schemas.codec import decode as shared_decode
from schemas.errors import SchemaError
from streams.topics import BY_SHORT
from streams.worker.deletion import DeletionPolicy, DeletionRule, StreamClock
from streams.worker.errors import EntryOutsideBuildPeriodError, WorkerError
from streams.worker.instants import to_millis
from streams.worker.snapshot import WatchlistSnapshot
from streams.worker.source import Admitted, Decode, Input, KeyRule, SourceRecord, admit_batch
from streams.worker.stage import StageResult, run_stage
from streams.worker.watchlist_store import WatchlistStore
from streams.worker.window_view import Retirement, WindowView
from streams.worker.windows import OPERATIONS, OperationWindow, window_from_record

BUILD_AHEAD_MS = 24 * 3600 * 1000
"""A watchlist is built at most this long before its deployment starts."""

Owns = Callable[[str], bool]
"""``site_id -> True`` when this worker owns the site's lfr.detections partition."""

WATCHLIST = Input(BY_SHORT["watchlist"], "worker.watchlist", key=KeyRule.REQUIRED, tombstones=True)
"""lfr.watchlist: keyed ``<watchlist_id>:<subject_id>``; a tombstone deletes the key."""


class ReferenceData:
    """Windows, watchlists and deletion bookkeeping of one worker."""

    def __init__(self, policy: DeletionPolicy) -> None:
        self.policy = policy
        self.windows = WindowView()
        self.store = WatchlistStore()
        self.clock = StreamClock()
        # when a deployment naming each watchlist was first read: before it,
        # nothing of the list may go, and the grace counts from it
        self._known_since: dict[str, float] = {}

    # --- input ---------------------------------------------------------------

    def apply_window(self, window: OperationWindow, learnt_s: float) -> Retirement | None:
        """Apply a valid window read at ``learnt_s``; its retirement, if it causes one."""
        self.store.note_update(window.watchlist_id, window.updated_at_ms)
        self._known_since.setdefault(window.watchlist_id, learnt_s)
        retirement = self.windows.apply(window)
        if retirement is not None:
            self.store.retire(retirement, learnt_s)
        return retirement

    def apply_entry(self, key: str, record: Mapping[str, Any] | None, learnt_s: float) -> None:
        """Apply an lfr.watchlist record (``None``: tombstone) read at ``learnt_s``.

        Raises :class:`EntryOutsideBuildPeriodError` for a template whose
        ``updated_at`` lies outside [starts_at - 24 h, ends_at) of every known
        deployment using its list. While no deployment using the list is
        known the entry is held (the window may simply come later), never
        refused; REMOVEs and tombstones are always applied.
        """
        if record is not None and record.get("template") is not None and record["op"] != "REMOVE":
            self._check_build_period(key, to_millis(record["updated_at"]))
        self.store.apply_entry(key, record, learnt_s)

    def _check_build_period(self, key: str, updated_at_ms: int) -> None:
        watchlist_id = key.partition(":")[0]
        users = self.windows.users_of(watchlist_id)
        if not users:
            return
        for window in users:
            if window.starts_at_ms - BUILD_AHEAD_MS <= updated_at_ms and (
                window.ends_at_ms is None or updated_at_ms < window.ends_at_ms
            ):
                return
        # refused, but on the topic: the list's purge must tombstone it too
        self.store.note_on_topic(key, updated_at_ms)
        raise EntryOutsideBuildPeriodError(
            f"template of watchlist {watchlist_id!r} written outside the build period "
            "(24 h before the deployment starts, until it ends) of every deployment using it"
        )

    def observe(self, high_water: Mapping[str, int], epoch: int | None = None) -> None:
        """Newest ``captured_at`` per site of an acknowledged batch started in ``epoch``."""
        self.clock.advance(high_water, epoch)

    def sweep(self, now_s: float, owns: Owns | None) -> list[str]:
        """Delete what is due; the keys deleted by retirements.

        ``owns`` None: the worker's partitions are unknown, only the grace applies.
        """

        def due(watchlist_id: str, at_ms: int | None, learnt_s: float) -> DeletionRule | None:
            known_s = self._known_since.get(watchlist_id)
            if known_s is None:
                return None  # no deployment using it known yet: it may still need every entry
            sites = self.windows.sites_of(watchlist_id)
            times = None
            if owns is not None and sites:
                times = [self.clock.at(s) if owns(s) else None for s in sorted(sites)]
            learnt = max(learnt_s, known_s)
            return self.policy.due(at_ms=at_ms, learnt_s=learnt, now_s=now_s, site_times=times)

        return self.store.sweep(due)

    # --- queries ---------------------------------------------------------------

    def windows_of(self, site_id: str) -> list[OperationWindow]:
        """Every window of a site, for gating."""
        return self.windows.windows_of(site_id)

    def snapshot(self, watchlist_id: str) -> WatchlistSnapshot | None:
        """The watchlist's snapshot (``None`` when none of it is held)."""
        return self.store.snapshot(watchlist_id)

    def is_deleted(self, watchlist_id: str) -> bool:
        """True when the watchlist was retired and has been physically deleted."""
        return self.store.is_deleted(watchlist_id)

    def deleted_by(self, watchlist_id: str) -> DeletionRule | None:
        """The rule that deleted a retired watchlist (``None``: not deleted)."""
        return self.store.deleted_by(watchlist_id)


def read_entries(
    records: Iterable[SourceRecord],
    reference: ReferenceData,
    learnt_s: float,
    decode: Decode = shared_decode,
) -> StageResult:
    """Apply lfr.watchlist records in order; the dead letters of those refused."""
    return run_stage(records, WATCHLIST, {}, partial(_entry, reference, learnt_s), decode)


def _entry(
    reference: ReferenceData, learnt_s: float, item: Admitted, _state: object, result: StageResult
) -> None:
    try:
        reference.apply_entry(item.record.key_text or "", item.value, learnt_s)
    except (SchemaError, WorkerError, ValueError) as exc:
        result.dead_letters.append(WATCHLIST.reject(item.record, exc))


def read_windows(
    records: Iterable[SourceRecord],
    reference: ReferenceData,
    learnt_s: float,
    decode: Decode = shared_decode,
) -> list[tuple[OperationWindow, Retirement]]:
    """Apply the valid lfr.operations records in order; the retirements they caused.

    An invalid window is skipped: the operations stage dead-letters it, once,
    in the worker owning its partition, and here it gates nothing, exactly as
    there.
    """
    admitted, _skipped = admit_batch(records, OPERATIONS, decode)
    retired = []
    for item in admitted:
        if item.value is None:
            continue
        try:
            window = window_from_record(item.value)
        except WorkerError:
            continue
        retirement = reference.apply_window(window, learnt_s)
        if retirement is not None:
            retired.append((window, retirement))
    return retired
