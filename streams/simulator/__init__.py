"""Seeded multi-site LFR simulator with its own ground truth.

Public API (everything else is internal)::

    from streams.simulator import build_scenario, generate, timeline, ground_truth

    scenario = build_scenario("small", seed=7)
    for topic, key, record in generate(scenario):   # event-time order
        ...   # topic is a contract name: detections|watchlist|operations|adjudications
    truth = ground_truth(scenario)                  # see streams.simulator.truth

``generate`` yields ``record=None`` for a watchlist tombstone. The same seed
gives the same records, byte for byte.
"""

from streams.simulator.events import TimedRecord, generate, timeline
from streams.simulator.scenario import SCENARIOS, Scenario, build_scenario
from streams.simulator.truth import TruthBuilder, ground_truth

__all__ = [
    "SCENARIOS",
    "Scenario",
    "TimedRecord",
    "TruthBuilder",
    "build_scenario",
    "generate",
    "ground_truth",
    "timeline",
]
