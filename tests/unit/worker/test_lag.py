"""The worker's lag gauge follows the assignment and Faust's committed offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client import REGISTRY

from streams.worker.runtime.lag import LagGauge, partition_lag


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    ends: dict[TP, int]
    _committed_offset: dict[TP, int] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int:
        return self.ends[tp]


@dataclass
class FakeApp:
    consumer: FakeConsumer


def value(topic: str, partition: int) -> float | None:
    labels = {"topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value("lfr_worker_consumer_lag", labels)


def test_partition_lag() -> None:
    assert partition_lag(10, 4) == 6
    assert partition_lag(10, 10) == 0
    assert partition_lag(None, 4) is None
    assert partition_lag(10, None) is None


def test_gauge_tracks_assignment() -> None:
    a, b, other = TP("lagtest.det", 0), TP("lagtest.det", 1), TP("lagtest-changelog", 0)
    consumer = FakeConsumer({a: 50, b: 9, other: 7}, {a: 20, b: 9, other: 0})
    gauge = LagGauge(FakeApp(consumer), ["lagtest.det"])
    gauge.update()
    assert (value("lagtest.det", 0), value("lagtest.det", 1)) == (30.0, 0.0)
    assert value("lagtest-changelog", 0) is None
    del consumer.ends[b]  # revoked
    gauge.update()
    assert value("lagtest.det", 1) is None and value("lagtest.det", 0) == 30.0
