"""Consumer lag of a group, from committed offsets and end offsets (kafka-python admin)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.settings import Settings

TopicPartitionLag = dict[tuple[str, int], int]


class LagProbe:
    """Reads committed and end offsets; keeps its clients open between polls."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        config = settings.kafka_python_config()
        self._admin: Any = KafkaAdminClient(**config, client_id="lfr-lag")
        # no group: this consumer only asks for offsets, it never joins or commits
        self._consumer: Any = KafkaConsumer(**config, client_id="lfr-lag", enable_auto_commit=False)

    def group_lag(self, group: str, topics: Iterable[str]) -> TopicPartitionLag:
        """Records of ``topics`` not yet committed by ``group``, per topic-partition.

        A partition the group never committed counts from its beginning offset,
        so a group that has not started yet shows all its input as lag.
        """
        from kafka import TopicPartition

        existing = set(self._admin.list_topics())
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in existing
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        committed = self._admin.list_group_offsets({group: None}).get(group, {})
        ends = self._consumer.end_offsets(partitions)
        begins = self._consumer.beginning_offsets(partitions)
        lag: TopicPartitionLag = {}
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else begins[tp]
            lag[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return lag

    def close(self) -> None:
        """Close both clients."""
        self._consumer.close()
        self._admin.close()


def group_lag(settings: Settings, group: str, topics: Iterable[str]) -> TopicPartitionLag:
    """One-shot :meth:`LagProbe.group_lag`."""
    probe = LagProbe(settings)
    try:
        return probe.group_lag(group, topics)
    finally:
        probe.close()
