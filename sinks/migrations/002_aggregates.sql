-- Aggregates without personal data, kept after retention drops the rows.
-- Written only by the rollup (sinks/rollup.py), which recomputes whole days
-- from deduplicated rows; a later rollup of the same key has a higher
-- version and replaces the row, so running it twice never adds.

CREATE TABLE IF NOT EXISTS {db}.agg_faces_minute (
    deployment_id String,
    site_id String,
    camera_id String,
    minute DateTime('UTC'),
    day Date,
    faces UInt64,
    matched UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (deployment_id, site_id, camera_id, minute)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS {db}.agg_alert_counts (
    deployment_id String,
    day Date,
    site_id String,
    camera_id String,
    threshold Float64,
    total_alerts UInt64,
    pending_alerts UInt64,
    true_alerts_confirmed UInt64,
    true_alerts_unconfirmed UInt64,
    false_alerts_confirmed UInt64,
    false_alerts_unconfirmed UInt64,
    outcome_arrest UInt64,
    outcome_other UInt64,
    no_action UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (deployment_id, day, site_id, camera_id, threshold)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS {db}.agg_time_to_locate (
    deployment_id String,
    day Date,
    category String,
    located UInt64,
    sum_s Float64,
    values_s Array(Float64),
    response_values_s Array(Float64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (deployment_id, day, category)
SETTINGS index_granularity = 8192;

-- How many distinct rows of each (table, day) the last rollup aggregated;
-- retention drops a day only while the table still holds exactly that many.
CREATE TABLE IF NOT EXISTS {db}.rollup_log (
    source_table String,
    day Date,
    distinct_rows UInt64,
    rolled_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (source_table, day)
SETTINGS index_granularity = 8192;

-- Audit of every partition retention dropped.
CREATE TABLE IF NOT EXISTS {db}.retention_log (
    dropped_at DateTime('UTC'),
    table_name String,
    day Date,
    distinct_rows UInt64,
    cutoff Date,
    retention_days UInt32
) ENGINE = MergeTree()
ORDER BY (dropped_at, table_name, day)
SETTINGS index_granularity = 8192;
