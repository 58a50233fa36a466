"""Consumer lag of a group, from committed offsets and end offsets (kafka-python admin)."""

from __future__ import annotations

from collections.abc import Iterable

from streams.settings import Settings

TopicPartitionLag = dict[tuple[str, int], int]


def group_lag(settings: Settings, group: str, topics: Iterable[str]) -> TopicPartitionLag:
    """Records of ``topics`` not yet committed by ``group``, per topic-partition.

    A partition the group never committed counts from its beginning offset,
    so a group that has not started yet shows all its input as lag.
    """
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(**settings.kafka_python_config(), client_id="lfr-lag")
    consumer = KafkaConsumer(**settings.kafka_python_config(), client_id="lfr-lag")
    try:
        existing = set(admin.list_topics())
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in existing
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        committed = admin.list_group_offsets({group: None}).get(group, {})
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        lag: TopicPartitionLag = {}
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else begins[tp]
            lag[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return lag
    finally:
        consumer.close()
        admin.close()
