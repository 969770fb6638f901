-- Recordings missing or failed: requested but not stored, failed downloads, and stored audio that could not be analysed.
--
-- reason = 'not_stored': the task has capture_requested = true and no manifest row at all
--   (not synced yet, not yet available from WxCC, or past the org's retention).
-- reason = 'failed': a download was tried and failed; `error` says why. A later sync retries it
--   and, on success, replaces the row with status 'stored'.
-- reason = 'audio_<status>': the audio analysis found the stored file not_wav, unsupported,
--   corrupt or missing; `error` says why.
-- Tasks with capture_requested NULL (not yet known) are not listed. For gaps older than a few
-- hours only, see overdue_recordings.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
SELECT
    t.org_id,
    t.date,
    t.task_id,
    CAST(NULL AS VARCHAR) AS recording_id,
    t.created_time,
    t.queue_name AS queue,
    t.owner_name AS agent,
    'not_stored' AS reason,
    CAST(NULL AS VARCHAR) AS error
FROM tasks AS t
WHERE t.capture_requested = true
  AND t.date >= $since AND t.date < $until
  AND NOT EXISTS (
      SELECT 1 FROM manifest AS m
      WHERE m.org_id = t.org_id AND m.date = t.date AND m.task_id = t.task_id
  )
UNION ALL
SELECT
    m.org_id,
    m.date,
    m.task_id,
    m.recording_id,
    t.created_time,
    t.queue_name AS queue,
    t.owner_name AS agent,
    'failed' AS reason,
    m.error
FROM manifest AS m
LEFT JOIN tasks AS t
    ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id
WHERE m.status = 'failed'
  AND m.date >= $since AND m.date < $until
UNION ALL
SELECT
    a.org_id,
    a.date,
    a.task_id,
    a.recording_id,
    t.created_time,
    t.queue_name AS queue,
    t.owner_name AS agent,
    'audio_' || a.status AS reason,
    a.error
FROM audio_facts AS a
LEFT JOIN tasks AS t
    ON t.org_id = a.org_id AND t.date = a.date AND t.task_id = a.task_id
WHERE a.status <> 'ok'
  AND a.date >= $since AND a.date < $until
ORDER BY created_time, task_id, recording_id;
