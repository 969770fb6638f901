-- Report: recording coverage per UTC day: tasks that asked for a recording, recordings listed, stored and failed.
--
-- requested counts tasks with capture_requested = true; listed counts capture rows (recordings
-- WxCC listed for the day's tasks); stored and failed count manifest rows by status. listed can
-- exceed requested (a call can have several recordings: main, consult, segments). Each table is
-- read once: the three per-day counts are stacked and summed, so a day with rows in any of them
-- appears, with 0 where a table has none.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH per_day AS (
    SELECT date,
        SUM(CASE WHEN capture_requested THEN 1 ELSE 0 END) AS requested,
        0 AS listed, 0 AS stored, 0 AS failed
    FROM tasks
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
    UNION ALL
    SELECT date, 0, COUNT(*), 0, 0
    FROM captures
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
    UNION ALL
    SELECT date, 0, 0,
        SUM(CASE WHEN status = 'stored' THEN 1 ELSE 0 END),
        SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)
    FROM manifest
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
)
SELECT
    date,
    SUM(requested) AS requested,
    SUM(listed) AS listed,
    SUM(stored) AS stored,
    SUM(failed) AS failed
FROM per_day
GROUP BY date
ORDER BY date;
