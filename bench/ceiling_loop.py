"""The worker's detections work as a hand-written aiokafka loop: the ceiling for the worker.

Does what the worker's detections agent does, minus Faust: read the windows
and watchlists into the same :class:`ReferenceData`, then per batch consume
(consumer group, ``getmany``), decode, gate and match with the same
:func:`process_batch`, produce scans and alerts with the same
:func:`send_grouped`, wait for the acks, commit. No tables, no watchdog, no
rebalance handling: what is left is the price of the work itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common.settings import Settings
from schemas.codec import Codec
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import DetectionContext, process_batch
from streams.worker.faust_io import Outgoing, send_grouped
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.reference import ReferenceData
from streams.worker.source import SourceRecord
from streams.worker.windows import parse_window

MAX_BATCH = 500


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
                    for m in messages:
                        if topic == settings.topic_operations:
                            window = codec.decode("OperationWindow", m.value)
                            reference.apply_window(parse_window(window, m.key.decode()), 0.0)
                        else:
                            entry = codec.decode("WatchlistEntry", m.value)
                            reference.apply_entry(m.key.decode(), entry, 0.0)
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
        decode=codec.decode,
    )
    consumer = AIOKafkaConsumer(
        settings.topic_detections,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    count = alerts = 0
    started: float | None = None
    try:
        while count < expected:
            fetched = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if started is None and fetched:
                started = time.perf_counter()
            for tp, messages in fetched.items():
                records = [
                    SourceRecord(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp)
                    for m in messages
                ]
                result = process_batch(records, ctx)
                outgoing: list[Outgoing] = [
                    (settings.topic_scans, scan["site_id"], "Scan", scan, ts)
                    for scan, ts in zip(result.scans, result.scan_timestamps_ms, strict=True)
                ]
                outgoing += [
                    (settings.topic_alerts, alert["alert_id"], "Alert", alert, source.timestamp_ms)
                    for alert, source in result.alerts
                ]
                await asyncio.gather(*await send_grouped(producer, codec, outgoing))
                await consumer.commit({tp: messages[-1].offset + 1})
                count += len(records)
                alerts += len(result.alerts)
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        await producer.stop()
        await consumer.stop()
    return {"detections": count, "alerts": alerts, "seconds": seconds,
            "per_second": count / seconds}  # fmt: skip
