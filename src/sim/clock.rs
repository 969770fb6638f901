//! The world as of a simulated instant (REFERENCE.md §3.4, §4).
//!
//! [`World`] holds every task in its final state and every capture that will ever exist; a
//! [`TaskTimeline`] per task and an `available_ms` per recording say when each of them changed
//! or appeared. `GET /v1/tasks` and `POST /v1/captures/query` answer as of the simulator's clock,
//! a pure function of the world and that instant, so a test can move the clock between two sync
//! runs and know exactly what changed:
//!
//! - a task is invisible before its `createdTime`;
//! - while the interaction is in progress it is `created` (IVR / virtual agent), `queued`,
//!   `offered` or `assigned`, with `captureRequested: null` and `lastUpdatedTime` = the latest
//!   state change so far; `owner` is absent while `created`/`queued`;
//! - when the call ends `captureRequested` becomes known; after wrap-up (`closed_ms`) the task
//!   shows its final status and `lastUpdatedTime`; a few are updated again hours later;
//! - tasks still open when the simulated period ends stay open for ever;
//! - a recording is listed from `available_ms`: the end of its call plus 1–10 minutes, or for
//!   about 3% (`late_capture_per_mille`) 2–6 hours (`late_capture_hours`) later, without any
//!   change to its task. A recording can appear while its task is still in wrap-up
//!   (`assigned`), as the reference allows for open voice tasks;
//! - with `recordings_while_open`, a recording is listed from a second after its leg starts
//!   instead: until the leg ends its `stopTime` is the simulated now and its URL serves the
//!   audio so far (a prefix of the final file); afterwards it is final. Without that knob,
//!   recordings of calls in progress are never listed;
//! - a transcript is listed from its `createTime`.

use chrono::{DateTime, Utc};

use super::wav::mix64;
use super::world::{SimRecording, SimRef, SimTask, SimTranscription, World};

pub(super) const MINUTE_MS: i64 = 60_000;
pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const DAY_MS: i64 = 86_400_000;
/// Label of the hash stream recording availability delays are drawn from (not the generator's
/// random stream, so adding the clock left every generated value unchanged).
const AVAILABILITY_STREAM: u64 = 0x4156_4149_4c41_4200;
/// With `recordings_while_open`, how long after its leg starts a recording is first listed.
pub(super) const OPEN_LISTING_DELAY_MS: i64 = 1_000;

/// When a task changed state. The attributes of [`SimTask`] itself are its final ones.
///
/// Invariant for tasks that close: `created_ms <= queued_ms <= offered_ms <= assigned_ms <=
/// ended_ms <= closed_ms <= last_updated_ms` (absent steps skipped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskTimeline {
    /// Entered a queue; before that the task is `created` (IVR, virtual agent). `None`: never
    /// queued (self-service in the IVR).
    pub queued_ms: Option<i64>,
    /// Offered to an agent (ringing).
    pub offered_ms: Option<i64>,
    /// Connected to its agent.
    pub assigned_ms: Option<i64>,
    /// The interaction ended (hang-up, chat closed, caller gave up): from here
    /// `captureRequested` is known. Equal to `closed_ms` when there is no wrap-up.
    pub ended_ms: Option<i64>,
    /// Wrap-up done: the task shows its final status, owner and `lastUpdatedTime` (this instant,
    /// or `last_updated_ms` once that later update has happened). `None`: the task is still open
    /// when the simulated period ends and stays open.
    pub closed_ms: Option<i64>,
}

/// The attributes of a task that depend on time, as `GET /v1/tasks` reports them at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskState<'a> {
    /// `created|queued|offered|assigned|abandoned|completed`.
    pub status: &'a str,
    pub owner: Option<&'a SimRef>,
    pub capture_requested: Option<bool>,
    /// The latest state change at or before the instant asked about.
    pub last_updated_ms: i64,
}

impl SimTask {
    /// The task as the API reports it at `now`; `None` before it was created.
    pub fn state_at(&self, now: DateTime<Utc>) -> Option<TaskState<'_>> {
        self.state_at_ms(now.timestamp_millis())
    }

    /// A copy of the task with the attributes it has at `now`; `None` before it was created.
    pub fn as_of(&self, now: DateTime<Utc>) -> Option<SimTask> {
        let s = self.state_at(now)?;
        Some(SimTask {
            status: s.status.to_string(),
            owner: s.owner.cloned(),
            capture_requested: s.capture_requested,
            last_updated_ms: s.last_updated_ms,
            ..self.clone()
        })
    }

    /// The final attributes (what [`World::tasks`] shows).
    pub(super) fn final_state(&self) -> TaskState<'_> {
        TaskState {
            status: &self.status,
            owner: self.owner.as_ref(),
            capture_requested: self.capture_requested,
            last_updated_ms: self.last_updated_ms,
        }
    }

    pub(super) fn state_at_ms(&self, now: i64) -> Option<TaskState<'_>> {
        if now < self.created_ms {
            return None;
        }
        let t = &self.timeline;
        let fin = self.final_state();
        let in_progress = |status, owner, at| TaskState {
            status,
            owner,
            capture_requested: None,
            last_updated_ms: at,
        };
        let Some(closed) = t.closed_ms else {
            // Open when the period ends: reaches its (open) final state and stays there.
            return Some(if now >= self.last_updated_ms {
                fin
            } else {
                in_progress("created", None, self.created_ms)
            });
        };
        if now >= closed {
            let last_updated_ms = if now >= self.last_updated_ms {
                self.last_updated_ms
            } else {
                closed
            };
            return Some(TaskState {
                last_updated_ms,
                ..fin
            });
        }
        if let Some(ended) = t.ended_ms.filter(|&e| e <= now) {
            // Wrap-up: the agent still holds the task, the recording decision is known.
            return Some(TaskState {
                status: "assigned",
                owner: fin.owner,
                capture_requested: fin.capture_requested,
                last_updated_ms: ended,
            });
        }
        let reached = |at: Option<i64>| at.filter(|&at| at <= now);
        Some(if let Some(at) = reached(t.assigned_ms) {
            in_progress("assigned", fin.owner, at)
        } else if let Some(at) = reached(t.offered_ms) {
            in_progress("offered", fin.owner, at)
        } else if let Some(at) = reached(t.queued_ms) {
            in_progress("queued", None, at)
        } else {
            in_progress("created", None, self.created_ms)
        })
    }
}

impl SimRecording {
    /// Whether `POST /v1/captures/query` lists this recording at `now`.
    pub fn is_available_at(&self, now: DateTime<Utc>) -> bool {
        self.available_ms <= now.timestamp_millis()
    }

    /// The `stopTime` listed at `now_ms`: the final one, or `now_ms` while the leg is still
    /// being recorded (listed only with `recordings_while_open`).
    pub fn stop_ms_at(&self, now_ms: i64) -> i64 {
        self.stop_ms.min(now_ms).max(self.start_ms)
    }

    /// The recording as the captures API lists it at `now` (`None` before it is listed):
    /// while its leg is in progress it stops at `now`, and [`World::audio_plan`],
    /// [`World::wav_len`] and [`World::wav_sha256`] of the copy describe the audio served then.
    pub fn as_of(&self, now: DateTime<Utc>) -> Option<SimRecording> {
        self.is_available_at(now).then(|| SimRecording {
            stop_ms: self.stop_ms_at(now.timestamp_millis()),
            ..self.clone()
        })
    }
}

/// How long after its call a recording becomes available: 1–10 minutes, or `late_hours` hours
/// for about `late_per_mille` ‰ of them. Derived from the recording's audio seed, so
/// deterministic per seed.
pub(super) fn availability_delay_ms(
    audio_seed: u64,
    late_per_mille: u64,
    late_hours: (u32, u32),
) -> i64 {
    let h = mix64(audio_seed ^ AVAILABILITY_STREAM);
    let spread = (h >> 20) as i64;
    if h % 1000 < late_per_mille {
        let (lo, hi) = (i64::from(late_hours.0), i64::from(late_hours.1));
        let width = (hi - lo) * HOUR_MS;
        lo * HOUR_MS + if width > 0 { spread % width } else { 0 }
    } else {
        MINUTE_MS + spread % (9 * MINUTE_MS)
    }
}

/// The default simulated now: a day after the simulated period ends, or later if something in
/// the world still changes then (long emails, late updates, late captures), so that at this
/// instant every task and capture is final.
pub(super) fn settled_ms(
    period_end_ms: i64,
    tasks: &[SimTask],
    recordings: &[SimRecording],
    transcriptions: &[SimTranscription],
) -> i64 {
    let latest = tasks
        .iter()
        .map(|t| t.last_updated_ms)
        .chain(recordings.iter().map(|r| r.available_ms))
        .chain(transcriptions.iter().map(|t| t.create_ms))
        .max()
        .unwrap_or(i64::MIN);
    (period_end_ms + DAY_MS).max(latest)
}

impl World {
    /// The instant at which everything in this world is final: the simulator's clock starts
    /// here unless configured otherwise, and [`World::tasks`] and [`World::recordings`] are
    /// what the API shows at (and after) it.
    pub fn default_now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.default_now_ms).unwrap_or_default()
    }

    /// Tasks created at or before `now`, in API order (final attributes).
    pub(super) fn created_by(&self, now_ms: i64) -> &[SimTask] {
        &self.tasks[..self.tasks.partition_point(|t| t.created_ms <= now_ms)]
    }

    /// Every task that exists at `now`, with the attributes `GET /v1/tasks` reports then,
    /// sorted like [`World::tasks`].
    pub fn tasks_as_of(&self, now: DateTime<Utc>) -> Vec<SimTask> {
        self.created_by(now.timestamp_millis())
            .iter()
            .filter_map(|t| t.as_of(now))
            .collect()
    }

    /// Every recording the captures API lists at `now` with its default query
    /// (`includeSegments=false`, `includeVARecordings=false`), in task order.
    pub fn recordings_available_at(&self, now: DateTime<Utc>) -> Vec<&SimRecording> {
        self.created_by(now.timestamp_millis())
            .iter()
            .flat_map(|t| self.recordings_for_at(&t.id, false, false, now))
            .collect()
    }

    /// Every recording the captures API lists at `now` with its default query, as listed then:
    /// like [`World::recordings_available_at`], but a recording of a call still in progress
    /// (`recordings_while_open`) stops at `now` (see [`SimRecording::as_of`]).
    pub fn recordings_as_of(&self, now: DateTime<Utc>) -> Vec<SimRecording> {
        self.recordings_available_at(now)
            .into_iter()
            .filter_map(|r| r.as_of(now))
            .collect()
    }

    /// [`World::recordings_for`] as the captures API answers at `now` (final `stopTime`s; see
    /// [`SimRecording::as_of`] for recordings still in progress).
    pub fn recordings_for_at(
        &self,
        task_id: &str,
        include_segments: bool,
        include_va: bool,
        now: DateTime<Utc>,
    ) -> Vec<&SimRecording> {
        let mut out = self.recordings_for(task_id, include_segments, include_va);
        out.retain(|r| r.is_available_at(now));
        out
    }

    /// Transcripts of one task listed at `now` (from their `createTime`).
    pub fn transcriptions_for_at(
        &self,
        task_id: &str,
        now: DateTime<Utc>,
    ) -> Vec<&SimTranscription> {
        let now_ms = now.timestamp_millis();
        let mut out = self.transcriptions_for(task_id);
        out.retain(|t| t.create_ms <= now_ms);
        out
    }
}
