"""Matching: top-1, ties, the threshold boundary, empty and changing watchlists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.worker.deletion import DeletionRule
from streams.worker.matching import _exact_scores, candidate_margin, match_batch
from streams.worker.watchlist_store import WatchlistStore

from .conftest import DIM, T0, unit, watchlist_record

T0_MS = int(T0.timestamp() * 1000)


def store_with(*subjects: tuple[str, np.ndarray]) -> WatchlistStore:
    store = WatchlistStore()
    for subject_id, vec in subjects:
        store.apply_entry(f"W1:{subject_id}", watchlist_record(subject_id, vec), 0)
    return store


def test_top1_picks_the_best_subject() -> None:
    store = store_with(("a", unit(1)), ("b", unit(2)), ("c", unit(3)))
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    queries = np.stack([unit(2), unit(3), unit(50)])
    matches = match_batch(queries, snapshot, 0.64)
    assert [m.subject_id if m else None for m in matches] == ["b", "c", None]


def test_ties_go_to_the_lowest_subject_id_whatever_the_insertion_order() -> None:
    same = unit(7)
    for order in (("zed", "amy"), ("amy", "zed")):
        store = store_with(*((s, same) for s in order))
        snapshot = store.snapshot("W1")
        assert snapshot is not None
        (match,) = match_batch(same[None, :], snapshot, 0.5)
        assert match is not None and match.subject_id == "amy"


def test_score_equal_to_the_threshold_alerts() -> None:
    a = unit(1)
    store = store_with(("a", a))
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    (exact,) = match_batch(a[None, :], snapshot, 0.5)
    assert exact is not None
    # the same score as the threshold: alert; a hair above it: no alert
    assert match_batch(a[None, :], snapshot, exact.score)[0] is not None
    assert match_batch(a[None, :], snapshot, exact.score + 1e-6)[0] is None


def test_constructed_score_at_threshold() -> None:
    # a query whose cosine with the entry is 0.64 up to float16 rounding
    rng = np.random.default_rng(3)
    e = unit(1)
    ortho = rng.standard_normal(DIM).astype(np.float32)
    ortho -= ortho.dot(e) * e
    ortho /= np.linalg.norm(ortho)
    store = store_with(("a", e))
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    score = float(snapshot.matrix[0] @ (0.64 * e + 0.768 * ortho))
    query = (0.64 * e + 0.768 * ortho)[None, :]
    (match,) = match_batch(query, snapshot, round(score, 6))
    assert match is not None


def test_empty_and_emptied_watchlists_match_nothing() -> None:
    store = store_with(("a", unit(1)))
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0), 0)
    snapshot = store.snapshot("W1")
    # removed at T0: still held (and matchable before T0) until deleted
    assert snapshot is not None and len(snapshot) == 1
    at = np.array([T0_MS, T0_MS - 1])
    assert match_batch(np.stack([unit(1), unit(1)]), snapshot, 0.1, at)[0] is None
    store.sweep(lambda _w, _at, _learnt: DeletionRule.STREAM_PASSED)
    assert store.snapshot("W1") is None
    assert not snapshot.matrix.any()


def test_removed_rows_match_only_faces_captured_before_the_removal() -> None:
    store = store_with(("a", unit(1)), ("b", unit(1) * 0.8 + unit(2) * 0.6))
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0), 0)
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    queries = np.stack([unit(1)] * 3)
    at = np.array([T0_MS - 1, T0_MS, T0_MS + 1])
    matches = match_batch(queries, snapshot, 0.5, at)
    # before the removal "a" is the best; from it on, the runner-up "b" is
    assert [m.subject_id if m else None for m in matches] == ["a", "b", "b"]
    assert snapshot.version_at(T0_MS - 1) < snapshot.version_at(T0_MS) == T0_MS


def test_watchlist_changed_between_two_batches() -> None:
    store = store_with(("a", unit(1)))
    before = store.snapshot("W1")
    assert before is not None
    assert match_batch(unit(2)[None, :], before, 0.64) == [None]
    store.apply_entry("W1:b", watchlist_record("b", unit(2), updated_at=T0), 0)
    after = store.snapshot("W1")
    assert after is not None and after.version > before.version
    (match,) = match_batch(unit(2)[None, :], after, 0.64)
    assert match is not None and match.subject_id == "b"
    # the replaced snapshot was overwritten: no stale copy of templates lingers
    assert not before.matrix.any()


@pytest.mark.parametrize("threshold", [0.6, 0.64])
def test_batch_equals_one_by_one(threshold: float) -> None:
    store = store_with(*((f"s{i:03d}", unit(i)) for i in range(40)))
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    queries = np.stack([unit(i) * 0.8 + unit(1000 + i) * 0.6 for i in range(30)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    batch = match_batch(queries, snapshot, threshold)
    single = [match_batch(q[None, :], snapshot, threshold)[0] for q in queries]
    assert batch == single


def test_near_ties_in_one_batch_resolve_as_one_by_one() -> None:
    # several rows within the rescoring margin of each query, some exactly equal
    rng = np.random.default_rng(5)
    base = [unit(i) for i in range(6)]
    subjects = []
    for i in range(60):
        vec = base[i % 6] + rng.standard_normal(DIM) * (0 if i % 4 == 0 else 1e-5)
        subjects.append((f"s{i:03d}", (vec / np.linalg.norm(vec)).astype(np.float32)))
    snapshot = store_with(*subjects).snapshot("W1")
    assert snapshot is not None
    queries = np.stack([base[i % 6] * 0.9 + unit(500 + i) * 0.43 for i in range(25)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    batch = match_batch(queries, snapshot, 0.5)
    single = [match_batch(q[None, :], snapshot, 0.5)[0] for q in queries]
    assert batch == single
    assert all(m is not None for m in batch)
    # the score is the rounded float64 cosine of the winning row, the lowest row among ties
    for query, match in zip(queries, batch, strict=True):
        assert match is not None
        exact = np.round(snapshot.matrix.astype(np.float64) @ query.astype(np.float64), 6)
        assert match.score == pytest.approx(exact.max(), abs=2e-6)


def test_scores_are_the_float64_dot_of_each_pair_whatever_the_batch_size() -> None:
    # more queries than one rescoring block: each score is the pair's own float64 sum
    snapshot = store_with(*((f"s{i:03d}", unit(i)) for i in range(12))).snapshot("W1")
    assert snapshot is not None
    queries = np.stack([unit(i % 12) * 0.8 + unit(2000 + i) * 0.6 for i in range(150)])
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    batch = match_batch(queries, snapshot, 0.5)
    for query, match in zip(queries, batch, strict=True):
        assert match is not None
        pair = snapshot.matrix[match.row].astype(np.float64) * query.astype(np.float64)
        assert match.score == np.round(pair.sum(), 6)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), pairs=st.integers(1, 300), dim=st.sampled_from([16, 512]))
def test_exact_rescoring_is_each_pair_own_float64_sum(rows: int, pairs: int, dim: int) -> None:
    rng = np.random.default_rng(rows * 1000 + pairs)
    matrix = rng.standard_normal((rows, dim)).astype(np.float32)
    queries = rng.standard_normal((50, dim)).astype(np.float32)
    row_of = rng.integers(0, rows, pairs)
    query_of = np.sort(rng.integers(0, 50, pairs))
    expected = [
        (matrix[r].astype(np.float64) * queries[q].astype(np.float64)).sum()
        for r, q in zip(row_of, query_of, strict=True)
    ]
    assert _exact_scores(matrix, queries, row_of, query_of).tolist() == expected


def random_store(rng: np.random.Generator, rows: int, copies: int) -> WatchlistStore:
    """``rows`` random unit subjects s000, s001...; ``copies`` of them replaced by s000's vector."""
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    vectors[rng.integers(0, rows, copies)] = vectors[0]
    return store_with(
        *((f"s{i:03d}", (v / np.linalg.norm(v)).astype(np.float32)) for i, v in enumerate(vectors))
    )


def brute_force(matrix: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(faces, rows): each pair's own float64 sum to 6 decimals, as the matcher rescores."""
    rows64 = matrix.astype(np.float64)
    return np.array([np.round([(row * face).sum() for row in rows64], 6) for face in faces])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 30),
    queries=st.integers(1, 40),
    copies=st.integers(0, 10),
)
def test_top1_equals_rescoring_every_row(seed: int, rows: int, queries: int, copies: int) -> None:
    """Whichever rows the float32 product picks as candidates, the result is the brute force:
    every row's float64 score rounded, the best, ties to the lowest row (some rows repeated
    exactly, some queries equal to a row, so ties and near ties occur)."""
    rng = np.random.default_rng(seed)
    snapshot = random_store(rng, rows, copies).snapshot("W1")
    assert snapshot is not None
    faces = rng.standard_normal((queries, DIM)).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    faces[: queries // 2] = snapshot.matrix[rng.integers(0, rows, queries // 2)]
    batch = match_batch(faces, snapshot, -1.0)
    for exact, match in zip(brute_force(snapshot.matrix, faces), batch, strict=True):
        assert match is not None
        assert (match.row, match.score) == (
            int(np.flatnonzero(exact == exact.max())[0]),
            exact.max(),
        )


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 30),
    queries=st.integers(1, 40),
    copies=st.integers(0, 6),
    removed=st.integers(0, 3),
    pick=st.integers(0, 2**16),
    nudge=st.sampled_from([-1e-4, -1e-5, -1e-6, 0.0, 1e-6, 1e-5, 1e-4]),
)
@example(seed=7, rows=5, queries=8, copies=2, removed=1, pick=0, nudge=0.0)
@example(seed=8, rows=20, queries=40, copies=6, removed=0, pick=3, nudge=0.0)
def test_match_batch_at_a_threshold_equals_rescoring_every_row(
    seed: int, rows: int, queries: int, copies: int, removed: int, pick: int, nudge: float
) -> None:
    """Faces the float32 product leaves below the threshold are neither rescored nor
    searched for a runner-up; the verdict is still the brute force's: with the threshold
    on or beside a face's exact score, with rows repeated (ties) and rows removed before
    some faces' capture instants."""
    rng = np.random.default_rng(seed)
    store = random_store(rng, rows, copies)
    for i in rng.choice(rows, min(removed, rows), replace=False):
        store.apply_entry(f"W1:s{i:03d}", watchlist_record(f"s{i:03d}", None, updated_at=T0), 0)
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    faces = rng.standard_normal((queries, DIM)).astype(np.float32)
    # some faces near a row (scores from 0.5 to 1), the rest random (scores near 0)
    near = rng.integers(0, rows, queries // 2)
    blend = rng.uniform(0.0, 1.0, (queries // 2, 1)).astype(np.float32)
    faces[: queries // 2] = snapshot.matrix[near] + blend * faces[: queries // 2] / np.sqrt(DIM)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    # half the faces captured after the removals, half before
    at = np.where(np.arange(queries) % 2 == 0, T0_MS + 1, T0_MS - 1)
    valid = snapshot.valid_at(at)  # (faces, rows)
    exact = brute_force(snapshot.matrix, faces)
    exact[~valid] = -np.inf  # removed before the face's capture
    target = exact.max(axis=1)[pick % queries]
    threshold = (float(target) if np.isfinite(target) else 0.5) + nudge
    batch = match_batch(faces, snapshot, threshold, at)
    for scores, match in zip(exact, batch, strict=True):
        if scores.max() < threshold:
            assert match is None
        else:
            assert match is not None
            best = int(np.flatnonzero(scores == scores.max())[0])
            assert (match.row, match.score) == (best, scores.max())


@pytest.mark.parametrize(("dimension", "margin"), [(32, 1e-4), (512, 1e-4), (830, 1e-4)])
def test_candidate_margin_is_the_fixed_margin_up_to_830_dimensions(
    dimension: int, margin: float
) -> None:
    assert candidate_margin(dimension) == margin


def test_candidate_margin_covers_twice_the_float32_rounding_bound_above() -> None:
    for dimension in (831, 1024, 2048, 4096):
        bound = dimension * 2.0**-24  # a float32 dot product of unit vectors is off by less
        assert candidate_margin(dimension) >= 2 * bound + 5e-7
    assert candidate_margin(4096) < 5e-4


def blas_spy() -> tuple[type[np.ndarray], list[list[int]], list[int]]:
    """An ndarray view type that notes every BLAS library's thread count when it multiplies.

    Returns the type, the list it appends to, and the counts before any product.
    """
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    seen: list[list[int]] = []

    class Spy(np.ndarray):
        def __matmul__(self, other: np.ndarray) -> np.ndarray:  # type: ignore[override]
            seen.append([lib["num_threads"] for lib in blas.info()])
            return np.asarray(self) @ other

    return Spy, seen, [lib["num_threads"] for lib in blas.info()]


def test_the_product_runs_on_one_blas_thread_and_leaves_the_library_setting() -> None:
    from streams.worker import matching

    spy, seen, default = blas_spy()
    queries = np.stack([unit(1), unit(2)]).view(spy)
    matrix = np.stack([unit(3), unit(4), unit(5)])
    product = matching.scores_of(queries, matrix)
    np.testing.assert_array_equal(product, np.asarray(queries) @ matrix.T)
    assert seen == [[matching.BLAS_THREADS] * len(default)]
    assert blas_spy()[2] == default


def test_a_large_watchlist_product_runs_on_the_configured_threads() -> None:
    from streams.worker import matching

    spy, seen, _ = blas_spy()
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((2, DIM)).astype(np.float32).view(spy)
    small = rng.standard_normal((matching.LARGE_ROWS - 1, DIM)).astype(np.float32)
    large = rng.standard_normal((matching.LARGE_ROWS, DIM)).astype(np.float32)
    try:
        matching.use_large_product_threads(2)
        matching.scores_of(queries, small)
        matching.scores_of(queries, large)
        matching.use_large_product_threads(1)
        matching.scores_of(queries, large)
    finally:
        matching.use_large_product_threads(1)
    assert [max(counts) for counts in seen] == [matching.BLAS_THREADS, 2, 1]
    with pytest.raises(ValueError, match="at least 1"):
        matching.use_large_product_threads(0)
