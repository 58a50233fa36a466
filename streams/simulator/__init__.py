"""Seeded multi-site LFR simulator with its own ground truth.

Public API (everything else is internal)::

    from streams.simulator import build_scenario, generate, timeline, ground_truth

    scenario = build_scenario("small", seed=7)
    for topic, key, record in generate(scenario):   # event-time order
        ...   # topic is a contract name: detections|watchlist|operations|adjudications
    truth = ground_truth(scenario)                  # see streams.simulator.truth

``generate`` yields ``record=None`` for a watchlist tombstone. The same seed
gives the same records, byte for byte. ``timeline`` yields the same records
as :class:`TimedRecord` ``(at_ms, topic, key, value)`` for pacing;
``streams.simulator.kafka_out.publish(records, settings, speed=..., progress=...)``
sends them to Kafka and ``streams.simulator.files.write_jsonl(records, dir)``
writes the files ``lfr publish`` reads. To publish and compute the truth in
one pass, feed each record to a :class:`TruthBuilder` on the way
(``builder.feed(topic, key, value)``, then ``builder.result(scenario)``).
The definitions every report figure follows are in :mod:`streams.simulator.truth`.
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
