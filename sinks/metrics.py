"""Prometheus metrics of the sink, rollup and retention (prefix ``lfr_``, base units).

Labels are bounded: topic, table, reason and Kafka partition number; never a
camera, subject or deployment. :func:`initialise` creates every labelled child
at start, so that ``rate()`` and ``increase()`` see the first event as a change
from zero rather than a series appearing out of nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

# up to an hour: a sink catching up after an outage commits rows minutes old
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)

log = logging.getLogger(__name__)

RECORD_RESULTS = ("inserted", "dead_lettered", "skipped")
FAILURE_KINDS = ("unavailable", "refused", "rejected")
ROLLUP_RESULTS = ("ok", "failed")
# the tables retention manages
RETAINED_TABLES = ("alerts", "outcomes", "scans", "dead_letters")


class BatchHistogram(Histogram):
    """A Histogram that also takes a whole batch of observations in one call.

    The sink observes every committed row; one ``observe`` per row would cost
    more than mapping the row. ``observe_many`` bins the batch with numpy and
    adds each bucket's count once. It updates the same per-bucket values as
    ``Histogram.observe`` (attributes of this class's base), so the exposition
    is the standard histogram.
    """

    def observe_many(self, amounts: npt.NDArray[np.float64]) -> None:
        """Observe every value of ``amounts`` (one dimension, finite)."""
        self._raise_if_not_observable()
        if amounts.size == 0:
            return
        bounds = np.asarray(self._upper_bounds, dtype=np.float64)
        # Histogram.observe puts a value in the first bucket whose bound is >= it
        index = np.searchsorted(bounds, amounts, side="left")
        counts = np.bincount(index, minlength=len(bounds))
        self._sum.inc(float(amounts.sum()))
        for i in np.flatnonzero(counts[: len(bounds)]):
            self._buckets[int(i)].inc(int(counts[i]))


RECORDS = Counter(
    "lfr_sink_records_total",
    "Records the sink consumed, by topic and result (inserted, dead_lettered, skipped).",
    ["topic", "result"],
)
BATCH_ROWS = Histogram(
    "lfr_sink_batch_rows",
    "Rows per ClickHouse insert.",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)
INSERT_SECONDS = Histogram(
    "lfr_sink_insert_duration_seconds", "Duration of one ClickHouse insert.", ["table"]
)
INSERT_FAILURES = Counter(
    "lfr_sink_insert_failures_total",
    "Failed inserts, by table and kind (unavailable, refused: retried; rejected: bisected).",
    ["table", "kind"],
)
DEAD_LETTERS = Counter(
    "lfr_sink_dead_letters_total", "Records the sink sent to the dead-letter topic.", ["reason"]
)
CONSUMER_LAG = Gauge(
    "lfr_sink_consumer_lag",
    "Records between the sink's position and the end of each assigned partition.",
    ["topic", "partition"],
)
PAUSED_PARTITIONS = Gauge(
    "lfr_sink_paused_partitions", "Partitions paused while ClickHouse is unavailable."
)
BLOCKED = Gauge(
    "lfr_sink_blocked",
    "1 while the sink is blocked by its environment (it neither commits nor dead-letters), "
    "by cause (authentication, unknown_database, unreachable, kafka_unassigned, ...).",
    ["cause"],
)
ENVIRONMENT_ERRORS = Counter(
    "lfr_sink_environment_errors_total",
    "Failed attempts the environment caused (the batch is retried, never dead-lettered), by cause.",
    ["cause"],
)
CLICKHOUSE_UP = Gauge("lfr_sink_clickhouse_up", "1 while the last ClickHouse call succeeded.")
COMMIT_LATENCY = BatchHistogram(
    "lfr_sink_commit_latency_seconds",
    "Per row: from its Kafka record timestamp (for worker outputs, the source detection's) "
    "to its offset committed after the ClickHouse insert.",
    ["table"],
    buckets=LATENCY_BUCKETS,
)
EVENT_AGE = BatchHistogram(
    "lfr_sink_event_age_seconds",
    "Per row: now minus captured_at when it was committed (differs from latency in a replay).",
    ["table"],
    buckets=LATENCY_BUCKETS + (6 * 3600, 86400, 7 * 86400),
)
ROLLUP_RUNS = Counter("lfr_rollup_runs_total", "Rollup runs, by result.", ["result"])
ROLLUP_SECONDS = Histogram("lfr_rollup_duration_seconds", "Duration of one rollup run.")
RETENTION_DROPPED = Counter(
    "lfr_retention_dropped_partitions_total", "Day partitions dropped by retention.", ["table"]
)
RETENTION_KEPT = Gauge(
    "lfr_retention_unrolled_partitions",
    "Due partitions retention kept because they are not rolled up yet.",
    ["table"],
)


def publish_build_info(version: str, app_id: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Expose ``lfr_build_info{version, app_id}``.

    Registered on call rather than at import: the worker's metrics module
    defines the same family, and a process that imports both (tests, tools)
    must not fail. Where it is already registered, that one stays: it carries
    the same version and app id.
    """
    info = Info("lfr_build", "Version of lfr-stream and the app id of this process.",
                registry=None)  # fmt: skip
    info.info({"version": version, "app_id": app_id})
    try:
        registry.register(info)
    except ValueError:
        log.debug("lfr_build_info is already registered in this process")


def initialise(
    topics: Iterable[str],
    tables: Iterable[str],
    aged_tables: Iterable[str],
    reasons: Iterable[str],
    causes: Iterable[str] = (),
) -> None:
    """Create every labelled child the sink can touch, at zero.

    ``aged_tables`` are those whose rows have a captured_at (event age).
    """
    for topic in topics:
        for result in RECORD_RESULTS:
            RECORDS.labels(topic, result)
    for table in tables:
        for kind in FAILURE_KINDS:
            INSERT_FAILURES.labels(table, kind)
        BATCH_ROWS.labels(table)
        INSERT_SECONDS.labels(table)
        COMMIT_LATENCY.labels(table)
    for table in aged_tables:
        EVENT_AGE.labels(table)
    for reason in reasons:
        DEAD_LETTERS.labels(reason)
    for cause in causes:
        BLOCKED.labels(cause).set(0)
        ENVIRONMENT_ERRORS.labels(cause)
    for result in ROLLUP_RESULTS:
        ROLLUP_RUNS.labels(result)
    for table in RETAINED_TABLES:
        RETENTION_DROPPED.labels(table)
    for table in ("alerts", "outcomes", "scans"):
        RETENTION_KEPT.labels(table)
