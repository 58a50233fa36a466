"""A Kafka broker SIGKILLed mid-run and started again: the report still equals the truth.

The worker and the sink are left running on a PRIVATE broker (its own ports
and data folder; the shared one is never touched). The whole small scenario
is published, the broker is killed while the worker is matching, and started
again on the same data. The test then waits until the report equals the
truth (comparing results, not trusting a lag figure right after the restart)
and fails with the last difference if it never does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from streams.demo import publish_scenario
from streams.localstack.kafka import KafkaService
from streams.pipeline import Pipeline
from tests.conftest import free_port

from .test_pipeline_truth import report, running_pipeline, start

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

DOWN_S = 10.0  # within the worker's retry bound, so it rides the outage out


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaService]:
    port, controller = free_port(), free_port()
    state = tmp_path / "broker-state"
    state.mkdir()
    jars = (Settings().state_dir / "kafka-lib").resolve()
    if not jars.exists():
        pytest.skip(f"no Kafka jar cache at {jars} (run `lfr stack up` once)")
    (state / "kafka-lib").symlink_to(jars)
    broker = KafkaService(Settings(
        kafka_bootstrap=f"127.0.0.1:{port}", kafka_controller_port=controller, state_dir=state,
    ))  # fmt: skip
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def pipeline(
    private_broker: KafkaService, test_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Pipeline]:
    settings = test_settings(
        kafka_bootstrap=private_broker.endpoint, worker_metrics_port=free_port(),
        sink_metrics_port=free_port(), partitions=3, watchlist_partitions=2,
    )  # fmt: skip
    with running_pipeline(settings, tmp_path / "logs") as running:
        yield running


def wait_equal(pipeline: Pipeline, truth: dict[str, Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    got: Any = None
    want = (truth["deployments"], truth["time_to_locate"])
    while time.monotonic() < deadline:
        for name in ("worker", "sink"):
            assert pipeline.running(name), f"the {name} exited; see {pipeline.log_file(name)}"
        try:
            got = report(pipeline.settings)
        except Exception as exc:  # noqa: BLE001 - the report may fail while rows arrive
            got = repr(exc)
        if got == want:
            return
        time.sleep(5)
    pytest.fail("the report never equalled the truth:\n" + json.dumps(got, default=str)[:3000])


def test_broker_killed_mid_run_report_equals_truth(
    pipeline: Pipeline, private_broker: KafkaService
) -> None:
    start(pipeline)
    truth = publish_scenario(pipeline.settings, "small", None, show_progress=False)
    time.sleep(2)  # the worker is matching
    assert private_broker.crash() is not None
    time.sleep(DOWN_S)
    private_broker.start()  # same data folder: everything published is still there
    wait_equal(pipeline, truth, timeout_s=300)
