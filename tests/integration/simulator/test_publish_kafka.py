"""``lfr simulate --to-kafka`` on the real broker: every record lands, keyed and co-partitioned."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from common.settings import Settings
from schemas.codec import decode
from streams.simulator import build_scenario
from streams.simulator.events import timeline
from streams.simulator.kafka_out import RECORD_NAMES, publish, topic_names
from streams.topics import create_topics, topic_specs

pytestmark = pytest.mark.integration


def _read_all(settings: Settings, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    consumer = KafkaConsumer(
        topic,
        **settings.kafka_python_config(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    try:
        out = []
        for message in consumer:
            out.append((message.partition, message.key, message.value))
            if len(out) >= expected:
                break
        return out
    finally:
        consumer.close()


def test_small_scenario_is_published_completely(
    test_settings: Callable[..., Settings],
) -> None:
    settings = test_settings(partitions=3)
    create_topics(settings)
    try:
        records = list(timeline(build_scenario("small", 5)))
        counts = publish(records, settings)
        expected = Counter(r.topic for r in records)
        assert counts == dict(expected)
        names = topic_names(settings)
        partition_of_site: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for contract, topic in names.items():
            got = _read_all(settings, topic, expected[contract])
            assert len(got) == expected[contract]
            tombstones = sum(1 for _, _, v in got if v is None)
            assert tombstones == sum(1 for r in records if r.topic == contract and r.value is None)
            for partition, key, value in got:
                if contract in ("detections", "operations"):
                    assert value is not None
                    record = decode(RECORD_NAMES[contract], value)
                    assert key == record["site_id"].encode()
                    partition_of_site[record["site_id"]][contract].add(partition)
        # co-partitioning: a site's detections and windows share one partition number
        for site, by_topic in partition_of_site.items():
            assert by_topic["detections"] == by_topic["operations"], site
            assert len(by_topic["detections"]) == 1
    finally:
        admin = KafkaAdminClient(**settings.kafka_python_config())
        try:
            existing = set(admin.list_topics())
            admin.delete_topics([s.name for s in topic_specs(settings) if s.name in existing])
        finally:
            admin.close()
