-- recordings: one row per stored recording, with its task, its capture metadata, (when the
-- audio has been analysed) its audio facts and (when made with `wxcc sync --derive`) where its
-- 16 kHz derivatives are, under friendly column names.
--
-- Registered by `wxcc sql` / `wxcc query` as a view over the five tables. It is plain SQL, so the
-- same statement creates the view in DuckDB once `tasks`, `captures`, `manifest`, `audio_facts`
-- and `derivatives` are views over read_parquet(..., hive_partitioning = true).
--
-- Every join also matches on `date` (all five tables are partitioned by the date of the task's
-- created_time), so a filter on `date` or `org_id` prunes the folders of every table, not only
-- the manifest's. Talk times are assigned to parties by the channel labels (the audio analysis'
-- labels when present, else the capture's), since the party on each channel varies by recording.
-- A derivative counts only when it was made from the very bytes stored (source_sha256 = sha256).
CREATE VIEW recordings AS
SELECT
    m.org_id,
    m.date,
    m.task_id,
    m.recording_id,
    t.created_time,
    t.channel_type,
    t.queue_name,
    t.owner_name AS agent_name,
    t.direction,
    c.call_type,
    c.start_time,
    c.stop_time,
    c.duration_ms,
    c.channel1,
    c.channel2,
    m.object_uri,
    m.size_bytes,
    m.sha256,
    a.status AS audio_status,
    a.duration_ms AS audio_duration_ms,
    a.duration_mismatch_ms,
    a.sample_rate,
    a.channels,
    CASE
        WHEN COALESCE(a.channel1_label, c.channel1) = 'Caller' THEN a.ch1_talk_ms
        WHEN COALESCE(a.channel2_label, c.channel2) = 'Caller' THEN a.ch2_talk_ms
    END AS caller_talk_ms,
    CASE
        WHEN COALESCE(a.channel1_label, c.channel1) = 'Agent' THEN a.ch1_talk_ms
        WHEN COALESCE(a.channel2_label, c.channel2) = 'Agent' THEN a.ch2_talk_ms
    END AS agent_talk_ms,
    a.crosstalk_share,
    dm.object_uri AS mono16k_uri,
    CASE
        WHEN d1.channel_label = 'Caller' THEN d1.object_uri
        WHEN d2.channel_label = 'Caller' THEN d2.object_uri
    END AS caller_16k_uri,
    CASE
        WHEN d1.channel_label = 'Agent' THEN d1.object_uri
        WHEN d2.channel_label = 'Agent' THEN d2.object_uri
    END AS agent_16k_uri
FROM manifest AS m
LEFT JOIN tasks AS t
    ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id
LEFT JOIN captures AS c
    ON c.org_id = m.org_id AND c.date = m.date
    AND c.task_id = m.task_id AND c.recording_id = m.recording_id
LEFT JOIN audio_facts AS a
    ON a.org_id = m.org_id AND a.date = m.date
    AND a.task_id = m.task_id AND a.recording_id = m.recording_id
LEFT JOIN derivatives AS dm
    ON dm.org_id = m.org_id AND dm.date = m.date
    AND dm.task_id = m.task_id AND dm.recording_id = m.recording_id
    AND dm.kind = 'mono16k' AND dm.status = 'ok' AND dm.source_sha256 = m.sha256
LEFT JOIN derivatives AS d1
    ON d1.org_id = m.org_id AND d1.date = m.date
    AND d1.task_id = m.task_id AND d1.recording_id = m.recording_id
    AND d1.kind = 'ch1_16k' AND d1.status = 'ok' AND d1.source_sha256 = m.sha256
LEFT JOIN derivatives AS d2
    ON d2.org_id = m.org_id AND d2.date = m.date
    AND d2.task_id = m.task_id AND d2.recording_id = m.recording_id
    AND d2.kind = 'ch2_16k' AND d2.status = 'ok' AND d2.source_sha256 = m.sha256
WHERE m.status = 'stored'
