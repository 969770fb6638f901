//! The ledger: what a run still owes, kept in the state store so the next run finishes it.
//!
//! The look-back only re-lists tasks (cheap: a page holds up to 1000). What must be asked again
//! of the captures API is remembered here, per task, with a reason and a due time:
//!
//! - `no_recording_yet`: a voice task whose `captureRequested` is not `false` had no recording
//!   when asked (still open, or its capture not processed yet). Re-asked on a backoff schedule
//!   until a recording appears or the give-up age passes, whatever the look-back.
//! - `captures_failed`: its captures query failed for good (after retries and after the batch
//!   was split down to this task), with the status and reason.
//! - `download_failed`: a recording of it, or a derivative of one, could not be stored.
//!
//! Listing ranges that could not be read (`gaps`) are kept too, and listed again by later runs.
//! `settled_until` is the settle check's mark: every voice task created before it was asked
//! about once more at least `settle_after` after its creation (a second leg, e.g. a consult
//! recording, can appear hours after the first without any change to the task).
//!
//! Layout: `_state/org_id=<org>/ledger.json` (gaps, settle mark) and one
//! `_state/org_id=<org>/ledger/date=<YYYY-MM-DD>.json` per creation day of the tasks in it, so a
//! commit rewrites only the days it touched. Every file is replaced with one atomic put.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::state::StateError;
use crate::lake::Lake;

type Result<T, E = StateError> = std::result::Result<T, E>;

/// Why a task is in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    NoRecordingYet,
    CapturesFailed,
    DownloadFailed,
}

/// Waits after each attempt for a recording that has not appeared yet (REFERENCE.md §4: most
/// captures appear minutes after the call, some hours later).
const PENDING_BACKOFF_MIN: [i64; 6] = [5, 30, 120, 720, 1440, 4320];
/// Waits after each failed attempt: the first retry is due at the next run.
const FAILED_BACKOFF_MIN: [i64; 6] = [0, 5, 30, 120, 720, 1440];

/// One task the ledger remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub why: Why,
    /// The task's `createdTime` (epoch ms): which partition its rows belong to.
    pub created_ms: i64,
    pub first_seen: DateTime<Utc>,
    pub attempts: u32,
    pub next_due: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A listing range `[from_ms, to_ms)` that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub reason: String,
    pub first_seen: DateTime<Utc>,
    pub attempts: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    gaps: Vec<Gap>,
    #[serde(default)]
    settled_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Day {
    #[serde(default)]
    tasks: BTreeMap<String, Entry>,
}

/// Counts for the run summary and `wxcc state show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerCounts {
    pub no_recording_yet: u64,
    pub captures_failed: u64,
    pub download_failed: u64,
    pub gaps: u64,
}

/// The ledger of one org, loaded once per run and saved at every commit.
pub struct Ledger {
    store: Arc<dyn ObjectStore>,
    dir: String,
    meta: Meta,
    days: BTreeMap<NaiveDate, Day>,
    dirty_days: std::collections::BTreeSet<NaiveDate>,
    meta_dirty: bool,
    /// How long a task may wait for its first recording before it is given up.
    pub give_up_after: Duration,
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

impl Ledger {
    /// Reads the ledger of `org` (an empty one when none was written yet).
    pub async fn load(lake: &Lake, org: &str, give_up_after: Duration) -> Result<Ledger> {
        let store = lake.store().clone();
        let dir = lake.path(&format!("_state/org_id={org}")).to_string();
        let mut ledger = Ledger {
            store,
            dir,
            meta: Meta::default(),
            days: BTreeMap::new(),
            dirty_days: Default::default(),
            meta_dirty: false,
            give_up_after,
        };
        if let Some(meta) = ledger.read_json(&ledger.meta_path()).await? {
            ledger.meta = meta;
        }
        let prefix = Path::from(format!("{}/ledger", ledger.dir));
        let listed: Vec<_> = ledger.store.list(Some(&prefix)).try_collect().await?;
        for obj in listed {
            let name = obj.location.filename().unwrap_or_default();
            let Some(date) = name
                .strip_prefix("date=")
                .and_then(|d| d.strip_suffix(".json"))
                .and_then(|d| d.parse::<NaiveDate>().ok())
            else {
                continue;
            };
            if let Some(day) = ledger.read_json::<Day>(&obj.location).await? {
                ledger.days.insert(date, day);
            }
        }
        Ok(ledger)
    }

    fn meta_path(&self) -> Path {
        Path::from(format!("{}/ledger.json", self.dir))
    }

    fn day_path(&self, date: NaiveDate) -> Path {
        Path::from(format!("{}/ledger/date={date}.json", self.dir))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        match self.store.get(path).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| corrupt(path, e))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes what changed since the last save: the touched days, then the gaps and settle mark.
    pub async fn save(&mut self) -> Result<()> {
        for date in std::mem::take(&mut self.dirty_days) {
            let path = self.day_path(date);
            match self.days.get(&date).filter(|d| !d.tasks.is_empty()) {
                Some(day) => {
                    let body = serde_json::to_vec(day).expect("ledger serializes");
                    self.store.put(&path, PutPayload::from(body)).await?;
                }
                None => match self.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                },
            }
        }
        if std::mem::take(&mut self.meta_dirty) {
            let body = serde_json::to_vec_pretty(&self.meta).expect("ledger serializes");
            self.store
                .put(&self.meta_path(), PutPayload::from(body))
                .await?;
        }
        Ok(())
    }

    fn day_of(created_ms: i64) -> NaiveDate {
        DateTime::from_timestamp_millis(created_ms)
            .unwrap_or_default()
            .date_naive()
    }

    pub fn get(&self, task_id: &str, created_ms: i64) -> Option<&Entry> {
        self.days.get(&Self::day_of(created_ms))?.tasks.get(task_id)
    }

    /// Tasks due at `now`, by creation day.
    pub fn due(&self, now: DateTime<Utc>) -> BTreeMap<NaiveDate, Vec<(String, Entry)>> {
        self.days
            .iter()
            .map(|(date, day)| {
                let due: Vec<(String, Entry)> = day
                    .tasks
                    .iter()
                    .filter(|(_, e)| e.next_due <= now)
                    .map(|(id, e)| (id.clone(), e.clone()))
                    .collect();
                (*date, due)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// A task was asked about and is complete: nothing more is owed for it.
    pub fn resolve(&mut self, task_id: &str, created_ms: i64) {
        let date = Self::day_of(created_ms);
        if let Some(day) = self.days.get_mut(&date)
            && day.tasks.remove(task_id).is_some()
        {
            self.dirty_days.insert(date);
        }
    }

    /// Records an unfinished task (or one more failed attempt of one) and schedules its next
    /// attempt. Returns `false` when a task waiting for its first recording is given up.
    pub fn record(
        &mut self,
        task_id: &str,
        created_ms: i64,
        why: Why,
        failure: Option<(Option<u16>, String)>,
        now: DateTime<Utc>,
    ) -> bool {
        let date = Self::day_of(created_ms);
        let day = self.days.entry(date).or_default();
        let previous = day.tasks.get(task_id);
        let first_seen = previous.map_or(now, |e| e.first_seen);
        let attempts = previous.map_or(0, |e| e.attempts) + 1;
        if why == Why::NoRecordingYet && now - first_seen >= self.give_up_after {
            day.tasks.remove(task_id);
            self.dirty_days.insert(date);
            return false;
        }
        let schedule: &[i64] = match why {
            Why::NoRecordingYet => &PENDING_BACKOFF_MIN,
            _ => &FAILED_BACKOFF_MIN,
        };
        let wait = schedule[(attempts as usize - 1).min(schedule.len() - 1)];
        let (status, reason) = failure.map_or((None, None), |(s, r)| (s, Some(r)));
        day.tasks.insert(
            task_id.to_owned(),
            Entry {
                why,
                created_ms,
                first_seen,
                attempts,
                next_due: now + Duration::minutes(wait),
                status,
                reason,
            },
        );
        self.dirty_days.insert(date);
        true
    }

    pub fn gaps(&self) -> &[Gap] {
        &self.meta.gaps
    }

    /// Replaces the gaps inside `[from_ms, to_ms)` with what a listing of that range left.
    pub fn set_gaps(&mut self, from_ms: i64, to_ms: i64, mut found: Vec<Gap>, now: DateTime<Utc>) {
        let before = self.meta.gaps.clone();
        for gap in &mut found {
            if let Some(old) = before
                .iter()
                .find(|g| g.from_ms < gap.to_ms && gap.from_ms < g.to_ms)
            {
                gap.first_seen = old.first_seen;
                gap.attempts = old.attempts + 1;
            } else {
                gap.first_seen = now;
            }
        }
        // Parts of earlier gaps outside the range relisted stay owed.
        let mut kept = Vec::new();
        for g in std::mem::take(&mut self.meta.gaps) {
            if g.to_ms <= from_ms || g.from_ms >= to_ms {
                kept.push(g);
                continue;
            }
            if g.from_ms < from_ms {
                kept.push(Gap {
                    to_ms: from_ms,
                    ..g.clone()
                });
            }
            if g.to_ms > to_ms {
                kept.push(Gap {
                    from_ms: to_ms,
                    ..g
                });
            }
        }
        self.meta.gaps = kept;
        self.meta.gaps.extend(found);
        self.meta.gaps.sort_by_key(|g| g.from_ms);
        if self.meta.gaps != before {
            self.meta_dirty = true;
        }
    }

    /// Adds gaps a listing just found, keeping every gap already owed: used before the tasks
    /// of a relisted range are committed, so a crash in between loses no gap.
    pub fn add_gaps(&mut self, found: &[Gap]) {
        for gap in found {
            if !self.meta.gaps.contains(gap) {
                self.meta.gaps.push(gap.clone());
                self.meta_dirty = true;
            }
        }
        self.meta.gaps.sort_by_key(|g| g.from_ms);
    }

    pub fn settled_until(&self) -> Option<DateTime<Utc>> {
        self.meta.settled_until
    }

    pub fn set_settled_until(&mut self, at: DateTime<Utc>) {
        if self.meta.settled_until != Some(at) {
            self.meta.settled_until = Some(at);
            self.meta_dirty = true;
        }
    }

    pub fn counts(&self) -> LedgerCounts {
        let mut c = LedgerCounts {
            gaps: self.meta.gaps.len() as u64,
            ..Default::default()
        };
        for e in self.days.values().flat_map(|d| d.tasks.values()) {
            match e.why {
                Why::NoRecordingYet => c.no_recording_yet += 1,
                Why::CapturesFailed => c.captures_failed += 1,
                Why::DownloadFailed => c.download_failed += 1,
            }
        }
        c
    }

    /// Entries that are failures (not just waiting), for the run summary: task id, status,
    /// reason.
    pub fn failures(&self) -> Vec<(String, Entry)> {
        self.days
            .values()
            .flat_map(|d| d.tasks.iter())
            .filter(|(_, e)| e.why != Why::NoRecordingYet)
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const CREATED: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z

    #[tokio::test]
    async fn entries_survive_a_reload_and_only_touched_days_are_written() {
        let lake = Lake::open("memory://").unwrap();
        let mut l = Ledger::load(&lake, "org-1", Duration::days(7))
            .await
            .unwrap();
        let now = t("2026-01-05T09:00:00Z");
        l.record("t1", CREATED, Why::NoRecordingYet, None, now);
        l.record(
            "t2",
            CREATED + 86_400_000,
            Why::CapturesFailed,
            Some((Some(422), "bad task".into())),
            now,
        );
        l.save().await.unwrap();
        let again = Ledger::load(&lake, "org-1", Duration::days(7))
            .await
            .unwrap();
        assert_eq!(again.get("t1", CREATED), l.get("t1", CREATED));
        let failed = again.failures();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1.status, Some(422));
        assert_eq!(
            again.counts(),
            LedgerCounts {
                no_recording_yet: 1,
                captures_failed: 1,
                download_failed: 0,
                gaps: 0
            }
        );
        let mut l = again;
        l.resolve("t1", CREATED);
        l.save().await.unwrap();
        let files: Vec<_> = lake.store().list(None).try_collect().await.unwrap();
        assert_eq!(
            files.len(),
            1,
            "the emptied day's file is removed: {files:?}"
        );
    }

    #[tokio::test]
    async fn waiting_tasks_back_off_and_are_given_up() {
        let lake = Lake::open("memory://").unwrap();
        let mut l = Ledger::load(&lake, "org-1", Duration::days(7))
            .await
            .unwrap();
        let now = t("2026-01-05T09:00:00Z");
        assert!(l.record("t1", CREATED, Why::NoRecordingYet, None, now));
        assert!(l.due(now).is_empty());
        assert_eq!(l.due(now + Duration::minutes(5)).len(), 1);
        let later = now + Duration::minutes(5);
        l.record("t1", CREATED, Why::NoRecordingYet, None, later);
        assert!(l.due(later + Duration::minutes(29)).is_empty());
        assert_eq!(l.get("t1", CREATED).unwrap().attempts, 2);
        assert!(!l.record(
            "t1",
            CREATED,
            Why::NoRecordingYet,
            None,
            now + Duration::days(8)
        ));
        assert!(l.get("t1", CREATED).is_none());
        // A failure is retried at the next run.
        l.record("t2", CREATED, Why::DownloadFailed, None, now);
        assert_eq!(l.due(now).len(), 1);
    }

    #[tokio::test]
    async fn gaps_are_replaced_by_what_a_relisting_found() {
        let lake = Lake::open("memory://").unwrap();
        let mut l = Ledger::load(&lake, "org-1", Duration::days(7))
            .await
            .unwrap();
        let now = t("2026-01-05T09:00:00Z");
        let gap = |from_ms, to_ms| Gap {
            from_ms,
            to_ms,
            status: Some(500),
            reason: "HTTP 500".into(),
            first_seen: now,
            attempts: 1,
        };
        l.set_gaps(0, 1000, vec![gap(100, 200)], now);
        l.set_gaps(2000, 3000, vec![gap(2100, 2200)], now);
        assert_eq!(l.gaps().len(), 2);
        l.set_gaps(0, 1000, vec![gap(100, 150)], now);
        assert_eq!(l.gaps()[0].attempts, 2);
        l.set_gaps(0, 1000, vec![], now);
        assert_eq!(l.gaps().len(), 1);
        // A relisting that covers only part of a gap leaves the rest owed.
        l.set_gaps(2150, 3000, vec![], now);
        assert_eq!((l.gaps()[0].from_ms, l.gaps()[0].to_ms), (2100, 2150));
        l.save().await.unwrap();
        let again = Ledger::load(&lake, "org-1", Duration::days(7))
            .await
            .unwrap();
        assert_eq!(again.gaps(), l.gaps());
    }
}
