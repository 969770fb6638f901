//! Audio facts from the command line (`wxcc audio analyze`), and a lake analysed by an older
//! analyser brought up to date by the next sync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::{files, sim_env, small_world, start_sim, strings, sync_small_world, text, wxcc};

/// One second of a 440 Hz tone at half scale, 8 kHz stereo 16-bit, its sizes left as a
/// streaming writer leaves them (0xFFFFFFFF).
fn streamed_wav() -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for i in 0..8000 {
        let x = (std::f64::consts::TAU * 440.0 * f64::from(i) / 8000.0).sin();
        w.write_sample((x * 16384.0) as i16).unwrap();
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let mut bytes = cursor.into_inner();
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes
}

#[tokio::test]
async fn audio_analyze_prints_each_files_facts_as_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, html) = (dir.path().join("call.wav"), dir.path().join("page.wav"));
    std::fs::write(&wav, streamed_wav()).unwrap();
    std::fs::write(&html, "<html>403</html>").unwrap();
    let out = wxcc(
        &["audio", "analyze", "call.wav", "page.wav"],
        &HashMap::new(),
        dir.path(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let ok = &lines[0];
    assert_eq!(
        (
            &ok["file"],
            &ok["status"],
            &ok["format"],
            &ok["duration_ms"]
        ),
        (
            &"call.wav".into(),
            &"ok".into(),
            &"pcm_s16le".into(),
            &1000.into()
        ),
        "{ok}"
    );
    assert!(
        ok["notes"][0].as_str().unwrap().contains("streamed"),
        "{ok}"
    );
    assert_eq!(ok["channel_stats"][0]["talk_time_ms"], 1000, "{ok}");
    assert_eq!(ok["channel_stats"][1]["talk_time_ms"], 0, "{ok}");
    assert_eq!(ok["analyser_version"], 2, "{ok}");
    let bad = &lines[1];
    assert_eq!(
        (&bad["status"], &bad["file"]),
        (&"not_wav".into(), &"page.wav".into())
    );
    assert!(
        bad["error"].as_str().unwrap().contains("not a WAV"),
        "{bad}"
    );
}

/// Rewrites every Parquet file of `table` as an older analyser left it: `analyser_version` 1.
fn downgrade(lake: &Path, table: &str) -> usize {
    let mut rewritten = 0;
    for path in files(&lake.join(table)) {
        let file = std::fs::File::open(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let metadata = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
        let schema = batches[0].schema();
        let at = schema.index_of("analyser_version").unwrap();
        let older: Vec<RecordBatch> = batches
            .iter()
            .map(|b| {
                let mut columns = b.columns().to_vec();
                columns[at] = Arc::new(Int64Array::from(vec![1; b.num_rows()]));
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect();
        let field = schema.field(at);
        assert_eq!(
            (field.data_type(), field.is_nullable()),
            (&DataType::Int64, true)
        );
        let props = parquet::file::properties::WriterProperties::builder()
            .set_key_value_metadata(metadata)
            .build();
        let out = std::fs::File::create(&path).unwrap();
        let mut w =
            ArrowWriter::try_new(out, Arc::new(Schema::clone(&schema)), Some(props)).unwrap();
        for b in &older {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        rewritten += 1;
    }
    rewritten
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_analysed_by_an_older_analyser_is_analysed_and_derived_again() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let env = sim_env(&sim);
    let sync = || async {
        let o = sync_small_world(loc, &["--derive", "mono16k"], &env, dir.path()).await;
        let stdout = text(&o.stdout);
        assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
        serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).unwrap()
    };
    let recordings = sim.world().recordings().len() as u64;
    let first = sync().await;
    assert_eq!(first["derived"], recordings, "{first}");
    let versions = "SELECT CAST(count(*) AS VARCHAR) || ' at ' || \
                    CAST(min(analyser_version) AS VARCHAR) || '..' || \
                    CAST(max(analyser_version) AS VARCHAR) FROM ";
    let current = format!("{recordings} at 2..2");
    let facts = format!("{versions} audio_facts");
    let derived = format!("{versions} derivatives");
    assert_eq!(strings(loc, &facts).await, std::slice::from_ref(&current));

    // Unchanged: nothing is analysed or derived again.
    let again = sync().await;
    assert_eq!(again["derived"], 0, "{again}");

    // As if an older analyser had written both tables.
    assert!(downgrade(&out, "audio_facts") > 0);
    assert!(downgrade(&out, "derivatives") > 0);
    assert_eq!(
        strings(loc, &facts).await,
        [format!("{recordings} at 1..1")]
    );
    let upgraded = sync().await;
    assert_eq!(upgraded["derived"], recordings, "{upgraded}");
    assert_eq!(strings(loc, &facts).await, std::slice::from_ref(&current));
    assert_eq!(strings(loc, &derived).await, [current]);
}
