"""``lfr watchlist purge``: tombstone every entry of a deployment's watchlist.

Reads lfr.operations to find the deployment's watchlist (refusing while
another live deployment uses it), reads lfr.watchlist to its end to find the
keys still holding a template, and publishes a tombstone for each. Every
worker's broadcast consumer then drops them, and compaction removes them
from the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from common.settings import Settings
from schemas.codec import decode
from schemas.errors import SchemaError
from streams.worker.errors import PurgeError, WorkerError
from streams.worker.watchlist_store import split_key
from streams.worker.windows import CLOSED_STATUSES, OperationWindow, window_from_record

log = logging.getLogger(__name__)


def read_to_end(settings: Settings, topic: str) -> Iterator[Any]:
    """Every record of ``topic`` from the beginning up to its end offsets at call time."""
    consumer = KafkaConsumer(
        group_id=None, enable_auto_commit=False, **settings.kafka_python_config()
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise PurgeError(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    if message.offset < ends[TopicPartition(message.topic, message.partition)]:
                        yield message
    finally:
        consumer.close()


def deployment_windows(settings: Settings) -> dict[str, OperationWindow]:
    """The latest valid version of every deployment found on lfr.operations."""
    latest: dict[str, OperationWindow] = {}
    for message in read_to_end(settings, settings.topic_operations):
        if message.value is None:
            continue
        try:
            window = window_from_record(decode("OperationWindow", message.value))
        except (SchemaError, WorkerError):
            continue
        held = latest.get(window.deployment_id)
        if held is None or window.updated_at_ms >= held.updated_at_ms:
            latest[window.deployment_id] = window
    return latest


def live_keys(settings: Settings, watchlist_id: str) -> list[str]:
    """Keys of ``watchlist_id`` whose latest record on lfr.watchlist is not a tombstone."""
    latest: dict[str, bool] = {}
    for message in read_to_end(settings, settings.topic_watchlist):
        if message.key is None:
            continue
        key = message.key.decode("utf-8", errors="replace")
        try:
            owner, _ = split_key(key)
        except ValueError:
            continue
        if owner == watchlist_id:
            latest[key] = message.value is not None
    return sorted(k for k, alive in latest.items() if alive)


def purge_watchlist_of(settings: Settings, deployment_id: str, *, force: bool = False) -> int:
    """Tombstone the watchlist entries of a deployment; the number of tombstones.

    Refuses (:class:`PurgeError`) when the deployment is unknown, still live,
    or its watchlist is named by another live deployment, unless ``force``.
    """
    windows = deployment_windows(settings)
    window = windows.get(deployment_id)
    if window is None:
        raise PurgeError(f"deployment {deployment_id!r} not found on {settings.topic_operations}")
    users = [
        w.deployment_id
        for w in windows.values()
        if w.watchlist_id == window.watchlist_id and w.status not in CLOSED_STATUSES
    ]
    if users and not force:
        raise PurgeError(
            f"watchlist {window.watchlist_id!r} is still used by live deployment(s) "
            f"{', '.join(sorted(users))}; use --force to purge anyway"
        )
    keys = live_keys(settings, window.watchlist_id)
    producer = KafkaProducer(acks="all", **settings.kafka_python_config())
    try:
        for key in keys:
            producer.send(settings.topic_watchlist, key=key.encode(), value=None)
        producer.flush()
    finally:
        producer.close()
    log.info(
        "purged watchlist %s of deployment %s: %d tombstones",
        window.watchlist_id,
        deployment_id,
        len(keys),
    )
    return len(keys)
