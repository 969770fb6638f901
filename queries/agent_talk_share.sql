-- Agent talk-time share: how much of the talking on each agent's analysed recordings is theirs.
--
-- From the audio analysis (audio_facts, through the recordings view): talk time is assigned to
-- the caller and the agent by the channel labels. agent_share = agent talk / (agent + caller
-- talk). Only recordings with both a Caller and an Agent channel analysed count towards the talk
-- columns (`analysed`); `recordings` counts every stored recording of the agent.
-- param: since DATE default 1970-01-01 -- first UTC day to include
-- param: until DATE default 9999-12-31 -- first UTC day not to include
-- param: queue TEXT default null -- only this queue (by name); every queue when not given
WITH r AS (
    SELECT
        org_id,
        agent_name,
        crosstalk_share,
        CASE WHEN agent_talk_ms IS NOT NULL AND caller_talk_ms IS NOT NULL THEN agent_talk_ms END
            AS agent_ms,
        CASE WHEN agent_talk_ms IS NOT NULL AND caller_talk_ms IS NOT NULL THEN caller_talk_ms END
            AS caller_ms
    FROM recordings
    WHERE date >= $since AND date < $until
      AND ($queue IS NULL OR queue_name = $queue)
)
SELECT
    org_id,
    agent_name AS agent,
    COUNT(*) AS recordings,
    COUNT(agent_ms) AS analysed,
    SUM(agent_ms) AS agent_talk_ms,
    SUM(caller_ms) AS caller_talk_ms,
    ROUND(CAST(SUM(agent_ms) AS DOUBLE) / NULLIF(SUM(agent_ms) + SUM(caller_ms), 0), 4)
        AS agent_share,
    ROUND(AVG(crosstalk_share), 4) AS avg_crosstalk_share
FROM r
GROUP BY org_id, agent_name
ORDER BY org_id, agent;
