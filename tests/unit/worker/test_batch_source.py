"""The batch source's bookkeeping without a broker: what it buffers, hands over and
acknowledges, and the offset Faust's own commit logic then computes from it."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple
from weakref import WeakSet

import pytest
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.worker.runtime.batch_source import BatchSource
from streams.worker.runtime.fetch_watchdog import FetchWatchdog
from streams.worker.source import SourceRecord

TOPIC = "in"
P0, P1 = TP(TOPIC, 0), TP(TOPIC, 1)


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in a fresh event loop (the project has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Fetched(NamedTuple):
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"
    timestamp: int = 1


def fetched(*offsets: int) -> list[Fetched]:
    return [Fetched(o) for o in offsets]


class FakeConsumer:
    """The attributes of Faust's consumer that the batch source reads and writes."""

    def __init__(self, assigned: set[TP]) -> None:
        self.assigned = assigned
        self.flow_active = True
        self._buffered_partitions: set[TP] = set()
        self._paused_partitions: set[TP] = set()
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._gap: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._unacked_messages: WeakSet[Any] = WeakSet()
        self._n_acked = 0
        self._waiting_for_ack = None
        self.seeks: list[tuple[TP, int]] = []
        self.full: list[TP] = []
        self.dropped: list[TP] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int:
        return 1000

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def on_buffer_full(self, tp: TP) -> None:
        self.full.append(tp)
        self._buffered_partitions.add(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        self.dropped.append(tp)
        self._buffered_partitions.discard(tp)

    def commit_offset(self, tp: TP) -> int | None:
        """The offset Faust's own commit would write for ``tp`` now."""
        return AIOKafkaFaustConsumer._new_offset(self, tp)  # type: ignore[arg-type]


class FakeFlow:
    async def acquire(self) -> None:
        return None


class FakeMonitor:
    def __init__(self) -> None:
        self.stream_inbound_time: dict[TP, float] = {}

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        return None


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.consumer_generation_id = 1
        self.rebalancing = False
        self.flow_control = FakeFlow()
        self.monitor = FakeMonitor()


class Handler:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[SourceRecord]] = []
        self.fail_on = fail_on

    async def __call__(self, records: list[SourceRecord]) -> None:
        if self.fail_on is not None and any(r.offset == self.fail_on for r in records):
            raise RuntimeError("handler failure")
        self.batches.append(records)


def make(max_batch: int = 500, max_buffered: int | None = None, fail_on: int | None = None
         ) -> tuple[BatchSource, FakeConsumer, FakeApp, Handler]:  # fmt: skip
    consumer = FakeConsumer({P0, P1})
    app = FakeApp(consumer)
    handler = Handler(fail_on)
    source = BatchSource(
        app,  # type: ignore[arg-type]
        TOPIC, handler, max_batch=max_batch, max_buffered=max_buffered,
    )  # fmt: skip
    return source, consumer, app, handler


async def run_until_idle(source: BatchSource) -> None:
    """Run the source's loop until it waits for more records (or halts)."""
    task = asyncio.ensure_future(source.run())
    for _ in range(50):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@in_loop
async def test_batches_split_at_max_batch_and_ack_what_faust_commits() -> None:
    source, consumer, _, handler = make(max_batch=3)
    consumer._read_offset[P0] = 0
    other = TP("other", 0)
    batch: dict[Any, list[Any]] = {P0: fetched(0, 1, 2, 3, 4), P1: fetched(7, 8), other: [1]}
    await source.offer(consumer, batch, {P0, P1})
    assert batch == {other: [1]}, "other topics stay with Faust"
    assert len(consumer._unacked_messages) == 2, "one in-flight placeholder per chunk"
    await run_until_idle(source)
    assert [[(r.partition, r.offset) for r in b] for b in handler.batches] == [
        [(0, 0), (0, 1), (0, 2)],
        [(0, 3), (0, 4), (1, 7)],
        [(1, 8)],
    ]
    assert consumer.commit_offset(P0) == 5
    assert consumer.commit_offset(P1) == 9
    assert not consumer._unacked_messages
    assert consumer._read_offset[P0] == 5


@in_loop
async def test_a_failing_batch_halts_and_nothing_after_it_is_acknowledged() -> None:
    source, consumer, _, handler = make(max_batch=2, fail_on=3)
    consumer._read_offset[P0] = 0
    await source.offer(consumer, {P0: fetched(0, 1, 2, 3, 4, 5)}, {P0})
    await run_until_idle(source)
    assert [[r.offset for r in b] for b in handler.batches] == [[0, 1]]
    assert isinstance(source.failed, RuntimeError)
    assert consumer.commit_offset(P0) == 2  # never past offset 2, the failed batch's first
    await source.offer(consumer, {P0: fetched(6, 7)}, {P0})
    assert consumer.commit_offset(P0) is None, "a halted source acknowledges nothing more"


def forget_read_offsets(consumer: FakeConsumer) -> None:
    """What Faust's seek to committed offsets leaves when the group committed nothing."""
    consumer._read_offset.clear()


@in_loop
async def test_records_dropped_in_a_rebalance_come_again_when_nothing_is_committed() -> None:
    """Before the group's first commit, a fetch dropped during a rebalance left the fetcher past it.

    Seen in the rebalance test: the next fetch began at 15 although 0..14
    were never handed over, and Faust committed over the hole.
    """
    source, consumer, app, handler = make()
    consumer.flow_active = False  # a rebalance began
    await source.offer(consumer, {P0: fetched(*range(15))}, {P0})
    consumer.flow_active = True
    app.consumer_generation_id = 2
    forget_read_offsets(consumer)
    await source.offer(consumer, {P0: fetched(15, 16, 17)}, {P0})
    assert consumer.seeks == [(P0, 0)]
    await source.offer(consumer, {P0: fetched(15, 16, 17)}, {P0})  # the same jump again
    assert consumer.seeks == [(P0, 0), (P0, 0)], "records seen there are never skipped"
    await run_until_idle(source)
    assert handler.batches == [] and consumer.commit_offset(P0) is None
    await source.offer(consumer, {P0: fetched(*range(18))}, {P0})
    await run_until_idle(source)
    assert [r.offset for b in handler.batches for r in b] == list(range(18))
    assert consumer.commit_offset(P0) == 18


@in_loop
async def test_chunks_dropped_at_revoke_or_handled_in_an_old_generation_come_again() -> None:
    source, consumer, app, handler = make(max_batch=3)
    await source.offer(consumer, {P0: fetched(0, 1, 2, 3, 4, 5)}, {P0})
    batches = source._take()
    taken = await batches  # 0..2 handed over; 3..5 stay buffered
    source.revoke(consumer, {P0})
    app.consumer_generation_id = 2
    source._acknowledge(taken)  # finished in the old generation: not acknowledged
    forget_read_offsets(consumer)
    await source.offer(consumer, {P0: fetched(6, 7)}, {P0})
    assert consumer.seeks == [(P0, 0)]
    await source.offer(consumer, {P0: fetched(*range(8))}, {P0})
    await run_until_idle(source)
    assert consumer.commit_offset(P0) == 8


@in_loop
async def test_a_dropped_range_below_the_committed_offset_is_not_fetched_again() -> None:
    """Another worker processed and committed it meanwhile: the committed offset wins."""
    source, consumer, app, handler = make()
    consumer.flow_active = False
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0})
    consumer.flow_active = True
    app.consumer_generation_id = 2
    consumer._read_offset[P0] = consumer._committed_offset[P0] = 10
    await source.offer(consumer, {P0: fetched(10, 11)}, {P0})
    await run_until_idle(source)
    assert consumer.seeks == [] and consumer.commit_offset(P0) == 12


@in_loop
async def test_a_fresh_process_takes_the_first_fetch_as_its_start() -> None:
    """Nothing dropped and no read offset yet: the fetcher's position is the committed one."""
    source, consumer, _, handler = make()
    await source.offer(consumer, {P0: fetched(400, 401)}, {P0})
    await run_until_idle(source)
    assert consumer.seeks == [] and [r.offset for b in handler.batches for r in b] == [400, 401]


@in_loop
async def test_a_cancelled_future_under_the_handler_halts_instead_of_ending_the_source() -> None:
    """Re-raised, a stray CancelledError would end the task and leave the topic unread."""
    source, consumer, _, handler = make(max_batch=2)

    async def cancelled_under(records: list[SourceRecord]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    source.handler = cancelled_under
    consumer._read_offset[P0] = 0
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0})
    await run_until_idle(source)  # cancels the task: it must still be running, halted
    assert isinstance(source.failed, asyncio.CancelledError)
    assert consumer.commit_offset(P0) is None


@pytest.mark.parametrize("why", ["generation", "revoked"])
@in_loop
async def test_a_batch_from_before_a_rebalance_is_not_acknowledged(why: str) -> None:
    source, consumer, app, handler = make()
    gate = asyncio.Event()

    async def slow(records: list[SourceRecord]) -> None:
        await gate.wait()
        handler.batches.append(records)

    source.handler = slow
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0})
    task = asyncio.ensure_future(source.run())
    await asyncio.sleep(0)
    if why == "generation":
        app.consumer_generation_id = 2
    else:
        consumer.assigned = {P1}
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    assert handler.batches, "the handler ran"
    assert consumer.commit_offset(P0) is None
    assert source.stale_batches == 1


@in_loop
async def test_buffered_chunks_of_an_old_generation_are_dropped() -> None:
    source, consumer, app, handler = make()
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0})
    source.revoke(consumer, {P0})
    assert not consumer._unacked_messages
    await source.offer(consumer, {P1: fetched(3)}, {P1})
    app.consumer_generation_id = 2
    await source.offer(consumer, {P1: fetched(4)}, {P1})
    await run_until_idle(source)
    assert [[r.offset for r in b] for b in handler.batches] == [[4]]


@in_loop
async def test_a_jump_is_refetched_once_and_acknowledged_when_it_repeats() -> None:
    source, consumer, _, handler = make()
    consumer._read_offset[P0] = 5
    consumer._committed_offset[P0] = 5
    await source.offer(consumer, {P0: fetched(8, 9)}, {P0})
    assert consumer.seeks == [(P0, 5)] and not source._chunks
    await source.offer(consumer, {P0: fetched(8, 9)}, {P0})  # the same jump: no records between
    await run_until_idle(source)
    assert [[r.offset for r in b] for b in handler.batches] == [[8, 9]]
    assert consumer.commit_offset(P0) == 10


@in_loop
async def test_a_stale_fetch_after_a_jump_seek_is_not_acknowledged_over_the_gap() -> None:
    source, consumer, _, handler = make()
    consumer._read_offset[P0] = 5
    consumer._committed_offset[P0] = 5
    await source.offer(consumer, {P0: fetched(8, 9)}, {P0})
    await source.offer(consumer, {P0: fetched(5, 6, 7, 8, 9)}, {P0})  # the refetch from 5
    await run_until_idle(source)
    assert [[r.offset for r in b] for b in handler.batches] == [[5, 6, 7, 8, 9]]
    assert consumer.commit_offset(P0) == 10


@in_loop
async def test_records_below_the_read_offset_are_dropped() -> None:
    source, consumer, _, handler = make()
    consumer._read_offset[P0] = 3
    await source.offer(consumer, {P0: fetched(1, 2, 3, 4)}, {P0})
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0})
    await run_until_idle(source)
    assert [[r.offset for r in b] for b in handler.batches] == [[3, 4]]


@in_loop
async def test_records_of_a_paused_partition_are_fetched_again() -> None:
    source, consumer, _, handler = make()
    await source.offer(consumer, {P0: fetched(4, 5)}, {P1})
    assert consumer.seeks == [(P0, 4)] and consumer._read_offset[P0] == 4
    assert not source._chunks
    consumer.flow_active = False  # a rebalance began: Faust seeks everything itself
    await source.offer(consumer, {P0: fetched(4, 5)}, {P0})
    assert not source._chunks and consumer.seeks == [(P0, 4)]


@in_loop
async def test_a_full_buffer_pauses_fetching_until_half_drained() -> None:
    source, consumer, _, _ = make(max_batch=2, max_buffered=3)
    await source.offer(consumer, {P0: fetched(0, 1, 2)}, {P0})
    assert consumer.full == []
    await source.offer(consumer, {P0: fetched(3)}, {P0})
    assert consumer.full == [P0]
    await source._take()
    assert consumer.dropped == []  # 2 of 4 left: more than half of 3
    await source._take()
    assert consumer.dropped == [P0]


@in_loop
async def test_a_partition_paused_for_recovery_is_not_made_active_by_a_drain() -> None:
    source, consumer, _, _ = make(max_batch=2, max_buffered=3)
    await source.offer(consumer, {P0: fetched(0, 1, 2, 3)}, {P0})
    assert consumer.full == [P0]
    consumer._paused_partitions.add(P0)  # Faust paused it: a rebalance, then table recovery
    await source._take()
    await source._take()
    assert consumer.dropped == []  # on_buffer_drop would add P0 to the active partitions
    assert consumer._buffered_partitions == {P0}
    consumer._paused_partitions.clear()  # recovery done: Faust resumed it
    await source.offer(consumer, {P0: fetched(4)}, {P0})
    await source._take()
    assert consumer.dropped == [P0]


@in_loop
async def test_a_revoke_clears_the_topic_s_buffer_full_marks() -> None:
    source, consumer, _, _ = make(max_batch=2, max_buffered=3)
    other = TP("other", 0)
    consumer._buffered_partitions.add(other)
    await source.offer(consumer, {P0: fetched(0, 1, 2, 3)}, {P0})
    assert P0 in consumer._buffered_partitions
    source.revoke(consumer, {P0})
    assert consumer._buffered_partitions == {other}


class WatchedConsumer(FakeConsumer):
    """A consumer whose fetch position the fetch watchdog can read."""

    def __init__(self, assigned: set[TP], positions: dict[TP, int]) -> None:
        super().__init__(assigned)
        self.positions = positions

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    async def seek(self, tp: TP, offset: int) -> None:
        await super().seek(tp, offset)
        self.positions[tp] = offset


class WatchedApp(FakeApp):
    def __init__(self, consumer: FakeConsumer) -> None:
        super().__init__(consumer)
        self.flow_control = WatchedFlow()


class WatchedFlow(FakeFlow):
    def is_active(self) -> bool:
        return True


@in_loop
async def test_the_fetch_watchdog_sees_buffered_batches_as_in_flight() -> None:
    consumer = WatchedConsumer({P0}, {P0: 10})
    consumer._committed_offset[P0] = 5
    consumer._read_offset[P0] = 5
    app = WatchedApp(consumer)
    source = BatchSource(app, TOPIC, Handler(), max_batch=500)  # type: ignore[arg-type]
    watchdog = FetchWatchdog(app, [TOPIC])
    await source.offer(consumer, {P0: fetched(5, 6, 7, 8, 9)}, {P0})
    assert await watchdog.tick() == [] and await watchdog.tick() == []
    assert consumer.seeks == [], "records waiting for the handler are not a stall"
    source.revoke(consumer, {P0})  # dropped without being handled: now it is one
    assert await watchdog.tick() == [] and await watchdog.tick() == [P0]
    assert consumer.seeks == [(P0, 5)]


@in_loop
async def test_records_of_a_partition_no_longer_assigned_are_dropped() -> None:
    source, consumer, _, _ = make()
    consumer.assigned = {P1}
    await source.offer(consumer, {P0: fetched(0, 1)}, {P0, P1})
    assert not source._chunks and consumer.seeks == []


@in_loop
async def test_offsets_acknowledged_twice_keep_faust_s_run_consecutive() -> None:
    # a batch acknowledged during a rebalance (same generation), then delivered again
    source, consumer, _, _ = make()
    await source.offer(consumer, {P0: fetched(3, 4)}, {P0})
    await run_until_idle(source)
    consumer._committed_offset[P0] = 0
    consumer._read_offset[P0] = 0
    await source.offer(consumer, {P0: fetched(0, 1, 2, 3, 4, 5)}, {P0})
    await run_until_idle(source)
    assert sorted(consumer._acked[P0]) == [0, 1, 2, 3, 4, 5]
    assert consumer.commit_offset(P0) == 6
