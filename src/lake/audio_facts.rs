//! Rows of the `audio_facts` table (`schemas/audio_facts.toml`): what the audio analysis measured
//! on each stored recording.
//!
//! Kept apart from [`super::rows`] because it is filled by a different stage (audio analysis, not
//! the API mapping), but built the same way: by column name against the declared file schema.

use arrow::array::RecordBatch;

use super::error::Result;
use super::rows::{assemble, floats, ints, strings};
use super::schema::Table;

/// Outcome of analysing one recording (`status` column).
pub mod status {
    /// Analysed; the analysis columns are filled.
    pub const OK: &str = "ok";
    /// The stored object is not a RIFF/WAVE file.
    pub const NOT_WAV: &str = "not_wav";
    /// A WAV encoding the analyser does not decode.
    pub const UNSUPPORTED: &str = "unsupported";
    /// Truncated or malformed WAV.
    pub const CORRUPT: &str = "corrupt";
    /// A well-formed WAV holding no audio.
    pub const EMPTY: &str = "empty";
    /// No stored object to analyse.
    pub const MISSING: &str = "missing";
    /// Every status, for validation and documentation.
    pub const ALL: [&str; 6] = [OK, NOT_WAV, UNSUPPORTED, CORRUPT, EMPTY, MISSING];
}

/// Facts about one recording's audio. Times are milliseconds, levels dBFS, shares 0..=1.
///
/// Every analysis field is optional: a corrupt or missing file has a row with only `status`
/// and `error`. Only channels 1 and 2 are represented (WxCC records stereo); for a file with more
/// channels, `channels` says so and the extra channels are not analysed.
///
/// `duration_mismatch_ms` is not a field: it is derived as `duration_ms - expected_duration_ms`
/// when the batch is built, so it can never disagree with the two durations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioFactsRow {
    pub task_id: String,
    pub recording_id: String,
    /// One of [`status::ALL`].
    pub status: String,
    pub error: Option<String>,
    /// Repairs made to read the file, `; `-separated.
    pub notes: Option<String>,
    pub analyser_version: Option<i64>,
    pub format: Option<String>,
    pub sample_rate: Option<i64>,
    pub channels: Option<i64>,
    pub bits_per_sample: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Capture `stop_time - start_time`, when known.
    pub expected_duration_ms: Option<i64>,
    /// Party on channel 1 according to the capture (Caller, Agent, VA, Others).
    pub channel1_label: Option<String>,
    pub channel2_label: Option<String>,
    pub ch1_rms_dbfs: Option<f64>,
    pub ch2_rms_dbfs: Option<f64>,
    pub ch1_peak_dbfs: Option<f64>,
    pub ch2_peak_dbfs: Option<f64>,
    pub ch1_silence_share: Option<f64>,
    pub ch2_silence_share: Option<f64>,
    pub ch1_clipping_share: Option<f64>,
    pub ch2_clipping_share: Option<f64>,
    pub ch1_talk_ms: Option<i64>,
    pub ch2_talk_ms: Option<i64>,
    pub ch1_active_dbfs: Option<f64>,
    pub ch2_active_dbfs: Option<f64>,
    pub crosstalk_share: Option<f64>,
}

impl AudioFactsRow {
    /// `duration_ms - expected_duration_ms`, null when either is unknown.
    pub fn duration_mismatch_ms(&self) -> Option<i64> {
        self.duration_ms?.checked_sub(self.expected_duration_ms?)
    }
}

/// Audio facts as a batch with exactly `Table::AudioFacts.def().file_schema()`.
pub fn audio_facts_batch(rows: &[AudioFactsRow]) -> Result<RecordBatch> {
    type R = AudioFactsRow;
    assemble(
        Table::AudioFacts,
        vec![
            ("task_id", strings(rows, |r: &R| Some(r.task_id.as_str()))),
            (
                "recording_id",
                strings(rows, |r: &R| Some(r.recording_id.as_str())),
            ),
            ("status", strings(rows, |r: &R| Some(r.status.as_str()))),
            ("error", strings(rows, |r: &R| r.error.as_deref())),
            ("notes", strings(rows, |r: &R| r.notes.as_deref())),
            ("analyser_version", ints(rows, |r| r.analyser_version)),
            ("format", strings(rows, |r: &R| r.format.as_deref())),
            ("sample_rate", ints(rows, |r| r.sample_rate)),
            ("channels", ints(rows, |r| r.channels)),
            ("bits_per_sample", ints(rows, |r| r.bits_per_sample)),
            ("duration_ms", ints(rows, |r| r.duration_ms)),
            (
                "expected_duration_ms",
                ints(rows, |r| r.expected_duration_ms),
            ),
            ("duration_mismatch_ms", ints(rows, R::duration_mismatch_ms)),
            (
                "channel1_label",
                strings(rows, |r: &R| r.channel1_label.as_deref()),
            ),
            (
                "channel2_label",
                strings(rows, |r: &R| r.channel2_label.as_deref()),
            ),
            ("ch1_rms_dbfs", floats(rows, |r| r.ch1_rms_dbfs)),
            ("ch2_rms_dbfs", floats(rows, |r| r.ch2_rms_dbfs)),
            ("ch1_peak_dbfs", floats(rows, |r| r.ch1_peak_dbfs)),
            ("ch2_peak_dbfs", floats(rows, |r| r.ch2_peak_dbfs)),
            ("ch1_silence_share", floats(rows, |r| r.ch1_silence_share)),
            ("ch2_silence_share", floats(rows, |r| r.ch2_silence_share)),
            ("ch1_clipping_share", floats(rows, |r| r.ch1_clipping_share)),
            ("ch2_clipping_share", floats(rows, |r| r.ch2_clipping_share)),
            ("ch1_talk_ms", ints(rows, |r| r.ch1_talk_ms)),
            ("ch2_talk_ms", ints(rows, |r| r.ch2_talk_ms)),
            ("ch1_active_dbfs", floats(rows, |r| r.ch1_active_dbfs)),
            ("ch2_active_dbfs", floats(rows, |r| r.ch2_active_dbfs)),
            ("crosstalk_share", floats(rows, |r| r.crosstalk_share)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    #[test]
    fn batch_has_exactly_the_declared_file_schema() {
        let b = audio_facts_batch(&[AudioFactsRow::default()]).expect("batch");
        assert_eq!(b.schema(), Table::AudioFacts.def().file_schema());
        assert_eq!(
            audio_facts_batch(&[]).expect("empty").schema(),
            Table::AudioFacts.def().file_schema()
        );
    }

    #[test]
    fn corrupt_file_row_has_status_and_error_and_null_analysis() {
        let row = AudioFactsRow {
            task_id: "t1".into(),
            recording_id: "r1".into(),
            status: status::CORRUPT.into(),
            error: Some("data chunk shorter than its header says".into()),
            expected_duration_ms: Some(60_000),
            ..AudioFactsRow::default()
        };
        let b = audio_facts_batch(&[row]).expect("batch");
        assert_eq!(
            b.column_by_name("status")
                .expect("status")
                .as_string::<i32>()
                .value(0),
            "corrupt"
        );
        for name in [
            "duration_ms",
            "duration_mismatch_ms",
            "ch1_rms_dbfs",
            "crosstalk_share",
        ] {
            assert!(b.column_by_name(name).expect(name).is_null(0), "{name}");
        }
    }

    #[test]
    fn duration_mismatch_is_audio_minus_capture_duration() {
        let row = AudioFactsRow {
            status: status::OK.into(),
            duration_ms: Some(59_500),
            expected_duration_ms: Some(60_000),
            ch1_rms_dbfs: Some(-23.5),
            ..AudioFactsRow::default()
        };
        let b = audio_facts_batch(&[row]).expect("batch");
        let d = b.column_by_name("duration_mismatch_ms").expect("column");
        assert_eq!(d.as_primitive::<Int64Type>().value(0), -500);
        let rms = b.column_by_name("ch1_rms_dbfs").expect("column");
        assert_eq!(rms.as_primitive::<Float64Type>().value(0), -23.5);
    }

    #[test]
    fn every_status_is_snake_case_and_documented_in_the_schema() {
        let status_doc = &Table::AudioFacts
            .def()
            .columns
            .iter()
            .find(|c| c.name == "status")
            .expect("status column")
            .description;
        for s in status::ALL {
            assert!(status_doc.contains(s), "{s} not in {status_doc}");
        }
    }
}
