"""Shared fixtures: the real stack once per session, and unique names per test.

The stack fixture reuses services that LFR_KAFKA_BOOTSTRAP / LFR_CLICKHOUSE_*
point at when they answer; otherwise it starts the local stack (or the Docker
one, where an engine answers) once per session and stops it at the end, unless
it was already running before the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from common.settings import Settings
from streams.localstack import stack
from streams.localstack.clickhouse import server_answers
from streams.localstack.kafka import broker_answers


@dataclass(frozen=True)
class Stack:
    """Where the session's real services are."""

    settings: Settings
    started_here: bool

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap


def _answers(settings: Settings) -> bool:
    return broker_answers(settings.kafka_bootstrap) and server_answers(
        settings.clickhouse_host, settings.clickhouse_port
    )


@pytest.fixture(scope="session")
def real_stack() -> Iterator[Stack]:
    """The real Kafka broker and ClickHouse server for this test session."""
    settings = Settings()
    if _answers(settings):
        yield Stack(settings, started_here=False)
        return
    if os.environ.get("LFR_TEST_NO_STACK_START"):
        pytest.fail(
            f"no Kafka at {settings.kafka_bootstrap} or ClickHouse at "
            f"{settings.clickhouse_host}:{settings.clickhouse_port}"
        )
    stack.up(settings)
    try:
        yield Stack(settings, started_here=True)
    finally:
        stack.down(settings)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM ``proc`` if it runs; SIGKILL it when it has not exited after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unique(prefix: str) -> str:
    """A name no other test uses: ``prefix`` plus 8 random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_topic(real_stack: Stack) -> Iterator[Callable[..., str]]:
    """Factory: ``kafka_topic(partitions=1, **config) -> name``, deleted after the test."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=real_stack.bootstrap, client_id="lfr-tests")
    made: list[str] = []

    def make(prefix: str = "test", partitions: int = 1, **config: str) -> str:
        name = unique(prefix)
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config)])
        made.append(name)
        return name

    yield make
    if made:
        admin.delete_topics(made)
    admin.close()


@pytest.fixture
def test_settings(real_stack: Stack) -> Callable[..., Settings]:
    """Factory: Settings pointing at the session stack with unique topics and app id."""

    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        names = {
            f"topic_{t}": f"t{tag}.{t}"
            for t in (
                "detections",
                "watchlist",
                "operations",
                "adjudications",
                "scans",
                "alerts",
                "outcomes",
                "dlq",
            )
        }
        base: dict[str, Any] = {
            "kafka_bootstrap": real_stack.bootstrap,
            "clickhouse_host": real_stack.settings.clickhouse_host,
            "clickhouse_port": real_stack.settings.clickhouse_port,
            "clickhouse_database": f"lfr_test_{tag}",
            "app_id": f"lfr-test-{tag}",
            # test data is synthetic: the worker may use the known development key
            "allow_dev_pseudonym_key": True,
            **names,
        }
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
def clickhouse_database(real_stack: Stack) -> Iterator[Callable[[], str]]:
    """Factory: a new empty database on the real server, dropped after the test."""
    from clickhouse_driver import Client

    client = Client(
        host=real_stack.settings.clickhouse_host, port=real_stack.settings.clickhouse_port
    )
    made: list[str] = []

    def make() -> str:
        name = f"lfr_test_{uuid.uuid4().hex[:8]}"
        client.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return name

    yield make
    for name in made:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
    client.disconnect()
