"""The broadcast watchlist: every worker reads ALL of lfr.watchlist.

A mode Service (not a Faust GlobalTable, whose multi-instance recovery has
open data-loss bugs) running its own aiokafka consumer with no group: it
assigns every partition of lfr.watchlist and lfr.operations, reads them from
the beginning and applies them to a :class:`WatchlistStore`. Operations are
read here too, in every worker, because a watchlist must be dropped from
every worker's memory when its deployment ends, while the operations agent
only sees its own partitions.

The service is ready once it has read up to the end offsets it saw at start;
the detections agent waits for that, so no detection is matched against a
half-loaded watchlist.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from schemas.codec import decode, encode
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.errors import WorkerError
from streams.worker.kafka_config import aiokafka_config
from streams.worker.source import SourceRecord, reject
from streams.worker.watchlist_store import WatchlistSnapshot, WatchlistStore
from streams.worker.windows import window_from_record

log = logging.getLogger(__name__)

STAGE = "worker.watchlist"
POLL_MS = 500


class WatchlistService(Service):
    """Keeps every watchlist in memory from a group-less consumer; see the module doc."""

    def __init__(self, settings: Settings, *, purge_on_end: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.purge_on_end = purge_on_end
        self.store = WatchlistStore()
        self._ready = asyncio.Event()
        self._targets: dict[TopicPartition, int] = {}
        self._to_purge: set[str] = set()
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

    def snapshot(self, watchlist_id: str) -> WatchlistSnapshot | None:
        """The current snapshot of a watchlist (``None`` when not held)."""
        return self.store.snapshot(watchlist_id)

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
        await self._consumer.start()
        await self._producer.start()
        topics = (self.settings.topic_watchlist, self.settings.topic_operations)
        partitions = [await self._partitions(topic) for topic in topics]
        assigned = [tp for group in partitions for tp in group]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._targets = dict(await self._consumer.end_offsets(assigned))
        log.info("watchlist: catching up with %d partitions", len(assigned))

    async def on_stop(self) -> None:
        """Close the clients."""
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

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
            if not self.ready:
                await self._check_caught_up()
            if self.ready and self._to_purge:
                await self._purge()
            self._update_gauges()

    async def _check_caught_up(self) -> None:
        assert self._consumer is not None  # noqa: S101
        for tp, end in self._targets.items():
            if await self._consumer.position(tp) < end:
                return
        self._ready.set()
        metrics.WATCHLIST_READY.set(1)
        log.info(
            "watchlist ready: %d entries in %d watchlists",
            self.store.entry_count,
            len(self.store.watchlist_ids),
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
                entry = decode("WatchlistEntry", record.value)
                validate("WatchlistEntry", entry)
            self.store.apply_entry(key, entry, record.timestamp_ms)
        except (SchemaError, WorkerError, ValueError) as exc:
            await self._dead_letter(reject(record, exc, STAGE, biometric=True))

    def _apply_window(self, message: ConsumerRecord) -> None:
        if message.value is None:
            return
        try:
            window = window_from_record(decode("OperationWindow", message.value))
        except (SchemaError, WorkerError):
            # The operations agent dead-letters it (once, in the worker owning
            # the partition); here it is only skipped.
            return
        dropped = self.store.apply_window(window)
        if dropped:
            log.info(
                "watchlist %s retired: deployment %s is %s; %d entries dropped",
                window.watchlist_id,
                window.deployment_id,
                window.status,
                len(dropped),
            )
            if self.purge_on_end:
                self._to_purge.update(dropped)

    async def _purge(self) -> None:
        """Tombstone retired entries, unless a newer version of the key is held again."""
        assert self._producer is not None  # noqa: S101
        held = {key for w in self.store.watchlist_ids for key in self.store.keys(w)}
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
            value=encode("DeadLetter", letter),
        )
        log.warning(
            "watchlist record dead-lettered: %s[%d]@%d reason=%s",
            letter["source_topic"],
            letter["source_partition"],
            letter["source_offset"],
            letter["reason"],
        )

    def _update_gauges(self) -> None:
        metrics.WATCHLIST_ENTRIES.set(self.store.entry_count)
        metrics.WATCHLISTS.set(len(self.store.watchlist_ids))
        metrics.WATCHLIST_VERSION.set(self.store.max_version)


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
