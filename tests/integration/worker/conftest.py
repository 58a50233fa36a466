"""Harness for the worker's integration tests: topics, a worker subprocess, I/O.

Each test gets unique topics and a unique app id (so its own consumer group
and changelogs), runs ``python -m streams.cli worker`` as a real subprocess
(so SIGKILL is real) and talks to Kafka with kafka-python.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import SecretStr

from common.settings import Settings
from schemas.codec import decode, encode
from streams.topics import create_topics
from tests.conftest import free_port, stop_process

ROOT = Path(__file__).resolve().parents[3]
TABLES = ("windows", "site_clock", "alerts", "pending_adjudications")


def settings_env(settings: Settings) -> dict[str, str]:
    """``LFR_*`` variables that reproduce ``settings`` in a subprocess."""
    return settings.to_env()


class WorkerHarness:
    """One test's topics, worker processes and Kafka clients."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        create_topics(settings)

    # --- worker ----------------------------------------------------------

    def start_worker(self, *args: str, module: str = "streams.cli") -> subprocess.Popen[bytes]:
        """``python -m <module> worker ...`` (``module``: a test launcher may inject faults)."""
        log = self.tmp_path / f"worker-{len(self.procs)}.log"
        self.logs.append(log)
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "worker", "--batch-within", "0.1", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def readyz(self) -> int:
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.read().decode()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.readyz() == 200:
                return
            if self.procs and self.procs[-1].poll() is not None:
                pytest.fail("worker exited:\n" + self.log_text()[-3000:])
            time.sleep(0.3)
        pytest.fail("worker never became ready:\n" + self.log_text()[-3000:])

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def offset_events(self) -> str:
        """Every worker's log lines about seeks, drops, rebalances, recovery and errors."""
        marks = ("seeking back", "dropped", "rebalanc", "_on_partitions_assigned", "generation id",
                 "table recovery", "Restarting", "Fetcher", "Worker ready", "ERROR",
                 "CRITICAL", "Traceback")  # fmt: skip
        lines = [line for line in self.log_text().splitlines() if any(m in line for m in marks)]
        return "\n".join(lines[-80:])

    def log_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.logs if p.exists())

    # --- kafka I/O ---------------------------------------------------------

    def send(self, topic: str, key: str | None, name: str | None, record: Any) -> None:
        """Produce one record (``name`` None: ``record`` is raw bytes or None)."""
        value = record if name is None else encode(name, record)
        self.producer.send(topic, key=None if key is None else key.encode(), value=value)

    def flush(self) -> None:
        self.producer.flush()

    def read(self, topic: str) -> list[Any]:
        """Every record currently on ``topic`` (kafka-python ConsumerRecords)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if not tps:
                return []  # no metadata for the topic yet: nothing readable now
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            out: list[Any] = []
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for batch in consumer.poll(timeout_ms=500).values():
                    out.extend(batch)
            return out
        finally:
            consumer.close()

    def decoded(self, topic: str, name: str) -> list[dict[str, Any]]:
        return [decode(name, m.value) for m in self.read(topic)]

    def wait_for(
        self, topic: str, name: str, predicate: Callable[[list[dict]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = self.decoded(topic, name)
            if predicate(records):
                return records
            if self.procs and self.procs[-1].poll() is not None:
                pytest.fail("worker exited:\n" + self.log_text()[-3000:])
            time.sleep(0.5)
        pytest.fail(
            f"{topic}: condition not met, have {len(records)} records\n"
            + self.offset_events()
            + "\n----- last log lines -----\n"
            + self.log_text()[-3000:]
        )

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc, timeout=20)
        self.producer.close()
        s = self.settings
        topics = [
            s.topic_detections,
            s.topic_watchlist,
            s.topic_operations,
            s.topic_adjudications,
            s.topic_scans,
            s.topic_alerts,
            s.topic_outcomes,
            s.topic_dlq,
        ]
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
        try:
            existing = set(admin.list_topics())
            internal = [t for t in existing if t.startswith(s.app_id)]
            admin.delete_topics([t for t in topics if t in existing] + internal)
        finally:
            admin.close()


@pytest.fixture
def harness(test_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[WorkerHarness]:
    settings = test_settings(
        partitions=2,
        watchlist_partitions=2,
        worker_metrics_port=free_port(),
        state_dir=tmp_path / "state",
        pseudonym_key=SecretStr("integration-test-key-of-32-characters"),
    )
    h = WorkerHarness(settings, tmp_path)
    try:
        yield h
    finally:
        h.close()
