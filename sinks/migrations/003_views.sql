-- Analyst views. They read the rolled-up aggregates (never the row-level
-- tables that retention empties) with FINAL, so every figure is exact
-- whatever the state of background merges. One JOIN per SELECT, nested,
-- because 18.16 allows no more; every right side is unique on the join key.

CREATE VIEW IF NOT EXISTS {db}.deployments AS
SELECT
    deployment_id, site_id, location, use_case, mode, camera_ids, watchlist_id,
    watchlist_size, match_threshold, authorised_by, authorised_at, authorised_at_ms,
    starts_at, starts_at_ms, ends_at, ends_at_ms, status, officers_present,
    updated_at, updated_at_ms, version
FROM {db}.operation_windows FINAL
ALL INNER JOIN (
    SELECT deployment_id, max(version) AS version
    FROM {db}.operation_windows
    GROUP BY deployment_id
) AS latest USING (deployment_id, version);

CREATE VIEW IF NOT EXISTS {db}.deployment_metrics AS
SELECT
    deployment_id,
    site_id,
    location,
    toString(toDate(starts_at)) AS date,
    if(isNull(ends_at), NULL,
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
    if(located = 0, NULL, median_ttl_s) AS median_time_to_locate_s
FROM (
    SELECT * FROM (
        SELECT * FROM (
            SELECT
                deployment_id, site_id, location, use_case, mode, camera_ids, watchlist_id,
                watchlist_size, match_threshold, authorised_by, authorised_at, starts_at,
                starts_at_ms, ends_at, ends_at_ms, status
            FROM {db}.deployments
            WHERE status IN ('ACTIVE', 'ENDED')
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
    SELECT deployment_id, count() AS located, quantileExact(0.5)(ttl_s) AS median_ttl_s
    FROM (
        SELECT deployment_id, arrayJoin(values_s) AS ttl_s
        FROM {db}.agg_time_to_locate FINAL
    )
    GROUP BY deployment_id
) AS t USING deployment_id;

CREATE VIEW IF NOT EXISTS {db}.time_to_locate AS
SELECT
    mode,
    category,
    count() AS located,
    avg(ttl_s) AS mean_s,
    quantileExact(0.5)(ttl_s) AS median_s,
    quantileExact(0.9)(ttl_s) AS p90_s
FROM (
    SELECT deployment_id, category, arrayJoin(values_s) AS ttl_s
    FROM {db}.agg_time_to_locate FINAL
) AS t
ALL INNER JOIN (
    SELECT deployment_id, mode FROM {db}.deployments
) AS d USING deployment_id
GROUP BY mode, category;

CREATE VIEW IF NOT EXISTS {db}.time_to_locate_by_mode AS
SELECT
    mode,
    count() AS located,
    avg(ttl_s) AS mean_s,
    quantileExact(0.5)(ttl_s) AS median_s,
    quantileExact(0.9)(ttl_s) AS p90_s
FROM (
    SELECT deployment_id, arrayJoin(values_s) AS ttl_s
    FROM {db}.agg_time_to_locate FINAL
) AS t
ALL INNER JOIN (
    SELECT deployment_id, mode FROM {db}.deployments
) AS d USING deployment_id
GROUP BY mode;

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
        countIf(mode = 'FIXED_REMOTE') AS fixed_located,
        countIf(mode = 'VAN') AS van_located,
        quantileExactIf(0.5)(ttl_s, mode = 'FIXED_REMOTE') AS fixed_median,
        quantileExactIf(0.5)(ttl_s, mode = 'VAN') AS van_median
    FROM (
        SELECT deployment_id, arrayJoin(values_s) AS ttl_s
        FROM {db}.agg_time_to_locate FINAL
    ) AS t
    ALL INNER JOIN (
        SELECT deployment_id, mode FROM {db}.deployments
    ) AS d USING deployment_id
);

CREATE VIEW IF NOT EXISTS {db}.false_alerts AS
SELECT
    deployment_id,
    site_id,
    camera_id,
    threshold,
    total_alerts,
    false_alerts_confirmed,
    false_alerts_unconfirmed,
    false_alerts_confirmed + false_alerts_unconfirmed AS false_alerts,
    faces_seen,
    if(faces_seen = 0, 0., false_alerts / faces_seen) AS false_alert_rate
FROM (
    SELECT
        deployment_id, site_id, camera_id, threshold,
        sum(total_alerts) AS total_alerts,
        sum(false_alerts_confirmed) AS false_alerts_confirmed,
        sum(false_alerts_unconfirmed) AS false_alerts_unconfirmed
    FROM {db}.agg_alert_counts FINAL
    GROUP BY deployment_id, site_id, camera_id, threshold
) AS a
ALL LEFT JOIN (
    SELECT deployment_id, site_id, camera_id, sum(faces) AS faces_seen
    FROM {db}.agg_faces_minute FINAL
    GROUP BY deployment_id, site_id, camera_id
) AS f USING (deployment_id, site_id, camera_id);

CREATE VIEW IF NOT EXISTS {db}.faces_daily AS
SELECT deployment_id, site_id, day, sum(faces) AS faces, sum(matched) AS matched
FROM {db}.agg_faces_minute FINAL
GROUP BY deployment_id, site_id, day;
