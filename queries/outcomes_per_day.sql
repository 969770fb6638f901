-- Abandoned vs completed telephony tasks per day, with the abandoned share.
--
-- `status` is each task's status as of the last sync, so today's counts move until the calls
-- close; `other` counts tasks still open (created, queued, offered, assigned) or without status.
-- `date` is the UTC day the task was created.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: queue TEXT default null -- only this queue (by name); every queue when not given
SELECT
    org_id,
    date,
    COUNT(*) AS calls,
    SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
    SUM(CASE WHEN status = 'abandoned' THEN 1 ELSE 0 END) AS abandoned,
    SUM(CASE WHEN status = 'completed' OR status = 'abandoned' THEN 0 ELSE 1 END) AS other,
    ROUND(
        CAST(SUM(CASE WHEN status = 'abandoned' THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*), 4
    ) AS abandoned_share
FROM tasks
WHERE channel_type = 'telephony'
  AND date >= $since AND date < $until
  AND ($queue IS NULL OR queue_name = $queue)
GROUP BY org_id, date
ORDER BY org_id, date;
