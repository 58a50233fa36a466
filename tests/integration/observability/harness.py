"""A worker and a sink as real subprocesses on their own topics, database and ports.

Used by the /metrics exposition test and by the end-to-end Prometheus test.
Each run gets unique topics, app id (so its own consumer groups and
changelogs), ClickHouse database and metrics ports; ``close()`` stops the
processes and deletes all of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from pydantic import SecretStr

from common.settings import Settings
from sinks.db import connect
from sinks.migrate import migrate
from streams.topics import create_topics
from tests.conftest import free_port, stop_process
from tests.integration.worker.conftest import settings_env

ROOT = Path(__file__).resolve().parents[3]


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """Status and body of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, logs: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.5)


class Pipeline:
    """One test's topics, database, worker and sink processes."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        create_topics(settings)
        self.db = connect(settings, database="default")
        migrate(self.db, settings.clickhouse_database)
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")

    # --- processes -----------------------------------------------------------

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LFR_")},
            **settings_env(self.settings),
            "PYTHONUNBUFFERED": "1",
        }
        with (self.tmp_path / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def start_worker(self) -> None:
        """``lfr worker`` with short batches; returns once its watchlist is loaded."""
        self._start("worker", "worker", "--batch-within", "0.1", "--adjudication-hold", "5")
        wait_until(
            lambda: self._alive("worker") and self.readyz(self.settings.worker_metrics_port),
            120,
            "the worker to become ready",
            self.logs(),
        )

    def start_sink(self) -> None:
        """``lfr sink`` with small, quick batches, frequent rollups and retention runs."""
        self._start(
            "sink", "sink", "--batch-size", "200", "--linger", "0.2",
            "--rollup-interval", "2", "--retention-interval", "3",
        )  # fmt: skip
        wait_until(
            lambda: self._alive("sink") and self.readyz(self.settings.sink_metrics_port),
            60,
            "the sink to become ready",
            self.logs(),
        )

    def stop(self, name: str) -> None:
        """SIGTERM one process and wait for it."""
        stop_process(self.procs.pop(name))

    def _alive(self, name: str) -> bool:
        if self.procs[name].poll() is not None:
            pytest.fail(f"{name} exited:\n{self.logs()}")
        return True

    def readyz(self, port: int) -> bool:
        return http_get(f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200

    def metrics(self, port: int) -> str:
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, f"/metrics on :{port} answered {status}"
        return body

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (tail)\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.tmp_path.glob("*.log"))
        )

    # --- input -----------------------------------------------------------------

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(topic, key=key, value=value)

    def flush(self) -> None:
        self.producer.flush()

    # --- cleanup ---------------------------------------------------------------

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.producer.close()
        s = self.settings
        topics = [getattr(s, f"topic_{t}") for t in (
            "detections", "watchlist", "operations", "adjudications",
            "scans", "alerts", "outcomes", "dlq",
        )]  # fmt: skip
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
        try:
            existing = set(admin.list_topics())
            internal = [t for t in existing if t.startswith(s.app_id)]
            admin.delete_topics([t for t in topics if t in existing] + internal)
        finally:
            admin.close()
        self.db.execute(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")
        self.db.close()


@contextmanager
def observed_pipeline(
    test_settings: Callable[..., Settings], tmp_path: Path, key: str
) -> Iterator[Pipeline]:
    """A worker and a sink with their own topics, database and metrics ports."""
    settings = test_settings(
        partitions=2,
        watchlist_partitions=1,
        worker_metrics_port=free_port(),
        sink_metrics_port=free_port(),
        state_dir=tmp_path / "state",
        pseudonym_key=SecretStr(key),
    )
    pipeline = Pipeline(settings, tmp_path)
    try:
        yield pipeline
    finally:
        pipeline.close()
