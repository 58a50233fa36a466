"""The worker's edges to Faust: input records, output sends, table keys, partition ownership."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import ConsumerNotStarted
from faust.types import EventT, TableT

from common.settings import Settings
from schemas.codec import Codec
from streams.worker import metrics
from streams.worker.reference import Owns
from streams.worker.source import SourceRecord
from streams.worker.throttle import ThrottledLog

log = logging.getLogger(__name__)
dead_letter_log = ThrottledLog(log)


def source_of(event: EventT) -> SourceRecord:
    """The consumed record behind a Faust event."""
    message = event.message
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000),
    )


Outgoing = tuple[str, str, str, Any, int | None]
"""(topic, key, schema name, record, Kafka timestamp in ms or ``None`` for now)."""


async def _partitions(producer: Any, topic: str) -> list[int]:
    """The topic's partitions in the order aiokafka's default partitioner indexes them."""
    known = producer.client.cluster.partitions_for_topic(topic)
    if known is None:
        known = await producer.partitions_for(topic)
    return sorted(known)


async def send_grouped(producer: Any, codec: Codec, records: Iterable[Outgoing]) -> list[Awaitable]:
    """Queue many records on an aiokafka producer with one call per topic partition.

    Encodes every record, groups them by the partition aiokafka's default
    partitioner would pick (Java-compatible murmur2, so a key lands where a
    plain ``send`` puts it), and hands each group to the producer as one
    prepared batch: no coroutine, future or metadata wait per record. Each
    returned future (one per batch, not per record) resolves when the broker
    has acknowledged its batch; the caller awaits them before acknowledging
    its input, so at-least-once holds as with ``send``.
    """
    grouped: dict[tuple[str, int], list[tuple[bytes, bytes, int | None]]] = {}
    partitions_of: dict[str, list[int]] = {}
    encode = codec.encode
    for topic, key, name, record, timestamp_ms in records:
        partitions = partitions_of.get(topic)
        if partitions is None:
            partitions = partitions_of[topic] = await _partitions(producer, topic)
        key_bytes = key.encode()
        partition = partitions[(murmur2(key_bytes) & 0x7FFFFFFF) % len(partitions)]
        group = grouped.setdefault((topic, partition), [])
        group.append((key_bytes, encode(name, record), timestamp_ms))
    futures: list[Awaitable] = []
    for (topic, partition), group in grouped.items():
        batch = producer.create_batch()
        for key_bytes, value, timestamp_ms in group:
            if batch.append(key=key_bytes, value=value, timestamp=timestamp_ms) is None:
                # full: queue it and start the next (a first record always fits)
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key_bytes, value=value, timestamp=timestamp_ms)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


class Outputs:
    """Encodes records and hands them to the producer without waiting per record."""

    def __init__(self, app: faust.App, settings: Settings, codec: Codec) -> None:
        self.app = app
        self.codec = codec
        self.scans = settings.topic_scans
        self.alerts = settings.topic_alerts
        self.outcomes = settings.topic_outcomes
        self.dlq = settings.topic_dlq

    async def send(
        self, topic: str, key: str, name: str, record: Any, timestamp_ms: int | None = None
    ) -> Awaitable:
        """Queue one record; the returned future resolves when the broker has it.

        Straight to the app's producer rather than ``Topic.send``: Faust's
        per-message bookkeeping costs more than the whole match, and the
        consumer flushes this same producer before it commits offsets, so
        at-least-once holds. ``timestamp_ms`` (the source record's Kafka
        timestamp) carries the detection's publish time on to the sink, whose
        commit latency is then detection published -> row in ClickHouse.
        """
        timestamp = None if timestamp_ms is None else timestamp_ms / 1000
        future: Awaitable = await self.app.producer.send(
            topic, key.encode(), self.codec.encode(name, record), None, timestamp, None
        )
        return future

    async def send_batch(self, records: Iterable[Outgoing]) -> list[Awaitable]:
        """Queue many records at once (see :func:`send_grouped`); futures per partition batch."""
        producer = cast(Any, self.app.producer)._ensure_producer()
        return await send_grouped(producer, self.codec, records)

    async def dead_letters(self, stage: str, letters: Iterable[dict[str, Any]]) -> list[Awaitable]:
        """Queue dead letters (key: source topic) and count them."""
        futures = []
        for letter in letters:
            metrics.DEAD_LETTERS.labels(stage=stage, reason=letter["reason"]).inc()
            futures.append(await self.send(self.dlq, letter["source_topic"], "DeadLetter", letter))
            dead_letter_log.warning(
                (stage, letter["reason"]),
                "dead letter: %s[%d]@%d stage=%s reason=%s",
                letter["source_topic"],
                letter["source_partition"],
                letter["source_offset"],
                stage,
                letter["reason"],
            )
        return futures


def byte_keyed(table: TableT) -> TableT:
    """Make the changelog key the raw source key bytes.

    faust 0.15 derives a Table's key serializer from ``key_type`` ("json" for
    anything but a Record) and ignores ``schema`` for it, so a bytes key would
    be written as a JSON string and murmur2 would pick another partition than
    the source record's. The changelog topic is created lazily from this
    attribute, so setting it before the first access is enough.
    """
    collection = cast(Any, table)  # the attributes live on faust.Table, not TableT
    collection.key_serializer = "raw"
    collection.value_serializer = "json"
    return table


class Changelogs:
    """Table writes that first make sure the producer knows the changelog's partitions.

    Tables use ``use_partitioner=True``: a write picks its changelog partition
    synchronously from the producer's cluster metadata and raises (a
    ``TypeError`` inside aiokafka) when the topic is missing from it: on a
    fresh broker before the topic's first metadata fetch, or after a refresh
    taken while the broker reported the topic in error (a restart). Awaiting
    the topic's metadata right before the write, with no ``await`` between
    the check and the write, removes that race.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def _ensure(self, table: TableT) -> None:
        producer = cast(Any, self.app.producer)._ensure_producer()
        topic = table.changelog_topic.get_topic_name()
        if producer.client.cluster.partitions_for_topic(topic) is None:
            log.info("waiting for the metadata of changelog %s", topic)
            await producer.partitions_for(topic)

    async def put(self, table: TableT, key: bytes, value: Any) -> None:
        """``table[key] = value`` once the changelog's metadata is known."""
        await self._ensure(table)
        table[key] = value

    async def delete(self, table: TableT, key: bytes) -> None:
        """``del table[key]`` once the changelog's metadata is known."""
        await self._ensure(table)
        del table[key]


def partition_of(key: str, partitions: int) -> int:
    """The partition the Java-compatible murmur2 partitioner gives ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def detections_ownership(app: faust.App, topic: str, partitions: int) -> Callable[[], Owns | None]:
    """``() -> owns(site_id)`` for the lfr.detections partitions assigned now.

    ``None`` while nothing is assigned (start-up, rebalance): the caller then
    cannot tell which sites are its own.
    """

    def current() -> Owns | None:
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:
            return None
        owned = {tp.partition for tp in assignment if tp.topic == topic}
        if not owned:
            return None
        return lambda site_id: partition_of(site_id, partitions) in owned

    return current
