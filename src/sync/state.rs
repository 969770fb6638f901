//! Per-org sync state kept in the output store itself (`_state/org_id=<org>/`), so a run
//! needs nothing but the store to continue where the last one stopped:
//!
//! - `watermark.json`: everything created before `synced_until` is durable in the tables. It is
//!   written after each window's partitions, with one atomic put, so a crash at any moment
//!   leaves either the old or the new value.
//! - `lock.json`: a lease that keeps two runs (two cron jobs, an overlapping backfill) off the
//!   same org and output. Created with a conditional put (`PutMode::Create`), which local disk
//!   and S3 both honour; a lease past its expiry is taken over, so a killed run never wedges
//!   the schedule.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::lake::Lake;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "another sync holds the lock for org {org} ({holder}, started {started}, lease until {expires}); \
         wait for it, or delete {path} if that run is gone"
    )]
    Locked {
        org: String,
        holder: String,
        started: DateTime<Utc>,
        expires: DateTime<Utc>,
        path: String,
    },
    #[error("sync state at {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("cannot access sync state: {0}")]
    Store(#[from] object_store::Error),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// How long a lock lasts without renewal; renewed at every window.
pub const LEASE: Duration = Duration::minutes(30);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Watermark {
    /// All tasks created before this instant are in the tables.
    pub synced_until: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    holder: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    pid: u32,
    started: DateTime<Utc>,
    expires: DateTime<Utc>,
}

impl Lease {
    /// A lease is dead when it expired, or when it was taken on this host by a process that no
    /// longer exists (a run killed with SIGKILL must not block the next cron run for the whole
    /// lease).
    fn is_dead(&self, now: DateTime<Utc>) -> bool {
        self.expires <= now || (self.host == host_name() && !process_alive(self.pid))
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid == std::process::id() {
        return pid != 0;
    }
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // no cheap check elsewhere: rely on the lease expiry
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// State of one org in one output store.
pub struct OrgState {
    store: Arc<dyn ObjectStore>,
    org: String,
    dir: String,
    watermark: Path,
    lock: Path,
}

impl OrgState {
    /// `org` must already be validated as a plain id (it becomes part of a path).
    pub fn new(lake: &Lake, org: &str) -> OrgState {
        OrgState {
            store: lake.store().clone(),
            org: org.to_owned(),
            dir: lake.path(&format!("_state/org_id={org}")).to_string(),
            watermark: lake.path(&format!("_state/org_id={org}/watermark.json")),
            lock: lake.path(&format!("_state/org_id={org}/lock.json")),
        }
    }

    pub async fn watermark(&self) -> Result<Option<Watermark>> {
        match self.store.get(&self.watermark).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path: self.watermark.to_string(),
                        reason: e.to_string(),
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps a run's summary beside the state (`runs/<start>.json`), so the history of a
    /// scheduled job can be read from the store itself.
    pub async fn record_run<T: Serialize>(
        &self,
        started: DateTime<Utc>,
        summary: &T,
    ) -> Result<()> {
        let path = Path::from(format!(
            "{}/runs/{}.json",
            self.dir,
            started.format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let body = serde_json::to_vec_pretty(summary).expect("summary serializes");
        self.store.put(&path, PutPayload::from(body)).await?;
        Ok(())
    }

    /// Moves the watermark forward (never back: a backfill of an old range must not make the
    /// next scheduled run re-read years).
    pub async fn advance(&self, synced_until: DateTime<Utc>) -> Result<()> {
        if let Some(current) = self.watermark().await?
            && current.synced_until >= synced_until
        {
            return Ok(());
        }
        let mark = Watermark {
            synced_until,
            updated_at: Utc::now(),
        };
        let body = serde_json::to_vec_pretty(&mark).expect("watermark serializes");
        self.store
            .put(&self.watermark, PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Takes the lease, or fails with who holds it. An expired lease is taken over.
    pub async fn lock(&self, holder: &str) -> Result<LockGuard<'_>> {
        let now = Utc::now();
        let lease = Lease {
            holder: holder.to_owned(),
            host: host_name(),
            pid: std::process::id(),
            started: now,
            expires: now + LEASE,
        };
        for _ in 0..2 {
            let body = serde_json::to_vec(&lease).expect("lease serializes");
            let create = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(&self.lock, body.into(), create).await {
                Ok(_) => return Ok(LockGuard { state: self, lease }),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let existing = self.read_lease().await?;
                    match existing {
                        Some(other) if !other.is_dead(Utc::now()) => {
                            return Err(StateError::Locked {
                                org: self.org.clone(),
                                holder: other.holder,
                                started: other.started,
                                expires: other.expires,
                                path: self.lock.to_string(),
                            });
                        }
                        _ => {
                            tracing::warn!(path = %self.lock, "taking over the lock of a run that is gone");
                            self.store.delete(&self.lock).await.ok();
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StateError::Corrupt {
            path: self.lock.to_string(),
            reason: "lock keeps reappearing; another run is starting at the same time".into(),
        })
    }

    async fn read_lease(&self) -> Result<Option<Lease>> {
        match self.store.get(&self.lock).await {
            Ok(got) => Ok(serde_json::from_slice(&got.bytes().await?).ok()),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Holds the lease; [`LockGuard::renew`] extends it, [`LockGuard::release`] deletes it. A run
/// that dies without releasing leaves a lease that expires by itself.
pub struct LockGuard<'a> {
    state: &'a OrgState,
    lease: Lease,
}

impl LockGuard<'_> {
    pub async fn renew(&mut self) -> Result<()> {
        self.lease.expires = Utc::now() + LEASE;
        let body = serde_json::to_vec(&self.lease).expect("lease serializes");
        self.state.store.put(&self.state.lock, body.into()).await?;
        Ok(())
    }

    pub async fn release(self) -> Result<()> {
        self.state.store.delete(&self.state.lock).await?;
        Ok(())
    }
}

/// A label for the lock holder: host and process id.
pub fn holder_label() -> String {
    format!("{} pid {}", host_name(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (Lake, OrgState) {
        let lake = Lake::open("memory://").unwrap();
        let s = OrgState::new(&lake, "org-1");
        (lake, s)
    }

    #[tokio::test]
    async fn watermark_only_moves_forward() {
        let (_lake, s) = state();
        assert!(s.watermark().await.unwrap().is_none());
        let t1 = "2026-01-06T00:00:00Z".parse().unwrap();
        let t0 = "2026-01-05T00:00:00Z".parse().unwrap();
        s.advance(t1).await.unwrap();
        s.advance(t0).await.unwrap();
        assert_eq!(s.watermark().await.unwrap().unwrap().synced_until, t1);
    }

    #[tokio::test]
    async fn second_lock_is_refused_until_released() {
        let (_lake, s) = state();
        let guard = s.lock("first").await.unwrap();
        let err = s.lock("second").await.err().unwrap().to_string();
        assert!(err.contains("first") && err.contains("lock.json"), "{err}");
        guard.release().await.unwrap();
        s.lock("third").await.unwrap();
    }

    #[tokio::test]
    async fn expired_lock_is_taken_over() {
        let (_lake, s) = state();
        let stale = Lease {
            holder: "dead".into(),
            host: "elsewhere".into(),
            pid: 1,
            started: Utc::now() - Duration::hours(3),
            expires: Utc::now() - Duration::hours(2),
        };
        s.store
            .put(&s.lock, serde_json::to_vec(&stale).unwrap().into())
            .await
            .unwrap();
        s.lock("alive").await.unwrap();
    }

    #[tokio::test]
    async fn lock_of_a_killed_process_on_this_host_is_taken_over() {
        let (_lake, s) = state();
        let killed = Lease {
            holder: "killed".into(),
            host: host_name(),
            pid: u32::MAX - 1, // no such process
            started: Utc::now(),
            expires: Utc::now() + LEASE,
        };
        s.store
            .put(&s.lock, serde_json::to_vec(&killed).unwrap().into())
            .await
            .unwrap();
        s.lock("next").await.unwrap();
    }
}
