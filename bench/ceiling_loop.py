"""The worker's detections work as a hand-written aiokafka loop: the ceiling for the worker.

Does what the worker's detections agent does, minus Faust: read the windows
and watchlists into the same :class:`ReferenceData`, then per batch consume
(consumer group, ``getmany``), decode, gate and match with the same
:func:`process_batch`, produce scans and alerts with the same
:func:`send_grouped`, wait for the acks; commit every 2.8 s as Faust does.
No tables, no watchdog, no rebalance handling: what is left is the price of
the work itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.settings import Settings
from schemas.codec import Codec
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import STAGE, DetectionContext, process_batch, stage_result
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.reference import ReferenceData, read_entries, read_windows
from streams.worker.runtime.batch_source import FETCH_MAX_WAIT_MS
from streams.worker.runtime.inputs import source_record
from streams.worker.runtime.outputs import outgoing, send_grouped, topic_names

MAX_BATCH = 500
COMMIT_INTERVAL_S = 2.8
"""Offsets are committed as often as the worker's do (Faust's default commit interval),
each batch's acks awaited first: a commit per batch would cost a broker round trip the
worker does not pay."""


async def load_reference(settings: Settings, codec: Codec) -> ReferenceData:
    """Windows and watchlist entries from the start of their topics to their end."""
    reference = ReferenceData(DeletionPolicy(grace_s=settings.watchlist_retire_grace_s))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        for topic, partitions in (
            (settings.topic_operations, settings.partitions),
            (settings.topic_watchlist, settings.watchlist_partitions),
        ):
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    records = [source_record(m) for m in messages]
                    if topic == settings.topic_operations:
                        read_windows(records, reference, 0.0, codec.decode)
                    else:
                        read_entries(records, reference, 0.0, codec.decode)
    finally:
        await consumer.stop()
    return reference


async def same_work_loop(settings: Settings, expected: int) -> dict[str, Any]:
    """Process ``expected`` detections; rate from the first batch to the last commit."""
    codec = Codec(max_payload_bytes=settings.max_payload_bytes)
    reference = await load_reference(settings, codec)
    ctx = DetectionContext(
        windows_of=reference.windows_of,
        watchlist=reference.snapshot,
        high_water_of=lambda _site: None,
        pseudonymiser=Pseudonymiser(settings.require_pseudonym_key()),
        decode=codec.decode_millis,
    )
    consumer = AIOKafkaConsumer(
        settings.topic_detections,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        # as the worker's consumer: aiokafka's 500 ms hold on a fetch for the idle
        # partition alone would delay the busy one's next fetch (batch_source.py)
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    names = topic_names(settings)
    count = alerts = 0
    started: float | None = None
    done: dict[TopicPartition, int] = {}
    next_commit = time.perf_counter() + COMMIT_INTERVAL_S
    try:
        while count < expected:
            fetched = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if started is None and fetched:
                started = time.perf_counter()
            for tp, messages in fetched.items():
                records = [source_record(m) for m in messages]
                result = process_batch(records, ctx)
                produced = outgoing(STAGE, stage_result(result, lambda _site: None), names)
                await asyncio.gather(*await send_grouped(producer, codec, produced))
                done[tp] = messages[-1].offset + 1
                count += len(records)
                alerts += len(result.alerts)
            if time.perf_counter() >= next_commit:
                await consumer.commit(done)
                next_commit = time.perf_counter() + COMMIT_INTERVAL_S
        await consumer.commit(done)
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        await producer.stop()
        await consumer.stop()
    return {"detections": count, "alerts": alerts, "seconds": seconds,
            "per_second": count / seconds}  # fmt: skip
