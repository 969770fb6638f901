-- Long calls per queue: how many recorded calls lasted at least N minutes, and the longest.
--
-- A call's length is the total duration of its main recording (capture stop - start, summed over
-- segments), the only end-to-end time the API gives; calls without a main recording are not
-- counted. Tasks that never reached a queue are grouped under a NULL queue.
-- param: min_minutes INT default 10 -- a call at least this many minutes long counts as long
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
WITH calls AS (
    SELECT org_id, date, task_id, SUM(duration_ms) AS duration_ms
    FROM captures
    WHERE call_type = 'main' AND date >= $since AND date < $until
    GROUP BY org_id, date, task_id
)
SELECT
    t.org_id,
    t.queue_name AS queue,
    COUNT(*) AS calls,
    SUM(CASE WHEN c.duration_ms >= $min_minutes * 60000 THEN 1 ELSE 0 END) AS long_calls,
    ROUND(AVG(c.duration_ms) / 60000.0, 2) AS avg_minutes,
    ROUND(MAX(c.duration_ms) / 60000.0, 2) AS max_minutes
FROM calls AS c
JOIN tasks AS t
    ON t.org_id = c.org_id AND t.date = c.date AND t.task_id = c.task_id
GROUP BY t.org_id, t.queue_name
ORDER BY long_calls DESC, t.org_id, queue;
