"""Watchlists held in memory: the state behind the broadcast watchlist service.

Pure (no Kafka, no clock): the service feeds it every record of lfr.watchlist
in topic order, tells it when a watchlist is retired, and asks it to delete
what the deletion policy says is due; the detections agent asks it for an
immutable :class:`WatchlistSnapshot` per batch.

Validity is event time, so matching does not depend on how lfr.watchlist,
lfr.operations and lfr.detections interleave (a replay, a catch-up):

- a REMOVE with ``updated_at`` r keeps the entry matchable for detections
  captured before r; a tombstone without a prior REMOVE counts as a removal
  at the newest ``updated_at`` seen for that watchlist (its entries and the
  windows naming it);
- a retired watchlist (every deployment naming it ENDED or CANCELLED) keeps
  its entries until deleted: gating already limits its detections to the
  windows' [starts_at, ends_at).

Each watchlist keeps its templates in ONE float32 matrix (:class:`_Rows`):
an entry is a row of it, a snapshot's matrix is that matrix itself (sorted
by subject id when the snapshot is built), so a template is held once. A
deleted or replaced row is zeroed at once.

Physical deletion (templates zeroed, dropped) happens in :meth:`sweep`, when
the caller's policy says so. Once a retirement is carried out, entries
written before it (``updated_at`` not after the closing window's) are never
held again; a rebuild for a new deployment carries a newer ``updated_at``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.templates import template_from_bytes
from streams.worker.deletion import DeletionRule
from streams.worker.errors import DimensionMismatchError
from streams.worker.instants import to_millis
from streams.worker.snapshot import WatchlistSnapshot, build_snapshot, normalise
from streams.worker.window_view import Retirement

__all__ = ["DueCheck", "WatchlistSnapshot", "WatchlistStore", "normalise", "split_key"]

DueCheck = Callable[[str, "int | None", float], "DeletionRule | None"]
"""``(watchlist_id, event-time end or removal, learnt_s) -> the rule deleting it now, or None``"""


@dataclass(slots=True)
class _Entry:
    row: int
    """The entry's row of its watchlist's matrix."""
    category: str
    wanted_since_ms: int
    template_model: str
    updated_at_ms: int
    removed_at_ms: int | None = None
    removal_learnt_s: float = 0.0


_MIN_ROWS = 16


@dataclass(slots=True)
class _Rows:
    """One watchlist's templates: rows of one growable float32 matrix, freed rows zeroed."""

    matrix: np.ndarray | None = None
    used: int = 0
    """Rows handed out so far (free or not); rows past it were never written."""
    free: list[int] = field(default_factory=list)

    @property
    def dimension(self) -> int | None:
        return None if self.matrix is None else int(self.matrix.shape[1])

    def put(self, template: np.ndarray) -> int:
        """Copy ``template`` into a free row; its index."""
        if self.matrix is not None and self.matrix.shape[1] != template.shape[0]:
            # only when every row is free (the store checks dimensions against held entries)
            self.clear_all()
        if self.free:
            row = self.free.pop()
        else:
            if self.matrix is None or self.used == self.matrix.shape[0]:
                self._grow(template.shape[0])
            row = self.used
            self.used += 1
        assert self.matrix is not None  # noqa: S101 -- allocated above
        self.matrix[row] = template
        return row

    def release(self, row: int) -> None:
        """Zero ``row`` and let a later template take it."""
        assert self.matrix is not None  # noqa: S101 -- a row was handed out
        self.matrix[row].fill(0.0)
        self.free.append(row)

    def clear_all(self) -> None:
        """Zero and drop the matrix."""
        if self.matrix is not None:
            self.matrix.fill(0.0)
        self.matrix, self.used, self.free = None, 0, []

    def compact(self, rows: list[int]) -> np.ndarray:
        """Make ``rows``, in this order, the whole matrix (rows 0..n-1); return it.

        Nothing moves when they already are; otherwise they go to a new matrix of
        exactly n rows and the old one is zeroed, so no copy outlives this call.
        """
        n = len(rows)
        if self.matrix is None or n == 0:
            self.clear_all()
            return np.zeros((0, 0), dtype=np.float32)
        if self.matrix.shape[0] == n and rows == list(range(n)):
            return self.matrix
        compacted = np.empty((n, self.matrix.shape[1]), dtype=np.float32)
        np.take(self.matrix, np.asarray(rows, dtype=np.intp), axis=0, out=compacted)
        self.matrix.fill(0.0)
        self.matrix, self.used, self.free = compacted, n, []
        return compacted

    def _grow(self, dimension: int) -> None:
        held = 0 if self.matrix is None else self.matrix.shape[0]
        grown = np.zeros((max(_MIN_ROWS, held + held // 2), dimension), dtype=np.float32)
        if self.matrix is not None:
            grown[:held] = self.matrix
            self.matrix.fill(0.0)
        self.matrix = grown


@dataclass(slots=True)
class _Watchlist:
    entries: dict[str, _Entry] = field(default_factory=dict)
    rows: _Rows = field(default_factory=_Rows)
    version: int = 0
    snapshot: WatchlistSnapshot | None = None

    def template(self, subject_id: str) -> np.ndarray:
        """The held template of ``subject_id`` (a view of the watchlist's matrix)."""
        assert self.rows.matrix is not None  # noqa: S101 -- an entry holds a row
        return self.rows.matrix[self.entries[subject_id].row]


def split_key(key: str) -> tuple[str, str]:
    """``"<watchlist_id>:<subject_id>"`` -> ``(watchlist_id, subject_id)``."""
    watchlist_id, sep, subject_id = key.partition(":")
    if not sep or not watchlist_id or not subject_id:
        raise ValueError("watchlist key is not '<watchlist_id>:<subject_id>'")
    return watchlist_id, subject_id


class WatchlistStore:
    """Every watchlist this worker holds, with removals and retirements pending deletion."""

    def __init__(self) -> None:
        self._lists: dict[str, _Watchlist] = {}
        self._newest: dict[str, int] = {}
        self._retirements: dict[str, list[tuple[Retirement, float]]] = {}
        self._deleted_through: dict[str, int] = {}
        self._deleted_by: dict[str, DeletionRule] = {}
        # every key whose latest record on the topic is not a tombstone, with
        # that record's updated_at: what purging a retired list must tombstone
        self._on_topic: dict[str, dict[str, int]] = {}
        self._late_keys: list[str] = []
        self._removed: dict[str, set[str]] = {}

    # --- updates -----------------------------------------------------------

    def apply_entry(
        self, key: str, record: Mapping[str, Any] | None, learnt_s: float = 0.0
    ) -> None:
        """Apply one lfr.watchlist record (``None`` is a tombstone), in topic order.

        ``learnt_s`` is the wall clock (monotonic seconds) of reading it.
        Raises :class:`DimensionMismatchError` for a template whose dimension
        or model differs from the rest of its watchlist, and ``ValueError``
        for a key that does not match the record.
        """
        watchlist_id, subject_id = split_key(key)
        if record is None:
            self._on_topic.get(watchlist_id, {}).pop(subject_id, None)
            self._remove(watchlist_id, subject_id, self._newest.get(watchlist_id), learnt_s)
            return
        if (record["watchlist_id"], record["subject_id"]) != (watchlist_id, subject_id):
            raise ValueError("watchlist key does not match the record's ids")
        updated_at_ms = to_millis(record["updated_at"])
        self.note_update(watchlist_id, updated_at_ms)
        deleted_through = self._deleted_through.get(watchlist_id)
        if deleted_through is not None and updated_at_ms <= deleted_through:
            self._late_keys.append(key)  # of a list already destroyed: purge it too
            return
        self._on_topic.setdefault(watchlist_id, {})[subject_id] = updated_at_ms
        if record["op"] == "REMOVE" or record.get("template") is None:
            self._remove(watchlist_id, subject_id, updated_at_ms, learnt_s)
            return
        template = normalise(template_from_bytes(record["template"]))
        watchlist = self._lists.setdefault(watchlist_id, _Watchlist())
        self._check_compatible(watchlist, subject_id, template, record["template_model"])
        previous = watchlist.entries.get(subject_id)
        if previous is not None:
            watchlist.rows.release(previous.row)
            self._removed.get(watchlist_id, set()).discard(subject_id)
        row = watchlist.rows.put(template)
        template.fill(0.0)  # the matrix row is the one copy kept
        watchlist.entries[subject_id] = _Entry(
            row=row,
            # a handful of distinct values over hundreds of thousands of entries: share them
            category=sys.intern(record["category"]),
            wanted_since_ms=to_millis(record["wanted_since"]),
            template_model=sys.intern(record["template_model"]),
            updated_at_ms=updated_at_ms,
        )
        self._touch(watchlist, updated_at_ms)

    def note_on_topic(self, key: str, updated_at_ms: int) -> None:
        """Note a record on the topic that is not held (refused), so a purge tombstones it."""
        watchlist_id, subject_id = split_key(key)
        self._on_topic.setdefault(watchlist_id, {})[subject_id] = updated_at_ms

    def note_update(self, watchlist_id: str, updated_at_ms: int) -> None:
        """Note an ``updated_at`` seen for a watchlist (an entry, or a window naming it)."""
        if updated_at_ms > self._newest.get(watchlist_id, updated_at_ms - 1):
            self._newest[watchlist_id] = updated_at_ms

    def retire(self, retirement: Retirement, learnt_s: float = 0.0) -> None:
        """Schedule a retired watchlist's deletion (it stays matchable until :meth:`sweep`)."""
        pending = self._retirements.setdefault(retirement.watchlist_id, [])
        if all(held.retired_at_ms != retirement.retired_at_ms for held, _ in pending):
            pending.append((retirement, learnt_s))

    def sweep(self, is_due: DueCheck) -> list[str]:
        """Physically delete every removal and retirement ``is_due`` allows.

        Returns the topic keys a retirement destroyed (to tombstone them when
        so configured): every key of the list whose latest record on the
        topic was written before the retirement, including entries removed
        earlier, and records of the list read after it was destroyed.
        """
        retired_keys: list[str] = self._late_keys
        self._late_keys = []
        for watchlist_id in list(self._retirements):
            waiting = []
            for retirement, learnt_s in self._retirements[watchlist_id]:
                rule = is_due(watchlist_id, retirement.end_ms, learnt_s)
                if rule is not None:
                    self._deleted_by[watchlist_id] = rule
                    retired_keys += self._drop_older(watchlist_id, retirement.retired_at_ms)
                else:
                    waiting.append((retirement, learnt_s))
            if waiting:
                self._retirements[watchlist_id] = waiting
            else:
                del self._retirements[watchlist_id]
        for watchlist_id, subjects in list(self._removed.items()):
            entries = self._lists[watchlist_id].entries
            gone = [
                s
                for s in sorted(subjects)
                if is_due(watchlist_id, entries[s].removed_at_ms, entries[s].removal_learnt_s)
                is not None
            ]
            if gone:
                self._delete(watchlist_id, gone)
        return retired_keys

    # --- queries -----------------------------------------------------------

    def snapshot(self, watchlist_id: str) -> WatchlistSnapshot | None:
        """The watchlist's current snapshot, or ``None`` when none of it is held."""
        watchlist = self._lists.get(watchlist_id)
        if watchlist is None:
            return None
        if watchlist.snapshot is None:
            entries = watchlist.entries
            subjects = sorted(entries)
            # the snapshot's matrix is the store's own, its rows put in subject order
            matrix = watchlist.rows.compact([entries[s].row for s in subjects])
            for row, subject_id in enumerate(subjects):
                entries[subject_id].row = row
            watchlist.snapshot = build_snapshot(
                watchlist_id,
                watchlist.version,
                subjects,
                matrix,
                [entries[s].category for s in subjects],
                [entries[s].wanted_since_ms for s in subjects],
                [entries[s].template_model for s in subjects],
                [entries[s].updated_at_ms for s in subjects],
                [entries[s].removed_at_ms for s in subjects],
            )
        return watchlist.snapshot

    def is_deleted(self, watchlist_id: str) -> bool:
        """True when the watchlist was retired and physically deleted (none of it held)."""
        return watchlist_id in self._deleted_through and watchlist_id not in self._lists

    def deleted_by(self, watchlist_id: str) -> DeletionRule | None:
        """The rule that deleted a retired watchlist, while none of it is held again."""
        return self._deleted_by.get(watchlist_id) if self.is_deleted(watchlist_id) else None

    def keys(self, watchlist_id: str) -> list[str]:
        """Topic keys of the entries held for a watchlist (for purging)."""
        watchlist = self._lists.get(watchlist_id)
        return [] if watchlist is None else [f"{watchlist_id}:{s}" for s in watchlist.entries]

    @property
    def entry_count(self) -> int:
        """Templates held over all watchlists (the ``lfr_watchlist_entries`` gauge)."""
        return sum(len(w.entries) for w in self._lists.values())

    @property
    def max_version(self) -> int:
        """Newest version over all watchlists (the ``lfr_watchlist_version`` gauge)."""
        return max((w.version for w in self._lists.values()), default=0)

    @property
    def watchlist_ids(self) -> list[str]:
        """Ids of the watchlists held."""
        return sorted(self._lists)

    # --- internals ---------------------------------------------------------

    def _check_compatible(
        self, watchlist: _Watchlist, subject_id: str, template: np.ndarray, model: str
    ) -> None:
        sample = next((e for s, e in watchlist.entries.items() if s != subject_id), None)
        if sample is None:
            return
        if watchlist.rows.dimension != template.shape[0]:
            raise DimensionMismatchError(
                f"template of dimension {template.shape[0]} in a watchlist of "
                f"dimension {watchlist.rows.dimension}"
            )
        if sample.template_model != model:
            raise DimensionMismatchError("template model differs from the watchlist's")

    def _remove(
        self, watchlist_id: str, subject_id: str, at_ms: int | None, learnt_s: float
    ) -> None:
        watchlist = self._lists.get(watchlist_id)
        entry = None if watchlist is None else watchlist.entries.get(subject_id)
        if watchlist is None or entry is None or entry.removed_at_ms is not None:
            return  # nothing held, or already removed (the first removal counts)
        entry.removed_at_ms = entry.updated_at_ms if at_ms is None else at_ms
        entry.removal_learnt_s = learnt_s
        self._removed.setdefault(watchlist_id, set()).add(subject_id)
        self._touch(watchlist, entry.removed_at_ms)

    def _drop_older(self, watchlist_id: str, retired_at_ms: int) -> list[str]:
        self._deleted_through[watchlist_id] = max(
            self._deleted_through.get(watchlist_id, retired_at_ms), retired_at_ms
        )
        on_topic = self._on_topic.get(watchlist_id, {})
        destroyed = sorted(s for s, at in on_topic.items() if at <= retired_at_ms)
        for subject_id in destroyed:
            del on_topic[subject_id]
        if not on_topic:
            self._on_topic.pop(watchlist_id, None)
        watchlist = self._lists.get(watchlist_id)
        if watchlist is not None:
            dropped = [s for s, e in watchlist.entries.items() if e.updated_at_ms <= retired_at_ms]
            self._delete(watchlist_id, dropped)
        return [f"{watchlist_id}:{s}" for s in destroyed]

    def _delete(self, watchlist_id: str, subject_ids: list[str]) -> None:
        watchlist = self._lists[watchlist_id]
        removed = self._removed.get(watchlist_id, set())
        for subject_id in subject_ids:
            watchlist.rows.release(watchlist.entries.pop(subject_id).row)
            removed.discard(subject_id)
        if not removed:
            self._removed.pop(watchlist_id, None)
        _invalidate(watchlist)
        if not watchlist.entries:
            watchlist.rows.clear_all()
            del self._lists[watchlist_id]

    @staticmethod
    def _touch(watchlist: _Watchlist, at_ms: int) -> None:
        watchlist.version = max(watchlist.version, at_ms)
        _invalidate(watchlist)


def _invalidate(watchlist: _Watchlist) -> None:
    """Drop the snapshot; the next one is built on demand.

    Its matrix is the watchlist's own (deleted rows are already zeroed), so
    the store must not change during a batch that uses it: a snapshot is
    only used inside one synchronous batch, and the store changes between
    batches.
    """
    watchlist.snapshot = None
