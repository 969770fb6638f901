-- Data quality: calls that asked for a recording but have none stored N hours after they began.
--
-- WxCC makes recordings available some minutes after a call ends, so a task with
-- captureRequested = true and no stored recording long after that points at a sync gap, an
-- org retention cut or a WxCC-side failure (failed_downloads > 0: see missing_recordings for the
-- errors). Whether a main recording lacks its consult leg cannot be known from the API, so it is
-- not checked. `as_of` defaults to the time the query runs.
-- param: hours INT default 24 -- age (hours since the task was created) after which a missing recording is overdue
-- param: as_of TIMESTAMP default now -- the time to measure ages from
WITH stored AS (
    SELECT org_id, date, task_id,
        SUM(CASE WHEN status = 'stored' THEN 1 ELSE 0 END) AS stored,
        SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed
    FROM manifest
    GROUP BY org_id, date, task_id
)
SELECT
    t.org_id,
    t.date,
    t.task_id,
    t.created_time,
    t.queue_name AS queue,
    t.owner_name AS agent,
    t.status,
    CAST((to_unixtime($as_of) - to_unixtime(t.created_time)) / 3600 AS BIGINT) AS age_hours,
    COALESCE(s.failed, 0) AS failed_downloads
FROM tasks AS t
LEFT JOIN stored AS s
    ON s.org_id = t.org_id AND s.date = t.date AND s.task_id = t.task_id
WHERE t.capture_requested = true
  AND COALESCE(s.stored, 0) = 0
  AND to_unixtime(t.created_time) + $hours * 3600 <= to_unixtime($as_of)
ORDER BY t.created_time, t.task_id;
