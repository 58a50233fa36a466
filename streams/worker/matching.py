"""Matching: one matrix product per batch and watchlist, top-1 per face.

Scores are cosine similarities of L2-normalised float32 templates, rounded
to :data:`SCORE_DECIMALS` so that the score an alert carries and the
threshold it is compared with are the same number (a float32 0.64 is
0.6399999857 and would otherwise miss a 0.64 threshold it equals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.worker.watchlist_store import WatchlistSnapshot

SCORE_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class Match:
    """The best watchlist entry for one face, at or above the threshold."""

    row: int
    subject_id: str
    category: str
    wanted_since_ms: int
    score: float


def top1(queries: np.ndarray, snapshot: WatchlistSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Best row index and rounded score of every query against the watchlist.

    ``queries`` is (m, d) float32 with unit rows. Rows of the snapshot are
    sorted by subject id and ``argmax`` takes the first maximum, so a tie goes
    to the lowest subject id. An empty watchlist gives row -1 and score -inf.
    """
    m = queries.shape[0]
    if len(snapshot) == 0 or m == 0:
        return np.full(m, -1, dtype=np.int64), np.full(m, -np.inf)
    scores = queries @ snapshot.matrix.T
    rows = np.argmax(scores, axis=1)
    best = scores[np.arange(m), rows].astype(np.float64)
    return rows, np.round(best, SCORE_DECIMALS)


def match_batch(
    queries: np.ndarray, snapshot: WatchlistSnapshot, threshold: float
) -> list[Match | None]:
    """Top-1 match of each query, or ``None`` when its best score is below ``threshold``."""
    rows, scores = top1(np.asarray(queries, dtype=np.float32), snapshot)
    matches: list[Match | None] = []
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        if row < 0 or score < threshold:
            matches.append(None)
            continue
        matches.append(
            Match(
                row=row,
                subject_id=snapshot.subject_ids[row],
                category=snapshot.categories[row],
                wanted_since_ms=snapshot.wanted_since_ms[row],
                score=score,
            )
        )
    return matches
