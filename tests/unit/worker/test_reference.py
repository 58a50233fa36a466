"""Matching does not depend on how windows, watchlist and detections interleave.

Replays and catch-ups deliver a deployment's ENDED window and its watchlist's
REMOVEs/tombstones before the detections agent reaches the deployment's
detections. These tests feed :class:`ReferenceData` (what the broadcast
service holds) in such orders and run the real detections stage against it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import BatchResult, DetectionContext, process_batch
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.reference import ReferenceData
from streams.worker.source import SourceRecord
from streams.worker.windows import window_from_record

from .conftest import T0, detection, unit, watchlist_record, window_record

MS = 1000
T0_MS = int(T0.timestamp() * MS)
END_MS = T0_MS + 2 * 3600 * MS  # window_record: 09:00-11:00
GRACE_S = 120.0
SUBJECTS = ("p0", "p1", "p2")

Step = tuple[str, Any]  # ("window", record) or ("entry", (key, record | None))


def setup_steps() -> list[Step]:
    steps: list[Step] = [("window", window_record(status="PLANNED", authorised_by=None))]
    steps += [("entry", (f"W1:{s}", watchlist_record(s, unit(i)))) for i, s in enumerate(SUBJECTS)]
    steps.append(("window", window_record()))
    return steps


def end_steps(*, with_remove: bool = True) -> list[Step]:
    ended = window_record(status="ENDED", updated_at=T0 + timedelta(hours=2, minutes=2))
    steps: list[Step] = [("window", ended)]
    removed = T0 + timedelta(hours=2, minutes=30)
    for s in SUBJECTS:
        if with_remove:
            steps.append(("entry", (f"W1:{s}", watchlist_record(s, None, updated_at=removed))))
        steps.append(("entry", (f"W1:{s}", None)))
    return steps


def apply(ref: ReferenceData, steps: list[Step], learnt_s: float = 0.0) -> None:
    for kind, payload in steps:
        if kind == "window":
            ref.apply_window(window_from_record(payload), learnt_s)
        else:
            ref.apply_entry(*payload, learnt_s)


def context(ref: ReferenceData) -> DetectionContext:
    return DetectionContext(
        windows_of=ref.windows_of,
        watchlist=ref.snapshot,
        high_water_of=lambda _site: None,
        pseudonymiser=Pseudonymiser(b"test"),
        now_ms=lambda: 1,
        is_deleted=ref.is_deleted,
        deleted_by=ref.deleted_by,
    )


def in_window_batch() -> list[SourceRecord]:
    at = T0 + timedelta(minutes=5)
    return [
        detection(unit(0), event_id="hit0", at=at),
        detection(unit(1), event_id="hit1", at=T0 + timedelta(hours=1, minutes=59)),
        detection(unit(500), event_id="miss", at=at),
    ]


def alerts_of(result: BatchResult) -> list[tuple[str, str, int]]:
    return sorted(
        (a["event_id"], a["subject_ref"], a["watchlist_version"]) for a, _ in result.alerts
    )


def run(before: list[Step], after: list[Step]) -> BatchResult:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, before)
    result = process_batch(in_window_batch(), context(ref))
    apply(ref, after)
    return result


BASELINE = run(setup_steps(), end_steps())


def test_the_baseline_raises_the_expected_alerts() -> None:
    ref = Pseudonymiser(b"test").subject_ref
    assert [(e, s) for e, s, _ in alerts_of(BASELINE)] == [("hit0", ref("p0")), ("hit1", ref("p1"))]
    assert [s["matched"] for s in BASELINE.scans] == [True, True, False]


@pytest.mark.parametrize("read_early", range(1, len(end_steps()) + 1))
def test_end_and_removals_read_before_the_detections_change_nothing(read_early: int) -> None:
    steps = end_steps()
    result = run(setup_steps() + steps[:read_early], steps[read_early:])
    assert alerts_of(result) == alerts_of(BASELINE)
    assert [s["matched"] for s in result.scans] == [True, True, False]
    assert not result.dead_letters and not result.unmatched_retired


def test_tombstones_without_remove_count_from_the_newest_update_seen() -> None:
    # purge-on-end tombstones (written after the ENDED window): no REMOVE precedes
    # them, so they count from the newest updated_at seen, the ENDED window's
    result = run(setup_steps() + end_steps(with_remove=False), [])
    assert alerts_of(result) == alerts_of(BASELINE)


def test_an_entry_removed_mid_deployment_stops_matching_at_its_removal() -> None:
    removed = T0 + timedelta(hours=1)
    late_remove = ("entry", ("W1:p1", watchlist_record("p1", None, updated_at=removed)))
    result = run([*setup_steps(), late_remove], [])
    # hit1 was captured after p1's removal: not an alert, in whatever order it is read
    assert [e for e, _, _ in alerts_of(result)] == ["hit0"]


def deployed(policy: DeletionPolicy | None = None) -> ReferenceData:
    ref = ReferenceData(policy or DeletionPolicy(grace_s=GRACE_S))
    apply(ref, setup_steps())
    apply(ref, end_steps()[:1], learnt_s=100.0)  # the ENDED window, learnt at t=100 s
    return ref


def owns_all(_site: str) -> bool:
    return True


def test_deleted_once_the_stream_passes_the_end_at_every_owned_site() -> None:
    ref = deployed()
    live = ref.store._lists["W1"].template("p0")
    ref.observe({"S1": END_MS - 1})
    assert ref.sweep(100.0, owns_all) == [] and ref.snapshot("W1") is not None
    ref.observe({"S1": END_MS})
    assert sorted(ref.sweep(100.0, owns_all)) == ["W1:p0", "W1:p1", "W1:p2"]
    assert ref.snapshot("W1") is None and ref.is_deleted("W1")
    assert ref.store.entry_count == 0 and not live.any()


def test_a_site_this_worker_does_not_own_leaves_only_the_grace() -> None:
    # seen on a restart: a partial assignment first, the site's partition 12 s later
    ref = deployed()
    ref.observe({"S1": END_MS + 3600 * MS})
    assert ref.sweep(100.0, owns=lambda site: site != "S1") == []
    assert ref.sweep(100.0 + GRACE_S, owns=lambda site: site != "S1") != []
    assert ref.is_deleted("W1")


def test_a_list_no_window_names_is_kept_whatever_the_clocks_say() -> None:
    # entries and their REMOVEs read before the window (watchlist published
    # first, or a broker restart): the window's detections still need them
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    ref.apply_entry("W9:a", watchlist_record("a", unit(1), watchlist_id="W9"), 1.0)
    ref.apply_entry("W9:a", watchlist_record("a", None, watchlist_id="W9", updated_at=T0), 1.0)
    ref.observe({"S1": T0_MS + 10 * 3600 * MS})
    for owns in (None, owns_all):
        ref.sweep(1.0 + 10 * GRACE_S, owns)
        assert ref.store.entry_count == 1


def test_the_grace_of_a_removal_read_first_counts_from_the_window() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    removed = T0 + timedelta(hours=2, minutes=30)
    apply(ref, [("entry", ("W1:p0", watchlist_record("p0", unit(0))))], learnt_s=0.0)
    apply(ref, [("entry", ("W1:p0", watchlist_record("p0", None, updated_at=removed)))], 0.0)
    apply(ref, [("window", window_record())], learnt_s=500.0)
    assert ref.sweep(500.0 + GRACE_S - 1, owns=None) == [] and ref.store.entry_count == 1
    ref.sweep(500.0 + GRACE_S, owns=None)
    assert ref.store.entry_count == 0


def test_a_removal_read_first_goes_once_the_stream_passes_it() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    removed = T0 + timedelta(hours=2, minutes=30)
    apply(ref, [("entry", ("W1:p0", watchlist_record("p0", unit(0))))])
    apply(ref, [("entry", ("W1:p0", watchlist_record("p0", None, updated_at=removed)))])
    apply(ref, [("window", window_record())])
    ref.observe({"S1": int(removed.timestamp() * MS) - 1})
    ref.sweep(0.0, owns_all)
    assert ref.store.entry_count == 1
    ref.observe({"S1": int(removed.timestamp() * MS)})
    ref.sweep(0.0, owns_all)
    assert ref.store.entry_count == 0


def test_revoked_partitions_rewind_the_stream_clock() -> None:
    ref = deployed()
    started_in = ref.clock.epoch
    ref.clock.reset()  # partitions revoked while the batch was in flight
    ref.observe({"S1": END_MS}, started_in)
    assert ref.sweep(100.0, owns_all) == [] and ref.clock.at("S1") is None
    ref.observe({"S1": END_MS}, ref.clock.epoch)
    assert ref.sweep(100.0, owns_all) != []


def test_unknown_ownership_leaves_only_the_grace() -> None:
    ref = deployed()
    ref.observe({"S1": END_MS + 3600 * MS})
    assert ref.sweep(100.0, owns=None) == []
    assert ref.sweep(100.0 + GRACE_S, owns=None) != []


def test_allowed_lateness_extends_the_stream_time_bound() -> None:
    ref = deployed(DeletionPolicy(grace_s=GRACE_S, lateness_ms=60 * MS))
    ref.observe({"S1": END_MS + 59 * MS})
    assert ref.sweep(100.0, owns_all) == []
    ref.observe({"S1": END_MS + 60 * MS})
    assert ref.sweep(100.0, owns_all) != []


def test_deleted_after_the_wall_clock_grace_with_a_fake_clock() -> None:
    clock = {"now": 100.0}
    ref = deployed()
    snapshot = ref.snapshot("W1")
    assert snapshot is not None
    clock["now"] += GRACE_S - 0.001
    assert ref.sweep(clock["now"], owns_all) == [] and ref.store.entry_count == 3
    clock["now"] += 0.001
    assert len(ref.sweep(clock["now"], owns_all)) == 3
    assert ref.store.entry_count == 0 and not snapshot.matrix.any()


def test_a_gated_in_detection_after_deletion_is_counted_not_matched() -> None:
    ref = deployed()
    ref.sweep(100.0 + GRACE_S, owns_all)
    result = process_batch(in_window_batch(), context(ref))
    assert result.alerts == [] and not result.dead_letters
    assert result.unmatched_retired == {("S1", "D1", "grace_expired"): 3}
    assert [s["matched"] for s in result.scans] == [False, False, False]


def test_removed_entries_are_deleted_when_the_stream_passes_their_removal() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, setup_steps())
    removed = T0 + timedelta(hours=1)
    ref.apply_entry("W1:p1", watchlist_record("p1", None, updated_at=removed), 50.0)
    live = ref.store._lists["W1"].template("p1")
    removed_ms = T0_MS + 3600 * MS
    ref.observe({"S1": removed_ms - 1})
    ref.sweep(50.0, owns_all)
    assert ref.store.entry_count == 3
    ref.observe({"S1": removed_ms})
    assert ref.sweep(50.0, owns_all) == []  # not a retirement: nothing to tombstone
    snapshot = ref.snapshot("W1")
    assert snapshot is not None and snapshot.subject_ids == ("p0", "p2") and not live.any()


def test_a_cancelled_deployment_covered_nothing_so_its_list_goes_at_once() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, setup_steps()[:-1])  # PLANNED and the entries
    cancelled = window_record(status="CANCELLED", authorised_by=None, updated_at=T0)
    apply(ref, [("window", cancelled)], learnt_s=10.0)
    assert len(ref.sweep(10.0, owns_all)) == 3


def test_a_list_shared_with_a_live_deployment_is_not_retired() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, setup_steps())
    apply(ref, [("window", window_record(deployment_id="D2", site_id="S2"))])
    apply(ref, end_steps()[:1])
    assert ref.sweep(1e9, owns_all) == [] and ref.store.entry_count == 3


def test_gating_reads_every_window_of_the_view_in_any_version_order() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    ended = window_record(status="ENDED", updated_at=T0 + timedelta(hours=2, minutes=2))
    apply(ref, [("window", ended), ("window", window_record())])  # older ACTIVE read last
    (window,) = ref.windows_of("S1")
    assert window.status == "ENDED" and window.covers(T0_MS) and not window.covers(END_MS)
    assert ref.windows.sites_of("W1") == {"S1"}


def test_the_grace_clock_stands_still_while_nothing_is_assigned() -> None:
    from streams.worker.deletion import GraceClock

    clock = GraceClock(max_pause_s=100.0)
    assert clock.now(10.0, running=False) == 10.0
    assert clock.now(70.0, running=False) == 10.0  # waiting for the group
    assert clock.now(80.0, running=True) == 10.0
    assert clock.now(90.0, running=True) == 20.0
    assert clock.now(200.0, running=False) == 130.0
    assert clock.now(400.0, running=False) == 300.0  # total pause capped at 100 s


def test_a_retirement_purges_every_key_of_the_list_even_removed_ones() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, setup_steps())
    removed = T0 + timedelta(hours=1)
    ref.apply_entry("W1:p1", watchlist_record("p1", None, updated_at=removed), 0.0)
    ref.observe({"S1": END_MS})
    ref.sweep(0.0, owns_all)  # p1's removal is passed: deleted from memory, still on the topic
    assert ref.store.entry_count == 2
    apply(ref, end_steps(with_remove=False)[:1])  # the ENDED window
    assert sorted(ref.sweep(0.0, owns_all)) == ["W1:p0", "W1:p1", "W1:p2"]
    # a record of the destroyed list read afterwards is purged too, never held
    ref.apply_entry("W1:p9", watchlist_record("p9", unit(9), updated_at=T0), 0.0)
    assert ref.sweep(0.0, owns_all) == ["W1:p9"] and ref.store.entry_count == 0


@pytest.mark.parametrize(
    ("updated_at", "refused"),
    [
        (T0 - timedelta(hours=25), True),  # more than 24 h before the start
        (T0 - timedelta(hours=23), False),
        (T0 + timedelta(hours=1), False),  # during the deployment
        (T0 + timedelta(hours=2), True),  # at its end or after
    ],
)
def test_templates_outside_the_build_period_are_refused(updated_at: Any, refused: bool) -> None:
    from streams.worker.errors import EntryOutsideBuildPeriodError

    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    apply(ref, [("window", window_record())])
    entry = watchlist_record("p0", unit(0), updated_at=updated_at)
    if refused:
        with pytest.raises(EntryOutsideBuildPeriodError):
            ref.apply_entry("W1:p0", entry, 0.0)
        assert ref.store.entry_count == 0
        # not held, but still on the topic: the list's purge tombstones it
        apply(
            ref, [("window", window_record(status="CANCELLED", updated_at=T0 + timedelta(days=9)))]
        )
        assert ref.sweep(0.0, owns_all) == ["W1:p0"]
    else:
        ref.apply_entry("W1:p0", entry, 0.0)
        assert ref.store.entry_count == 1
    # a REMOVE is never refused
    ref.apply_entry("W1:p0", watchlist_record("p0", None, updated_at=T0 + timedelta(days=2)), 0)


def test_an_entry_read_before_any_window_is_held_not_refused() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
    ref.apply_entry("W1:p0", watchlist_record("p0", unit(0), updated_at=T0 - timedelta(days=3)), 0)
    assert ref.store.entry_count == 1
