"""The broadcast reference data: every worker reads ALL of lfr.watchlist and lfr.operations.

A mode Service (not a Faust GlobalTable, whose multi-instance recovery has
open data-loss bugs) running its own aiokafka consumer with no group: it
assigns every partition of both topics, reads them from the beginning and
applies them to :class:`ReferenceData` through the pure stages
:func:`read_entries` and :func:`read_windows`. Operations are read here, in every
worker, because gating needs every window before the first detection, and a
watchlist must be dropped from every worker's memory when its deployment
ends, while the operations agent only sees its own partitions.

The service is ready once it has read up to the end offsets it saw at start;
the detections agent waits for that, and before each batch calls
:meth:`ReferenceService.sync`, so a detection is never gated or matched
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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from common.kafka_config import aiokafka_config
from common.settings import Settings
from schemas.codec import Codec
from streams.worker import metrics
from streams.worker.deletion import DeletionPolicy, GraceClock
from streams.worker.errors import WorkerError
from streams.worker.reference import WATCHLIST, Owns, ReferenceData, read_entries, read_windows
from streams.worker.runtime.inputs import source_record
from streams.worker.runtime.outputs import outgoing, send_grouped, topic_names
from streams.worker.source import SourceRecord

log = logging.getLogger(__name__)

POLL_MS = 500
SYNC_LIMIT_S = 30.0
"""Longest :meth:`ReferenceService.sync` waits before matching goes on (and warns)."""


class ReferenceService(Service):
    """Keeps windows and watchlists in memory from a group-less consumer; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: Codec,
        policy: DeletionPolicy,
        purge_on_end: bool = True,
        ownership: Callable[[], Owns | None] = lambda: None,
        behind: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.codec = codec
        self.purge_on_end = purge_on_end
        self.ownership = ownership
        self.behind = behind
        self.clock = clock
        self.reference = ReferenceData(policy)
        self._grace_clock = GraceClock(max_pause_s=settings.watchlist_max_hold_s)
        self._ready = asyncio.Event()
        self._round = asyncio.Event()
        # end offsets at the last sync() that found them applied: an unchanged
        # end means nothing new to wait for, so a batch costs one ListOffsets
        self._synced: Mapping[TopicPartition, int] | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._targets: dict[TopicPartition, int] = {}
        self._to_purge: set[str] = set()
        self._names = topic_names(settings)
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
                records = [source_record(message) for message in messages]
                if tp.topic == self.settings.topic_watchlist:
                    await self._apply_entries(records)
                else:
                    self._apply_windows(records)
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

    async def _apply_entries(self, records: list[SourceRecord]) -> None:
        metrics.RECORDS_IN.labels(stage="watchlist").inc(len(records))
        result = read_entries(records, self.reference, self.clock(), self.codec.decode)
        if result.dead_letters:
            assert self._producer is not None  # noqa: S101
            letters = outgoing(WATCHLIST.stage, result, self._names)
            await asyncio.gather(*await send_grouped(self._producer, self.codec, letters))

    def _apply_windows(self, records: list[SourceRecord]) -> None:
        for window, _retirement in read_windows(
            records, self.reference, self.clock(), self.codec.decode
        ):
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
        # the grace holds while nothing is assigned or detections wait unprocessed
        holding = owns is None or self.behind()
        now = self._grace_clock.now(self.clock(), running=not holding)
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

    def _update_gauges(self) -> None:
        store = self.reference.store
        metrics.WATCHLIST_ENTRIES.set(store.entry_count)
        metrics.WATCHLISTS.set(len(store.watchlist_ids))
        metrics.WATCHLIST_VERSION.set(store.max_version)
