"""Prometheus metrics of the sink, rollup and retention (prefix ``lfr_``, base units).

Labels are bounded: topic, table, reason and Kafka partition number; never a
camera, subject or deployment.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

RECORDS = Counter(
    "lfr_sink_records_total",
    "Records the sink consumed, by topic and result (inserted, dead_lettered, skipped).",
    ["topic", "result"],
)
BATCH_ROWS = Histogram(
    "lfr_sink_batch_rows",
    "Rows per ClickHouse insert.",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
INSERT_SECONDS = Histogram(
    "lfr_sink_insert_duration_seconds", "Duration of one ClickHouse insert.", ["table"]
)
INSERT_FAILURES = Counter(
    "lfr_sink_insert_failures_total",
    "Failed inserts, by table and kind (unavailable: retried; rejected: bisected).",
    ["table", "kind"],
)
DEAD_LETTERS = Counter(
    "lfr_sink_dead_letters_total", "Records the sink sent to the dead-letter topic.", ["reason"]
)
CONSUMER_LAG = Gauge(
    "lfr_sink_consumer_lag", "Records behind the end of each partition.", ["topic", "partition"]
)
PAUSED_PARTITIONS = Gauge(
    "lfr_sink_paused_partitions", "Partitions paused while ClickHouse is unavailable."
)
CLICKHOUSE_UP = Gauge("lfr_sink_clickhouse_up", "1 while the last ClickHouse call succeeded.")
COMMIT_LATENCY = Histogram(
    "lfr_sink_commit_latency_seconds",
    "From the Kafka record timestamp to its row committed in ClickHouse.",
    ["table"],
    buckets=LATENCY_BUCKETS,
)
EVENT_AGE = Histogram(
    "lfr_sink_event_age_seconds",
    "Now minus captured_at when the row was committed (differs from latency in a replay).",
    ["table"],
    buckets=LATENCY_BUCKETS + (86400, 7 * 86400),
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
