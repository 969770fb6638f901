-- Report: pipeline health per org: watermark lag, recordings still owed, failed downloads.
--
-- From the sync state (registered by `wxcc report` as the `watermarks` table, one row per org
-- with its watermark and the ledger counts of its latest run) and the manifest. lag_hours is
-- as_of - synced_until. pending counts tasks still waited for (no recording yet, captures or
-- download failed, per the latest run); failed counts manifest rows in status failed.
-- param: as_of TIMESTAMP default now -- the time to measure the lag from
-- param: org TEXT default null -- only this organization; every org when not given
WITH f AS (
    SELECT org_id, COUNT(*) AS failed
    FROM manifest
    WHERE status = 'failed' AND ($org IS NULL OR org_id = $org)
    GROUP BY org_id
)
SELECT
    w.org_id,
    w.synced_until,
    ROUND((to_unixtime($as_of) - to_unixtime(w.synced_until)) / 3600.0, 1) AS lag_hours,
    w.no_recording_yet + w.captures_failed + w.download_failed AS pending,
    w.gaps,
    COALESCE(f.failed, 0) AS failed
FROM watermarks AS w
LEFT JOIN f ON f.org_id = w.org_id
WHERE ($org IS NULL OR w.org_id = $org)
ORDER BY w.org_id;
