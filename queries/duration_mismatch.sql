-- Data quality: stored recordings whose audio length differs from the capture's stop - start by more than a tolerance.
--
-- audio_duration_ms comes from the WAV file (audio analysis), capture_duration_ms from the
-- capture metadata. A large negative mismatch usually means a truncated file; a large positive
-- one, a capture whose times are wrong. Recordings not analysed yet are not listed.
-- param: tolerance_ms INT default 2000 -- differences up to this many milliseconds are fine
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
SELECT
    org_id,
    date,
    task_id,
    recording_id,
    created_time,
    queue_name AS queue,
    call_type,
    duration_ms AS capture_duration_ms,
    audio_duration_ms,
    duration_mismatch_ms
FROM recordings
WHERE audio_status = 'ok'
  AND ABS(duration_mismatch_ms) > $tolerance_ms
  AND date >= $since AND date < $until
ORDER BY ABS(duration_mismatch_ms) DESC, task_id, recording_id;
