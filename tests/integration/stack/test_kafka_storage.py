"""Kafka storage formatting with the real StorageTool (Java and the cached jars, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings
from streams.localstack import kafka
from streams.localstack.kafka import KafkaService
from tests.conftest import free_port

pytestmark = pytest.mark.integration

JAR_CACHE = Path(".lfr/kafka-lib")


def test_a_cluster_id_that_begins_with_a_dash_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one random id in 64 begins with "-"; "-t <id>" read it as a missing value and a
    # private stack failed to start ("argument --cluster-id/-t: expected one argument")
    if not (JAR_CACHE / ".pom-sha256").exists():
        pytest.skip("no cached Kafka jars (.lfr/kafka-lib): run `lfr stack up` once")
    (tmp_path / "kafka-lib").symlink_to(JAR_CACHE.resolve())
    cluster_id = "-" + kafka.random_cluster_id()[1:]
    monkeypatch.setattr(kafka, "random_cluster_id", lambda: cluster_id)
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        kafka_controller_port=free_port(), state_dir=tmp_path)  # fmt: skip
    broker = KafkaService(settings)
    broker.prepare()
    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta
