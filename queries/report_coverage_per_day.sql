-- Report: recording coverage per UTC day: tasks that asked for a recording, recordings listed, stored and failed.
--
-- requested counts tasks with capture_requested = true; listed counts capture rows (recordings
-- WxCC listed for the day's tasks); stored and failed count manifest rows by status. listed can
-- exceed requested (a call can have several recordings: main, consult, segments).
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH req AS (
    SELECT date, SUM(CASE WHEN capture_requested THEN 1 ELSE 0 END) AS n
    FROM tasks
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
),
lst AS (
    SELECT date, COUNT(*) AS n
    FROM captures
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
),
man AS (
    SELECT date,
        SUM(CASE WHEN status = 'stored' THEN 1 ELSE 0 END) AS stored,
        SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed
    FROM manifest
    WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
    GROUP BY date
),
days AS (
    SELECT date FROM req UNION SELECT date FROM lst UNION SELECT date FROM man
)
SELECT
    d.date,
    COALESCE(req.n, 0) AS requested,
    COALESCE(lst.n, 0) AS listed,
    COALESCE(man.stored, 0) AS stored,
    COALESCE(man.failed, 0) AS failed
FROM days AS d
LEFT JOIN req ON req.date = d.date
LEFT JOIN lst ON lst.date = d.date
LEFT JOIN man ON man.date = d.date
ORDER BY d.date;
