-- Report: audio vs metadata per UTC day: analysed recordings, length mismatches, missing legs, unreadable audio.
--
-- mismatched: the WAV's length differs from the capture's stop - start by more than
-- tolerance_ms. missing_leg: the WAV has fewer than two channels (a party's leg is absent).
-- unreadable: the analysis could not read the stored file (audio_status other than ok).
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
-- param: tolerance_ms INT default 2000 -- length differences up to this many milliseconds are fine
SELECT
    date,
    COUNT(*) AS stored,
    SUM(CASE WHEN audio_status = 'ok' THEN 1 ELSE 0 END) AS analysed,
    SUM(CASE WHEN audio_status = 'ok' AND ABS(duration_mismatch_ms) > $tolerance_ms THEN 1 ELSE 0 END)
        AS mismatched,
    SUM(CASE WHEN audio_status = 'ok' AND channels < 2 THEN 1 ELSE 0 END) AS missing_leg,
    SUM(CASE WHEN audio_status IS NOT NULL AND audio_status <> 'ok' THEN 1 ELSE 0 END) AS unreadable
FROM recordings
WHERE date >= $since AND date < $until AND ($org IS NULL OR org_id = $org)
GROUP BY date
ORDER BY date;
