-- Report: audio facts by queue: silence share, caller/agent talk split, cross-talk and levels of analysed recordings.
--
-- Averages over recordings whose audio was analysed (audio_facts status ok). silence_share is
-- the mean of both channels' silent share; agent_share = agent talk / (agent + caller talk),
-- over recordings with both parties labelled; rms_dbfs is the mean level of both channels.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: org TEXT default null -- only this organization; every org when not given
WITH r AS (
    SELECT
        COALESCE(t.queue_name, '(no queue)') AS queue,
        (a.ch1_silence_share + a.ch2_silence_share) / 2 AS silence,
        (a.ch1_rms_dbfs + a.ch2_rms_dbfs) / 2 AS rms,
        a.crosstalk_share,
        CASE
            WHEN COALESCE(a.channel1_label, c.channel1) = 'Caller' THEN a.ch1_talk_ms
            WHEN COALESCE(a.channel2_label, c.channel2) = 'Caller' THEN a.ch2_talk_ms
        END AS caller_ms,
        CASE
            WHEN COALESCE(a.channel1_label, c.channel1) = 'Agent' THEN a.ch1_talk_ms
            WHEN COALESCE(a.channel2_label, c.channel2) = 'Agent' THEN a.ch2_talk_ms
        END AS agent_ms
    FROM audio_facts AS a
    LEFT JOIN tasks AS t
        ON t.org_id = a.org_id AND t.date = a.date AND t.task_id = a.task_id
    LEFT JOIN captures AS c
        ON c.org_id = a.org_id AND c.date = a.date
        AND c.task_id = a.task_id AND c.recording_id = a.recording_id
    WHERE a.status = 'ok'
      AND a.date >= $since AND a.date < $until AND ($org IS NULL OR a.org_id = $org)
)
SELECT
    queue,
    COUNT(*) AS analysed,
    ROUND(AVG(silence), 3) AS silence_share,
    ROUND(CAST(SUM(CASE WHEN caller_ms IS NOT NULL THEN agent_ms END) AS DOUBLE)
        / NULLIF(SUM(CASE WHEN caller_ms IS NOT NULL THEN agent_ms + caller_ms END), 0), 3)
        AS agent_share,
    ROUND(AVG(crosstalk_share), 3) AS crosstalk_share,
    ROUND(AVG(rms), 1) AS rms_dbfs
FROM r
GROUP BY queue
ORDER BY analysed DESC, queue;
