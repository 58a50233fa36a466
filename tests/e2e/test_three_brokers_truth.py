"""On a 3-broker cluster, a broker SIGKILLed mid-run and left down loses nothing.

``lfr stack up --brokers 3`` semantics on a private cluster (KRaft quorum of
three, replication factor 3, ``min.insync.replicas`` 2, producers with
acks=all): one node is killed while the scenario is being published and never
comes back; the report still equals the simulator's ground truth.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from streams.demo import publish_scenario
from streams.localstack import stack
from streams.localstack.process import pid_alive
from streams.localstack.topology import Topology
from tests.conftest import free_port
from tests.e2e.test_pipeline_truth import assert_equal_to_truth, running_pipeline, start
from tests.integration.stack.private_stack import PrivateStack, private_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

THREE = Topology(brokers=3)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PrivateStack]:
    with private_stack(tmp_path / "stack", THREE, services=("kafka",)) as running:
        yield running


@pytest.mark.timeout(900)
def test_broker_killed_and_left_down_loses_nothing(
    cluster: PrivateStack, test_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # the session's ClickHouse, this test's own Kafka cluster
    settings = test_settings(
        kafka_bootstrap=cluster.stack_settings.kafka_bootstrap, kafka_replication_factor=3,
        worker_metrics_port=free_port(), sink_metrics_port=free_port(), partitions=3,
        watchlist_partitions=2, state_dir=tmp_path / "state",
    )  # fmt: skip
    assert len(settings.bootstrap_servers) == 3
    with running_pipeline(settings, tmp_path / "logs") as pipeline:
        start(pipeline)
        result: dict[str, Any] = {}
        publisher = threading.Thread(
            target=lambda: result.update(publish_scenario(settings, "small", None, False))
        )
        publisher.start()
        time.sleep(4)  # mid-run: some detections published and matched, most not
        victim = stack.services(cluster.stack_settings, THREE)[1]
        pid = victim.pid_file.read()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        publisher.join(timeout=400)
        assert not publisher.is_alive()
        pipeline.wait_caught_up(timeout_s=400)
        assert not pid_alive(pid), "the killed broker stays down"
        assert_equal_to_truth(pipeline, result)
