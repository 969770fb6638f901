//! Per-org sync state kept in the output store itself (`_state/org_id=<org>/`), so a run
//! needs nothing but the store to continue where the last one stopped:
//!
//! - `watermark.json`: everything created before `synced_until` is durable in the tables. It is
//!   written after each window's partitions, with one atomic put, so a crash at any moment
//!   leaves either the old or the new value. It only moves over windows that continue it
//!   ([`next_watermark`]), so a backfill elsewhere never claims the gap before it.
//! - `lock.json`: the lease that keeps two runs (two cron jobs, an overlapping backfill) off the
//!   same org and output; see [`super::lease`].
//! - `runs/<start>-<run>.json`: the summary of every run that got that far, failed ones too.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::lease::{self, Fence, LeaseConfig, LeaseGuard, LeaseRecord, LockCell};
use crate::lake::Lake;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "another sync holds the lease of org {org} ({holder}, started {started}, lease until \
         {expires}); try again after it ends or its lease expires (see `wxcc state show`). Delete \
         {path} only if that run is certainly gone (its pod or host no longer exists)"
    )]
    Locked {
        org: String,
        holder: String,
        started: DateTime<Utc>,
        expires: DateTime<Utc>,
        path: String,
    },
    #[error(
        "this run lost the lease of org {org} ({path}): {reason}; it stopped writing, and the \
         run holding the lease now (or the next run) finishes the range"
    )]
    LeaseLost {
        org: String,
        path: String,
        reason: String,
    },
    #[error(
        "the output store does not support conditional writes ({operation}), which the lease \
         needs; for S3-compatible stores set `aws_conditional_put = \"etag\"` in [storage]"
    )]
    NoConditionalWrites { operation: String },
    #[error("sync state at {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("cannot access sync state at {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot access sync state: {0}")]
    Store(#[from] object_store::Error),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Watermark {
    /// All tasks created before this instant are in the tables.
    pub synced_until: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where the watermark goes after the window `[start, end)` of a run that started at `cap`:
/// `Some(new)` only if the window continues the current watermark (starts at or before it) and
/// moves it forward, and never past `cap` (a `--to` in the future must not claim tasks that do
/// not exist yet). Without a watermark, the run's first window sets it.
pub fn next_watermark(
    current: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    cap: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let new = end.min(cap);
    match current {
        None if start < new => Some(new),
        Some(mark) if start <= mark && new > mark => Some(new),
        _ => None,
    }
}

/// State of one org in one output store. Cheap to clone.
#[derive(Clone)]
pub struct OrgState {
    store: Arc<dyn ObjectStore>,
    org: String,
    dir: String,
    watermark: Path,
    lock: LockCell,
}

impl OrgState {
    /// `org` must already be validated as a plain id (it becomes part of a path).
    pub fn new(lake: &Lake, org: &str) -> OrgState {
        let relative = format!("_state/org_id={org}/lock.json");
        // object_store's local backend has no conditional update: the lease does it itself.
        let local = (lake.url().scheme() == "file")
            .then(|| lake.url().to_file_path().ok())
            .flatten();
        let lock = match local {
            Some(root) => LockCell::Local {
                file: root.join(&relative),
            },
            None => LockCell::Store {
                store: lake.store().clone(),
                path: lake.path(&relative),
            },
        };
        OrgState {
            store: lake.store().clone(),
            org: org.to_owned(),
            dir: lake.path(&format!("_state/org_id={org}")).to_string(),
            watermark: lake.path(&format!("_state/org_id={org}/watermark.json")),
            lock,
        }
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub async fn watermark(&self) -> Result<Option<Watermark>> {
        match self.store.get(&self.watermark).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path: self.watermark.to_string(),
                        reason: format!(
                            "{e}; `wxcc state reset --to <day> --yes` writes a new watermark"
                        ),
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps a run's summary beside the state (`runs/<start>-<run id>.json`), so the history
    /// of a scheduled job can be read from the store itself; names sort by start time.
    pub async fn record_run<T: Serialize>(
        &self,
        started: DateTime<Utc>,
        run_id: &str,
        summary: &T,
    ) -> Result<()> {
        let short: String = run_id.chars().take(8).collect();
        let path = Path::from(format!(
            "{}/runs/{}-{short}.json",
            self.dir,
            started.format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let body = serde_json::to_vec_pretty(summary).expect("summary serializes");
        self.store.put(&path, PutPayload::from(body)).await?;
        Ok(())
    }

    /// The last `n` run summaries, oldest first.
    pub async fn runs(&self, n: usize) -> Result<Vec<serde_json::Value>> {
        use futures::TryStreamExt;
        let prefix = Path::from(format!("{}/runs", self.dir));
        let mut paths: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        paths.retain(|p| p.extension() == Some("json"));
        paths.sort();
        let mut out = Vec::new();
        for path in paths.iter().skip(paths.len().saturating_sub(n)) {
            let bytes = self.store.get(path).await?.bytes().await?;
            out.push(
                serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// The lease as stored (held, expired or released), if any run ever took one.
    pub async fn lease(&self) -> Result<Option<LeaseRecord>> {
        lease::read(&self.lock).await
    }

    /// Moves the watermark after the window `[start, end)` of a run that started at `cap`,
    /// if the window continues it (see [`next_watermark`]). Returns the new value, if moved.
    pub async fn advance(
        &self,
        fence: &Fence,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        cap: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let current = self.watermark().await?.map(|m| m.synced_until);
        let Some(next) = next_watermark(current, start, end, cap) else {
            if current.is_some_and(|mark| start > mark) {
                tracing::debug!(%start, "window does not continue the watermark; leaving it");
            }
            return Ok(None);
        };
        self.put_watermark(fence, next).await?;
        Ok(Some(next))
    }

    /// Sets the watermark to `to`, forward or back (`wxcc state reset`).
    pub async fn reset(&self, fence: &Fence, to: DateTime<Utc>) -> Result<()> {
        self.put_watermark(fence, to).await
    }

    async fn put_watermark(&self, fence: &Fence, synced_until: DateTime<Utc>) -> Result<()> {
        let mark = Watermark {
            synced_until,
            updated_at: Utc::now(),
        };
        let body = serde_json::to_vec_pretty(&mark).expect("watermark serializes");
        fence.check()?;
        self.store
            .put(&self.watermark, PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Takes the lease for run `run_id`, or fails with who holds it ([`StateError::Locked`]).
    /// A dead lease (expired, released, or of a killed process on this host) is taken over.
    pub async fn lock(
        &self,
        holder: &str,
        run_id: &str,
        config: LeaseConfig,
    ) -> Result<LeaseGuard> {
        let now = Utc::now();
        let record = LeaseRecord {
            holder: holder.to_owned(),
            run_id: run_id.to_owned(),
            host: lease::host_name(),
            pid: std::process::id(),
            pid_scope: lease::pid_scope(),
            started: now,
            expires: now + config.duration,
            released: false,
        };
        lease::acquire(self.lock.clone(), &self.org, record, config).await
    }
}

/// A label for the lease holder: host and process id.
pub fn holder_label() -> String {
    format!("{} pid {}", lease::host_name(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn state() -> (Lake, OrgState) {
        let lake = Lake::open("memory://").unwrap();
        let s = OrgState::new(&lake, "org-1");
        (lake, s)
    }

    const LEASE: LeaseConfig = LeaseConfig {
        duration: std::time::Duration::from_secs(600),
    };

    #[test]
    fn watermark_moves_only_over_windows_that_continue_it() {
        let now = t("2026-07-01T12:00:00Z");
        let jan = Some(t("2026-01-10T00:00:00Z"));
        // The next day after the watermark, or one overlapping it (look-back): moves.
        let next = next_watermark(
            jan,
            t("2026-01-10T00:00:00Z"),
            t("2026-01-11T00:00:00Z"),
            now,
        );
        assert_eq!(next, Some(t("2026-01-11T00:00:00Z")));
        let overlap = next_watermark(
            jan,
            t("2026-01-09T00:00:00Z"),
            t("2026-01-11T00:00:00Z"),
            now,
        );
        assert_eq!(overlap, Some(t("2026-01-11T00:00:00Z")));
        // A backfill of June with the watermark in January: the gap stays unclaimed.
        let june = next_watermark(
            jan,
            t("2026-06-01T00:00:00Z"),
            t("2026-06-02T00:00:00Z"),
            now,
        );
        assert_eq!(june, None);
        // An old range never moves it back.
        let old = next_watermark(
            jan,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-02T00:00:00Z"),
            now,
        );
        assert_eq!(old, None);
    }

    #[test]
    fn watermark_never_passes_the_run_start() {
        let now = t("2026-01-10T12:00:00Z");
        let mark = Some(t("2026-01-10T00:00:00Z"));
        let future_to = next_watermark(
            mark,
            t("2026-01-10T00:00:00Z"),
            t("2026-01-11T00:00:00Z"),
            now,
        );
        assert_eq!(future_to, Some(now));
        // A window wholly in the future adds nothing.
        assert_eq!(
            next_watermark(
                Some(now),
                t("2026-01-11T00:00:00Z"),
                t("2026-01-12T00:00:00Z"),
                now
            ),
            None
        );
        // A first run sets it from its first window, capped too.
        assert_eq!(
            next_watermark(
                None,
                t("2026-01-09T00:00:00Z"),
                t("2026-01-11T00:00:00Z"),
                now
            ),
            Some(now)
        );
    }

    #[tokio::test]
    async fn advance_follows_the_continuity_rule_and_needs_the_lease() {
        let (_lake, s) = state();
        let guard = s.lock("me", "run-1", LEASE).await.unwrap();
        let fence = guard.fence();
        let now = t("2026-07-01T00:00:00Z");
        assert!(s.watermark().await.unwrap().is_none());
        s.advance(
            &fence,
            t("2026-01-05T00:00:00Z"),
            t("2026-01-06T00:00:00Z"),
            now,
        )
        .await
        .unwrap();
        s.advance(
            &fence,
            t("2026-03-01T00:00:00Z"),
            t("2026-03-02T00:00:00Z"),
            now,
        )
        .await
        .unwrap();
        s.advance(
            &fence,
            t("2026-01-04T00:00:00Z"),
            t("2026-01-05T00:00:00Z"),
            now,
        )
        .await
        .unwrap();
        let mark = s.watermark().await.unwrap().unwrap().synced_until;
        assert_eq!(mark, t("2026-01-06T00:00:00Z"));
        guard.release().await.unwrap();
        let err = s
            .advance(
                &fence,
                t("2026-01-06T00:00:00Z"),
                t("2026-01-07T00:00:00Z"),
                now,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::LeaseLost { .. }), "{err}");
        assert_eq!(s.watermark().await.unwrap().unwrap().synced_until, mark);
    }

    #[tokio::test]
    async fn second_lock_is_refused_until_released() {
        let (_lake, s) = state();
        let guard = s.lock("first", "run-1", LEASE).await.unwrap();
        let err = s
            .lock("second", "run-2", LEASE)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("first") && err.contains("lock.json"), "{err}");
        guard.release().await.unwrap();
        assert!(s.lease().await.unwrap().unwrap().released);
        s.lock("third", "run-3", LEASE).await.unwrap();
    }

    async fn put_lease(s: &OrgState, lease: &LeaseRecord) {
        let LockCell::Store { store, path } = &s.lock else {
            unreachable!("memory store")
        };
        store
            .put(path, serde_json::to_vec(lease).unwrap().into())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn expired_lock_is_taken_over() {
        let (_lake, s) = state();
        let stale = LeaseRecord {
            holder: "dead".into(),
            run_id: "old".into(),
            host: "elsewhere".into(),
            pid: 1,
            pid_scope: String::new(),
            started: Utc::now() - Duration::hours(3),
            expires: Utc::now() - Duration::hours(2),
            released: false,
        };
        put_lease(&s, &stale).await;
        s.lock("alive", "run-1", LEASE).await.unwrap();
    }

    #[tokio::test]
    async fn lock_of_a_killed_process_on_this_host_is_taken_over() {
        let (_lake, s) = state();
        let killed = LeaseRecord {
            holder: "killed".into(),
            run_id: "old".into(),
            host: lease::host_name(),
            pid: u32::MAX - 1, // no such process
            pid_scope: lease::pid_scope(),
            started: Utc::now(),
            expires: Utc::now() + Duration::minutes(30),
            released: false,
        };
        put_lease(&s, &killed).await;
        s.lock("next", "run-1", LEASE).await.unwrap();
    }

    /// A pod sharing this host name (`hostNetwork`) has its own PID namespace: its pid is not
    /// looked for here, and its lease holds until released or expired.
    #[tokio::test]
    async fn lock_of_a_process_in_another_pid_namespace_is_not_judged_by_its_pid() {
        let (_lake, s) = state();
        for scope in ["another-boot pid:[4026531836]", ""] {
            let elsewhere = LeaseRecord {
                holder: "alive elsewhere".into(),
                run_id: "old".into(),
                host: lease::host_name(),
                pid: u32::MAX - 1, // no such process here
                pid_scope: scope.into(),
                started: Utc::now(),
                expires: Utc::now() + Duration::minutes(30),
                released: false,
            };
            put_lease(&s, &elsewhere).await;
            assert!(
                matches!(
                    s.lock("next", "run-1", LEASE).await,
                    Err(StateError::Locked { .. })
                ),
                "{scope:?}"
            );
        }
    }

    #[tokio::test]
    async fn local_lake_keeps_its_lease_beside_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let s = OrgState::new(&lake, "org-1");
        let guard = s.lock("me", "run-1", LEASE).await.unwrap();
        assert!(dir.path().join("_state/org_id=org-1/lock.json").is_file());
        assert!(s.lock("other", "run-2", LEASE).await.is_err());
        guard.release().await.unwrap();
        s.record_run(Utc::now(), "run-1", &serde_json::json!({"status": "ok"}))
            .await
            .unwrap();
        let runs = s.runs(5).await.unwrap();
        assert_eq!(runs, [serde_json::json!({"status": "ok"})]);
    }
}
