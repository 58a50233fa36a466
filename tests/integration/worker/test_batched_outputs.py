"""Batched produce on the real broker: same partitions, keys, values and timestamps as ``send``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from schemas.codec import Codec, decode
from streams.worker.runtime.inputs import partition_of
from streams.worker.runtime.outputs import Outgoing, send_grouped

pytestmark = pytest.mark.integration

PARTITIONS = 3


def scan(n: int) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "deployment_id": "D1",
        "site_id": f"S{n % 7}",
        "camera_id": "c1",
        "captured_at": 1_759_309_200_000 + n,
        "face_quality": 0.9,
        "matched": n % 5 == 0,
    }


def read_all(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    messages: list[Any] = []
    for _ in range(30):
        for batch in consumer.poll(timeout_ms=1000).values():
            messages.extend(batch)
        if len(messages) >= expected:
            break
    consumer.close()
    return messages


def test_batched_records_land_where_send_puts_them(
    kafka_topic: Callable[..., str], real_stack: Any
) -> None:
    topic = kafka_topic("batched", partitions=PARTITIONS)
    # more than one producer batch per partition: the overflow path runs too
    count = 3000
    outgoing: list[Outgoing] = [
        (topic, f"S{n % 7}", "Scan", scan(n), 1_700_000_000_000 + n) for n in range(count)
    ]

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=real_stack.bootstrap, acks="all", max_batch_size=16384
        )
        await producer.start()
        try:
            futures = await send_grouped(producer, Codec(), outgoing)
            assert len(futures) > PARTITIONS  # several batches, one future each
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())
    messages = read_all(real_stack.bootstrap, topic, count)
    assert len(messages) == count
    seen = {}
    for message in messages:
        record = decode("Scan", message.value)
        n = int(record["event_id"][1:])
        assert message.key == f"S{n % 7}".encode()
        assert message.partition == partition_of(f"S{n % 7}", PARTITIONS)
        assert message.timestamp == 1_700_000_000_000 + n
        seen[n] = message.offset
    assert sorted(seen) == list(range(count))
    # within a partition the batch keeps the order it was given
    for p in range(PARTITIONS):
        ordered = sorted((m.offset, int(decode("Scan", m.value)["event_id"][1:]))
                         for m in messages if m.partition == p)  # fmt: skip
        assert [n for _, n in ordered] == sorted(n for _, n in ordered)
