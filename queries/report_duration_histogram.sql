-- Report: stored recordings by length (capture stop - start), in buckets from under a minute to an hour and more.
--
-- `bucket` orders the buckets; `duration` labels them. Lengths come from the capture metadata of
-- stored recordings (manifest joined to captures, as in the `recordings` view, without the
-- joins this chart does not need); recordings without one are counted as 'unknown'.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH b AS (
    SELECT CASE
        WHEN c.duration_ms IS NULL THEN 8
        WHEN c.duration_ms < 60000 THEN 1
        WHEN c.duration_ms < 120000 THEN 2
        WHEN c.duration_ms < 300000 THEN 3
        WHEN c.duration_ms < 600000 THEN 4
        WHEN c.duration_ms < 1200000 THEN 5
        WHEN c.duration_ms < 3600000 THEN 6
        ELSE 7
    END AS bucket
    FROM manifest AS m
    LEFT JOIN captures AS c
        ON c.org_id = m.org_id AND c.date = m.date
        AND c.task_id = m.task_id AND c.recording_id = m.recording_id
    WHERE m.status = 'stored'
      AND m.date >= $since AND m.date < $until AND ($org IS NULL OR m.org_id = $org)
)
SELECT
    bucket,
    CASE bucket
        WHEN 1 THEN '< 1 min' WHEN 2 THEN '1-2 min' WHEN 3 THEN '2-5 min'
        WHEN 4 THEN '5-10 min' WHEN 5 THEN '10-20 min' WHEN 6 THEN '20-60 min'
        WHEN 7 THEN '>= 60 min' ELSE 'unknown'
    END AS duration,
    COUNT(*) AS recordings
FROM b
GROUP BY bucket
ORDER BY bucket;
