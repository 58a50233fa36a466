"""An immutable view of one watchlist for one batch: the matrix the matcher multiplies.

Each row carries the event time from which it no longer matches (its
removal; ``NEVER`` when it was not removed), so a detection is matched
against the watchlist as it stood when the face was captured, whenever the
removal was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEVER = np.iinfo(np.int64).max
"""``removed_at_ms`` of a row that was not removed."""


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
    removed_at_ms: np.ndarray  # (n,) int64, NEVER when the row was not removed
    changes_ms: np.ndarray  # sorted distinct instants of every change to the rows held

    def __len__(self) -> int:
        return len(self.subject_ids)

    @property
    def has_removals(self) -> bool:
        """True when some row stops matching at some event time."""
        return bool(len(self) and (self.removed_at_ms < NEVER).any())

    def valid_at(self, captured_at_ms: np.ndarray) -> np.ndarray:
        """(m, n) bool: row j may match a face captured at ``captured_at_ms[i]``."""
        return np.asarray(captured_at_ms, dtype=np.int64)[:, None] < self.removed_at_ms[None, :]

    def version_at(self, captured_at_ms: int) -> int:
        """The version that applied at event time ``captured_at_ms``.

        The newest change held that is not after it, so an alert carries the
        same version in a replay as live; :attr:`version` if none is.
        """
        index = int(np.searchsorted(self.changes_ms, captured_at_ms, side="right"))
        return int(self.changes_ms[index - 1]) if index else self.version


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32 (zero rows stay zero), in a new array.

    Bit for bit what ``np.linalg.norm`` and a division give (the simulator's
    truth computes it so), in fewer passes: the detections stage runs this
    on every batch of faces.
    """
    unit = np.array(vectors, dtype=np.float32)
    # linalg.norm's own formula for a real vector norm along one axis
    norms = np.sqrt(np.add.reduce(np.square(unit), axis=-1, keepdims=True))
    degenerate = ~(norms > 0)  # zero (or not a number): the row becomes zeros
    if degenerate.any():
        unit[np.broadcast_to(degenerate, unit.shape)] = 0.0
        norms[degenerate] = 1.0
    return np.divide(unit, norms, out=unit)


def build_snapshot(
    watchlist_id: str,
    version: int,
    subject_ids: Sequence[str],
    templates: Sequence[np.ndarray] | np.ndarray,
    categories: Sequence[str],
    wanted_since_ms: Sequence[int],
    models: Sequence[str],
    updated_at_ms: Sequence[int],
    removed_at_ms: Sequence[int | None],
) -> WatchlistSnapshot:
    """A snapshot of rows given in subject-id order (parallel sequences).

    A (n, d) float32 C-contiguous ``templates`` array becomes the snapshot's
    matrix as it is, without a copy (the watchlist store passes its own).
    """
    if len(templates):
        stacked = templates if isinstance(templates, np.ndarray) else np.stack(templates)
        matrix = np.ascontiguousarray(stacked, dtype=np.float32)
        dimension: int | None = int(matrix.shape[1])
        model: str | None = models[0]
    else:
        matrix = np.zeros((0, 0), dtype=np.float32)
        dimension, model = None, None
    removed = np.array([NEVER if r is None else r for r in removed_at_ms], dtype=np.int64)
    changes = np.unique(
        np.concatenate([np.asarray(updated_at_ms, dtype=np.int64), removed[removed < NEVER]])
    )
    return WatchlistSnapshot(
        watchlist_id=watchlist_id,
        version=version,
        template_model=model,
        dimension=dimension,
        matrix=matrix,
        subject_ids=tuple(subject_ids),
        categories=tuple(categories),
        wanted_since_ms=tuple(wanted_since_ms),
        removed_at_ms=removed,
        changes_ms=changes,
    )
