"""Consumed records into :class:`SourceRecord`, and which sites this worker owns now."""

from __future__ import annotations

from collections.abc import Callable

import faust
from aiokafka import ConsumerRecord
from aiokafka.partitioner import murmur2
from faust.exceptions import ConsumerNotStarted
from faust.types.tuples import Message

from streams.worker.reference import Owns
from streams.worker.source import SourceRecord


def source_record(message: Message | ConsumerRecord) -> SourceRecord:
    """The record behind a Faust message (``event.message``) or an aiokafka record.

    Both carry the broker's timestamp, in different units: aiokafka's is
    integer milliseconds, Faust's the same divided by 1000.0 (seconds, a
    float), rounded back here to the milliseconds it came from.
    """
    timestamp = message.timestamp
    if isinstance(message, Message):
        timestamp_ms = round(timestamp * 1000)
    else:
        timestamp_ms = int(timestamp)
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=timestamp_ms,
    )


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
