"""Matching: one matrix product per batch and watchlist, top-1 per face.

Scores are cosine similarities of L2-normalised float32 templates, rounded
to :data:`SCORE_DECIMALS` so that the score an alert carries and the
threshold it is compared with are the same number (a float32 0.64 is
0.6399999857 and would otherwise miss a 0.64 threshold it equals).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from streams.worker.snapshot import WatchlistSnapshot

SCORE_DECIMALS = 6
CANDIDATE_MARGIN = 1e-4
"""float32 scores this close to a query's best are rescored exactly (at least; see
:func:`candidate_margin` for templates of more than 830 dimensions)."""
RESCORE_BLOCK = 64
"""(row, query) pairs rescored per block: 64 x 512 float64 products stay in cache."""
BLAS_THREADS = 1
"""BLAS threads of a match product against a small watchlist (below
:data:`LARGE_ROWS`). OpenBLAS's helper threads spin after every product and
take the CPU the consumer, the producer and the broker need: on two cores
(bench/core_bench.py) a 10-row watchlist used 0.2 ms of CPU per 500-face batch
on one thread and 3.4 ms on two, no faster. OpenBLAS also counts the host's
cores, not a container's CPU limit, so its own default is never used."""
LARGE_ROWS = 1024
"""From this many watchlist rows a product runs on :func:`use_large_product_threads`'s count."""
_large_threads = 1


def use_large_product_threads(threads: int) -> None:
    """BLAS threads for products against :data:`LARGE_ROWS` rows or more (LFR_WORKER_BLAS_THREADS).

    Whether a second thread pays depends on whether its core is free: on a
    quiet 2-core machine (bench/worker_bench.py, broker on the same cores, six
    runs alternating) a 16,000 x 512 watchlist matched 4,085-5,990 detections/s
    with two threads and 3,674-4,194/s with one; with other jobs on both
    cores, two threads halved the bare product (1,800 against 3,700 faces/s).
    So the default is one and the operator, who knows the worker's cores,
    sets more.
    """
    global _large_threads
    if threads < 1:
        raise ValueError("BLAS threads must be at least 1")
    _large_threads = threads


def threads_for(rows: int) -> int:
    """BLAS threads of a product against a watchlist of ``rows`` rows."""
    return _large_threads if rows >= LARGE_ROWS else BLAS_THREADS


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def scores_of(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``queries @ matrix.T`` (float32) on :func:`threads_for` the matrix's rows BLAS threads."""
    with _blas().limit(limits=threads_for(matrix.shape[0]), user_api="blas"):
        return queries @ matrix.T


@dataclass(frozen=True, slots=True)
class Match:
    """The best watchlist entry for one face, at or above the threshold."""

    row: int
    subject_id: str
    category: str
    wanted_since_ms: int
    score: float


def candidate_margin(dimension: int) -> float:
    """How far below a face's float32 best its true best may lie, with room to spare.

    A float32 dot product of two unit vectors of ``dimension`` values is off
    by at most ``dimension * 2**-24`` (the rounding bound of a sum of that
    many products, whatever order BLAS adds them in). A row is a candidate
    when its float32 score is within twice that of the best (both scores may
    be off, in opposite directions), and a face below the floor by more than
    once that plus the 6-decimal rounding cannot reach it. Up to 830
    dimensions :data:`CANDIDATE_MARGIN` covers this; above, the bound does.
    """
    return max(CANDIDATE_MARGIN, 2 * dimension * 2.0**-24 + 1e-6)


def top1(
    queries: np.ndarray,
    snapshot: WatchlistSnapshot,
    captured_at_ms: np.ndarray | None = None,
    floor: float = -np.inf,
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

    A query whose float32 best is below ``floor`` by more than the candidate
    margin (:func:`candidate_margin`) gets row -1 and score -inf too, without
    being rescored: its exact score is below ``floor`` as surely as a row
    outside the margin is not its best. Most faces are far from every
    watchlist entry, and rescoring them was a fifth of the matcher's time
    against a small watchlist.
    """
    m = queries.shape[0]
    rows = np.full(m, -1, dtype=np.int64)
    best = np.full(m, -np.inf)
    if len(snapshot) == 0 or m == 0:
        return rows, best
    scores = scores_of(queries, snapshot.matrix)
    if captured_at_ms is not None and snapshot.has_removals:
        scores[~snapshot.valid_at(captured_at_ms)] = -np.inf
    each = np.arange(m)
    top = scores.argmax(axis=1)
    rough = scores[each, top]
    # candidates: every row within the margin of its query's best. Most queries
    # have one (the argmax): the best of the other rows tells which have more,
    # one pass over the scores where comparing and counting every row took
    # three times as long, and only those queries search their row.
    margin = candidate_margin(queries.shape[1])
    cutoff = rough - margin
    # no valid row at all, or none that can reach the floor: no candidate, and no need
    # of a runner-up (against a large watchlist that pass costs as much as the argmax)
    live = np.flatnonzero(np.isfinite(rough) & (rough >= floor - margin))
    if len(live) == 0:
        return rows, best
    if 2 * len(live) > m:  # most are live: one pass in place beats copying their rows
        scores[each, top] = -np.inf
        runner_up = scores.max(axis=1)[live]
        scores[each, top] = rough
    else:
        others = scores[live]
        others[np.arange(len(live)), top[live]] = -np.inf
        runner_up = others.max(axis=1)
    more = runner_up >= cutoff[live]
    single = live[~more]
    several = live[more]
    several_of, several_rows = np.nonzero(scores[several] >= cutoff[several, None])
    # (query, row) pairs in row-major order: queries ascending, rows ascending within each
    query_of = np.concatenate([single, several[several_of]])
    row_of = np.concatenate([top[single], several_rows])
    order = np.argsort(query_of, kind="stable")
    query_of, row_of = query_of[order], row_of[order]
    if len(query_of) == 0:
        return rows, best
    exact = np.round(_exact_scores(snapshot.matrix, queries, row_of, query_of), SCORE_DECIMALS)
    starts = np.flatnonzero(np.r_[True, query_of[1:] != query_of[:-1]])
    best_of = np.maximum.reduceat(exact, starts)
    # first pair reaching its query's best: the lowest row (ties go to the lowest subject id)
    segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(exact)]))
    winners = np.flatnonzero(exact == best_of[segment])
    first = winners[np.r_[True, segment[winners][1:] != segment[winners][:-1]]]
    rows[query_of[first]] = row_of[first]
    best[query_of[first]] = exact[first]
    return rows, best


def _exact_scores(
    matrix: np.ndarray, queries: np.ndarray, row_of: np.ndarray, query_of: np.ndarray
) -> np.ndarray:
    """float64 dot product of each (row, query) pair, summed as for one query alone.

    Blocks of :data:`RESCORE_BLOCK` pairs keep the float64 products in cache
    (a whole batch's would not fit); every pair is summed on its own, so the
    result does not depend on the block size.
    """
    exact = np.empty(len(row_of))
    products = np.empty((min(RESCORE_BLOCK, len(row_of)), matrix.shape[1]))
    for start in range(0, len(row_of), RESCORE_BLOCK):
        stop = min(start + RESCORE_BLOCK, len(row_of))
        block = products[: stop - start]
        np.multiply(
            matrix[row_of[start:stop]], queries[query_of[start:stop]], out=block, dtype=np.float64
        )
        block.sum(axis=1, out=exact[start:stop])
    return exact


def match_batch(
    queries: np.ndarray,
    snapshot: WatchlistSnapshot,
    threshold: float,
    captured_at_ms: np.ndarray | None = None,
) -> list[Match | None]:
    """Top-1 match of each query, or ``None`` when its best score is below ``threshold``.

    ``captured_at_ms`` restricts each query to the rows valid at its capture instant.
    """
    rows, scores = top1(np.asarray(queries, dtype=np.float32), snapshot, captured_at_ms, threshold)
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
