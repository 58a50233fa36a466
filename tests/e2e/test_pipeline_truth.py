"""The whole real path equals the simulator's ground truth, also across SIGKILLs.

camera publisher (kafka-python) -> Kafka -> lfr worker (Faust) -> Kafka ->
lfr sink -> ClickHouse 18.16 -> lfr report --format json, compared field by
field with the truth the simulator computed by its own plain loop.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from streams.demo import lfr, publish_scenario
from streams.pipeline import Pipeline
from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@contextmanager
def running_pipeline(settings: Settings, logs: Path) -> Iterator[Pipeline]:
    """Topics and schema for ``settings``, a pipeline to start; stopped and dropped after."""
    lfr(settings, "topics", "create")
    lfr(settings, "migrate", "--wait", "30")
    pipeline = Pipeline(settings, logs)
    try:
        yield pipeline
    finally:
        # Always: a test's failure is not thrown into a fixture's generator, and
        # pytest shows captured teardown output only when the test failed. CI
        # keeps pytest's output, not the temporary logs.
        print_log_tails(pipeline)
        pipeline.stop()
        from clickhouse_driver import Client

        client = Client(host=settings.clickhouse_host, port=settings.clickhouse_port)
        client.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        client.disconnect()


# connection retries to a stopped broker repeat many times a second and say nothing new
NOISE = (
    "Unable connect to node", "Failed fetch messages from", "NodeNotReadyError", "Connect attempt",
)  # fmt: skip


def print_log_tails(pipeline: Pipeline, lines: int = 60) -> None:
    """The last ``lines`` lines of the worker and sink logs, without connection noise."""
    for name in ("worker", "sink"):
        path = pipeline.log_file(name)
        if not path.exists():
            continue
        text = path.read_text(errors="replace").splitlines()
        kept = [line for line in text if not any(noise in line for noise in NOISE)]
        print(f"----- {path} (last {lines} of {len(kept)} lines kept of {len(text)}) -----")
        print("\n".join(kept[-lines:]))


@pytest.fixture
def e2e(test_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Pipeline]:
    settings = test_settings(
        worker_metrics_port=free_port(), sink_metrics_port=free_port(), partitions=3,
        watchlist_partitions=2,
    )  # fmt: skip
    with running_pipeline(settings, tmp_path / "logs") as pipeline:
        yield pipeline


def report(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lfr(settings, "rollup", capture=True)
    rows = json.loads(lfr(settings, "report", "--format", "json", capture=True))
    ttl = json.loads(lfr(settings, "report", "--time-to-locate", "--format", "json", capture=True))
    return rows, ttl


def assert_equal_to_truth(pipeline: Pipeline, truth: dict[str, Any]) -> None:
    rows, ttl = report(pipeline.settings)
    expected = truth["deployments"]
    assert [r["deployment_id"] for r in rows] == [r["deployment_id"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert got == want, f"deployment {want['deployment_id']} differs"
    assert sum(r["total_alerts"] for r in rows) > 0, "the scenario must raise alerts"
    assert ttl == truth["time_to_locate"]


def start(pipeline: Pipeline) -> None:
    pipeline.start("worker")
    pipeline.start("sink")
    pipeline.wait_ready("worker")
    pipeline.wait_ready("sink")


def test_report_equals_ground_truth(e2e: Pipeline) -> None:
    start(e2e)
    truth = publish_scenario(e2e.settings, "small", None, show_progress=False)
    e2e.wait_caught_up(timeout_s=300)
    assert_equal_to_truth(e2e, truth)


def test_report_equals_ground_truth_after_sigkills(e2e: Pipeline) -> None:
    start(e2e)
    result: dict[str, Any] = {}
    publisher = threading.Thread(
        target=lambda: result.update(publish_scenario(e2e.settings, "small", None, False))
    )
    publisher.start()
    time.sleep(3)  # mid-run: the worker has matched some batches, not all
    e2e.kill("worker", signal.SIGKILL)
    e2e.start("worker")
    time.sleep(3)
    e2e.kill("sink", signal.SIGKILL)
    e2e.start("sink")
    publisher.join(timeout=300)
    assert not publisher.is_alive()
    e2e.wait_ready("worker")
    time.sleep(2)
    e2e.kill("worker", signal.SIGKILL)  # once more after publishing, before catch-up
    e2e.start("worker")
    e2e.wait_caught_up(timeout_s=300)
    assert_equal_to_truth(e2e, result)
