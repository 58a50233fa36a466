"""Prometheus metrics of the worker (docs/architecture.md: ``lfr_`` prefix, base units).

No label carries a camera, subject or site: label values are stage names and
dead-letter / gating reasons, all bounded sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

RECORDS_IN = Counter(
    "lfr_worker_records_in_total", "Records consumed by the worker, by stage.", ["stage"]
)
RECORDS_OUT = Counter(
    "lfr_worker_records_out_total", "Records produced by the worker, by output.", ["stage"]
)
GATED = Counter(
    "lfr_detections_gated_total",
    "Detections gated out (never matched or stored), by reason.",
    ["reason"],
)
UNMATCHED_RETIRED = Counter(
    "lfr_detections_unmatched_retired_total",
    "Gated-in detections not matched because their watchlist had already been deleted "
    "from memory, by the rule that deleted it: stream_passed (the face came later than "
    "the site's stream time allowed), grace_expired (LFR_WATCHLIST_RETIRE_GRACE_S ran out "
    "first), covered_nothing.",
    ["reason"],
)
AGENT_FAILURES = Counter(
    "lfr_worker_agent_failures_total",
    "Exceptions raised while an agent or timer processed records (each attempt), by agent. "
    "The records are retried, then the worker stops without committing them.",
    ["agent"],
)
WORKER_FAILED = Gauge(
    "lfr_worker_failed",
    "1 once an agent failed for good and the worker is stopping to be restarted.",
)
CONSUMER_LAG = Gauge(
    "lfr_worker_consumer_lag",
    "Records between the worker group's committed offset and the end of each assigned "
    "input partition.",
    ["topic", "partition"],
)
RECOVERY_SECONDS = Gauge(
    "lfr_worker_table_recovery_seconds",
    "How long table recovery has run, over its restarts (0 when none runs; the inputs wait).",
)
RECOVERY_RESTARTS = Counter(
    "lfr_worker_table_recovery_restarts_total",
    "Table recoveries that made no progress and were restarted by a group rebalance.",
)
FETCH_REWINDS = Counter(
    "lfr_worker_fetch_rewinds_total",
    "Input partitions sought back because fetched records never reached their agent.",
    ["topic"],
)
MATCHES = Counter("lfr_matches_total", "Gated-in detections compared with a watchlist.")
ALERTS = Counter("lfr_alerts_total", "Alerts raised.")
OUTCOMES = Counter("lfr_outcomes_total", "Outcomes (alert + adjudication) produced.")
DEAD_LETTERS = Counter(
    "lfr_dead_letters_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
MATCH_BATCH_SECONDS = Histogram(
    "lfr_match_batch_seconds",
    "Time of one batch's matrix product and top-1 against one watchlist.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "lfr_worker_batch_records",
    "Records per detections batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
ALERT_LATENCY_SECONDS = Histogram(
    "lfr_alert_latency_seconds",
    "Kafka record timestamp of the detection to its alert acknowledged by the broker.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
EVENT_AGE_SECONDS = Histogram(
    "lfr_event_age_seconds",
    "Wall clock minus captured_at when the alert was raised (differs from the "
    "pipeline latency in a replay or a time-compressed simulation).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
WATCHLIST_ENTRIES = Gauge("lfr_watchlist_entries", "Templates held in memory over all watchlists.")
WATCHLISTS = Gauge("lfr_watchlists", "Watchlists held in memory.")
WATCHLIST_VERSION = Gauge(
    "lfr_watchlist_version", "Newest watchlist version held (epoch ms of its latest change)."
)
WATCHLIST_READY = Gauge(
    "lfr_watchlist_ready", "1 once the watchlist caught up with the end offsets seen at start."
)
WINDOWS_ACTIVE = Gauge(
    "lfr_operation_windows_active", "ACTIVE operation windows in this worker's partitions."
)
PENDING_ADJUDICATIONS = Gauge(
    "lfr_adjudications_pending", "Adjudications held while waiting for their alert."
)
ALERTS_TABLE_ENTRIES = Gauge(
    "lfr_alerts_table_entries",
    "Alerts held in this worker's alerts table (deleted at LFR_ALERT_TABLE_TTL_S at most).",
)
BUILD_INFO = Info("lfr_build", "Version of the lfr-stream worker.")
