"""Watchlists held in memory: the state behind the broadcast watchlist service.

Pure (no Kafka): the service feeds it every record of lfr.watchlist and
every window of lfr.operations, in topic order; the detections agent asks it
for an immutable :class:`WatchlistSnapshot` per batch.

A watchlist is retired when every deployment that names it has ENDED or been
CANCELLED: its templates are overwritten and dropped, and entries written
before the retirement (``updated_at`` not after it) are never held again, so
the outcome does not depend on how the two topics interleave on a replay. A
later rebuild for a new deployment carries newer ``updated_at`` and is held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.templates import template_from_bytes
from streams.worker.errors import DimensionMismatchError
from streams.worker.instants import to_millis
from streams.worker.windows import CLOSED_STATUSES, LIVE_STATUSES, OperationWindow


@dataclass(frozen=True, slots=True)
class WatchlistSnapshot:
    """One watchlist at one version, rows sorted by subject id (ties go to the lowest)."""

    watchlist_id: str
    version: int
    template_model: str | None
    dimension: int | None
    matrix: np.ndarray  # (n, dimension) float32, L2-normalised rows
    subject_ids: tuple[str, ...]
    categories: tuple[str, ...]
    wanted_since_ms: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.subject_ids)


@dataclass(slots=True)
class _Entry:
    template: np.ndarray
    category: str
    wanted_since_ms: int
    template_model: str
    updated_at_ms: int


@dataclass(slots=True)
class _Watchlist:
    entries: dict[str, _Entry] = field(default_factory=dict)
    version: int = 0
    snapshot: WatchlistSnapshot | None = None


def split_key(key: str) -> tuple[str, str]:
    """``"<watchlist_id>:<subject_id>"`` -> ``(watchlist_id, subject_id)``."""
    watchlist_id, sep, subject_id = key.partition(":")
    if not sep or not watchlist_id or not subject_id:
        raise ValueError("watchlist key is not '<watchlist_id>:<subject_id>'")
    return watchlist_id, subject_id


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class WatchlistStore:
    """Every watchlist this worker holds, and which deployments keep them alive."""

    def __init__(self) -> None:
        self._lists: dict[str, _Watchlist] = {}
        self._live: dict[str, set[str]] = {}
        self._retired_at: dict[str, int] = {}

    # --- updates -----------------------------------------------------------

    def apply_entry(
        self, key: str, record: Mapping[str, Any] | None, record_timestamp_ms: int
    ) -> None:
        """Apply one lfr.watchlist record (``None`` is a tombstone), in topic order.

        Raises :class:`DimensionMismatchError` for a template whose dimension
        or model differs from the rest of its watchlist, and ``ValueError``
        for a key that does not match the record.
        """
        watchlist_id, subject_id = split_key(key)
        if record is None:
            self._delete(watchlist_id, subject_id, record_timestamp_ms)
            return
        if (record["watchlist_id"], record["subject_id"]) != (watchlist_id, subject_id):
            raise ValueError("watchlist key does not match the record's ids")
        updated_at_ms = to_millis(record["updated_at"])
        retired_at = self._retired_at.get(watchlist_id)
        if retired_at is not None and updated_at_ms <= retired_at:
            return
        if record["op"] == "REMOVE" or record.get("template") is None:
            self._delete(watchlist_id, subject_id, updated_at_ms)
            return
        template = normalise(template_from_bytes(record["template"]))
        watchlist = self._lists.setdefault(watchlist_id, _Watchlist())
        self._check_compatible(watchlist, subject_id, template, record["template_model"])
        previous = watchlist.entries.get(subject_id)
        if previous is not None:
            previous.template.fill(0.0)
        watchlist.entries[subject_id] = _Entry(
            template=template,
            category=record["category"],
            wanted_since_ms=to_millis(record["wanted_since"]),
            template_model=record["template_model"],
            updated_at_ms=updated_at_ms,
        )
        self._touch(watchlist, updated_at_ms)

    def apply_window(self, window: OperationWindow) -> list[str]:
        """Track which deployments use which watchlist; retire a watchlist nobody uses.

        Returns the keys (``watchlist_id:subject_id``) of the entries dropped,
        so the caller can tombstone them on the topic when so configured.
        """
        live = self._live.setdefault(window.watchlist_id, set())
        if window.status in LIVE_STATUSES:
            live.add(window.deployment_id)
            return []
        if window.status not in CLOSED_STATUSES:
            return []
        live.discard(window.deployment_id)
        if live:
            return []
        retired_at = max(self._retired_at.get(window.watchlist_id, 0), window.updated_at_ms)
        self._retired_at[window.watchlist_id] = retired_at
        return self._drop_older(window.watchlist_id, retired_at)

    # --- queries -----------------------------------------------------------

    def snapshot(self, watchlist_id: str) -> WatchlistSnapshot | None:
        """The watchlist's current snapshot, or ``None`` when it was never held."""
        watchlist = self._lists.get(watchlist_id)
        if watchlist is None:
            return None
        if watchlist.snapshot is None:
            watchlist.snapshot = _build_snapshot(watchlist_id, watchlist)
        return watchlist.snapshot

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
        others = [e for s, e in watchlist.entries.items() if s != subject_id]
        if not others:
            return
        sample = others[0]
        if sample.template.shape != template.shape:
            raise DimensionMismatchError(
                f"template of dimension {template.shape[0]} in a watchlist of "
                f"dimension {sample.template.shape[0]}"
            )
        if sample.template_model != model:
            raise DimensionMismatchError("template model differs from the watchlist's")

    def _delete(self, watchlist_id: str, subject_id: str, at_ms: int) -> None:
        watchlist = self._lists.get(watchlist_id)
        if watchlist is None:
            return
        entry = watchlist.entries.pop(subject_id, None)
        if entry is not None:
            entry.template.fill(0.0)
        self._touch(watchlist, at_ms)

    def _drop_older(self, watchlist_id: str, retired_at_ms: int) -> list[str]:
        watchlist = self._lists.get(watchlist_id)
        if watchlist is None:
            return []
        dropped = [s for s, e in watchlist.entries.items() if e.updated_at_ms <= retired_at_ms]
        for subject_id in dropped:
            watchlist.entries.pop(subject_id).template.fill(0.0)
        if watchlist.snapshot is not None:
            # The snapshot is the only other copy of the templates.
            watchlist.snapshot.matrix.fill(0.0)
        if watchlist.entries:
            self._touch(watchlist, retired_at_ms)
        else:
            del self._lists[watchlist_id]
        return [f"{watchlist_id}:{s}" for s in dropped]

    @staticmethod
    def _touch(watchlist: _Watchlist, at_ms: int) -> None:
        watchlist.version = max(watchlist.version, at_ms)
        watchlist.snapshot = None


def _build_snapshot(watchlist_id: str, watchlist: _Watchlist) -> WatchlistSnapshot:
    subjects = sorted(watchlist.entries)
    entries = [watchlist.entries[s] for s in subjects]
    if entries:
        matrix = np.ascontiguousarray(np.stack([e.template for e in entries]), dtype=np.float32)
        dimension: int | None = int(matrix.shape[1])
        model: str | None = entries[0].template_model
    else:
        matrix = np.zeros((0, 0), dtype=np.float32)
        dimension, model = None, None
    return WatchlistSnapshot(
        watchlist_id=watchlist_id,
        version=watchlist.version,
        template_model=model,
        dimension=dimension,
        matrix=matrix,
        subject_ids=tuple(subjects),
        categories=tuple(e.category for e in entries),
        wanted_since_ms=tuple(e.wanted_since_ms for e in entries),
    )
