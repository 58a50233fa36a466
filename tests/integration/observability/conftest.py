"""Fixture of the observability tests: a worker and a sink on their own names and ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.settings import Settings
from tests.integration.observability.harness import Pipeline
from tests.integration.worker.conftest import free_port


@pytest.fixture
def pipeline(test_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Pipeline]:
    settings = test_settings(
        partitions=2,
        watchlist_partitions=1,
        worker_metrics_port=free_port(),
        sink_metrics_port=free_port(),
        state_dir=tmp_path / "state",
        pseudonym_key=SecretStr("observability-test-key"),
    )
    p = Pipeline(settings, tmp_path)
    try:
        yield p
    finally:
        p.close()
