"""The in-memory watchlists: ops in order, tombstones, retirement, mismatches."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from streams.worker.errors import DimensionMismatchError
from streams.worker.watchlist_store import WatchlistStore
from streams.worker.windows import window_from_record

from .conftest import T0, unit, watchlist_record, window_record


def test_add_update_remove_and_tombstone_apply_in_order() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)), 0)
    store.apply_entry("W1:b", watchlist_record("b", unit(2)), 0)
    store.apply_entry("W1:a", watchlist_record("a", unit(3), op="UPDATE"), 0)
    snapshot = store.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("a", "b")
    assert np.allclose(snapshot.matrix[0], unit(3), atol=1e-3)
    store.apply_entry("W1:a", watchlist_record("a", None), 0)
    store.apply_entry("W1:b", None, 0)
    assert store.entry_count == 0
    assert store.snapshot("W2") is None


def test_key_must_match_record() -> None:
    with pytest.raises(ValueError, match="key"):
        WatchlistStore().apply_entry("W1:zz", watchlist_record("a", unit(1)), 0)


def test_dimension_mismatch_is_refused() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)), 0)
    with pytest.raises(DimensionMismatchError):
        store.apply_entry("W1:b", watchlist_record("b", unit(2, dim=64)), 0)


def test_watchlist_is_dropped_when_its_last_deployment_ends() -> None:
    store = WatchlistStore()
    store.apply_entry("W1:a", watchlist_record("a", unit(1)), 0)
    active = window_from_record(window_record())
    other = window_from_record(window_record(deployment_id="D2"))
    assert store.apply_window(active) == []
    store.apply_window(other)
    ended = window_from_record(window_record(status="ENDED", updated_at=T0 + timedelta(hours=2)))
    assert store.apply_window(ended) == []  # D2 still uses W1
    snapshot = store.snapshot("W1")
    assert snapshot is not None and len(snapshot) == 1
    cancelled = window_from_record(
        window_record(deployment_id="D2", status="CANCELLED", updated_at=T0 + timedelta(hours=2))
    )
    assert store.apply_window(cancelled) == ["W1:a"]
    assert store.snapshot("W1") is None
    assert store.entry_count == 0
    # the old snapshot's templates were overwritten, not just dereferenced
    assert not snapshot.matrix.any()


def test_retirement_does_not_depend_on_topic_interleaving() -> None:
    ended = window_from_record(window_record(status="ENDED", updated_at=T0 + timedelta(hours=2)))
    old_entry = watchlist_record("a", unit(1))
    rebuilt = watchlist_record("b", unit(2), updated_at=T0 + timedelta(days=1))
    for window_first in (True, False):
        store = WatchlistStore()
        if window_first:
            store.apply_window(ended)
        store.apply_entry("W1:a", old_entry, 0)
        store.apply_entry("W1:b", rebuilt, 0)
        if not window_first:
            store.apply_window(ended)
        snapshot = store.snapshot("W1")
        assert snapshot is not None and snapshot.subject_ids == ("b",)
