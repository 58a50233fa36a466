-- Analyst views, version 2 (replaces those of 003):
-- * time to locate counts confirmed true matches only (the rollup stores
--   nothing else since this version; sinks/rollup.py);
-- * median = the middle value, or the mean of the two middle values for an
--   even count; p90 = linear interpolation between closest ranks (numpy's
--   default), both over the sorted values (sinks/report_stats.py holds the
--   same arithmetic in Python; docs/analysts.md states it);
-- * deployment_metrics: date is the Europe/London date of starts_at (the
--   Met publishes UK dates; `lfr report` follows LFR_REPORT_TIMEZONE), adds
--   starts_at_epoch_ms, and lists CANCELLED deployments too (zero counts;
--   filter on status to leave them out).
-- 18.16 allows one JOIN per SELECT and has no quantile that interpolates, so
-- the order statistics are index arithmetic over arraySort(groupArray(..)).

DROP TABLE IF EXISTS {db}.deployment_metrics;

CREATE VIEW IF NOT EXISTS {db}.deployment_metrics AS
SELECT
    deployment_id,
    site_id,
    location,
    toString(toDate(starts_at, 'Europe/London')) AS date,
    toInt64(starts_at) * 1000 + toInt64(starts_at_ms) AS starts_at_epoch_ms,
    if(isNull(ends_at) OR status = 'CANCELLED', NULL,
       (toInt64(assumeNotNull(ends_at)) * 1000 + toInt64(assumeNotNull(ends_at_ms)))
       - (toInt64(starts_at) * 1000 + toInt64(starts_at_ms))) AS duration_ms,
    duration_ms / 1000 AS duration_s,
    use_case,
    watchlist_id,
    watchlist_size,
    match_threshold AS min_threshold,
    authorised_by,
    authorised_at,
    total_alerts,
    pending_alerts,
    true_alerts_confirmed,
    true_alerts_unconfirmed,
    false_alerts_confirmed,
    false_alerts_unconfirmed,
    if(faces_seen = 0, 0.,
       (false_alerts_confirmed + false_alerts_unconfirmed) / faces_seen) AS false_alert_rate,
    outcome_arrest,
    outcome_other,
    no_action,
    faces_seen,
    mode,
    length(camera_ids) AS cameras,
    status,
    duration_s / 60 AS minutes_in_use,
    if(outcome_arrest = 0, NULL, minutes_in_use / outcome_arrest) AS minutes_per_arrest,
    if(faces_seen = 0, NULL, outcome_arrest / faces_seen) AS arrest_rate,
    located,
    if(located = 0, NULL, (arrayElement(ttl, intDiv(located + 1, 2)) + arrayElement(ttl, intDiv(located, 2) + 1)) / 2) AS median_time_to_locate_s,
    ttl AS time_to_locate_values_s
FROM (
    SELECT * FROM (
        SELECT * FROM (
            SELECT
                deployment_id, site_id, location, use_case, mode, camera_ids, watchlist_id,
                watchlist_size, match_threshold, authorised_by, authorised_at, starts_at,
                starts_at_ms, ends_at, ends_at_ms, status
            FROM {db}.deployments
            WHERE status IN ('ACTIVE', 'ENDED', 'CANCELLED')
        ) AS d
        ALL LEFT JOIN (
            SELECT deployment_id, sum(faces) AS faces_seen
            FROM {db}.agg_faces_minute FINAL
            GROUP BY deployment_id
        ) AS f USING deployment_id
    ) AS df
    ALL LEFT JOIN (
        SELECT
            deployment_id,
            sum(total_alerts) AS total_alerts,
            sum(pending_alerts) AS pending_alerts,
            sum(true_alerts_confirmed) AS true_alerts_confirmed,
            sum(true_alerts_unconfirmed) AS true_alerts_unconfirmed,
            sum(false_alerts_confirmed) AS false_alerts_confirmed,
            sum(false_alerts_unconfirmed) AS false_alerts_unconfirmed,
            sum(outcome_arrest) AS outcome_arrest,
            sum(outcome_other) AS outcome_other,
            sum(no_action) AS no_action
        FROM {db}.agg_alert_counts FINAL
        GROUP BY deployment_id
    ) AS a USING deployment_id
) AS dfa
ALL LEFT JOIN (
    SELECT deployment_id, length(ttl) AS located, ttl
    FROM (
        SELECT deployment_id, arraySort(groupArray(ttl_s)) AS ttl
        FROM (
            SELECT deployment_id, arrayJoin(values_s) AS ttl_s
            FROM {db}.agg_time_to_locate FINAL
        )
        GROUP BY deployment_id
    )
) AS t USING deployment_id;

DROP TABLE IF EXISTS {db}.time_to_locate;

CREATE VIEW IF NOT EXISTS {db}.time_to_locate AS
SELECT
    mode,
    category,
    located,
    mean_s,
    (arrayElement(v, intDiv(located + 1, 2)) + arrayElement(v, intDiv(located, 2) + 1)) / 2 AS median_s,
    (arrayElement(v, toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 1) + (arrayElement(v, least(toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 2, toUInt64(located))) - arrayElement(v, toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 1)) * (((toInt64(located) - 1) * 0.9) - floor(((toInt64(located) - 1) * 0.9)))) AS p90_s
FROM (
    SELECT mode, category, count() AS located, avg(ttl_s) AS mean_s,
           arraySort(groupArray(ttl_s)) AS v
    FROM (
        SELECT deployment_id, category, arrayJoin(values_s) AS ttl_s
        FROM {db}.agg_time_to_locate FINAL
    ) AS t
    ALL INNER JOIN (
        SELECT deployment_id, mode FROM {db}.deployments
    ) AS d USING deployment_id
    GROUP BY mode, category
);

DROP TABLE IF EXISTS {db}.time_to_locate_by_mode;

CREATE VIEW IF NOT EXISTS {db}.time_to_locate_by_mode AS
SELECT
    mode,
    located,
    mean_s,
    (arrayElement(v, intDiv(located + 1, 2)) + arrayElement(v, intDiv(located, 2) + 1)) / 2 AS median_s,
    (arrayElement(v, toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 1) + (arrayElement(v, least(toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 2, toUInt64(located))) - arrayElement(v, toUInt64(floor(((toInt64(located) - 1) * 0.9))) + 1)) * (((toInt64(located) - 1) * 0.9) - floor(((toInt64(located) - 1) * 0.9)))) AS p90_s
FROM (
    SELECT mode, count() AS located, avg(ttl_s) AS mean_s, arraySort(groupArray(ttl_s)) AS v
    FROM (
        SELECT deployment_id, arrayJoin(values_s) AS ttl_s
        FROM {db}.agg_time_to_locate FINAL
    ) AS t
    ALL INNER JOIN (
        SELECT deployment_id, mode FROM {db}.deployments
    ) AS d USING deployment_id
    GROUP BY mode
);

DROP TABLE IF EXISTS {db}.time_to_locate_reduction;

CREATE VIEW IF NOT EXISTS {db}.time_to_locate_reduction AS
SELECT
    fixed_located,
    van_located,
    if(fixed_located = 0, NULL, fixed_median) AS fixed_median_s,
    if(van_located = 0, NULL, van_median) AS van_median_s,
    if(fixed_located = 0 OR van_located = 0 OR van_median = 0, NULL,
       1 - fixed_median / van_median) AS median_reduction
FROM (
    SELECT
        fixed_located,
        van_located,
        (arrayElement(fixed, intDiv(fixed_located + 1, 2)) + arrayElement(fixed, intDiv(fixed_located, 2) + 1)) / 2 AS fixed_median,
        (arrayElement(van, intDiv(van_located + 1, 2)) + arrayElement(van, intDiv(van_located, 2) + 1)) / 2 AS van_median
    FROM (
        SELECT
            arraySort(groupArrayIf(ttl_s, mode = 'FIXED_REMOTE')) AS fixed,
            arraySort(groupArrayIf(ttl_s, mode = 'VAN')) AS van,
            length(fixed) AS fixed_located,
            length(van) AS van_located
        FROM (
            SELECT deployment_id, arrayJoin(values_s) AS ttl_s
            FROM {db}.agg_time_to_locate FINAL
        ) AS t
        ALL INNER JOIN (
            SELECT deployment_id, mode FROM {db}.deployments
        ) AS d USING deployment_id
    )
);
