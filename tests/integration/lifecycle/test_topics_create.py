"""``lfr topics create`` on the real broker: lifecycle configs on new topics, drift altered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from common.settings import Settings
from streams.topics import changelog_name, create_topics, topic_specs


@pytest.fixture
def settings(test_settings: Callable[..., Settings]) -> Iterator[Settings]:
    made = test_settings(partitions=2, watchlist_partitions=1, topic_segment_ms=60_000)
    yield made
    admin = KafkaAdminClient(bootstrap_servers=made.kafka_bootstrap)
    names = set(admin.list_topics())
    admin.delete_topics([s.name for s in topic_specs(made) if s.name in names])
    admin.close()


def _configs(settings: Settings, name: str, segment_ms: str | None = None) -> dict[str, str]:
    """The topic's set configs, once the broker serves ``segment_ms`` (or any segment.ms).

    KRaft applies metadata a little after CreateTopics / AlterConfigs return,
    so a describe right after them may still show the previous configs.
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    deadline = time.monotonic() + 15
    try:
        while True:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
            configs = {k: str(v["value"]) for k, v in described["topic"][name].items()}
            have = configs.get("segment.ms")
            if have is not None and segment_ms in (None, have):
                return configs
            if time.monotonic() > deadline:
                return configs
            time.sleep(0.2)
    finally:
        admin.close()


def test_every_topic_gets_its_lifecycle_and_drift_is_altered(settings: Settings) -> None:
    checked = create_topics(settings, apply=False)
    assert all(line.startswith("missing ") for line in checked), checked
    lines = create_topics(settings)
    assert sum(line.startswith("created ") for line in lines) == len(topic_specs(settings))
    detections = _configs(settings, settings.topic_detections)
    assert detections["retention.ms"] == str(settings.detections_retention_ms)
    assert detections["segment.ms"] == "60000"
    watchlist = _configs(settings, settings.topic_watchlist)
    assert watchlist["cleanup.policy"] == "compact"
    assert watchlist["max.compaction.lag.ms"] == str(settings.compaction_max_lag_ms)
    assert watchlist["delete.retention.ms"] == str(settings.tombstone_retention_ms)
    alerts_changelog = _configs(settings, changelog_name(settings, "alerts"))
    assert alerts_changelog["segment.ms"] == "60000"
    assert alerts_changelog["cleanup.policy"] == "compact"

    # a topic made under older settings (no segment.ms, long retention) drifts...
    tighter = settings.model_copy(update={"topic_segment_ms": 30_000})
    checked = create_topics(tighter, apply=False)
    assert f"drift   {settings.topic_detections} (segment.ms 60000 -> 30000)" in checked
    assert _configs(settings, settings.topic_detections)["segment.ms"] == "60000"
    lines = create_topics(tighter)
    altered = [line for line in lines if line.startswith("altered ")]
    assert any(
        line.startswith(f"altered {settings.topic_detections} ")
        and "segment.ms 60000 -> 30000" in line
        for line in altered
    ), lines
    assert _configs(settings, settings.topic_detections, "30000")["segment.ms"] == "30000"
    assert _configs(settings, settings.topic_watchlist, "30000")["segment.ms"] == "30000"
    # ...and, once the broker serves the new configs, a second run finds nothing to change
    for spec in topic_specs(tighter):
        _configs(settings, spec.name, spec.config["segment.ms"])
    again = create_topics(tighter)
    assert not [line for line in again if line.startswith(("altered", "created"))], again
