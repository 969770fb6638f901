//! The simulated contact-center history: tasks, recordings and transcripts.
//!
//! A [`World`] is a pure function of the generation-relevant part of
//! [`SimConfig`](super::SimConfig) (seed, start, days, calls per day, call lengths, contact
//! notations); wall-clock
//! time never enters it, so the same configuration always yields byte-identical data.
//!
//! Tasks and recordings are stored in their final state; when they changed or appeared is in
//! [`TaskTimeline`] and [`SimRecording::available_ms`], which the [`clock`](super::clock) module
//! turns into what the API shows at a simulated instant.

use std::collections::HashMap;

use super::clock::{TaskTimeline, settled_ms};
use super::wav::{AudioPlan, FRAMES_PER_MS, mix64};

/// An `{id, name}` pair as used by task `owner` and `queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRef {
    pub id: String,
    pub name: String,
}

/// One task (call, chat session, email chain) as `GET /v1/tasks` reports it once it is final
/// (REFERENCE.md §3.4); [`SimTask::state_at`] gives the time-dependent attributes at any instant.
#[derive(Clone, Debug, PartialEq)]
pub struct SimTask {
    pub id: String,
    pub created_ms: i64,
    /// The final `lastUpdatedTime` (may lie long after closure, REFERENCE.md §3.4).
    pub last_updated_ms: i64,
    /// `telephony`, `chat`, `email` or `social`.
    pub channel_type: String,
    /// `created|queued|offered|assigned|abandoned|completed`.
    pub status: String,
    pub capture_requested: Option<bool>,
    /// Last agent assigned; `None` for abandoned, IVR-only and not-yet-offered tasks.
    pub owner: Option<SimRef>,
    pub queue: SimRef,
    pub origin: String,
    pub destination: String,
    /// `inbound`, `outbound` or `outdial`.
    pub direction: String,
    pub reason_code: Option<String>,
    /// Fields the API reference does not list, sent to exercise lenient parsers.
    pub extra_attributes: serde_json::Map<String, serde_json::Value>,
    /// When the task changed state on its way to the attributes above.
    pub timeline: TaskTimeline,
}

/// What a recording is, which decides when the captures API returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordingKind {
    /// The stitched main recording (returned unless it is split into segments).
    Main,
    /// The stitched main recording of a transferred call: replaced by its segments when
    /// `includeSegments=true`.
    SplitMain,
    /// One leg of a transferred call (`includeSegments=true` only).
    Segment,
    /// Agent-to-agent consult (always returned, never segmented).
    Consult,
    /// Virtual-agent leg (`includeVARecordings=true` only).
    VirtualAgent,
}

/// One capture entry of `POST /v1/captures/query` (REFERENCE.md §4.2).
#[derive(Clone, Debug, PartialEq)]
pub struct SimRecording {
    pub id: String,
    pub task_id: String,
    /// `main`, `consult` or `va-main`.
    pub call_type: String,
    pub start_ms: i64,
    pub stop_ms: i64,
    pub channel1: String,
    pub channel2: String,
    /// The `segment` flag of the capture.
    pub segment: bool,
    pub file_name: String,
    pub participants: Vec<String>,
    /// Present on virtual-agent recordings only.
    pub sensitive: Option<bool>,
    pub kind: RecordingKind,
    /// Seed of the audio; the bytes served depend on nothing else but the duration.
    pub audio_seed: u64,
    /// From this instant on the captures API lists the recording: the end of its call plus a
    /// delay (segments share their stitched main recording's), or with
    /// `recordings_while_open` a second after the leg starts (see [`SimRecording::as_of`]).
    pub available_ms: i64,
}

/// One transcript entry of `POST /v1/captures/query` (capitalised `Source`/`Provider` on the wire).
#[derive(Clone, Debug, PartialEq)]
pub struct SimTranscription {
    pub id: String,
    pub task_id: String,
    /// Object key under which the transcript JSON is served.
    pub object_key: String,
    pub source: String,
    pub provider: String,
    pub file_name: String,
    pub start_ms: i64,
    pub create_ms: i64,
    pub language_code: String,
}

/// The whole simulated history plus lookup indexes.
#[derive(Debug)]
pub struct World {
    pub(crate) seed: u64,
    pub(crate) org_id: String,
    pub(crate) tasks: Vec<SimTask>,
    pub(crate) recordings: Vec<SimRecording>,
    pub(crate) transcriptions: Vec<SimTranscription>,
    task_index: HashMap<String, usize>,
    recordings_by_task: HashMap<String, Vec<usize>>,
    transcriptions_by_task: HashMap<String, Vec<usize>>,
    recording_index: HashMap<String, usize>,
    transcription_index: HashMap<String, usize>,
    /// See [`World::default_now`].
    pub(crate) default_now_ms: i64,
}

impl World {
    /// Builds the indexes; `tasks` must already be sorted by `(created_ms, id)`.
    /// `period_end_ms` is the end of the last simulated day.
    pub(crate) fn from_parts(
        seed: u64,
        period_end_ms: i64,
        org_id: String,
        tasks: Vec<SimTask>,
        recordings: Vec<SimRecording>,
        transcriptions: Vec<SimTranscription>,
    ) -> Self {
        let task_index = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let mut recordings_by_task: HashMap<String, Vec<usize>> = HashMap::new();
        let mut recording_index = HashMap::new();
        for (i, r) in recordings.iter().enumerate() {
            recordings_by_task
                .entry(r.task_id.clone())
                .or_default()
                .push(i);
            recording_index.insert(r.id.clone(), i);
        }
        let mut transcriptions_by_task: HashMap<String, Vec<usize>> = HashMap::new();
        let mut transcription_index = HashMap::new();
        for (i, t) in transcriptions.iter().enumerate() {
            transcriptions_by_task
                .entry(t.task_id.clone())
                .or_default()
                .push(i);
            transcription_index.insert(t.object_key.clone(), i);
        }
        let default_now_ms = settled_ms(period_end_ms, &tasks, &recordings, &transcriptions);
        World {
            seed,
            org_id,
            tasks,
            recordings,
            transcriptions,
            task_index,
            recordings_by_task,
            transcriptions_by_task,
            recording_index,
            transcription_index,
            default_now_ms,
        }
    }

    /// The organization every task belongs to (a plain UUID, REFERENCE.md §2).
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// All tasks in their final state, sorted by `created_ms` then `id` (the order
    /// `GET /v1/tasks` pages through): what the API shows from [`World::default_now`] on.
    /// [`World::tasks_as_of`] gives them at another instant.
    pub fn tasks(&self) -> &[SimTask] {
        &self.tasks
    }

    /// The task with this id, if it exists.
    pub fn task(&self, id: &str) -> Option<&SimTask> {
        self.task_index.get(id).map(|&i| &self.tasks[i])
    }

    /// Every recording the captures API returns with its default query
    /// (`includeSegments=false`, `includeVARecordings=false`), in task order, once all are
    /// available (from [`World::default_now`] on; [`World::recordings_available_at`] before).
    pub fn recordings(&self) -> Vec<&SimRecording> {
        self.tasks
            .iter()
            .flat_map(|t| self.recordings_for(&t.id, false, false))
            .collect()
    }

    /// Every recording of every kind (segments and virtual-agent legs included).
    pub fn all_recordings(&self) -> &[SimRecording] {
        &self.recordings
    }

    /// Recordings of one task as the captures API returns them for these query flags once all
    /// are available, ordered by start time.
    pub fn recordings_for(
        &self,
        task_id: &str,
        include_segments: bool,
        include_va: bool,
    ) -> Vec<&SimRecording> {
        let mut out: Vec<&SimRecording> = self
            .recordings_by_task
            .get(task_id)
            .into_iter()
            .flatten()
            .map(|&i| &self.recordings[i])
            .filter(|r| match r.kind {
                RecordingKind::Main | RecordingKind::Consult => true,
                RecordingKind::SplitMain => !include_segments,
                RecordingKind::Segment => include_segments,
                RecordingKind::VirtualAgent => include_va,
            })
            .collect();
        out.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
        out
    }

    /// Transcripts of one task.
    pub fn transcriptions_for(&self, task_id: &str) -> Vec<&SimTranscription> {
        self.transcriptions_by_task
            .get(task_id)
            .into_iter()
            .flatten()
            .map(|&i| &self.transcriptions[i])
            .collect()
    }

    /// A recording of any kind by id.
    pub fn recording(&self, id: &str) -> Option<&SimRecording> {
        self.recording_index.get(id).map(|&i| &self.recordings[i])
    }

    /// A transcript by its object key.
    pub fn transcription(&self, object_key: &str) -> Option<&SimTranscription> {
        self.transcription_index
            .get(object_key)
            .map(|&i| &self.transcriptions[i])
    }

    /// The audio plan of a recording: its length follows `stop - start`. A copy with an earlier
    /// stop (a call still in progress, [`SimRecording::as_of`]) gets a prefix of the final audio.
    pub fn audio_plan(&self, rec: &SimRecording) -> AudioPlan {
        let full = self
            .recording(&rec.id)
            .filter(|f| f.start_ms == rec.start_ms && f.stop_ms >= rec.stop_ms)
            .unwrap_or(rec);
        AudioPlan::new(mix64(self.seed ^ rec.audio_seed), Self::frames(full))
            .prefix(Self::frames(rec))
    }

    /// Whether any recording of any kind exists for this task.
    pub fn has_recordings(&self, task_id: &str) -> bool {
        self.recordings_by_task.contains_key(task_id)
    }

    fn frames(rec: &SimRecording) -> u64 {
        (rec.stop_ms - rec.start_ms).max(0) as u64 * FRAMES_PER_MS
    }

    /// Size in bytes of the WAV file served for `rec`.
    pub fn wav_len(&self, rec: &SimRecording) -> u64 {
        AudioPlan::len_for_frames(Self::frames(rec))
    }

    /// Lowercase hex SHA-256 of the exact bytes served for `rec` (computed by streaming).
    pub fn wav_sha256(&self, rec: &SimRecording) -> String {
        self.audio_plan(rec).sha256_hex()
    }
}
