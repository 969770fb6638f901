-- Stored recordings to hand to a transcription job, oldest first, with the party on each channel.
--
-- One row per stored recording (the `recordings` view) whose task was created in [since, until)
-- (UTC days), optionally of one queue. channel1/channel2 say which party is on which audio
-- channel (Caller, Agent, VA, Others): read them per recording, the mapping is not fixed.
-- `wxcc export --query recordings_to_transcribe --param since=... --sign 1h` turns these rows
-- into a job list with pre-signed download URLs.
-- param: since DATE default 1970-01-01 -- first UTC day to include (the task's creation date)
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: queue TEXT default null -- only this queue (by name); every queue when not given
SELECT
    org_id,
    date,
    task_id,
    recording_id,
    created_time,
    queue_name AS queue,
    agent_name AS agent,
    call_type,
    duration_ms,
    channel1,
    channel2,
    object_uri,
    size_bytes,
    sha256
FROM recordings
WHERE date >= $since AND date < $until
  AND ($queue IS NULL OR queue_name = $queue)
ORDER BY created_time, task_id, recording_id;
