"""Publish a simulation to Kafka, optionally paced by event time.

Records go out in event-time order with kafka-python (murmur2 partitioner,
so lfr.detections and lfr.operations stay co-partitioned by site_id), each
value Avro single-object encoded by :func:`schemas.codec.encode`; a
tombstone is a null value. ``max_in_flight_requests_per_connection=1`` keeps
the order within a partition even when a send is retried.

Across topics a retried send can arrive after later records of another
partition (seen with a broker SIGKILLed mid-run: a watchlist batch waited for
its new leader while the detections it serves were already matched). So the
producer is flushed before the first detection after any watchlist or
operations record: a list and a window are on the broker before the faces
they serve, as with the real tools, which write them hours ahead.

Pacing: with ``speed`` S > 0, one wall-clock second covers S seconds of event
time, except that no single gap between two records waits longer than
``max_gap_s`` (weeks of idle time between deployments would otherwise take
hours). ``speed=0`` publishes as fast as the producer goes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from common.settings import Settings
from streams.simulator.errors import OutputError
from streams.simulator.events import ADJUDICATIONS, DETECTIONS, OPERATIONS, WATCHLIST, TimedRecord
from streams.topics import RECORD_TOPICS

log = logging.getLogger(__name__)

# the contract topics the simulator writes, named and typed by the catalogue
RECORD_NAMES: dict[str, str] = {
    short: RECORD_TOPICS[short].schema
    for short in (DETECTIONS, WATCHLIST, OPERATIONS, ADJUDICATIONS)
}

# what detections are gated and matched against
REFERENCE = frozenset({WATCHLIST, OPERATIONS})


def topic_names(settings: Settings) -> dict[str, str]:
    """Kafka topic of each contract topic name, from the settings."""
    return {short: RECORD_TOPICS[short].name(settings) for short in RECORD_NAMES}


class Pacer:
    """Sleeps so that records leave at ``speed`` times event time, gaps capped."""

    def __init__(
        self,
        speed: float,
        max_gap_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self.max_gap_s = max_gap_s
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._last_ms: int | None = None
        self._due = 0.0

    def wait(self, at_ms: int) -> None:
        """Block until the record at event time ``at_ms`` is due."""
        if self.speed <= 0:
            return
        if self._start is None or self._last_ms is None:
            self._start, self._last_ms = self._clock(), at_ms
            return
        gap = max(0, at_ms - self._last_ms) / 1000 / self.speed
        self._due += min(gap, self.max_gap_s)
        self._last_ms = at_ms
        delay = self._start + self._due - self._clock()
        if delay > 0:
            self._sleep(delay)


def publish(
    records: Iterable[TimedRecord],
    settings: Settings,
    *,
    speed: float = 0.0,
    max_gap_s: float = 1.0,
    progress: Callable[[TimedRecord], None] | None = None,
    producer: Any = None,
) -> dict[str, int]:
    """Send every record to its Kafka topic; returns counts per contract topic.

    ``producer`` (a kafka-python ``KafkaProducer``) is made from the settings
    when not given, and closed at the end only in that case.
    """
    from schemas.codec import encode  # imported here: file output needs no codec

    own = producer is None
    if producer is None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            **settings.kafka_python_config(),
            acks="all",
            linger_ms=20,
            batch_size=512 * 1024,
            max_in_flight_requests_per_connection=1,
        )
    topics = topic_names(settings)
    counts = dict.fromkeys(RECORD_NAMES, 0)
    pacer = Pacer(speed, max_gap_s)
    failures: list[BaseException] = []
    reference_in_flight = False
    try:
        for item in records:
            pacer.wait(item.at_ms)
            if item.topic in REFERENCE:
                reference_in_flight = True
            elif item.topic == DETECTIONS and reference_in_flight:
                producer.flush()
                reference_in_flight = False
            value = None if item.value is None else encode(RECORD_NAMES[item.topic], item.value)
            future = producer.send(topics[item.topic], key=item.key, value=value)
            future.add_errback(failures.append)
            counts[item.topic] += 1
            if progress is not None:
                progress(item)
            if failures:
                break
        producer.flush()
    except Exception as exc:  # kafka-python raises KafkaError subclasses and timeouts
        raise OutputError(f"publishing the simulation failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            producer.close()
    if failures:
        first = failures[0]
        raise OutputError(f"publishing the simulation failed: {type(first).__name__}: {first}")
    log.info("simulation published: %s", counts)
    return counts
