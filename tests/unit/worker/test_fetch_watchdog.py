"""The fetch watchdog rewinds only a partition stalled twice alike, never a busy one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.worker.runtime.fetch_watchdog import FetchWatchdog, PartitionState, stalled


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True)
class FakeMessage:
    tp: TP


@dataclass
class FakeFlow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class FakeConsumer:
    positions: dict[TP, int]
    _committed_offset: dict[TP, int]
    _acked: dict[TP, list[int]] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    seeks: list[tuple[TP, int]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return set(self.positions)

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset


@dataclass
class FakeApp:
    consumer: FakeConsumer
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    rebalancing: bool = False


ADJ = TP("adjudications", 1)
DET = TP("detections", 0)
CHANGELOG = TP("app-windows-changelog", 0)


def test_stalled_needs_records_past_the_commit_with_nothing_pending() -> None:
    assert stalled(PartitionState(committed=6, position=13, acked=0, in_flight=0))
    assert not stalled(PartitionState(committed=13, position=13, acked=0, in_flight=0))
    assert not stalled(PartitionState(committed=6, position=13, acked=3, in_flight=0))
    assert not stalled(PartitionState(committed=6, position=13, acked=0, in_flight=2))
    assert not stalled(PartitionState(committed=None, position=13, acked=0, in_flight=0))


def test_rewinds_on_the_second_identical_check_only() -> None:
    consumer = FakeConsumer(
        positions={ADJ: 13, DET: 40, CHANGELOG: 9},
        _committed_offset={ADJ: 6, DET: 40, CHANGELOG: 2},
    )
    watchdog = FetchWatchdog(FakeApp(consumer), ["adjudications", "detections"])
    assert asyncio.run(watchdog.tick()) == []  # first sight: only a suspect
    assert asyncio.run(watchdog.tick()) == [ADJ]
    assert consumer.seeks == [(ADJ, 6)]  # the changelog is not ours to rewind
    assert asyncio.run(watchdog.tick()) == []  # position is back at the commit


def test_progress_between_checks_is_not_a_stall() -> None:
    consumer = FakeConsumer(positions={ADJ: 13}, _committed_offset={ADJ: 6})
    watchdog = FetchWatchdog(FakeApp(consumer), ["adjudications"])
    asyncio.run(watchdog.tick())
    consumer.positions[ADJ] = 20  # more was fetched: the state changed
    assert asyncio.run(watchdog.tick()) == []
    consumer._unacked_messages = {FakeMessage(ADJ)}  # now in flight at the agent
    assert asyncio.run(watchdog.tick()) == []
    assert consumer.seeks == []


def test_quiet_during_a_rebalance() -> None:
    consumer = FakeConsumer(positions={ADJ: 13}, _committed_offset={ADJ: 6})
    app = FakeApp(consumer)
    watchdog = FetchWatchdog(app, ["adjudications"])
    asyncio.run(watchdog.tick())
    app.rebalancing = True
    assert asyncio.run(watchdog.tick()) == []
    app.rebalancing = False
    assert asyncio.run(watchdog.tick()) == []  # suspicion was reset by the rebalance
    assert asyncio.run(watchdog.tick()) == [ADJ]
