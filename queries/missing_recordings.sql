-- Recordings that should exist but are not stored: requested captures with nothing in the manifest, and failed downloads.
--
-- reason = 'not_stored': the task has capture_requested = true and no manifest row at all
--   (not synced yet, not yet available from WxCC, or past the org's retention).
-- reason = 'failed': a download was tried and failed; `error` says why. A later sync retries it
--   and, on success, replaces the row with status 'stored'.
-- Tasks with capture_requested NULL (not yet known) are not listed.
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
  AND NOT EXISTS (
      SELECT 1 FROM manifest AS m
      WHERE m.org_id = t.org_id AND m.task_id = t.task_id
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
    ON t.org_id = m.org_id AND t.task_id = m.task_id
WHERE m.status = 'failed'
ORDER BY created_time, task_id, recording_id;
