"""Fixture of the observability tests: a worker and a sink on their own names and ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.settings import Settings
from tests.integration.observability.harness import Pipeline, observed_pipeline


@pytest.fixture
def pipeline(test_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Pipeline]:
    with observed_pipeline(test_settings, tmp_path, "observability-test-key-0123456789") as p:
        yield p
