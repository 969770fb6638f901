//! Sync into a real S3-compatible server (moto, from PyPI) on a free loopback port.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use crate::util::{sim_env, small_world, start_sim, sync_small_world, text, wxcc};

/// The Python the test script prepared (`WXCC_TEST_PYTHON`), or `None` to skip locally. In CI
/// a missing tool is a failure, not a skip.
pub fn test_python() -> Option<String> {
    match std::env::var("WXCC_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("WXCC_TEST_PYTHON is not set: run the suite through scripts/test.sh")
        }
        _ => {
            eprintln!("skipping: WXCC_TEST_PYTHON not set (scripts/test.sh sets it up)");
            None
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto S3 server for one test; killed on drop.
struct Moto {
    child: tokio::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start(python: &str) -> Moto {
        let port = free_port();
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(&endpoint).send().await.is_ok() {
                return Moto { child, endpoint };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not come up on {endpoint}");
    }

    async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
    }

    fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("AWS_ENDPOINT".into(), self.endpoint.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Syncs the small world into `lake` (a cloud URL whose credentials are in `store_env`), then
/// checks through `wxcc sql` on the same store that every recording is stored under the lake
/// with the simulator's SHA-256. Shared by the S3 and Azure tests.
pub async fn sync_and_verify(lake: &str, store_env: HashMap<String, String>) {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.extend(store_env);
    let out = sync_small_world(lake, &[], &env, dir.path()).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));

    let sql =
        "SELECT recording_id, sha256, object_uri FROM manifest WHERE status = 'stored' ORDER BY 1";
    let sums = wxcc(
        &["sql", "--data", lake, "--format", "csv", sql],
        &env,
        dir.path(),
    )
    .await;
    assert!(sums.status.success(), "stderr: {}", text(&sums.stderr));
    let csv = text(&sums.stdout);
    let world = sim.world();
    let recordings = world.recordings();
    assert_eq!(csv.lines().count(), recordings.len() + 1, "{csv}");
    for r in recordings {
        let line = format!("{},{},{lake}/audio/", r.id, world.wav_sha256(r));
        assert!(csv.contains(&line), "{line} missing from:\n{csv}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_s3_stores_verified_audio_and_queryable_tables() {
    let Some(python) = test_python() else { return };
    let moto = Moto::start(&python).await;
    moto.create_bucket("wxcc-test").await;
    let lake_url = "s3://wxcc-test/exports/lake";
    sync_and_verify(lake_url, moto.env()).await;

    // Each audio object names its recording in its metadata, and says it is a WAV.
    let options: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let lake = wxcc::lake::Lake::open_with_options(lake_url, options).unwrap();
    let store = lake.store();
    let audio = lake.path("audio");
    let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&audio)))
        .await
        .unwrap();
    assert!(!listed.is_empty());
    for meta in listed.iter().take(3) {
        let got = object_store::ObjectStoreExt::get(store.as_ref(), &meta.location)
            .await
            .unwrap();
        let attr = |a: object_store::Attribute| got.attributes.get(&a).map(|v| v.to_string());
        let name = meta
            .location
            .filename()
            .unwrap()
            .trim_end_matches(".wav")
            .to_owned();
        assert_eq!(
            attr(object_store::Attribute::Metadata(
                wxcc::audio::META_RECORDING_ID.into()
            )),
            Some(name)
        );
        assert_eq!(
            attr(object_store::Attribute::ContentType).as_deref(),
            Some(wxcc::audio::WAV_CONTENT_TYPE)
        );
    }
}

/// Rewrites the first manifest file of `lake` so its first row names `target` as its object.
async fn forge_manifest_row(lake: &wxcc::lake::Lake, target: &str) {
    use arrow::array::{Array, AsArray, RecordBatch, StringArray};
    use object_store::ObjectStoreExt;
    let store = lake.store();
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect(store.list(Some(&lake.path("manifest"))))
            .await
            .unwrap();
    let file = &listed
        .iter()
        .find(|m| m.location.as_ref().ends_with(".parquet"))
        .unwrap()
        .location;
    let bytes = store.get(file).await.unwrap().bytes().await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let schema = batches[0].schema();
    let at = schema.index_of("object_uri").unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
    for (n, batch) in batches.iter().enumerate() {
        let col = batch.column(at);
        let text = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        let forged: StringArray = (0..text.len())
            .map(|i| {
                Some(if n == 0 && i == 0 {
                    target
                } else {
                    text.value(i)
                })
            })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[at] = arrow::compute::cast(&forged, col.data_type()).unwrap();
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    store.put(file, out.into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_to_sign_a_manifest_row_outside_the_audio_prefix() {
    let Some(python) = test_python() else { return };
    let moto = Moto::start(&python).await;
    moto.create_bucket("wxcc-sign").await;
    let lake_url = "s3://wxcc-sign/lake";
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.extend(moto.env());
    let out = sync_small_world(lake_url, &[], &env, dir.path()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A mistyped prefix in the same bucket holds no lake: refused, not read as empty.
    let typo = wxcc(
        &[
            "sql",
            "--data",
            "s3://wxcc-sign/lak",
            "SELECT count(*) FROM tasks",
        ],
        &env,
        dir.path(),
    )
    .await;
    assert_eq!(typo.status.code(), Some(2), "{}", text(&typo.stderr));
    assert!(
        text(&typo.stderr).contains("no lake at s3://wxcc-sign/lak"),
        "{}",
        text(&typo.stderr)
    );
    let sign = ["export", "--data", lake_url, "--sign", "1h"];
    let ok = wxcc(&sign, &env, dir.path()).await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("X-Amz-Signature"),
        "signs its own audio"
    );

    // Temporary credentials: a URL dies with its session, maybe before url_expires_at.
    let mut session_env = env.clone();
    session_env.insert(
        "AWS_SESSION_TOKEN".into(),
        "FQoGZXIvYXdzEXAMPLEsession".into(),
    );
    let temporary = wxcc(&sign, &session_env, dir.path()).await;
    let err = text(&temporary.stderr);
    assert!(temporary.status.success(), "{err}");
    assert!(text(&temporary.stdout).contains("X-Amz-Security-Token"));
    assert!(err.contains("temporary credentials"), "{err}");
    assert!(
        !err.contains("FQoGZXIv"),
        "the token stays out of the log: {err}"
    );
    assert!(!text(&ok.stderr).contains("temporary credentials"));

    // A manifest row pointing at a table file (or anything else outside audio/) gets no URL.
    let options: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let lake = wxcc::lake::Lake::open_with_options(lake_url, options).unwrap();
    let outside = format!("{lake_url}/_state/secrets.json");
    forge_manifest_row(&lake, &outside).await;
    let refused = wxcc(&sign, &env, dir.path()).await;
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("only recordings under"), "{err}");
    assert!(!text(&refused.stdout).contains("_state"), "no URL for it");
    sim.shutdown().await;
}
