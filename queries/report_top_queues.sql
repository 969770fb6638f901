-- Report: the ten busiest queues: tasks, recordings stored, and mean recorded length.
--
-- Tasks that never reached a queue are grouped under '(no queue)'. recorded counts tasks with
-- at least one stored recording.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH rec AS (
    SELECT m.org_id, m.date, m.task_id, SUM(c.duration_ms) AS duration_ms
    FROM manifest AS m
    LEFT JOIN captures AS c
        ON c.org_id = m.org_id AND c.date = m.date
        AND c.task_id = m.task_id AND c.recording_id = m.recording_id
    WHERE m.status = 'stored'
      AND m.date >= $since AND m.date < $until AND ($org IS NULL OR m.org_id = $org)
    GROUP BY m.org_id, m.date, m.task_id
)
SELECT
    COALESCE(t.queue_name, '(no queue)') AS queue,
    COUNT(*) AS calls,
    COUNT(rec.task_id) AS recorded,
    ROUND(AVG(rec.duration_ms) / 60000.0, 2) AS avg_minutes
FROM tasks AS t
LEFT JOIN rec ON rec.org_id = t.org_id AND rec.date = t.date AND rec.task_id = t.task_id
WHERE t.date >= $since AND t.date < $until AND ($org IS NULL OR t.org_id = $org)
GROUP BY COALESCE(t.queue_name, '(no queue)')
ORDER BY calls DESC, queue
LIMIT 10;
