//! Security properties of the real code paths: what the media client fetches and sends, what
//! files the lake leaves readable, what the PII transform lets through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use object_store::ObjectStore;
use object_store::path::Path;
use secrecy::SecretString;
use wxcc::audio::{self, AudioError, Processing, RecordingIds, Transfer};
use wxcc::config::{Config, SyncFileConfig};
use wxcc::net::{MediaClient, MediaPolicy, PolicyResolver, RetryPolicy};
use wxcc::sync::{self, SyncContext, SyncOptions, SyncRange};

use crate::util::{small_world, start_sim};

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

async fn fetch(client: &MediaClient, url: &str) -> Result<audio::Fetched, AudioError> {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let retry = RetryPolicy::default();
    let processing = Processing::default();
    let transfer = Transfer {
        http: client,
        store: &store,
        retry: &retry,
        part_size: 1024,
        processing: &processing,
        stop: None,
    };
    let ids = RecordingIds {
        task_id: "t",
        recording_id: "r",
    };
    let url = SecretString::from(url.to_owned());
    audio::fetch_to_store(&transfer, &url, &Path::from("audio/o/t/r.wav"), &ids).await
}

#[tokio::test]
async fn redirected_media_host_receives_no_referer_or_authorization() {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = seen.clone();
    let target = serve(axum::Router::new().route(
        "/final.wav",
        axum::routing::get(move |headers: HeaderMap| {
            log.lock().unwrap().push(headers);
            async { (StatusCode::OK, vec![7u8; 100]) }
        }),
    ))
    .await;
    let location = format!("{target}/final.wav");
    let origin = serve(axum::Router::new().route(
        "/signed.wav",
        axum::routing::get(move || async move {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }),
    ))
    .await;
    let client = MediaClient::new(MediaPolicy { loopback: true });

    let fetched = fetch(&client, &format!("{origin}/signed.wav?sig=SECRET"))
        .await
        .expect("redirect within loopback mode is followed");

    assert_eq!(fetched.stored.size, 100);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].get(header::REFERER).is_none(), "{:?}", seen[0]);
    assert!(
        seen[0].get(header::AUTHORIZATION).is_none(),
        "{:?}",
        seen[0]
    );
}

#[tokio::test]
async fn media_policy_refuses_before_any_connection() {
    // A listener that would see any connection made to 127.0.0.1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let strict = MediaClient::with_resolver(
        PolicyResolver::new(MediaPolicy::strict())
            .with_override("media.example", vec![IpAddr::from([127, 0, 0, 1])])
            .with_override("metadata.example", vec![IpAddr::from([169, 254, 169, 254])])
            .with_override("intranet.example", vec![IpAddr::from([10, 0, 0, 5])]),
    );
    for url in [
        format!("http://127.0.0.1:{port}/a.wav"),
        format!("https://127.0.0.1:{port}/a.wav"),
        format!("https://media.example:{port}/a.wav"),
        "https://metadata.example/latest/meta-data".to_owned(),
        "https://intranet.example/a.wav".to_owned(),
        "https://[::1]/a.wav".to_owned(),
        "http://public.example/a.wav".to_owned(),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
    ] {
        let err = fetch(&strict, &url).await.unwrap_err();
        assert!(matches!(err, AudioError::Refused(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("example"), "{err}");
    }
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused() {
    // Loopback mode allows loopback, but not a downgrade from https, and strict mode never
    // follows into a private address.
    let strict = MediaClient::with_resolver(
        PolicyResolver::new(MediaPolicy::strict())
            .with_override("cdn.example", vec![IpAddr::from([192, 168, 1, 1])]),
    );
    let err = fetch(&strict, "https://cdn.example/a.wav")
        .await
        .unwrap_err();
    assert!(matches!(err, AudioError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn file_paths_refused_by_policy_are_recorded_failed_without_a_request() {
    let world = small_world();
    let start = world.start;
    let sim = start_sim(world).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::resolve(
        wxcc::config::Overrides {
            output: Some(dir.path().to_string_lossy().into_owned()),
            ..wxcc::cli::demo::simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )
    .unwrap();
    let mut ctx = SyncContext::from_config(&cfg).unwrap();
    // As if the API were remote: the simulator's http, loopback file paths must not be fetched.
    ctx.media = MediaClient::new(MediaPolicy::strict());
    let from = start.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let summary = sync::run(
        &ctx,
        &SyncOptions {
            range: SyncRange::Explicit {
                from,
                to: from + chrono::Duration::days(2),
            },
            download_concurrency: 4,
            org_id: cfg.org_id.clone(),
            dry_run: false,
            policy: Default::default(),
        },
    )
    .await
    .unwrap();

    assert!(summary.recordings > 0);
    assert_eq!(summary.failed, summary.recordings, "{summary:?}");
    assert_eq!(summary.stored, 0);
    assert_eq!(sim.stats().downloads, 0, "no media request was made");
}

/// Every file and folder under `root` (itself included) with its permission bits.
fn modes(root: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[tokio::test]
async fn synced_lake_and_exports_are_private_unless_configured_shared() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = crate::util::sim_env(&sim);
    let out = crate::util::sync_small_world("lake", &[], &env, dir.path()).await;
    assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
    let out = crate::util::wxcc(
        &["export", "--data", "lake", "--output", "jobs.jsonl"],
        &env,
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", crate::util::text(&out.stderr));

    let lake = modes(&dir.path().join("lake"));
    assert!(lake.len() > 20, "{lake:?}");
    assert!(
        lake.iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "wav"))
    );
    for (path, mode) in lake.iter().chain(&modes(&dir.path().join("jobs.jsonl"))) {
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }

    // A shared analytics host opts in to group access; the world still gets nothing.
    std::fs::write(dir.path().join("wxcc.toml"), "[storage]\nshared = true\n").unwrap();
    let out = crate::util::sync_small_world("shared", &[], &env, dir.path()).await;
    assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
    for (path, mode) in modes(&dir.path().join("shared")) {
        assert_eq!(mode & 0o007, 0, "{} is {mode:o}", path.display());
        // Tables and recordings are for the group; lease files stay the owner's.
        let data = path
            .extension()
            .is_some_and(|e| e == "parquet" || e == "wav");
        if data {
            assert_eq!(mode, 0o640, "{}", path.display());
        } else if path.is_dir() {
            assert_eq!(mode, 0o750, "{}", path.display());
        }
    }
}

#[tokio::test]
async fn sql_refuses_plain_http_storage_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[storage]\naws_endpoint = \"http://minio.internal:9000\"\n",
    )
    .unwrap();
    let env = std::collections::HashMap::new();
    for args in [
        vec!["sql", "SELECT 1", "--data", "s3://bucket/lake"],
        vec!["export", "--data", "s3://bucket/lake"],
    ] {
        let out = crate::util::wxcc(&args, &env, dir.path()).await;
        let err = crate::util::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("https"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_token_store_is_refused_when_a_key_is_set_until_encrypted_on_request() {
    use wxcc::auth::{StoredTokens, TokenSet, TokenStore};
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let c = sim.credentials();
    // A plaintext store, as written before a key was configured (or planted by someone who
    // can write the token directory).
    let plain = TokenStore::open(&tokens, None, &c.client_id, Some(&c.org_id)).unwrap();
    let lock = plain.lock_blocking().unwrap();
    let mut stored = StoredTokens {
        client_id: c.client_id.clone(),
        org_id: Some(c.org_id.clone()),
        tokens: TokenSet {
            refresh_token: Some(SecretString::from(c.refresh_token.clone())),
            ..Default::default()
        },
        ..Default::default()
    };
    plain.write(&lock, &mut stored).unwrap();
    drop(lock);
    let before = std::fs::read(plain.path()).unwrap();

    let env = std::collections::HashMap::from([
        ("WXCC_API_BASE_URL".to_owned(), sim.base_url()),
        ("WXCC_OAUTH_BASE_URL".to_owned(), sim.base_url()),
        ("WXCC_CLIENT_ID".to_owned(), c.client_id.clone()),
        ("WXCC_CLIENT_SECRET".to_owned(), c.client_secret.clone()),
        ("WXCC_ORG_ID".to_owned(), c.org_id.clone()),
        ("WXCC_TOKEN_DIR".to_owned(), tokens.display().to_string()),
        ("WXCC_TOKEN_KEY".to_owned(), KEY.to_owned()),
    ]);
    for args in [
        &["auth", "status"][..],
        &["auth", "refresh"],
        &[
            "sync",
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-06",
            "--output",
            "lake",
        ],
    ] {
        let out = crate::util::wxcc(args, &env, dir.path()).await;
        let err = crate::util::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("is not encrypted") && err.contains("wxcc auth encrypt"),
            "{args:?}: {err}"
        );
        assert!(!err.contains(&c.refresh_token), "{err}");
    }
    assert_eq!(
        std::fs::read(plain.path()).unwrap(),
        before,
        "left untouched"
    );
    assert_eq!(sim.stats().token_grants, 0, "no token was used");

    // The owner asks for it: the same tokens, sealed; then everything works.
    let out = crate::util::wxcc(&["auth", "encrypt"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
    assert!(crate::util::text(&out.stdout).contains("encrypted"));
    let on_disk = std::fs::read_to_string(plain.path()).unwrap();
    assert!(!on_disk.contains(&c.refresh_token), "sealed");
    let out = crate::util::wxcc(&["auth", "refresh"], &env, dir.path()).await;
    assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
    let out = crate::util::wxcc(&["auth", "encrypt"], &env, dir.path()).await;
    assert!(crate::util::text(&out.stdout).contains("already encrypted"));
    sim.shutdown().await;
}

#[tokio::test]
async fn config_errors_and_warnings_never_quote_a_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("wxcc.toml");
    let env = std::collections::HashMap::new();
    for text in [
        "client_id = \"C1\"\nclient_secret = s3cr3t-value\n",
        "client_secret = \"s3cr3t-value\n",
        "client_secret = \"s3cr3t-value\"\nrate_limit_per_minute = \"s3cr3t-value\"\n",
    ] {
        std::fs::write(&toml, text).unwrap();
        let out = crate::util::wxcc(&["sync"], &env, dir.path()).await;
        let err = crate::util::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("wxcc.toml") && err.contains("line"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    // A readable file holding a secret is named in a warning, the secret is not.
    std::fs::write(&toml, "client_secret = \"s3cr3t-value\"\n").unwrap();
    std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = crate::util::wxcc(&["sync", "--dry-run"], &env, dir.path()).await;
    let err = crate::util::text(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}
