-- Report: the ten agents who handled most tasks, with their stored recordings.
--
-- Agent names are as stored by sync, so they follow its PII setting (names, hashes or nothing).
-- Tasks without an agent (abandoned in queue) are left out.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH rec AS (
    SELECT DISTINCT org_id, date, task_id
    FROM manifest
    WHERE status = 'stored' AND date >= $since AND date < $until
      AND ($org IS NULL OR org_id = $org)
)
SELECT
    t.owner_name AS agent,
    COUNT(*) AS calls,
    COUNT(rec.task_id) AS recorded
FROM tasks AS t
LEFT JOIN rec ON rec.org_id = t.org_id AND rec.date = t.date AND rec.task_id = t.task_id
WHERE t.owner_name IS NOT NULL
  AND t.date >= $since AND t.date < $until AND ($org IS NULL OR t.org_id = $org)
GROUP BY t.owner_name
ORDER BY calls DESC, agent
LIMIT 10;
