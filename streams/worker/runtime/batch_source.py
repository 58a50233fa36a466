"""One input topic delivered to a handler in whole fetched batches, inside Faust.

Why: faust-streaming 0.15 moves every record through its per-message path
(``Consumer._drain_messages`` -> ``Conductor.on_message`` -> channel queue
-> ``Stream.__aiter__`` -> ``take_events`` -> ``Message.ack``): a
``ConsumerMessage`` and an ``Event`` per record, ``wait_first`` (two tasks) per
record in the drain loop, a flow-control acquire, a producer-buffer wait, a
queue put and get, and a locked ack. No stream API skips it. For the hot
input that is a quarter of the worker's CPU.

What: a subclass of Faust's aiokafka ``Consumer`` takes the batched topic's
records out of each fetch (``_wait_next_records``, the step between
aiokafka's ``getmany`` and Faust's per-message loop) and hands them, as
:class:`SourceRecord` lists, to a :class:`BatchSource` that awaits
``handler(records)`` one batch at a time. Every other topic (tables'
changelogs, other agents) keeps Faust's own path untouched. Faust still owns
the consumer group, assignment, rebalances, table recovery and the offset
commits: a batch is acknowledged by writing its offset range into the same
bookkeeping ``Consumer.ack`` fills (``_acked``), so Faust's commit timer, its
producer flush before a commit and its table ``on_commit`` all apply as for
any agent.

Semantics:

- at-least-once: a batch's offsets are acknowledged only after ``handler``
  returned; an exception or a cancellation leaves them unacknowledged and the
  source halts (nothing after them is ever acknowledged by this process, so no
  commit passes an unprocessed record); the records come again after a restart.
- rebalance: buffered records are dropped when partitions are revoked, and a
  batch that finishes in an older consumer generation is not acknowledged;
  Faust seeks every assigned partition to its committed offset after the
  rebalance, so the new owner (or this process) gets them again.
- records fetched for a partition that is paused at that moment (table
  recovery) are not dropped silently, as Faust's own loop does (the stall that
  ``fetch_watchdog.py`` repairs): the partition is sought back to them.
- records dropped in a rebalance (fetched while it began, buffered at
  revoke, or handled in an older generation) are remembered per partition:
  when the group has committed nothing for it, Faust does not seek it back
  and the fetcher stands past them, so the next fetch is sought back to the
  lowest dropped offset (a committed offset past it wins).
- offsets never delivered are never acknowledged, except a range the fetcher
  skips twice from the same position (transaction markers, compaction).
- the fetch watchdog and the lag gauge keep working: each buffered or running
  chunk puts one placeholder message into Faust's in-flight set, and commits
  land in ``_committed_offset`` as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer
from faust.types import TP, ConsumerMessage
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.worker.source import SourceRecord

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[SourceRecord]], Awaitable[None]]
"""Awaited with each batch; the batch is acknowledged only when it returns."""
FailureCallback = Callable[[BaseException, Sequence[SourceRecord]], Awaitable[None]]


@dataclass(slots=True)
class Chunk:
    """Records of one partition from one fetch, in offset order."""

    tp: TP
    records: list[SourceRecord]
    ack_from: int
    """First offset this chunk acknowledges (below the first record when the
    fetcher skipped offsets that hold no record)."""
    generation: int
    placeholder: ConsumerMessage
    """Stands for the chunk in Faust's in-flight set (the watchdog reads it)."""

    @property
    def end(self) -> int:
        """The offset after the chunk's last record."""
        return self.records[-1].offset + 1


def placeholder(tp: TP, offset: int, generation: int) -> ConsumerMessage:
    """A payload-free message that marks ``tp`` as having records in flight."""
    return ConsumerMessage(
        tp.topic, tp.partition, offset, 0.0, 0, None, None, None, None, 0, 0, tp,
        generation_id=generation,
    )  # fmt: skip


class BatchSource:
    """Buffers the batched topic's fetched records and runs the handler over them."""

    def __init__(
        self,
        app: faust.App,
        topic: str,
        handler: BatchHandler,
        *,
        max_batch: int,
        within: float = 0.0,
        max_buffered: int | None = None,
        on_failure: FailureCallback | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.app = app
        self.topic = topic
        self.handler = handler
        self.max_batch = max_batch
        self.within = within
        self.max_buffered = max_buffered or 8 * max_batch
        self.on_failure = on_failure
        self.failed: BaseException | None = None
        self.batches = 0
        self.records = 0
        self.stale_batches = 0
        self._chunks: deque[Chunk] = deque()
        self._buffered = 0
        self._arrived = asyncio.Event()
        self._jumps: dict[TP, tuple[int, int]] = {}
        self._dropped: dict[TP, int] = {}
        """Per partition, the lowest offset fetched and then dropped unacknowledged."""

    # -- the consumer side (called from BatchConsumer right after each fetch)

    async def offer(self, consumer: Any, fetched: dict[TP, list[Any]], active: set[TP]) -> None:
        """Take this topic's records out of ``fetched`` and buffer them."""
        mine = [tp for tp in fetched if tp.topic == self.topic]
        if not mine:
            return
        generation = self.app.consumer_generation_id
        assignment = consumer.assignment()
        for key in mine:
            records = fetched.pop(key)
            tp = TP(key.topic, key.partition)  # aiokafka's own tuple fails Faust's TP checks
            if not records:
                continue
            if not consumer.flow_active or tp not in assignment:
                # a rebalance began: Faust seeks every partition back to its
                # committed offset afterwards; if none is committed, to here
                self._drop(tp, records[0].offset)
                continue
            if tp not in active and tp not in consumer._buffered_partitions:
                await self._seek_back(consumer, tp, records[0].offset, "paused")
                continue
            chunk = await self._accept(consumer, tp, records, generation)
            if chunk is None:
                continue
            self._chunks.append(chunk)
            self._buffered += len(chunk.records)
            consumer._unacked_messages.add(chunk.placeholder)
            self.app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            if self._buffered > self.max_buffered:
                consumer.on_buffer_full(tp)  # Faust stops fetching tp until drained
        self._arrived.set()

    async def _accept(
        self, consumer: Any, tp: TP, records: list[Any], generation: int
    ) -> Chunk | None:
        expected: int | None = consumer._read_offset[tp]
        dropped = self._dropped.get(tp)
        if dropped is not None:
            # Records from ``dropped`` on were fetched (or handed over in an older
            # generation) and never acknowledged. Faust seeks to the committed
            # offset after a rebalance, but when the group has committed nothing
            # for ``tp`` it leaves the read offset unset and the fetcher stands
            # past them (seen: 15 detections committed unprocessed in the
            # rebalance test). Refetch from there, unless a commit passed them.
            committed = consumer._committed_offset[tp]
            below_read = expected is None or dropped < expected
            if below_read and (committed is None or dropped >= committed):
                expected = dropped
        first = records[0].offset
        ack_from = first
        if expected is not None and first < expected:
            # fetched before a seek back: only what lies at or after the seek counts
            records = [r for r in records if r.offset >= expected]
            if not records:
                return None
            first = ack_from = records[0].offset
        if expected is not None and first > expected:
            # Either the fetcher skipped offsets without records, or this fetch
            # began before a seek. Refetch from ``expected``: the same jump
            # twice in a row means there is nothing in between, unless records
            # were seen there (dropped), which are never skipped.
            if self._jumps.get(tp) != (expected, first) or expected == dropped:
                self._jumps[tp] = (expected, first)
                await self._seek_back(consumer, tp, expected, "jumped")
                return None
            ack_from = expected
        self._jumps.pop(tp, None)
        self._dropped.pop(tp, None)
        consumer._read_offset[tp] = records[-1].offset + 1
        topic, partition = tp.topic, tp.partition
        converted = [
            SourceRecord(topic, partition, r.offset, r.key, r.value, r.timestamp) for r in records
        ]
        return Chunk(tp, converted, ack_from, generation, placeholder(tp, first, generation))

    def _drop(self, tp: TP, offset: int) -> None:
        """Records of ``tp`` from ``offset`` on were fetched and not acknowledged."""
        known = self._dropped.get(tp)
        self._dropped[tp] = offset if known is None else min(known, offset)
        if known is None or offset < known:  # rebalances are rare: say where a refetch starts
            log.info("%s[%d]: records from %d dropped in a rebalance", tp.topic, tp.partition,
                     offset)  # fmt: skip

    async def _seek_back(self, consumer: Any, tp: TP, offset: int, why: str) -> None:
        log.info("%s[%d]: fetch %s; seeking back to %d", tp.topic, tp.partition, why, offset)
        await consumer.seek(tp, offset)
        consumer._read_offset[tp] = offset

    def revoke(self, consumer: Any, revoked: Iterable[TP]) -> None:
        """Drop every buffered record (the rebalance moves all partitions to committed)."""
        dropped = len(self._chunks)
        for chunk in self._chunks:
            self._drop(chunk.tp, chunk.ack_from)
            self._done(consumer, chunk)
        self._chunks.clear()
        self._buffered = 0
        self._jumps.clear()
        # The buffer is empty: no partition of this topic waits for it to drain.
        # (Faust keeps the mark across a rebalance, and a marked partition is
        # made active again by the next drain, table recovery or not.)
        consumer._buffered_partitions.difference_update(
            [tp for tp in consumer._buffered_partitions if tp.topic == self.topic]
        )
        if dropped:
            log.info("rebalance: dropped %d buffered chunks of %s", dropped, self.topic)

    # -- the handler side

    async def run(self) -> None:
        """Hand batches to the handler until cancelled (started as an app task)."""
        while True:
            await self.app.flow_control.acquire()
            batch = await self._take()
            if not batch:
                continue
            records = batch[0].records if len(batch) == 1 else [
                record for chunk in batch for record in chunk.records
            ]  # fmt: skip
            inbound = self.app.monitor.stream_inbound_time
            now = time.monotonic()
            for chunk in batch:
                inbound[chunk.tp] = now  # Faust's livelock check reads it
            try:
                await self.handler(records)
            except asyncio.CancelledError as exc:
                if being_cancelled():
                    raise  # stop: not acknowledged, processed again later
                await self._halt(exc, records)  # a future cancelled under the handler
            except Exception as exc:  # noqa: BLE001 - any handler failure halts the source
                await self._halt(exc, records)
            self._acknowledge(batch)

    async def _take(self) -> list[Chunk]:
        await self._arrived.wait()
        if self.within > 0 and self._buffered < self.max_batch:
            deadline = time.monotonic() + self.within
            while self._buffered < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
        consumer: Any = self.app.consumer
        generation = self.app.consumer_generation_id
        taken: list[Chunk] = []
        room = self.max_batch
        while self._chunks and room > 0:
            chunk = self._chunks[0]
            if chunk.generation != generation:
                self._chunks.popleft()
                self._buffered -= len(chunk.records)
                self._drop(chunk.tp, chunk.ack_from)
                self._done(consumer, chunk)
                continue
            if len(chunk.records) <= room:
                self._chunks.popleft()
                taken.append(chunk)
            else:
                taken.append(_split(chunk, room))
            room -= len(taken[-1].records)
            self._buffered -= len(taken[-1].records)
        if not self._chunks:
            self._arrived.clear()
        if self._buffered <= self.max_buffered // 2:
            # Faust's on_buffer_drop makes the partition active again, even one it
            # paused for a rebalance or table recovery: that one stays marked, and
            # Faust resumes it when its recovery is done.
            paused = consumer._paused_partitions
            for tp in [tp for tp in consumer._buffered_partitions if tp.topic == self.topic]:
                if tp not in paused:
                    consumer.on_buffer_drop(tp)
        return taken

    def _acknowledge(self, batch: Sequence[Chunk]) -> None:
        """Put the batch's offsets into Faust's ack bookkeeping (what ``Consumer.ack`` does)."""
        consumer: Any = self.app.consumer
        # A batch of an older generation is not acknowledged: its records come again
        # from the committed offset that Faust seeks to after every rebalance. (Not
        # acknowledging a batch whose successors are would leave a gap that stops
        # the partition's commits for good, so ``app.rebalancing`` is not a reason.)
        generation = self.app.consumer_generation_id
        assignment = consumer.assignment()
        acked = 0
        with ack_lock:
            for chunk in batch:
                self._done(consumer, chunk)
                tp = chunk.tp
                if chunk.generation != generation or tp not in assignment:
                    self.stale_batches += 1
                    self._drop(tp, chunk.ack_from)
                    continue
                committed = consumer._committed_offset[tp]
                start = chunk.ack_from if committed is None else max(chunk.ack_from, committed)
                offsets: Sequence[int] = range(start, chunk.end)
                index = consumer._acked_index[tp]
                if not index.isdisjoint(offsets):
                    # acknowledged before a rebalance and delivered again: an offset
                    # twice in ``_acked`` would split Faust's consecutive run
                    offsets = [offset for offset in offsets if offset not in index]
                if not offsets:
                    continue
                consumer._acked[tp].extend(offsets)
                index.update(offsets)
                acked += len(chunk.records)
            consumer._n_acked += acked
            notify(consumer._waiting_for_ack)
        self.batches += 1
        self.records += acked

    async def _halt(self, exc: BaseException, records: Sequence[SourceRecord]) -> None:
        self.failed = exc
        first = records[0] if records else None
        log.critical(
            "batch handler for %s failed on %d records from %r: nothing more is "
            "acknowledged; the records are processed again after a restart",
            self.topic, len(records), first, exc_info=exc,
        )  # fmt: skip
        if self.on_failure is not None:
            await self.on_failure(exc, records)
        while True:  # halted: the app's stop cancels this
            await asyncio.sleep(3600)

    @staticmethod
    def _done(consumer: Any, chunk: Chunk) -> None:
        chunk.placeholder.acked = True
        consumer._unacked_messages.discard(chunk.placeholder)


def being_cancelled() -> bool:
    """Whether the running task is being cancelled, not merely handed a ``CancelledError``.

    An awaited future that someone else cancelled (a producer's send future)
    raises ``CancelledError`` in a task nobody asked to stop; re-raising it
    would end the task while the worker stays up.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _split(chunk: Chunk, size: int) -> Chunk:
    """Cut the first ``size`` records off ``chunk`` (which keeps the rest)."""
    head = chunk.records[:size]
    rest = chunk.records[size:]
    part = Chunk(chunk.tp, head, chunk.ack_from, chunk.generation, chunk.placeholder)
    chunk.records = rest
    chunk.ack_from = rest[0].offset
    chunk.placeholder = placeholder(chunk.tp, rest[0].offset, chunk.generation)
    return part


FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that finds no new records (Faust fixes 1,500 ms).

aiokafka sends one fetch at a time to each broker, for the partitions with
nothing left unread. While a batch source works through a busy partition's
records, that fetch asks only for the idle ones, and the busy partition's
next fetch waits until the broker answers it. An idle worker pays one empty
fetch per broker per 100 ms. Measured in ``docs/faust-batch-source.md``
("Fetch timing")."""


class _ConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with an aiokafka consumer that waits less for empty fetches."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka's consumer no longer keeps _fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when it starts its fetcher
        return consumer


class BatchConsumer(AIOKafkaFaustConsumer):
    """Faust's aiokafka consumer with some topics diverted, each to its :class:`BatchSource`."""

    batch_sources: tuple[BatchSource, ...] = ()
    FULL_BUFFER_POLL_S = 0.05
    """Fetch-call timeout while a partition waits for its buffer to drain (Faust's is 1 s)."""

    async def _wait_next_records(
        self, timeout: float
    ) -> tuple[Mapping[TP, list[Any]] | None, set[TP] | None]:
        if self._buffered_partitions:
            # Faust fetches only the active partitions: one paused for a full
            # buffer is left out while the call waits its whole timeout for the
            # others (mostly idle), long after the source has drained half its
            # buffer. Short calls let it in again while ~100 ms of work remain.
            timeout = min(timeout, self.FULL_BUFFER_POLL_S)
            if self.flow_active and not self._get_active_partitions():
                # (with the flow stopped, Faust's own step waits for it first)
                await asyncio.sleep(timeout)  # Faust would sleep 1 s
                return {}, set()
        records, active = await super()._wait_next_records(timeout)
        if records:
            for source in self.batch_sources:
                await source.offer(self, cast(dict, records), active or set())
        return records, active

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Drop buffered batches, then let Faust revoke."""
        for source in self.batch_sources:
            source.revoke(self, revoked)
        await super().on_partitions_revoked(revoked)


def install_batch_handler(
    app: faust.App,
    topic: str,
    handler: BatchHandler,
    *,
    max_batch: int,
    within: float = 0.0,
    max_buffered: int | None = None,
    on_failure: FailureCallback | None = None,
) -> BatchSource:
    """Deliver ``topic``'s records to ``handler`` in batches of at most ``max_batch``.

    Call before the app starts (before anything touches ``app.consumer``) and
    declare no agent on ``topic``; call once per topic (each gets its own
    source and handler task). The topic is subscribed through Faust's
    conductor, so assignment and table co-partitioning are as for an agent.
    ``handler(records)`` is awaited one batch at a time, records in offset
    order per partition; a batch holds what was fetched and buffered meanwhile
    (up to ``max_batch``: no waiting, so latency stays one handler run), or, with
    ``within`` > 0, the source first waits up to that many seconds for a short
    batch to fill. ``max_buffered`` records (default 8 batches)
    are buffered before Faust stops fetching the topic. When the handler raises,
    ``on_failure(exc, records)`` is awaited and the source halts: retrying in
    place belongs in the handler (``AgentGuard.run``).
    """
    if app._consumer is not None:
        raise RuntimeError("install_batch_handler must run before the app's consumer exists")
    source = BatchSource(
        app, topic, handler, max_batch=max_batch, within=within,
        max_buffered=max_buffered, on_failure=on_failure,
    )  # fmt: skip
    transport: Any = app.transport
    current = transport.Consumer
    if issubclass(current, BatchConsumer):
        if any(s.topic == topic for s in current.batch_sources):
            raise ValueError(f"{topic} already has a batch handler")
        sources = (*current.batch_sources, source)
    elif issubclass(BatchConsumer, current):
        sources = (source,)
    else:
        raise TypeError(f"batches need the aiokafka transport, not {type(transport).__name__}")
    transport.Consumer = type("BatchConsumer", (BatchConsumer,), {"batch_sources": sources})
    app.topics.add(app.topic(topic, key_type=bytes, value_type=bytes))
    app.task(source.run)
    return source
