"""Kafka storage formatting with the real StorageTool (Java and the cached jars, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings
from streams.localstack import kafka
from streams.localstack.kafka import KafkaService
from tests.conftest import free_port
from tests.integration.stack.private_stack import link_jar_cache

pytestmark = pytest.mark.integration


def test_a_cluster_id_that_begins_with_a_dash_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one random id in 64 begins with "-"; "-t <id>" read it as a missing value and a
    # private stack failed to start ("argument --cluster-id/-t: expected one argument")
    link_jar_cache(tmp_path)  # the session's jars; without them prepare() asks Maven
    cluster_id = "-" + kafka.random_cluster_id()[1:]
    monkeypatch.setattr(kafka, "random_cluster_id", lambda: cluster_id)
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        kafka_controller_port=free_port(), state_dir=tmp_path)  # fmt: skip
    broker = KafkaService(settings)
    broker.prepare()
    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta
