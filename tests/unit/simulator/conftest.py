"""Fixtures of the simulator tests: the small scenario's records, made once per module."""

from __future__ import annotations

from typing import Any

import pytest

from streams.simulator import build_scenario
from streams.simulator.events import Simulation, TimedRecord
from streams.simulator.truth import TruthBuilder


@pytest.fixture(scope="package")
def small_run() -> dict[str, Any]:
    """The small scenario: its simulation (after iteration), records and ground truth."""
    scenario = build_scenario("small")
    simulation = Simulation(scenario)
    records: list[TimedRecord] = list(simulation.records())
    builder = TruthBuilder()
    for item in records:
        builder.feed(item.topic, item.key, item.value)
    return {
        "scenario": scenario,
        "simulation": simulation,
        "records": records,
        "builder": builder,
        "truth": builder.result(scenario),
    }
