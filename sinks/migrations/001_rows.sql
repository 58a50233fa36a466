-- Row-level tables written by the sink. Instants are DateTime('UTC') plus a
-- *_ms column (0..999) so that 18.16, which lacks DateTime64, keeps the
-- millisecond. ReplacingMergeTree on the natural id makes redelivery harmless;
-- readers use FINAL or argMax, never the raw row count.

CREATE TABLE IF NOT EXISTS {db}.operation_windows (
    deployment_id String,
    site_id String,
    location String,
    use_case String,
    mode LowCardinality(String),
    camera_ids Array(String),
    watchlist_id String,
    watchlist_size UInt32,
    match_threshold Float64,
    authorised_by Nullable(String),
    authorised_at Nullable(DateTime('UTC')),
    authorised_at_ms Nullable(UInt16),
    starts_at DateTime('UTC'),
    starts_at_ms UInt16,
    ends_at Nullable(DateTime('UTC')),
    ends_at_ms Nullable(UInt16),
    status LowCardinality(String),
    officers_present UInt32,
    updated_at DateTime('UTC'),
    updated_at_ms UInt16,
    version UInt64,
    ingested_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
ORDER BY (deployment_id, version)
SETTINGS index_granularity = 8192{dedup_window};

CREATE TABLE IF NOT EXISTS {db}.scans (
    event_id String,
    deployment_id String,
    site_id LowCardinality(String),
    camera_id LowCardinality(String),
    captured_at DateTime('UTC'),
    captured_at_ms UInt16,
    face_quality Float32,
    matched UInt8,
    ingested_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toDate(captured_at)
ORDER BY (deployment_id, event_id)
SETTINGS index_granularity = 8192{dedup_window};

CREATE TABLE IF NOT EXISTS {db}.alerts (
    alert_id String,
    event_id String,
    deployment_id String,
    site_id LowCardinality(String),
    camera_id LowCardinality(String),
    subject_ref String,
    watchlist_id String,
    category LowCardinality(String),
    score Float64,
    threshold Float64,
    watchlist_version Int64,
    template_model LowCardinality(String),
    captured_at DateTime('UTC'),
    captured_at_ms UInt16,
    alerted_at DateTime('UTC'),
    alerted_at_ms UInt16,
    wanted_since DateTime('UTC'),
    wanted_since_ms UInt16,
    ingested_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toDate(captured_at)
ORDER BY alert_id
{ttl:captured_at + INTERVAL 31 DAY}
SETTINGS index_granularity = 8192{dedup_window};

CREATE TABLE IF NOT EXISTS {db}.outcomes (
    alert_id String,
    event_id String,
    deployment_id String,
    site_id LowCardinality(String),
    camera_id LowCardinality(String),
    subject_ref String,
    category LowCardinality(String),
    score Float64,
    threshold Float64,
    captured_at DateTime('UTC'),
    captured_at_ms UInt16,
    alerted_at DateTime('UTC'),
    alerted_at_ms UInt16,
    wanted_since DateTime('UTC'),
    wanted_since_ms UInt16,
    officer_ref String,
    verdict LowCardinality(String),
    confirmed UInt8,
    outcome LowCardinality(String),
    located_at Nullable(DateTime('UTC')),
    located_at_ms Nullable(UInt16),
    decided_at DateTime('UTC'),
    decided_at_ms UInt16,
    time_to_locate_s Nullable(Float64),
    response_s Nullable(Float64),
    version UInt64,
    ingested_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(captured_at)
ORDER BY alert_id
{ttl:captured_at + INTERVAL 31 DAY}
SETTINGS index_granularity = 8192{dedup_window};

CREATE TABLE IF NOT EXISTS {db}.dead_letters (
    dlq_partition UInt32,
    dlq_offset UInt64,
    source_topic String,
    source_partition Int32,
    source_offset Int64,
    key Nullable(String),
    stage LowCardinality(String),
    reason LowCardinality(String),
    error_class String,
    message String,
    payload_sha256 String,
    payload_size Int64,
    failed_at DateTime('UTC'),
    failed_at_ms UInt16,
    ingested_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toDate(failed_at)
ORDER BY (dlq_partition, dlq_offset)
{ttl:failed_at + INTERVAL 31 DAY}
SETTINGS index_granularity = 8192{dedup_window};
