"""The in-memory watchlists: ops in order, event-time removals, deferred deletion, mismatches."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.templates import template_from_bytes, template_to_bytes
from streams.worker.deletion import DeletionRule
from streams.worker.errors import DimensionMismatchError
from streams.worker.snapshot import NEVER
from streams.worker.watchlist_store import WatchlistStore, normalise
from streams.worker.window_view import Retirement

from .conftest import T0, unit, watchlist_record

T0_MS = int(T0.timestamp() * 1000)
ADDED_MS = T0_MS - 3 * 3600_000  # watchlist_record's default updated_at


def always(_watchlist_id: str, _at_ms: int | None, _learnt_s: float) -> DeletionRule | None:
    return DeletionRule.STREAM_PASSED


def never(_watchlist_id: str, _at_ms: int | None, _learnt_s: float) -> DeletionRule | None:
    return None


def test_add_update_remove_and_tombstone_apply_in_order() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.apply_entry("W1:b", watchlist_record("b", unit(2)))
    store.apply_entry("W1:a", watchlist_record("a", unit(3), op="UPDATE"))
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("a", "b")
    assert np.allclose(snapshot.matrix[0], unit(3), atol=1e-3)
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0))
    store.apply_entry("W1:b", None)
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    assert snapshot.removed_at_ms.tolist() == [T0_MS, T0_MS]  # b: newest updated_at seen
    store.sweep(always)
    assert store.entry_count == 0
    assert store.snapshot("W1") is None and store.snapshot("W2") is None
    assert not store.is_deleted("W1")  # removed entry by entry, not a retired watchlist


def test_key_must_match_record() -> None:
    with pytest.raises(ValueError, match="key"):
        WatchlistStore().apply_entry("W1:zz", watchlist_record("a", unit(1)))


def test_dimension_mismatch_is_refused() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    with pytest.raises(DimensionMismatchError):
        store.apply_entry("W1:b", watchlist_record("b", unit(2, dim=64)))


def test_a_tombstone_after_a_remove_keeps_the_remove_instant() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0))
    store.note_update("W1", T0_MS + 999_000)
    store.apply_entry("W1:a", None)
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.removed_at_ms.tolist() == [T0_MS]


def test_a_tombstone_alone_counts_from_the_newest_update_seen_including_windows() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.note_update("W1", T0_MS + 7_200_000)  # e.g. the ENDED window naming W1
    store.apply_entry("W1:a", None)
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.removed_at_ms.tolist() == [T0_MS + 7_200_000]


def test_retirement_is_deferred_and_then_destroys_older_entries_for_good() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.retire(Retirement("W1", T0_MS + 7_260_000, T0_MS + 7_200_000), learnt_s=5.0)
    seen: list[tuple[str, int | None, float]] = []

    def record_and_refuse(watchlist_id: str, at_ms: int | None, learnt_s: float) -> None:
        seen.append((watchlist_id, at_ms, learnt_s))
        return None

    assert store.sweep(record_and_refuse) == []
    assert seen == [("W1", T0_MS + 7_200_000, 5.0)]
    # an entry read after the end but before the deletion is held too
    store.apply_entry("W1:b", watchlist_record("b", unit(2)))
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("a", "b")
    assert store.sweep(always) == ["W1:a", "W1:b"]
    assert store.snapshot("W1") is None and store.is_deleted("W1")
    assert not snapshot.matrix.any()
    # replayed entries of the destroyed list are not held again; a rebuild is
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    assert store.snapshot("W1") is None
    rebuilt = watchlist_record("c", unit(3), updated_at=T0 + timedelta(days=1))
    store.apply_entry("W1:c", rebuilt)
    again = store.snapshot("W1")
    assert again is not None and again.subject_ids == ("c",) and not store.is_deleted("W1")


def test_removal_is_kept_until_the_sweep_says_it_is_due() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.apply_entry("W1:b", watchlist_record("b", unit(2)))
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0), learnt_s=3.0)
    assert store.sweep(never) == [] and store.entry_count == 2
    held = store._lists["W1"].template("a")  # the live copy of the template
    asked: list[tuple[int | None, float]] = []

    def only_a(_w: str, at_ms: int | None, learnt_s: float) -> DeletionRule:
        asked.append((at_ms, learnt_s))
        return DeletionRule.STREAM_PASSED

    assert store.sweep(only_a) == []  # entry removals are not retirements: nothing to purge
    assert asked == [(T0_MS, 3.0)]
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("b",)
    assert snapshot.removed_at_ms.tolist() == [NEVER]
    assert not held.any()


def test_re_adding_a_removed_subject_makes_it_valid_again() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.apply_entry("W1:a", watchlist_record("a", None, updated_at=T0))
    store.apply_entry("W1:a", watchlist_record("a", unit(1), updated_at=T0 + timedelta(hours=1)))
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.removed_at_ms.tolist() == [NEVER]
    assert store.sweep(always) == [] and store.entry_count == 1


# --- one copy of each template ------------------------------------------------------


def held_template(seed: int) -> np.ndarray:
    """What the store holds for ``unit(seed)``: decoded from the wire and normalised."""
    return normalise(template_from_bytes(template_to_bytes(unit(seed))))


def backing(store: WatchlistStore, watchlist_id: str = "W1") -> np.ndarray:
    """The watchlist's one matrix (every row, used or not)."""
    matrix = store._lists[watchlist_id].rows.matrix
    assert matrix is not None
    return matrix


def test_the_snapshot_matrix_is_the_store_matrix_and_the_only_copy() -> None:
    store = WatchlistStore()
    for n in range(40):
        store.apply_entry(f"W1:s{n:02d}", watchlist_record(f"s{n:02d}", unit(n)))
    snapshot = store.snapshot("W1")
    assert snapshot is not None
    assert snapshot.matrix is backing(store) and snapshot.matrix.shape == (40, 32)
    entries = store._lists["W1"].entries.values()
    fields = [getattr(e, name) for e in entries for name in e.__slots__]
    assert not any(isinstance(value, np.ndarray) for value in fields)  # rows, not arrays
    assert store.snapshot("W1") is snapshot  # cached until the watchlist changes


def test_replaced_and_deleted_templates_leave_no_row_behind() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)))
    store.apply_entry("W1:b", watchlist_record("b", unit(2)))
    store.apply_entry("W1:c", watchlist_record("c", unit(3)))
    store.apply_entry("W1:a", watchlist_record("a", unit(4), op="UPDATE"))
    rows = backing(store)
    assert not any(np.array_equal(row, held_template(1)) for row in rows)
    store.apply_entry("W1:b", watchlist_record("b", None, updated_at=T0))
    assert store.sweep(always) == []
    assert not any(np.array_equal(row, held_template(2)) for row in backing(store))
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("a", "c")
    assert np.array_equal(snapshot.matrix, np.stack([held_template(4), held_template(3)]))


OPS = st.lists(
    st.tuples(st.sampled_from(["put", "remove", "tombstone", "sweep", "snapshot"]),
              st.sampled_from("abcdef"), st.integers(0, 9)),
    max_size=60,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_snapshots_hold_exactly_the_live_templates_in_subject_order(
    ops: list[tuple[str, str, int]],
) -> None:
    store = WatchlistStore()
    live: dict[str, int] = {}  # subject -> seed of its template, while held
    removed: set[str] = set()  # removed, held until the sweep
    for op, subject, seed in ops:
        if op == "put":
            store.apply_entry(f"W1:{subject}", watchlist_record(subject, unit(seed)))
            live[subject] = seed
            removed.discard(subject)
        elif op in ("remove", "tombstone"):
            record = watchlist_record(subject, None) if op == "remove" else None
            store.apply_entry(f"W1:{subject}", record)
            if subject in live:
                removed.add(subject)
        elif op == "sweep":
            store.sweep(always)
            for gone in removed:
                live.pop(gone, None)
            removed.clear()
        snapshot = store.snapshot("W1")
        if not live:
            assert snapshot is None or len(snapshot) == 0
            continue
        assert snapshot is not None and snapshot.subject_ids == tuple(sorted(live))
        expected = np.stack([held_template(live[s]) for s in sorted(live)])
        assert np.array_equal(snapshot.matrix, expected)
        # every row of the one matrix is a live template or zero: nothing else lingers
        matrix = backing(store)
        assert matrix.shape == expected.shape and np.array_equal(matrix, expected)
