"""Alerts do not depend on how lfr.watchlist, lfr.operations and lfr.detections interleave.

The small simulator scenario's records are fed to the worker's pure stages
(:class:`ReferenceData`, as the broadcast service feeds it, and
:func:`process_batch`, as the detections agent calls it) in random orders:
the reference partitions merged in any order (``lfr publish`` of the
watchlist before the operations, a broker restart that delivers one
partition long before another), read any amount ahead of the detections,
with memory sweeps at any point. Every order must raise exactly the alerts
of the canonical (event-time) order, which are the simulator's truth.

Kafka keeps order only within a partition, so the records of one partition
stay in order, and a reference record is never read later than in the
canonical order (a window that arrives after its detections gates them out
in any design).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.simulator import build_scenario, ground_truth, timeline
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import DetectionContext, process_batch
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.reference import Owns, ReferenceData
from streams.worker.runtime.inputs import partition_of
from streams.worker.source import SourceRecord
from streams.worker.windows import window_from_record

PARTITIONS = 3
WATCHLIST_PARTITIONS = 2
GRACE_S = 120.0  # the clock below never reaches it: only the stream may free memory
EXAMPLES = int(os.environ.get("LFR_ORDER_EXAMPLES", "25"))
"""Random interleavings per run (about 0.7 s each); raise it for a longer search."""


@dataclass(frozen=True, slots=True)
class Reference:
    index: int  # position in the canonical order
    lane: tuple[str, int]  # (topic, partition)
    key: str
    value: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Detection:
    index: int
    record: SourceRecord
    needs: int  # reference records with a canonical index below this must be applied


@dataclass(frozen=True, slots=True)
class Scenario:
    references: tuple[Reference, ...]
    detections: tuple[Detection, ...]
    events: dict[bytes, dict[str, Any]]
    truth: frozenset[str]


@cache
def small() -> Scenario:
    """The small scenario split into reference records and detections (built once)."""
    scenario = build_scenario("small")
    references: list[Reference] = []
    detections: list[Detection] = []
    events: dict[bytes, dict[str, Any]] = {}
    for index, item in enumerate(timeline(scenario)):
        key = (item.key or b"").decode()
        if item.topic == "operations":
            lane = ("operations", partition_of(key, PARTITIONS))
            references.append(Reference(index, lane, key, item.value))
        elif item.topic == "watchlist":
            lane = ("watchlist", partition_of(key, WATCHLIST_PARTITIONS))
            references.append(Reference(index, lane, key, item.value))
        elif item.topic == "detections":
            assert item.value is not None
            value = str(len(events)).encode()
            events[value] = item.value
            record = SourceRecord(
                topic="lfr.detections", partition=partition_of(key, PARTITIONS),
                offset=len(detections), key=item.key, value=value, timestamp_ms=item.at_ms,
            )  # fmt: skip
            detections.append(Detection(index, record, len(references)))
    truth = frozenset(ground_truth(scenario)["alert_ids"])
    return Scenario(tuple(references), tuple(detections), events, truth)


def owns_all(_site: str) -> bool:
    return True


class Worker:
    """The reference data and the detections stage, as the worker drives them."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.ref = ReferenceData(DeletionPolicy(grace_s=GRACE_S))
        self.applied: set[int] = set()
        self.alerts: set[str] = set()
        self.unmatched = 0
        self.ctx = DetectionContext(
            windows_of=self.ref.windows_of,
            watchlist=self.ref.snapshot,
            high_water_of=lambda _site: None,
            pseudonymiser=Pseudonymiser(b"order-independence"),
            now_ms=lambda: 0,
            is_deleted=self.ref.is_deleted,
            deleted_by=self.ref.deleted_by,
            decode=lambda _name, value: dict(scenario.events[value]),
        )

    def read(self, record: Reference) -> None:
        if record.lane[0] == "operations":
            assert record.value is not None
            self.ref.apply_window(window_from_record(record.value), 0.0)
        else:
            self.ref.apply_entry(record.key, record.value, 0.0)
        self.applied.add(record.index)

    def sweep(self, owns: Owns | None) -> None:
        self.ref.sweep(0.0, owns)

    def batch(self, detections: list[Detection]) -> None:
        result = process_batch([d.record for d in detections], self.ctx)
        assert not result.dead_letters, [d["reason"] for d in result.dead_letters]
        self.alerts.update(alert["alert_id"] for alert, _ in result.alerts)
        self.unmatched += sum(result.unmatched_retired.values())
        self.ref.observe(result.stream_time, self.ref.clock.epoch)
        self.sweep(owns_all)


def canonical(scenario: Scenario, batch_size: int = 500) -> Worker:
    """Everything in event-time order, as live traffic delivers it."""
    worker = Worker(scenario)
    pending: list[Detection] = []
    references = iter(scenario.references)
    for detection in scenario.detections:
        if pending and (len(pending) == batch_size or detection.needs > pending[-1].needs):
            worker.batch(pending)
            pending = []
        while len(worker.applied) < detection.needs:
            worker.read(next(references))
            worker.sweep(owns_all)
        pending.append(detection)
    worker.batch(pending)
    for record in references:
        worker.read(record)
        worker.sweep(owns_all)
    return worker


def merged(scenario: Scenario, rng: random.Random, priority: list[tuple[str, int]],
           mix: float) -> Iterator[Reference]:  # fmt: skip
    """The reference records, each partition in order, partitions merged at random.

    With probability ``1 - mix`` the next record comes from the first
    partition in ``priority`` that has one left (``mix`` 0: one partition
    after the other, as separate ``lfr publish`` calls give), otherwise from
    a random partition.
    """
    lanes: dict[tuple[str, int], list[Reference]] = {lane: [] for lane in priority}
    for record in scenario.references:
        lanes[record.lane].append(record)
    for queue in lanes.values():
        queue.reverse()
    while any(lanes.values()):
        live = [lane for lane in priority if lanes[lane]]
        lane = rng.choice(live) if rng.random() < mix else live[0]
        yield lanes[lane].pop()


def interleaved(scenario: Scenario, rng: random.Random, priority: list[tuple[str, int]],
                mix: float, publish_first: bool) -> Worker:  # fmt: skip
    """One random order: reference records read early by any amount, sweeps anywhere."""
    worker = Worker(scenario)
    order = merged(scenario, rng, priority, mix)
    owners: list[Callable[[str], bool] | None] = [None, owns_all]

    def read_one() -> bool:
        record = next(order, None)
        if record is None:
            return False
        worker.read(record)
        if rng.random() < 0.2:
            worker.sweep(rng.choice(owners))
        return True

    if publish_first:
        while read_one():
            pass
    detections = list(scenario.detections)
    prefix = 0  # canonical reference records read, counted from the first
    while detections:
        size = rng.choice((1, 7, 50, 500))
        batch, detections = detections[:size], detections[size:]
        while prefix < batch[-1].needs:
            if scenario.references[prefix].index in worker.applied:
                prefix += 1
            else:
                read_one()
        for _ in range(rng.choice((0, 0, 1, 10, 200))):
            read_one()
        worker.batch(batch)
    while read_one():
        pass
    return worker


def test_the_canonical_order_raises_the_simulators_alerts() -> None:
    scenario = small()
    worker = canonical(scenario)
    assert worker.alerts == scenario.truth
    assert worker.unmatched == 0
    assert worker.ref.store.entry_count == 0  # every list was deleted once it was passed


def test_the_watchlist_published_before_the_operations_loses_nothing() -> None:
    # `lfr publish` of watchlist.jsonl, then operations.jsonl, then the detections
    scenario = small()
    lanes = sorted({r.lane for r in scenario.references}, key=lambda lane: lane[0] != "watchlist")
    worker = interleaved(scenario, random.Random(0), lanes, 0.0, publish_first=True)
    assert worker.alerts == scenario.truth and worker.unmatched == 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    priority=st.permutations(
        [("operations", p) for p in range(PARTITIONS)]
        + [("watchlist", p) for p in range(WATCHLIST_PARTITIONS)]
    ),
    mix=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    publish_first=st.booleans(),
)
def test_any_interleaving_raises_the_canonical_alerts(
    seed: int, priority: list[tuple[str, int]], mix: float, publish_first: bool
) -> None:
    scenario = small()
    lanes = [lane for lane in priority if any(r.lane == lane for r in scenario.references)]
    worker = interleaved(scenario, random.Random(seed), lanes, mix, publish_first)
    assert worker.alerts == scenario.truth
    assert worker.unmatched == 0
