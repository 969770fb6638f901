-- Stored recordings with their task context, ready to hand to a transcription job.
--
-- One row per audio object the connector stored (manifest.status = 'stored'), with the
-- recording's capture metadata and its task. channel1/channel2 say which party is on which
-- audio channel (Caller, Agent, VA, Others): read them per recording, the mapping is not fixed.
-- Rows whose task or capture metadata is not synced yet keep their NULLs (LEFT JOINs).
-- To limit the days read, add e.g. `AND m.date >= '2024-03-01'` to the WHERE clause
-- (`date` is the UTC day of the task's creation, a partition folder).
SELECT
    m.org_id,
    m.task_id,
    m.recording_id,
    t.created_time,
    t.queue_name AS queue,
    t.owner_name AS agent,
    c.call_type,
    c.duration_ms,
    c.channel1,
    c.channel2,
    m.object_uri,
    m.size_bytes,
    m.sha256
FROM manifest AS m
LEFT JOIN captures AS c
    ON c.org_id = m.org_id AND c.task_id = m.task_id AND c.recording_id = m.recording_id
LEFT JOIN tasks AS t
    ON t.org_id = m.org_id AND t.task_id = m.task_id
WHERE m.status = 'stored'
ORDER BY t.created_time, m.recording_id;
