//! The lake in the analyst's own tools: `wxcc duckdb-init` statements run by DuckDB against a
//! synced lake, and `wxcc schema --format dbt` read as YAML (both through the test venv's Python).

use wxcc::lake::Table;

use crate::s3::test_python;
use crate::util::{sim_env, small_world, start_sim, strings, sync_small_world, text, wxcc};

/// Runs `script` with the test Python; its standard output parsed as JSON.
async fn python_json(python: &str, script: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("python runs");
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_runs_the_init_statements_and_sees_what_wxcc_sees() {
    let Some(python) = test_python() else { return };
    let sim = start_sim(small_world()).await;
    let env = sim_env(&sim);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let out = sync_small_world(lake, &[], &env, dir.path()).await;
    assert!(out.status.success(), "sync: {}", text(&out.stderr));
    let init = dir.path().join("init.sql");
    let out = wxcc(
        &[
            "duckdb-init",
            "--data",
            lake,
            "--output",
            init.to_str().unwrap(),
        ],
        &env,
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "duckdb-init: {}", text(&out.stderr));

    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
out = {}
for t in ["tasks", "captures", "manifest", "audio_facts", "derivatives", "recordings"]:
    out[t] = con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()[0][0]
out["recorded_seconds"] = con.execute(
    "SELECT CAST(SUM(duration_ms) / 1000 AS BIGINT) FROM recordings").fetchall()[0][0]
print(json.dumps(out))
"#;
    let seen = python_json(&python, script, &[init.to_str().unwrap()]).await;
    for t in [
        "tasks",
        "captures",
        "manifest",
        "audio_facts",
        "derivatives",
        "recordings",
    ] {
        let ours = strings(lake, &format!("SELECT CAST(COUNT(*) AS VARCHAR) FROM {t}")).await;
        assert_eq!(seen[t].to_string(), ours[0], "{t}");
    }
    assert!(seen["recordings"].as_i64().unwrap() > 0);
    let ours = strings(
        lake,
        "SELECT CAST(CAST(SUM(duration_ms) / 1000 AS BIGINT) AS VARCHAR) FROM recordings",
    )
    .await;
    assert_eq!(seen["recorded_seconds"].to_string(), ours[0]);
    // pyarrow reads the same files and sees the column descriptions from schemas/.
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
path = sorted(glob.glob(sys.argv[1] + "/tasks/*/*/*.parquet"))[0]
table = pq.read_table(path)
meta = table.schema.field("queue_name").metadata or {}
print(json.dumps({"rows": table.num_rows, "description": meta.get(b"description", b"").decode()}))
"#;
    let seen = python_json(&python, script, &[lake]).await;
    assert!(seen["rows"].as_i64().unwrap() > 0);
    let declared = Table::Tasks
        .def()
        .columns
        .iter()
        .find(|c| c.name == "queue_name")
        .unwrap();
    assert_eq!(seen["description"], declared.description.as_str());
    let sql = std::fs::read_to_string(&init).unwrap();
    assert!(
        !sql.contains("KEY_ID") && !sql.contains("SECRET '"),
        "no credential written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dbt_sources_parse_as_yaml_and_name_every_column_with_its_description() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sources.yml");
    let out = wxcc(
        &[
            "schema",
            "--format",
            "dbt",
            "--output",
            file.to_str().unwrap(),
        ],
        &Default::default(),
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "schema: {}", text(&out.stderr));
    let script = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
tables = {t["name"]: {c["name"]: c["description"] for c in t["columns"]}
          for s in doc["sources"] for t in s["tables"]}
print(json.dumps({"version": doc["version"], "tables": tables}))
"#;
    let doc = python_json(&python, script, &[file.to_str().unwrap()]).await;
    assert_eq!(doc["version"], 2);
    for table in Table::ALL {
        let def = table.def();
        let cols = doc["tables"][table.name()]
            .as_object()
            .unwrap_or_else(|| panic!("{} missing", table.name()));
        assert_eq!(cols.len(), def.columns.len(), "{}", table.name());
        for c in &def.columns {
            assert_eq!(
                cols[&c.name],
                c.description.as_str(),
                "{}.{}",
                table.name(),
                c.name
            );
        }
    }
}
