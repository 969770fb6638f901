//! With `pii = "hash"` (or `"mask"`), no customer contact value, in any notation or JSON type,
//! reaches a table, a quarantined record, a state file or a log line.

use std::path::Path;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use wxcc::sim::{SimConfig, contact_junk_record};
use wxcc::sync::pii::is_contact_key;

use crate::util::{files, small_world, start_sim, sync_small_world, text};

/// Every string and number under a contact key of `v`, at any depth.
fn contact_values(v: &Value, inside: bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if inside => out.push(s.clone()),
        Value::Number(n) if inside => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| contact_values(i, inside, out)),
        Value::Object(map) => {
            for (k, child) in map {
                contact_values(child, inside || is_contact_key(k), out);
            }
        }
        _ => {}
    }
}

/// What must not appear for one clear value: the value itself, its number (the last ten
/// digits, whatever the punctuation) and its address.
fn needles(value: &str) -> Vec<String> {
    let mut out = vec![value.trim().to_owned()];
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 7 && !value.contains("****") {
        out.push(digits[digits.len().saturating_sub(10)..].to_owned());
    }
    if let Some(at) = value.find('@') {
        let start = value[..at]
            .rfind(|c: char| "<: \"".contains(c))
            .map_or(0, |i| i + 1);
        let end = value[at..]
            .find(|c: char| ">;?:".contains(c))
            .map_or(value.len(), |i| at + i);
        out.push(value[start..end].to_lowercase());
    }
    out
}

/// Every cell of every Parquet file under `dir`, formatted as text, one file per entry.
fn parquet_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files(dir) {
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut cells = String::new();
        for batch in reader {
            let batch = batch.unwrap();
            for col in batch.columns() {
                let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
                for i in 0..col.len() {
                    cells.push_str(&f.value(i).to_string());
                    cells.push('\n');
                }
            }
        }
        out.push((path.display().to_string(), cells));
    }
    out
}

/// The bytes of every file under `lake` but audio (synthesised from seeds, it carries no text),
/// and what each run printed (which must include its quarantine warnings).
fn files_and_output(lake: &Path, runs: &[(&str, &std::process::Output)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files(lake)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "wav"))
    {
        let bytes = std::fs::read(&path).unwrap();
        out.push((
            path.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (name, run) in runs {
        let printed = format!("{}{}", text(&run.stdout), text(&run.stderr));
        assert!(
            printed.contains("record quarantined"),
            "{name} logged its rejects"
        );
        out.push(((*name).to_owned(), printed));
    }
    out
}

fn assert_none_found(haystacks: &[(String, String)], needles: &[String]) {
    for (place, hay) in haystacks {
        for needle in needles {
            assert!(
                !hay.contains(needle.as_str()),
                "{needle:?} in the clear in {place}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pii_hash_no_contact_value_in_any_shape_reaches_a_table_a_reject_or_a_log() {
    let sim = start_sim(SimConfig {
        odd_contacts: true,
        page_cap: Some(10),
        junk_per_full_page: 3,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::util::sim_env(&sim);
    env.insert("WXCC_PII".into(), "hash".into());
    env.insert(
        "WXCC_PII_KEY".into(),
        "a-key-the-customer-keeps-0123".into(),
    );
    // Every log line the binary can write, in both formats.
    env.insert("RUST_LOG".into(), "warn,wxcc=trace".into());
    let text_run = sync_small_world("lake", &[], &env, dir.path()).await;
    let json_run = sync_small_world("lake", &["--log-format", "json"], &env, dir.path()).await;
    for out in [&text_run, &json_run] {
        assert_eq!(
            out.status.code(),
            Some(4),
            "rejects make the run partial: {}",
            text(&out.stderr)
        );
    }

    // The clear values: every contact field of the world and of the junk the simulator served.
    let world = sim.world();
    let mut clear: Vec<String> = Vec::new();
    for t in world.tasks() {
        clear.extend([t.origin.clone(), t.destination.clone()]);
    }
    for r in world.all_recordings() {
        clear.extend(
            r.participants
                .iter()
                .filter(|p| p.contains("****"))
                .cloned(),
        );
    }
    for n in 0..3 {
        contact_values(&contact_junk_record(n), false, &mut clear);
    }
    clear.sort();
    clear.dedup();
    for shape in ["tel:", "sip:", "mailto:", "<", "(415)"] {
        assert!(
            clear.iter().any(|c| c.contains(shape)),
            "the world has {shape} values"
        );
    }
    assert!(
        clear.iter().any(|c| c == "18005550198"),
        "a number sent as a JSON number"
    );
    let needles: Vec<String> = clear.iter().flat_map(|c| needles(c)).collect();

    // Where they must not be: every Parquet cell, every file's bytes (rejects, state, audio),
    // and everything both runs printed.
    let lake = dir.path().join("lake");
    let mut haystacks = parquet_text(&lake);
    assert!(
        haystacks.iter().any(|(p, _)| p.contains("tasks"))
            && haystacks.iter().any(|(p, _)| p.contains("captures")),
        "{:?}",
        haystacks.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        haystacks
            .iter()
            .any(|(p, cells)| p.contains("tasks") && cells.contains("h:")),
        "contact values are hashed, not dropped"
    );
    let rejects: Vec<_> = files(&lake.join("_rejects"));
    assert!(!rejects.is_empty(), "the contact junk was quarantined");
    let quarantined: String = rejects
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for id in ["junk-contact-0", "junk-contact-1", "junk-contact-2"] {
        assert!(quarantined.contains(id), "{id} in {quarantined}");
    }
    haystacks.extend(files_and_output(
        &lake,
        &[("text run", &text_run), ("json run", &json_run)],
    ));
    assert_none_found(&haystacks, &needles);

    // The same with `mask`: what is left of a value identifies nobody.
    env.insert("WXCC_PII".into(), "mask".into());
    let out = sync_small_world("masked", &[], &env, dir.path()).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let masked = dir.path().join("masked");
    let mut haystacks = parquet_text(&masked);
    assert!(
        haystacks
            .iter()
            .any(|(p, cells)| p.contains("tasks") && cells.contains("***@")),
        "addresses keep their domain"
    );
    haystacks.extend(files_and_output(&masked, &[("mask run", &out)]));
    assert_none_found(&haystacks, &needles);

    // The control: with `keep` the same search finds the values, in tables and quarantine.
    env.insert("WXCC_PII".into(), "keep".into());
    let out = sync_small_world("clear", &[], &env, dir.path()).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let clear_lake = dir.path().join("clear");
    let cells: String = parquet_text(&clear_lake)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let quarantined: String = files(&clear_lake.join("_rejects"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for shape in ["tel:", "sip:", "(415)", " <", "mailto:"] {
        assert!(
            clear
                .iter()
                .any(|c| c.contains(shape) && cells.contains(c.as_str())),
            "{shape}"
        );
    }
    assert!(quarantined.contains("18005550198") && quarantined.contains("jane.roe"));
    sim.shutdown().await;
}
