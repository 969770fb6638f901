//! Rows of the `derivatives` table (`schemas/derivatives.toml`): the 16 kHz mono files made from
//! each stored recording for transcription, and the checksum of the original they came from.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};

use super::error::Result;
use super::rows::{assemble, floats, ints, strings};
use super::schema::Table;

/// Outcome of deriving one file (`status` column).
pub mod status {
    pub const OK: &str = "ok";
    /// Not made for a reason that may pass (store or scratch disk error): retried next run.
    pub const FAILED: &str = "failed";
    /// The original cannot be decoded (not a WAV, corrupt, unsupported encoding): not retried
    /// until the original changes.
    pub const UNUSABLE_SOURCE: &str = "unusable_source";
}

/// One derived file of one recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DerivativeRow {
    pub task_id: String,
    pub recording_id: String,
    /// `mono16k`, `ch1_16k` or `ch2_16k`.
    pub kind: String,
    /// Party on the file's channel, from the capture; `None` for the mix.
    pub channel_label: Option<String>,
    pub object_uri: String,
    /// One of [`status`].
    pub status: String,
    pub error: Option<String>,
    pub sample_rate: Option<i64>,
    pub channels: Option<i64>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// SHA-256 of the original recording the file was made from.
    pub source_sha256: Option<String>,
    /// Share of samples limited at 16-bit full scale when written.
    pub clipping_share: Option<f64>,
    /// Analyser version that made the file; another version's files are made again.
    pub analyser_version: Option<i64>,
}

/// Derivative rows as a batch with exactly `Table::Derivatives.def().file_schema()`.
pub fn derivatives_batch(rows: &[DerivativeRow]) -> Result<RecordBatch> {
    type R = DerivativeRow;
    assemble(
        Table::Derivatives,
        vec![
            ("task_id", strings(rows, |r: &R| Some(r.task_id.as_str()))),
            (
                "recording_id",
                strings(rows, |r: &R| Some(r.recording_id.as_str())),
            ),
            ("kind", strings(rows, |r: &R| Some(r.kind.as_str()))),
            (
                "channel_label",
                strings(rows, |r: &R| r.channel_label.as_deref()),
            ),
            (
                "object_uri",
                strings(rows, |r: &R| Some(r.object_uri.as_str())),
            ),
            ("status", strings(rows, |r: &R| Some(r.status.as_str()))),
            ("error", strings(rows, |r: &R| r.error.as_deref())),
            ("sample_rate", ints(rows, |r| r.sample_rate)),
            ("channels", ints(rows, |r| r.channels)),
            ("duration_ms", ints(rows, |r| r.duration_ms)),
            ("size_bytes", ints(rows, |r| r.size_bytes)),
            ("sha256", strings(rows, |r: &R| r.sha256.as_deref())),
            (
                "source_sha256",
                strings(rows, |r: &R| r.source_sha256.as_deref()),
            ),
            ("clipping_share", floats(rows, |r| r.clipping_share)),
            ("analyser_version", ints(rows, |r| r.analyser_version)),
        ],
    )
}

/// Reads rows back from a partition's batch (as written by [`derivatives_batch`]).
pub fn derivative_rows(batch: &RecordBatch) -> Vec<DerivativeRow> {
    let text = |name: &str, i: usize| {
        let col = batch.column_by_name(name)?.as_string_opt::<i32>()?;
        (!col.is_null(i)).then(|| col.value(i).to_owned())
    };
    let int = |name: &str, i: usize| {
        let col = batch
            .column_by_name(name)?
            .as_primitive_opt::<Int64Type>()?;
        (!col.is_null(i)).then(|| col.value(i))
    };
    let float = |name: &str, i: usize| {
        let col = batch
            .column_by_name(name)?
            .as_primitive_opt::<Float64Type>()?;
        (!col.is_null(i)).then(|| col.value(i))
    };
    (0..batch.num_rows())
        .map(|i| DerivativeRow {
            task_id: text("task_id", i).unwrap_or_default(),
            recording_id: text("recording_id", i).unwrap_or_default(),
            kind: text("kind", i).unwrap_or_default(),
            channel_label: text("channel_label", i),
            object_uri: text("object_uri", i).unwrap_or_default(),
            status: text("status", i).unwrap_or_default(),
            error: text("error", i),
            sample_rate: int("sample_rate", i),
            channels: int("channels", i),
            duration_ms: int("duration_ms", i),
            size_bytes: int("size_bytes", i),
            sha256: text("sha256", i),
            source_sha256: text("source_sha256", i),
            clipping_share: float("clipping_share", i),
            analyser_version: int("analyser_version", i),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip_through_a_batch() {
        let rows = vec![
            DerivativeRow {
                task_id: "t1".into(),
                recording_id: "r1".into(),
                kind: "ch1_16k".into(),
                channel_label: Some("Caller".into()),
                object_uri: "file:///d/audio/o/t1/r1.ch1_16k.wav".into(),
                status: status::OK.into(),
                sample_rate: Some(16_000),
                channels: Some(1),
                duration_ms: Some(61_000),
                size_bytes: Some(1_952_044),
                sha256: Some("ab".repeat(32)),
                source_sha256: Some("cd".repeat(32)),
                clipping_share: Some(0.001),
                analyser_version: Some(2),
                ..Default::default()
            },
            DerivativeRow {
                task_id: "t2".into(),
                recording_id: "r2".into(),
                kind: "mono16k".into(),
                status: status::FAILED.into(),
                error: Some("cannot derive audio: not a WAV".into()),
                ..Default::default()
            },
        ];
        let batch = derivatives_batch(&rows).expect("batch");
        assert_eq!(batch.schema(), Table::Derivatives.def().file_schema());
        assert_eq!(derivative_rows(&batch), rows);
    }
}
