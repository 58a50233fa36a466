"""The whole pipeline over the secured stack equals the simulator's ground truth.

Kafka on SASL_SSL (SCRAM-SHA-512, the stack's own CA, ACLs that allow the
application user only the pipeline's topics and groups) and ClickHouse on
its TLS native port with passwords: camera publisher -> worker -> sink ->
ClickHouse -> ``lfr report``, every process logged in as ``lfr stack up
--secure`` tells clients to in its client.env.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.demo import lfr, publish_scenario
from streams.localstack.topology import Topology
from streams.pipeline import Pipeline
from tests.conftest import free_port
from tests.e2e.test_pipeline_truth import assert_equal_to_truth, start
from tests.integration.stack.private_stack import PrivateStack, private_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[PrivateStack]:
    with private_stack(tmp_path / "stack", Topology(secure=True)) as running:
        yield running


@pytest.mark.timeout(900)
def test_report_over_the_secured_stack_equals_ground_truth(
    secured: PrivateStack, tmp_path: Path
) -> None:
    settings = secured.client_settings(
        worker_metrics_port=free_port(), sink_metrics_port=free_port(), partitions=3,
        watchlist_partitions=2, state_dir=tmp_path / "state",
    )  # fmt: skip
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.clickhouse_secure
    assert settings.pseudonym_key is not None and not settings.allow_dev_pseudonym_key
    lfr(settings, "topics", "create")
    lfr(settings, "migrate", "--wait", "30")
    pipeline = Pipeline(settings, tmp_path / "logs")
    try:
        start(pipeline)
        truth = publish_scenario(settings, "small", None, show_progress=False)
        pipeline.wait_caught_up(timeout_s=400)
        assert_equal_to_truth(pipeline, truth)
    finally:
        pipeline.stop()
