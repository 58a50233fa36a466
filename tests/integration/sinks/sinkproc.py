"""Helpers of the sink crash tests: topics, producing records, the sink as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from common.settings import Settings
from schemas.codec import encode
from tests.synthetic import SyntheticData

SINK_TOPICS = ("scans", "alerts", "outcomes", "operations", "dlq")


@contextmanager
def topics(settings: Settings, partitions: int = 3) -> Iterator[None]:
    """The sink's topics of these settings, deleted afterwards."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    names = [getattr(settings, f"topic_{t}") for t in SINK_TOPICS]
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    try:
        yield
    finally:
        admin.delete_topics(names)
        admin.close()


def produce(settings: Settings, data: SyntheticData, garbage: list[tuple[str, bytes]]) -> int:
    """Every generated record encoded to its topic, plus raw ``garbage``; records sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    sent = 0
    plan = [(settings.topic_operations, "OperationWindow", data.operations, "site_id"),
            (settings.topic_scans, "Scan", data.scans, "site_id"),
            (settings.topic_alerts, "Alert", data.alerts, "alert_id"),
            (settings.topic_outcomes, "Outcome", data.outcomes, "alert_id")]  # fmt: skip
    for topic, name, records, key in plan:
        for record in records:
            producer.send(topic, key=str(record[key]).encode(), value=encode(name, record))
            sent += 1
    for topic, payload in garbage:
        producer.send(topic, key=b"bad", value=payload)
        sent += 1
    producer.flush()
    producer.close()
    return sent


def sink_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``lfr sink`` use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    for field in ("kafka_bootstrap", "clickhouse_host", "clickhouse_port", "clickhouse_database",
                  "app_id", "sink_metrics_port", "sink_max_blocked_s",
                  *(f"topic_{t}" for t in SINK_TOPICS)):  # fmt: skip
        env[f"LFR_{field.upper()}"] = str(getattr(settings, field))
    for field in ("clickhouse_user", "clickhouse_password", "clickhouse_ingest_user",
                  "clickhouse_ingest_password", "clickhouse_analyst_user",
                  "clickhouse_analyst_password"):  # fmt: skip
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value:
            env[f"LFR_{field.upper()}"] = str(value)
    return env


SINK_OPTIONS = ("--batch-size", "97", "--linger", "0.2", "--rollup-interval", "1",
                "--retention-interval", "0", "--session-timeout-ms", "6000")  # fmt: skip


def start_sink(settings: Settings, log_path: Path, *extra: str,
               kill_after_inserts: int = 0) -> subprocess.Popen[bytes]:  # fmt: skip
    """``lfr sink`` as a child process, logging to ``log_path``.

    ``kill_after_inserts``: run the test-only sink that SIGKILLs itself after
    that many inserts, before their commit (:mod:`.faulty_sink`).
    """
    command = ["-m", "streams.cli", "sink"]
    if kill_after_inserts:
        command = ["-m", "tests.integration.sinks.faulty_sink", str(kill_after_inserts)]
    args = [sys.executable, *command, *SINK_OPTIONS, *extra]
    log = log_path.open("ab")
    return subprocess.Popen(args, env=sink_env(settings), stdout=log, stderr=log)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL, no cleanup of any kind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def committed_all(settings: Settings) -> bool:
    """True once the sink's group has committed the end offset of every partition."""
    from kafka import KafkaConsumer, TopicPartition

    group = f"{settings.app_id}-sink"
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p)
               for topic in (getattr(settings, f"topic_{t}") for t in SINK_TOPICS)
               for p in sorted(consumer.partitions_for_topic(topic) or [])]  # fmt: skip
        ends = consumer.end_offsets(tps)
        return all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        consumer.close()


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
