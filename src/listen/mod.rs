//! `wxcc listen`: the receiving half. An HTTP endpoint takes `capture:available` webhooks
//! (REFERENCE.md §6.3), checks their signature against the configured secrets, and records
//! each new event in a durable local [`queue`] before answering 2xx. The workers that download
//! and commit are in `sync::listen` (they share `sync`'s audio path, tables and lease).
//!
//! Webhooks are a hint (lossy, duplicated, out of order: REFERENCE.md §7 item 11); the
//! scheduled `wxcc sync` stays the source of truth and finds whatever no webhook delivered.

pub mod queue;
pub mod server;
pub mod signature;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// What the workers report, shown by `/healthz` beside the queue's own numbers.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Recordings whose rows were committed.
    pub committed: AtomicU64,
    /// Recordings found already stored (by `sync` or an earlier delivery).
    pub present: AtomicU64,
    /// Events given up (download failed; left to `sync`).
    pub failed: AtomicU64,
    /// Captures queries made (events without a usable URL or recording id).
    pub captures_queries: AtomicU64,
    /// Commits made.
    pub commits: AtomicU64,
    /// Accepted-to-committed time of the last committed event, ms.
    pub last_lag_ms: AtomicI64,
}

/// A snapshot of [`WorkerCounters`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WorkerStats {
    pub committed: u64,
    pub present: u64,
    pub failed: u64,
    pub captures_queries: u64,
    pub commits: u64,
    pub last_lag_ms: i64,
}

impl WorkerCounters {
    pub fn snapshot(&self) -> WorkerStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStats {
            committed: g(&self.committed),
            present: g(&self.present),
            failed: g(&self.failed),
            captures_queries: g(&self.captures_queries),
            commits: g(&self.commits),
            last_lag_ms: self.last_lag_ms.load(Ordering::Relaxed),
        }
    }
}
