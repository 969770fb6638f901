-- Telephony tasks per day and queue, with completed, abandoned and recorded counts.
--
-- `date` is the UTC day the task was created. `status` is each task's status as of the last
-- sync, so counts for today move until the calls close. `recorded` counts tasks with at least
-- one recording stored in the manifest; compare it with `capture_requested` to spot gaps
-- (see missing_recordings). Tasks that never reached a queue appear with a NULL queue.
-- To limit the days read, add e.g. `AND t.date BETWEEN '2024-03-01' AND '2024-03-31'`.
WITH recorded AS (
    SELECT DISTINCT org_id, task_id
    FROM manifest
    WHERE status = 'stored'
)
SELECT
    t.org_id,
    t.date,
    t.queue_id,
    t.queue_name,
    COUNT(*) AS calls,
    SUM(CASE WHEN t.status = 'completed' THEN 1 ELSE 0 END) AS completed,
    SUM(CASE WHEN t.status = 'abandoned' THEN 1 ELSE 0 END) AS abandoned,
    SUM(CASE WHEN t.capture_requested THEN 1 ELSE 0 END) AS capture_requested,
    SUM(CASE WHEN r.task_id IS NOT NULL THEN 1 ELSE 0 END) AS recorded
FROM tasks AS t
LEFT JOIN recorded AS r
    ON r.org_id = t.org_id AND r.task_id = t.task_id
WHERE t.channel_type = 'telephony'
GROUP BY t.org_id, t.date, t.queue_id, t.queue_name
ORDER BY t.org_id, t.date, t.queue_name, t.queue_id;
