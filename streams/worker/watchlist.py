"""The broadcast reference data: every worker reads ALL of lfr.watchlist and lfr.operations.

A mode Service (not a Faust GlobalTable, whose multi-instance recovery has
open data-loss bugs) running its own aiokafka consumer with no group: it
assigns every partition of both topics, reads them from the beginning and
applies them to :class:`ReferenceData`. Operations are read here, in every
worker, because gating needs every window before the first detection, and a
watchlist must be dropped from every worker's memory when its deployment
ends, while the operations agent only sees its own partitions.

The service is ready once it has read up to the end offsets it saw at start;
the detections agent waits for that, and before each batch calls
:meth:`WatchlistService.sync`, so a detection is never gated or matched
against windows or entries that were already on the broker but not yet read.
Removed entries and retired watchlists are deleted from memory per
:mod:`streams.worker.deletion`; with ``purge_on_end`` the entries of a
retired watchlist are tombstoned once deleted here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from common.kafka_config import aiokafka_config
from common.settings import Settings
from schemas.codec import Codec
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.worker import metrics
from streams.worker.deletion import DeletionPolicy, GraceClock
from streams.worker.errors import WorkerError
from streams.worker.reference import Owns, ReferenceData
from streams.worker.source import SourceRecord, reject
from streams.worker.throttle import ThrottledLog
from streams.worker.windows import parse_window

log = logging.getLogger(__name__)

STAGE = "worker.watchlist"
POLL_MS = 500
SYNC_LIMIT_S = 30.0
"""Longest :meth:`WatchlistService.sync` waits before matching goes on (and warns)."""


class WatchlistService(Service):
    """Keeps windows and watchlists in memory from a group-less consumer; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: Codec,
        policy: DeletionPolicy,
        purge_on_end: bool = True,
        ownership: Callable[[], Owns | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.codec = codec
        self.purge_on_end = purge_on_end
        self.ownership = ownership
        self.clock = clock
        self.reference = ReferenceData(policy)
        self._grace_clock = GraceClock()
        self._ready = asyncio.Event()
        self._round = asyncio.Event()
        # end offsets at the last sync() that found them applied: an unchanged
        # end means nothing new to wait for, so a batch costs one ListOffsets
        self._synced: Mapping[TopicPartition, int] | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._to_purge: set[str] = set()
        self._dead_letter_log = ThrottledLog(log)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # --- public ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the end offsets seen at start have been read."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Wait until :attr:`ready`."""
        await self._ready.wait()

    async def sync(self) -> None:
        """Wait until every record on both topics at call time has been applied.

        Bounded by :data:`SYNC_LIMIT_S`: a partition that cannot reach its end
        offset must not stop the pipeline, so it is logged and matching goes on.
        """
        assert self._consumer is not None and self._ends is not None  # noqa: S101
        targets = await self._ends.end_offsets(list(self._targets))
        if targets == self._synced:
            return  # nothing written since the last sync reached its ends
        deadline = self.clock() + SYNC_LIMIT_S
        while self.clock() < deadline:
            round_done = self._round
            if await self._reached(targets):
                self._synced = targets
                return
            try:
                await asyncio.wait_for(round_done.wait(), timeout=POLL_MS / 1000)
            except TimeoutError:
                continue
        log.warning("reference data still behind after %.0f s: matching goes on", SYNC_LIMIT_S)

    def observe(self, high_water: Mapping[str, int], epoch: int) -> None:
        """Stream time of an acknowledged batch started in ``epoch``; deletes what is due."""
        self.reference.observe(high_water, epoch)
        self._sweep()

    @property
    def epoch(self) -> int:
        """The stream clock's epoch: read it before processing a batch."""
        return self.reference.clock.epoch

    # --- lifecycle ---------------------------------------------------------

    async def on_start(self) -> None:
        """Connect, assign every partition from the beginning and note the end offsets."""
        config = aiokafka_config(self.settings)
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{self.settings.app_id}-watchlist",
            **config,
        )
        self._producer = AIOKafkaProducer(acks="all", **config)
        # a client of its own for end offsets: on the reading consumer's
        # connection a ListOffsets waits behind the long-poll fetch (~0.5 s)
        self._ends = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False,
            client_id=f"{self.settings.app_id}-watchlist-ends", **config,
        )  # fmt: skip
        await self._consumer.start()
        await self._producer.start()
        await self._ends.start()
        topics = (self.settings.topic_watchlist, self.settings.topic_operations)
        partitions = [await self._partitions(topic) for topic in topics]
        assigned = [tp for group in partitions for tp in group]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._targets = dict(await self._consumer.end_offsets(assigned))
        log.info("reference data: catching up with %d partitions", len(assigned))

    async def on_stop(self) -> None:
        """Close the clients."""
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._ends is not None:
            await self._ends.stop()

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        assert self._producer is not None  # noqa: S101  (started in on_start)
        try:
            # the producer's lookup waits for metadata; a group-less consumer has none
            found = await self._producer.partitions_for(topic)
        except KafkaError as exc:
            raise WorkerError(f"topic {topic!r} is not available: {exc!r}") from exc
        if not found:
            raise WorkerError(f"topic {topic!r} does not exist (run `lfr topics create`)")
        return [TopicPartition(topic, p) for p in sorted(found)]

    @Service.task
    async def _consume(self) -> None:
        assert self._consumer is not None  # noqa: S101  (started in on_start)
        while not self.should_stop:
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=5000)
            for tp, messages in batches.items():
                for message in messages:
                    if tp.topic == self.settings.topic_watchlist:
                        await self._apply_entry(message)
                    else:
                        self._apply_window(message)
            # wake sync() waiters: this round's records are applied
            self._round.set()
            self._round = asyncio.Event()
            if not self.ready and await self._reached(self._targets):
                self._set_ready()
            if self.ready:
                self._sweep()
            if self._to_purge:
                await self._purge()
            self._update_gauges()

    async def _reached(self, targets: Mapping[TopicPartition, int]) -> bool:
        assert self._consumer is not None  # noqa: S101
        for tp, end in targets.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    def _set_ready(self) -> None:
        self._ready.set()
        metrics.WATCHLIST_READY.set(1)
        store = self.reference.store
        log.info(
            "reference data ready: %d entries in %d watchlists",
            store.entry_count,
            len(store.watchlist_ids),
        )

    # --- applying records --------------------------------------------------

    async def _apply_entry(self, message: ConsumerRecord) -> None:
        record = _source(message)
        metrics.RECORDS_IN.labels(stage="watchlist").inc()
        try:
            key = record.key_text
            if key is None:
                raise _KeylessEntry("a watchlist record without a key")
            entry = None
            if record.value is not None:
                entry = self.codec.decode("WatchlistEntry", record.value)
                validate("WatchlistEntry", entry)
            self.reference.apply_entry(key, entry, self.clock())
        except (SchemaError, WorkerError, ValueError) as exc:
            await self._dead_letter(reject(record, exc, STAGE, biometric=True))

    def _apply_window(self, message: ConsumerRecord) -> None:
        if message.value is None:
            return
        try:
            key = None if message.key is None else message.key.decode("utf-8", "replace")
            window = parse_window(self.codec.decode("OperationWindow", message.value), key)
        except (SchemaError, WorkerError):
            # The operations agent dead-letters it (once, in the worker owning
            # the partition); here it is only skipped, exactly as there.
            return
        retirement = self.reference.apply_window(window, self.clock())
        if retirement is not None:
            log.info(
                "watchlist %s retired: deployment %s is %s; deleted once the stream "
                "passes its end or after %.0f s",
                window.watchlist_id,
                window.deployment_id,
                window.status,
                self.reference.policy.grace_s,
            )

    def _sweep(self) -> None:
        before = self.reference.store.entry_count
        owns = self.ownership()
        now = self._grace_clock.now(self.clock(), assigned=owns is not None)
        retired = self.reference.sweep(now, owns)
        deleted = before - self.reference.store.entry_count
        if deleted:
            log.info("watchlist: %d templates deleted from memory", deleted)
        if self.purge_on_end:
            self._to_purge.update(retired)

    async def _purge(self) -> None:
        """Tombstone deleted retired entries, unless a newer version of the key is held again."""
        assert self._producer is not None  # noqa: S101
        store = self.reference.store
        held = {key for w in store.watchlist_ids for key in store.keys(w)}
        keys = sorted(self._to_purge - held)
        self._to_purge.clear()
        futures = [
            await self._producer.send(self.settings.topic_watchlist, key=k.encode(), value=None)
            for k in keys
        ]
        await asyncio.gather(*futures)
        log.info("watchlist: %d retired entries tombstoned", len(keys))

    async def _dead_letter(self, letter: dict[str, Any]) -> None:
        assert self._producer is not None  # noqa: S101
        metrics.count_dead_letters(STAGE, [letter])
        await self._producer.send_and_wait(
            self.settings.topic_dlq,
            key=letter["source_topic"].encode(),
            value=self.codec.encode("DeadLetter", letter),
        )
        self._dead_letter_log.warning(
            letter["reason"],
            "watchlist record dead-lettered: %s[%d]@%d reason=%s",
            letter["source_topic"],
            letter["source_partition"],
            letter["source_offset"],
            letter["reason"],
        )

    def _update_gauges(self) -> None:
        store = self.reference.store
        metrics.WATCHLIST_ENTRIES.set(store.entry_count)
        metrics.WATCHLISTS.set(len(store.watchlist_ids))
        metrics.WATCHLIST_VERSION.set(store.max_version)


class _KeylessEntry(SchemaError):
    reason = "invalid"


def _source(message: ConsumerRecord) -> SourceRecord:
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=message.timestamp,
    )
