"""Matching: one matrix product per batch and watchlist, top-1 per face.

Scores are cosine similarities of L2-normalised float32 templates, rounded
to :data:`SCORE_DECIMALS` so that the score an alert carries and the
threshold it is compared with are the same number (a float32 0.64 is
0.6399999857 and would otherwise miss a 0.64 threshold it equals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.worker.snapshot import WatchlistSnapshot

SCORE_DECIMALS = 6
CANDIDATE_MARGIN = 1e-4
"""float32 scores this close to a query's best are rescored exactly."""


@dataclass(frozen=True, slots=True)
class Match:
    """The best watchlist entry for one face, at or above the threshold."""

    row: int
    subject_id: str
    category: str
    wanted_since_ms: int
    score: float


def top1(
    queries: np.ndarray,
    snapshot: WatchlistSnapshot,
    captured_at_ms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best row index and rounded score of every query against the watchlist.

    ``queries`` is (m, d) float32 with unit rows. The float32 matrix product
    finds the candidates; their scores are then recomputed from exact
    float64 products, because a BLAS product rounds differently with the
    batch's shape, and a redelivered event in another batch must get the
    same score and the same alert. Rows of the snapshot are sorted by
    subject id and ties go to the lowest row, i.e. the lowest subject id.
    With ``captured_at_ms`` (one per query), a row removed at or before a
    query's capture instant is not a candidate for it. A watchlist with no
    valid row gives row -1 and score -inf.
    """
    m = queries.shape[0]
    rows = np.full(m, -1, dtype=np.int64)
    best = np.full(m, -np.inf)
    if len(snapshot) == 0 or m == 0:
        return rows, best
    scores = queries @ snapshot.matrix.T
    if captured_at_ms is not None and snapshot.has_removals:
        scores[~snapshot.valid_at(captured_at_ms)] = -np.inf
    rough = scores.max(axis=1)
    for i in range(m):
        if not np.isfinite(rough[i]):
            continue
        candidates = np.flatnonzero(scores[i] >= rough[i] - CANDIDATE_MARGIN)
        exact = (
            snapshot.matrix[candidates].astype(np.float64) * queries[i].astype(np.float64)
        ).sum(axis=1)
        exact = np.round(exact, SCORE_DECIMALS)
        winner = int(np.argmax(exact))  # first maximum: the lowest row
        rows[i] = candidates[winner]
        best[i] = exact[winner]
    return rows, best


def match_batch(
    queries: np.ndarray,
    snapshot: WatchlistSnapshot,
    threshold: float,
    captured_at_ms: np.ndarray | None = None,
) -> list[Match | None]:
    """Top-1 match of each query, or ``None`` when its best score is below ``threshold``.

    ``captured_at_ms`` restricts each query to the rows valid at its capture instant.
    """
    rows, scores = top1(np.asarray(queries, dtype=np.float32), snapshot, captured_at_ms)
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
