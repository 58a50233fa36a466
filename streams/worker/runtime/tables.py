"""The worker's Faust tables: created keyed by raw source-key bytes, written once metadata is known.

Every table uses ``use_partitioner=True`` with the source record's key
bytes, so its changelog partition is murmur2(key): the same partition as the
source record. Tables stay co-partitioned with their input, and a timer may
write outside an event (the orphan and alert expiry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

import faust
from faust.types import TableT

from common.settings import Settings
from streams.topics import changelog_config
from streams.worker.adjudications import PENDING_TABLE
from streams.worker.detections import SITE_CLOCK_TABLE
from streams.worker.expiry import ALERTS_TABLE
from streams.worker.stage import TableChange
from streams.worker.windows import WINDOWS_TABLE

log = logging.getLogger(__name__)


def now_ms() -> int:
    """Wall-clock milliseconds: how long a table entry has lived (never a match decision)."""
    return time.time_ns() // 1_000_000


def create_tables(app: faust.App, settings: Settings) -> dict[str, TableT]:
    """The four tables by name; the two holding personal data expire through compaction.

    No standby replicas (the app's ``table_standby_replicas=0``): a worker's
    tables hold only its own partitions, so each expires only what it owns.
    """
    args: dict[str, Any] = {
        "partitions": settings.partitions,
        "use_partitioner": True,
        "key_type": bytes,
    }
    personal = {**args, "extra_topic_configs": changelog_config(settings)}
    return {
        WINDOWS_TABLE: byte_keyed(app.Table(WINDOWS_TABLE, **args)),
        SITE_CLOCK_TABLE: byte_keyed(app.Table(SITE_CLOCK_TABLE, **args)),
        ALERTS_TABLE: byte_keyed(app.Table(ALERTS_TABLE, **personal)),
        PENDING_TABLE: byte_keyed(app.Table(PENDING_TABLE, **personal)),
    }


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

    def __init__(self, app: faust.App, tables: Mapping[str, TableT]) -> None:
        self.app = app
        self.tables = tables

    async def _ensure(self, table: TableT) -> None:
        producer = cast(Any, self.app.producer)._ensure_producer()
        topic = table.changelog_topic.get_topic_name()
        if producer.client.cluster.partitions_for_topic(topic) is None:
            log.info("waiting for the metadata of changelog %s", topic)
            await producer.partitions_for(topic)

    async def apply(self, changes: Iterable[TableChange]) -> None:
        """Write each change, in order, once its changelog's metadata is known."""
        for change in changes:
            table = self.tables[change.table]
            await self._ensure(table)
            if change.deleted:
                table.pop(change.key, None)
            else:
                table[change.key] = change.value
