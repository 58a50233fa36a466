"""Consumed records into :class:`SourceRecord`, and which sites this worker owns now."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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


class DetectionsProgress:
    """How far this worker has processed each lfr.detections partition, and whether it is behind.

    The retire grace must not run out while detections that may still need a
    watchlist wait unprocessed (a restart's backlog, a replay, a slow worker):
    :meth:`behind` tells the reference service to hold the grace. Processed
    means the batch's outputs were acknowledged; before a partition's first
    batch since assignment, Faust's committed offset stands in.
    """

    def __init__(self, app: faust.App, topic: str, slack: int) -> None:
        self.app = app
        self.topic = topic
        self.slack = slack
        """Records that may wait without counting as a backlog (about one batch)."""
        self.next_offset: dict[int, int] = {}

    def advance(self, records: Iterable[SourceRecord]) -> None:
        """Note a batch whose outputs are on the broker."""
        for record in records:
            if record.offset >= self.next_offset.get(record.partition, -1):
                self.next_offset[record.partition] = record.offset + 1

    def behind(self) -> bool:
        """True while an assigned partition has more than ``slack`` records not processed."""
        try:
            consumer: Any = self.app.consumer
            assignment = consumer.assignment()
        except ConsumerNotStarted:
            return False  # nothing assigned: the grace clock already holds for that
        for tp in assignment:
            if tp.topic != self.topic:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001, S112 - revoked meanwhile or not fetched yet
                continue
            done = max(
                self.next_offset.get(tp.partition, -1),
                consumer._committed_offset.get(tp) or -1,
            )
            if highwater is not None and done >= 0 and highwater - done > self.slack:
                return True
            if highwater and done < 0:
                return True  # records on the partition, nothing processed or committed yet
        return False
