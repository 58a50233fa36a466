"""kafka-python and aiokafka interoperate through the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import Stack

pytestmark = pytest.mark.integration

KEYS = [f"site-{i}".encode() for i in range(40)]


def _kafka_python_consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes, int]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    records = []
    for message in consumer:
        records.append((message.key, message.value, message.partition))
        if len(records) == count:
            break
    consumer.close()
    return records


async def _aiokafka_consume(
    bootstrap: str, topic: str, count: int
) -> list[tuple[bytes, bytes, int]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[tuple[bytes, bytes, int]] = []
    try:
        async with asyncio.timeout(20):
            async for message in consumer:
                records.append((message.key, message.value, message.partition))
                if len(records) == count:
                    break
    finally:
        await consumer.stop()
    return records


def test_kafka_python_to_aiokafka(real_stack: Stack, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic("kp2aio", partitions=6)
    producer = KafkaProducer(bootstrap_servers=real_stack.bootstrap, acks="all")
    for i, key in enumerate(KEYS):
        producer.send(topic, key=key, value=f"v{i}".encode())
    producer.flush()
    producer.close()

    got = asyncio.run(_aiokafka_consume(real_stack.bootstrap, topic, len(KEYS)))
    assert sorted((k, v) for k, v, _ in got) == sorted(
        (k, f"v{i}".encode()) for i, k in enumerate(KEYS)
    )


def test_aiokafka_to_kafka_python(real_stack: Stack, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic("aio2kp", partitions=6)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=real_stack.bootstrap, acks="all")
        await producer.start()
        try:
            for i, key in enumerate(KEYS):
                await producer.send(topic, key=key, value=f"w{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    got = _kafka_python_consume(real_stack.bootstrap, topic, len(KEYS))
    assert sorted((k, v) for k, v, _ in got) == sorted(
        (k, f"w{i}".encode()) for i, k in enumerate(KEYS)
    )


def test_both_clients_partition_keys_alike(
    real_stack: Stack, kafka_topic: Callable[..., str]
) -> None:
    """Co-partitioning rests on kafka-python and aiokafka hashing keys the same (murmur2)."""
    topic_a = kafka_topic("part-kp", partitions=6)
    topic_b = kafka_topic("part-aio", partitions=6)
    producer = KafkaProducer(bootstrap_servers=real_stack.bootstrap)
    for key in KEYS:
        producer.send(topic_a, key=key, value=b"x")
    producer.flush()
    producer.close()

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=real_stack.bootstrap)
        await producer.start()
        try:
            for key in KEYS:
                await producer.send(topic_b, key=key, value=b"x")
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    by_kafka_python = {k: p for k, _, p in _kafka_python_consume(real_stack.bootstrap, topic_a, 40)}
    by_aiokafka = {k: p for k, _, p in _kafka_python_consume(real_stack.bootstrap, topic_b, 40)}
    assert by_kafka_python == by_aiokafka
    assert len(set(by_kafka_python.values())) > 1, "keys should spread over partitions"
