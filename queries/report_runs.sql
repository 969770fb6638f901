-- Report: the last 30 sync runs: when each started, how it ended, what it cost and moved.
--
-- From the run summaries sync keeps under _state/org_id=<org>/runs/ (registered by
-- `wxcc report` as the `runs` table). Runs are not filtered by the report's date range: they
-- are when sync ran, not when the calls happened. requests and rate_limited are WxCC API
-- requests and 429 answers; failed counts downloads that failed; rejects, rows refused as
-- malformed.
-- param: org TEXT default null -- only this organization; every org when not given
SELECT * FROM (
    SELECT
        org_id,
        started_at,
        status,
        ROUND(duration_ms / 1000.0, 1) AS duration_s,
        requests,
        rate_limited,
        bytes,
        stored,
        rejects,
        failed
    FROM runs
    WHERE ($org IS NULL OR org_id = $org)
    ORDER BY started_at DESC, org_id
    LIMIT 30
)
ORDER BY started_at, org_id;
