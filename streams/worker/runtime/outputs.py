"""Stage results onto the broker: encode, group per partition, produce, then write the tables.

Producing goes straight to the aiokafka producer inside Faust's
(``app.producer._ensure_producer()``, a private accessor): Faust's
``Topic.send`` costs a coroutine, a future and metadata bookkeeping per
message, more than the whole match, and offers no batch call. The consumer
still flushes this same producer before it commits offsets, so at-least-once
holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2

from common.settings import Settings
from schemas.codec import Codec
from streams.topics import CATALOGUE
from streams.worker import metrics
from streams.worker.runtime.tables import Changelogs
from streams.worker.stage import DEAD_LETTERS, StageResult
from streams.worker.throttle import ThrottledLog

log = logging.getLogger(__name__)
dead_letter_log = ThrottledLog(log)

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
    # a batch's scans share a few site ids: hash each (topic, key) once, not per record
    placed: dict[tuple[str, str], tuple[bytes, list[tuple[bytes, bytes, int | None]]]] = {}
    encode = codec.encode
    for topic, key, name, record, timestamp_ms in records:
        where = placed.get((topic, key))
        if where is None:
            partitions = partitions_of.get(topic)
            if partitions is None:
                partitions = partitions_of[topic] = await _partitions(producer, topic)
            key_bytes = key.encode()
            partition = partitions[(murmur2(key_bytes) & 0x7FFFFFFF) % len(partitions)]
            where = placed[(topic, key)] = (key_bytes, grouped.setdefault((topic, partition), []))
        key_bytes, group = where
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


def topic_names(settings: Settings) -> dict[str, str]:
    """Catalogue short name -> topic name under ``settings``, for the topics with a setting."""
    return {t.short: t.name(settings) for t in CATALOGUE if t.setting is not None}


def outgoing(stage: str, result: StageResult, names: Mapping[str, str]) -> list[Outgoing]:
    """The result's outputs and dead letters as records to produce; counts the dead letters."""
    records: list[Outgoing] = []
    targets: dict[str, tuple[str, Callable[[Any], str], str]] = {}
    for topic, record, timestamp_ms in result.outputs:
        target = targets.get(topic.short)
        if target is None:  # once per topic and batch, not per record
            target = targets[topic.short] = (names[topic.short], topic.key_of, topic.schema)
        name, key_of, schema = target
        records.append((name, key_of(record), schema, record, timestamp_ms))
    dlq = names[DEAD_LETTERS.short]
    for letter in result.dead_letters:
        records.append((dlq, DEAD_LETTERS.key_of(letter), DEAD_LETTERS.schema, letter, None))
        metrics.DEAD_LETTERS.labels(stage=stage, reason=letter["reason"]).inc()
        dead_letter_log.warning(
            (stage, letter["reason"]),
            "dead letter: %s[%d]@%d stage=%s reason=%s",
            letter["source_topic"],
            letter["source_partition"],
            letter["source_offset"],
            stage,
            letter["reason"],
        )
    return records


class StageWriter:
    """Carries out a stage's result: produce, wait for every ack, then write the tables.

    Tables change only once the outputs are on the broker: a failure before
    that leaves them as they were, and the retried batch (see
    :mod:`streams.worker.runtime.guard`) is processed again from the same
    state, so no output that a table change promises is ever skipped.
    """

    def __init__(
        self, app: faust.App, settings: Settings, codec: Codec, changelogs: Changelogs
    ) -> None:
        self.app = app
        self.codec = codec
        self.names = topic_names(settings)
        self.changelogs = changelogs

    async def write(self, stage: str, result: StageResult) -> None:
        """Produce ``result``'s outputs and dead letters, await the acks, apply its changes."""
        if result.outputs or result.dead_letters:
            producer = cast(Any, self.app.producer)._ensure_producer()
            records = outgoing(stage, result, self.names)
            await asyncio.gather(*await send_grouped(producer, self.codec, records))
            produced = Counter(o.topic.short for o in result.outputs)
            for short, count in produced.items():
                metrics.RECORDS_OUT.labels(stage=short).inc(count)
        await self.changelogs.apply(result.changes)
