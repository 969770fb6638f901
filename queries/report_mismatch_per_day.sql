-- Report: audio vs metadata per UTC day: analysed recordings, length mismatches, missing legs, unreadable audio.
--
-- mismatched: the WAV's length differs from the capture's stop - start by more than
-- tolerance_ms. missing_leg: the WAV has fewer than two channels (a party's leg is absent).
-- unreadable: the analysis could not read the stored file (audio_facts status other than ok).
-- Counts stored recordings (manifest) with their audio facts, as the `recordings` view does.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
-- param: tolerance_ms INT default 2000 -- length differences up to this many milliseconds are fine
SELECT
    m.date,
    COUNT(*) AS stored,
    SUM(CASE WHEN a.status = 'ok' THEN 1 ELSE 0 END) AS analysed,
    SUM(CASE WHEN a.status = 'ok' AND ABS(a.duration_mismatch_ms) > $tolerance_ms THEN 1 ELSE 0 END)
        AS mismatched,
    SUM(CASE WHEN a.status = 'ok' AND a.channels < 2 THEN 1 ELSE 0 END) AS missing_leg,
    SUM(CASE WHEN a.status IS NOT NULL AND a.status <> 'ok' THEN 1 ELSE 0 END) AS unreadable
FROM manifest AS m
LEFT JOIN audio_facts AS a
    ON a.org_id = m.org_id AND a.date = m.date
    AND a.task_id = m.task_id AND a.recording_id = m.recording_id
WHERE m.status = 'stored'
  AND m.date >= $since AND m.date < $until AND ($org IS NULL OR m.org_id = $org)
GROUP BY m.date
ORDER BY m.date;
