"""The stack on a Docker engine, through testcontainers: current Kafka and ClickHouse images.

Used where a Docker engine answers (or LFR_STACK=docker). The containers bind
the same host ports as the local processes would, so every client setting
stays the same; their ids are kept in the state dir so that a later
``lfr stack down`` (another process) removes them. Prometheus is not
containerised here: the local stack's Prometheus serves both backends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common.settings import Settings
from streams.localstack.clickhouse import server_answers
from streams.localstack.kafka import broker_answers
from streams.localstack.process import StackError
from streams.localstack.service import ServiceStatus

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


class DockerStack:
    """Kafka (KRaft) and ClickHouse containers bound to the settings' ports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.record: Path = settings.state_dir.resolve() / "run" / "docker.json"

    def _containers(self) -> dict[str, str]:
        if not self.record.exists():
            return {}
        return dict(json.loads(self.record.read_text()))

    def up(self) -> list[str]:
        """Start the containers unless they run; wait until both answer."""
        if self._containers() and all(s.ready for s in self.status()):
            return [
                f"{name}: already running (container {cid[:12]})"
                for name, cid in self._containers().items()
            ]
        # the containers must outlive this command: no reaper container
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        from testcontainers.clickhouse import ClickHouseContainer
        from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
        kafka.with_bind_ports(kafka.port, self.settings.kafka_port)
        clickhouse = ClickHouseContainer(CLICKHOUSE_IMAGE, username="default", password="")
        clickhouse.with_bind_ports(9000, self.settings.clickhouse_port)
        clickhouse.with_bind_ports(8123, self.settings.clickhouse_http_port)
        kafka.start(timeout=120)
        clickhouse.start()
        ids = {
            "kafka": kafka.get_wrapped_container().id,
            "clickhouse": clickhouse.get_wrapped_container().id,
        }
        self.record.parent.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps(ids))
        if not broker_answers(self.settings.kafka_bootstrap, timeout_s=10):
            raise StackError(
                f"the Kafka container does not answer at {self.settings.kafka_bootstrap}"
            )
        return [f"{name}: started (container {cid[:12]})" for name, cid in ids.items()]

    def down(self) -> list[str]:
        """Remove the recorded containers."""
        import docker

        client = docker.from_env()
        lines = []
        for name, cid in self._containers().items():
            try:
                client.containers.get(cid).remove(force=True)
                lines.append(f"{name}: removed container {cid[:12]}")
            except docker.errors.NotFound:
                lines.append(f"{name}: not running")
        self.record.unlink(missing_ok=True)
        return lines

    def status(self) -> list[ServiceStatus]:
        """Readiness of both containers."""
        s = self.settings
        log = self.record
        return [
            ServiceStatus("kafka", None, broker_answers(s.kafka_bootstrap), s.kafka_bootstrap, log),
            ServiceStatus(
                "clickhouse",
                None,
                server_answers(s.clickhouse_host, s.clickhouse_port),
                f"{s.clickhouse_host}:{s.clickhouse_port}",
                log,
            ),
        ]
