-- Report: tasks per UTC day and channel (telephony, chat, email, social).
--
-- `date` is the UTC day the task was created; every task counts, whatever its status.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
SELECT
    date,
    COALESCE(channel_type, 'unknown') AS channel,
    COUNT(*) AS calls
FROM tasks
WHERE date >= $since AND date < $until
  AND ($org IS NULL OR org_id = $org)
GROUP BY date, COALESCE(channel_type, 'unknown')
ORDER BY date, channel;
