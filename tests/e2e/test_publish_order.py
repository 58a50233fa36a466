"""The report equals the truth whatever order the input files are published in.

``lfr simulate --out`` writes one JSON-lines file per topic; an operator may
``lfr publish`` them in any order before the detections are processed. With
the watchlist first, its REMOVEs and tombstones reach the worker before the
windows that use the list: the entries must still be there for the
deployments' detections (every alert of a deployment was lost before).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.demo import lfr
from streams.pipeline import Pipeline

from .test_pipeline_truth import assert_equal_to_truth, e2e, start

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
__all__ = ["e2e"]  # the fixture, shared with the other end-to-end tests


@pytest.mark.parametrize(
    "order",
    [("watchlist", "operations", "detections", "adjudications")],
    ids=["watchlist-first"],
)
def test_any_publish_order_equals_the_truth(
    e2e: Pipeline, tmp_path: Path, order: tuple[str, ...]
) -> None:
    out = tmp_path / "scenario"
    lfr(e2e.settings, "simulate", "--scenario", "small", "--out", str(out))
    start(e2e)
    for topic in order:
        lfr(e2e.settings, "publish", "--topic", topic, str(out / f"{topic}.jsonl"))
    e2e.wait_caught_up(timeout_s=300)
    assert_equal_to_truth(e2e, json.loads((out / "truth.json").read_text()))
