//! `wxcc auth …` against the simulator's OAuth endpoints, and the token store as every command
//! uses it: login (loopback and pasted), import, status codes, refresh ahead of expiry and on
//! 401, revocation, concurrent refreshes, file modes, encryption, and no secret in any output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;
use url::Url;
use wxcc::auth::{StoreKey, StoredTokens, TokenProvider, TokenSet, TokenStore};
use wxcc::config::{AuthConfig, Overrides};
use wxcc::net::{self, RetryPolicy};
use wxcc::sim::{RefreshTokens, SimConfig, Simulator};

use crate::util::{small_world, start_sim, text, wxcc};

const REAUTHORIZE: i32 = 3;
const USAGE: i32 = 2;
const REFRESH_EXPIRING: i32 = 5;
/// The simulator's one registered non-loopback redirect URI.
const PASTE_REDIRECT: &str = "https://wxcc.example/callback";
const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "//////////////////////////////////////////8=";

/// The Integration and a private token directory, but no token: the store must supply it.
fn store_env(sim: &Simulator, token_dir: &Path) -> HashMap<String, String> {
    let c = sim.credentials();
    HashMap::from([
        ("WXCC_API_BASE_URL".into(), sim.base_url()),
        ("WXCC_OAUTH_BASE_URL".into(), sim.base_url()),
        ("WXCC_CLIENT_ID".into(), c.client_id.clone()),
        ("WXCC_CLIENT_SECRET".into(), c.client_secret.clone()),
        (
            "WXCC_TOKEN_DIR".into(),
            token_dir.to_str().unwrap().to_owned(),
        ),
    ])
}

fn with(mut env: HashMap<String, String>, pairs: &[(&str, &str)]) -> HashMap<String, String> {
    for (k, v) in pairs {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// The five values of the old manual process, as `--stdin` lines.
fn import_lines(sim: &Simulator) -> String {
    let c = sim.credentials();
    format!(
        "WXCC_CLIENT_ID={}\nWXCC_CLIENT_SECRET={}\nWXCC_ORG_ID={}\nWXCC_ACCESS_TOKEN=old-access\nWXCC_REFRESH_TOKEN={}\n",
        c.client_id, c.client_secret, c.org_id, c.refresh_token
    )
}

/// The real binary with piped standard streams, WXCC_* and RUST_LOG from `env` only.
fn spawn(args: &[&str], env: &HashMap<String, String>, cwd: &Path) -> Child {
    crate::util::wxcc_command(args, env, cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wxcc binary starts")
}

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_with_stdin(
    args: &[&str],
    env: &HashMap<String, String>,
    cwd: &Path,
    input: &str,
) -> Finished {
    let mut child = spawn(args, env, cwd);
    let mut stdin = child.stdin.take().unwrap();
    // A command that does not read its input may already be gone: ignore a broken pipe.
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    Finished {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    }
}

async fn import(sim: &Simulator, env: &HashMap<String, String>, cwd: &Path) -> Finished {
    let out = run_with_stdin(&["auth", "import", "--stdin"], env, cwd, &import_lines(sim)).await;
    assert_eq!(out.code, Some(0), "import failed: {}", out.stderr);
    out
}

/// A running `wxcc auth login`, stopped once it printed the authorize URL.
struct Login {
    child: Child,
    url: Url,
    stderr: JoinHandle<String>,
    stdout: JoinHandle<String>,
}

async fn start_login(args: &[&str], env: &HashMap<String, String>, cwd: &Path) -> Login {
    let mut child = spawn(args, env, cwd);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("login prints the URL in time")
            .unwrap()
            .unwrap_or_else(|| panic!("login ended before printing a URL:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(at) = line.find("http")
            && line.contains("/v1/authorize?")
        {
            break Url::parse(line[at..].trim()).unwrap();
        }
    };
    let stderr = tokio::spawn(async move {
        let mut rest = seen;
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    let mut out = child.stdout.take().unwrap();
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    Login {
        child,
        url,
        stderr,
        stdout,
    }
}

impl Login {
    fn param(&self, name: &str) -> String {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{name} in {}", self.url))
    }

    async fn paste(&mut self, line: &str) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
    }

    async fn finish(mut self) -> Finished {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("login finishes")
            .unwrap();
        Finished {
            code: status.code(),
            stdout: self.stdout.await.unwrap(),
            stderr: self.stderr.await.unwrap(),
        }
    }
}

/// Where the simulator's authorize endpoint sends the browser (no redirect followed).
async fn authorize_location(url: &Url) -> Url {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(url.clone()).send().await.unwrap();
    assert_eq!(
        resp.status(),
        302,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The only store in `dir`, read through the library with `key`.
fn stored(dir: &Path, key: Option<&str>) -> (TokenStore, StoredTokens) {
    let key = key.map(|k| StoreKey::from_base64(k).unwrap());
    let store = TokenStore::find(dir, key, None, None)
        .unwrap()
        .expect("a store");
    let s = store.read().unwrap().expect("tokens");
    (store, s)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_login_catches_the_redirect_and_stores_tokens_privately() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("cfg").join("tokens");
    let env = with(
        store_env(&sim, &tokens),
        &[("WXCC_REDIRECT_URI", "http://127.0.0.1:0/callback")],
    );
    let login = start_login(&["auth", "login"], &env, dir.path()).await;
    assert_eq!(login.param("scope"), "cjp:config_read");
    assert_eq!(login.param("code_challenge_method"), "S256");
    assert_eq!(login.param("response_type"), "code");
    assert!(login.param("redirect_uri").starts_with("http://127.0.0.1:"));
    assert!(
        !login
            .param("redirect_uri")
            .starts_with("http://127.0.0.1:0/")
    );
    // The "browser": follows the simulator's 302 to the listener.
    let page = reqwest::get(login.url.clone()).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("close this tab"));
    let out = login.finish().await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let org = &sim.credentials().org_id;
    assert!(out.stdout.contains(org.as_str()), "{}", out.stdout);
    assert!(out.stdout.contains("cjp:config_read"), "{}", out.stdout);
    assert!(out.stdout.contains("refresh token:  20"), "{}", out.stdout);

    let (store, s) = stored(&tokens, None);
    assert_eq!(s.org_id.as_deref(), Some(org.as_str()));
    assert!(s.tokens.refresh_token.is_some() && s.client_secret.is_none());
    #[cfg(unix)]
    {
        assert_eq!(mode(&tokens), 0o700);
        assert_eq!(mode(store.path()), 0o600);
    }
    let status = wxcc(&["auth", "status"], &env, dir.path()).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pasting_the_redirect_url_completes_a_login() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = with(
        store_env(&sim, &dir.path().join("t")),
        &[("WXCC_REDIRECT_URI", PASTE_REDIRECT)],
    );
    let mut login = start_login(&["auth", "login"], &env, dir.path()).await;
    let location = authorize_location(&login.url).await;
    assert!(location.as_str().starts_with(PASTE_REDIRECT));
    login.paste(location.as_str()).await;
    let out = login.finish().await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("Paste"), "{}", out.stderr);
    assert_eq!(json_files(&dir.path().join("t")).len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_with_another_state_is_rejected_and_nothing_is_stored() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");

    // Pasted: a genuine code, but the state of another login.
    let env = with(
        store_env(&sim, &tokens),
        &[("WXCC_REDIRECT_URI", PASTE_REDIRECT)],
    );
    let mut login = start_login(&["auth", "login"], &env, dir.path()).await;
    let location = authorize_location(&login.url).await;
    let forged: Vec<(String, String)> = location
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "someone-elses".into()
            } else {
                v
            };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    let mut forged_url = location.clone();
    forged_url.query_pairs_mut().clear().extend_pairs(forged);
    login.paste(forged_url.as_str()).await;
    let out = login.finish().await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("state does not match"),
        "{}",
        out.stderr
    );

    assert!(json_files(&tokens).is_empty(), "nothing stored");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_loopback_callback_is_answered_and_ignored_until_the_real_one() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = with(
        store_env(&sim, &tokens),
        &[("WXCC_REDIRECT_URI", "http://127.0.0.1:0/callback")],
    );
    let login = start_login(&["auth", "login"], &env, dir.path()).await;
    let redirect = login.param("redirect_uri");
    for forged in [
        "code=abc&state=wrong",
        "error=access_denied&state=x",
        "code=abc",
    ] {
        let resp = reqwest::get(format!("{redirect}?{forged}")).await.unwrap();
        assert_eq!(resp.status(), 400, "{forged}");
    }
    assert!(json_files(&tokens).is_empty(), "nothing stored yet");
    // The real browser redirect still completes the login.
    let page = reqwest::get(login.url.clone()).await.unwrap();
    assert_eq!(page.status(), 200);
    let out = login.finish().await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(json_files(&tokens).len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_validates_with_a_refresh_grant_before_storing() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let mut env = store_env(&sim, &tokens);
    env.remove("WXCC_CLIENT_ID");
    env.remove("WXCC_CLIENT_SECRET");

    let bad = import_lines(&sim).replace(&sim.credentials().refresh_token, "revoked_P0A1_x");
    let out = run_with_stdin(&["auth", "import", "--stdin"], &env, dir.path(), &bad).await;
    assert_eq!(out.code, Some(REAUTHORIZE), "{}", out.stderr);
    assert!(json_files(&tokens).is_empty());

    // A token for another org than the one named is refused before any grant is asked for.
    let grants = sim.stats().token_grants;
    let other_org = import_lines(&sim).replace(
        &format!("WXCC_ORG_ID={}", sim.credentials().org_id),
        "WXCC_ORG_ID=00000000-0000-4000-8000-000000000009",
    );
    let out = run_with_stdin(&["auth", "import", "--stdin"], &env, dir.path(), &other_org).await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("00000000-0000-4000-8000-000000000009"),
        "{}",
        out.stderr
    );
    assert_eq!(sim.stats().token_grants, grants, "no grant spent");
    assert!(json_files(&tokens).is_empty());

    // The client secret is only ever stored encrypted.
    let out = run_with_stdin(
        &["auth", "import", "--stdin", "--store-client-secret"],
        &env,
        dir.path(),
        &import_lines(&sim),
    )
    .await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("WXCC_TOKEN_KEY"), "{}", out.stderr);
    assert!(json_files(&tokens).is_empty());
    env.insert("WXCC_TOKEN_KEY".into(), KEY_A.into());

    let grants = sim.stats().token_grants;
    let out = run_with_stdin(
        &["auth", "import", "--stdin", "--store-client-secret"],
        &env,
        dir.path(),
        &import_lines(&sim),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        sim.stats().token_grants,
        grants + 1,
        "validated by one grant"
    );
    let (_, s) = stored(&tokens, Some(KEY_A));
    assert_eq!(
        s.tokens.refresh_token.unwrap().expose_secret(),
        sim.credentials().refresh_token
    );
    let access = s.tokens.access_token.unwrap();
    assert_ne!(
        access.expose_secret(),
        "old-access",
        "replaced by the grant"
    );
    assert!(s.client_secret.is_some());
    // With the secret stored, a run needs nothing but the token directory.
    let status = wxcc(&["auth", "refresh"], &env, dir.path()).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_codes_tell_a_scheduler_what_to_do() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    let status = |args: &'static [&'static str]| {
        let env = env.clone();
        let cwd = dir.path().to_owned();
        async move { wxcc(args, &env, &cwd).await }
    };
    let none = status(&["auth", "status"]).await;
    assert_eq!(none.status.code(), Some(REAUTHORIZE));
    assert!(text(&none.stdout).contains("wxcc auth login"));

    import(&sim, &env, dir.path()).await;
    let ok = status(&["auth", "status"]).await;
    let shown = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{shown}");
    assert!(shown.contains(&sim.credentials().org_id), "{shown}");
    assert!(shown.contains("encrypted:      no"), "{shown}");
    // The simulator's refresh tokens live 90 days.
    let soon = status(&["auth", "status", "--warn-days", "100"]).await;
    assert_eq!(
        soon.status.code(),
        Some(REFRESH_EXPIRING),
        "{}",
        text(&soon.stdout)
    );

    // An expired refresh token needs a new login.
    let (store, mut s) = stored(&tokens, None);
    s.tokens.refresh_expires_at = Some(chrono::Utc::now() - chrono::Duration::minutes(1));
    let lock = store.lock_blocking().unwrap();
    store.write(&lock, &mut s).unwrap();
    drop(lock);
    let expired = status(&["auth", "status"]).await;
    assert_eq!(expired.status.code(), Some(REAUTHORIZE));
    assert!(text(&expired.stdout).contains("expired"));

    let out = status(&["auth", "logout"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(json_files(&tokens).is_empty());
    assert_eq!(
        status(&["auth", "status"]).await.status.code(),
        Some(REAUTHORIZE)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_asks_for_a_new_login_with_exit_3() {
    let sim = start_sim(SimConfig {
        access_token_ttl: Duration::from_secs(1),
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;
    sim.revoke_refresh_token(&sim.credentials().refresh_token);
    let before = std::fs::read(&json_files(&tokens)[0]).unwrap();

    let out = wxcc(&["auth", "refresh"], &env, dir.path()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(REAUTHORIZE), "{stderr}");
    assert!(stderr.contains("wxcc auth login"), "{stderr}");

    tokio::time::sleep(Duration::from_millis(1200)).await; // the stored access token expires
    let start = small_world().start.to_string();
    let out = wxcc(
        &[
            "sync",
            "--from",
            &start,
            "--to",
            &small_world().start.succ_opt().unwrap().to_string(),
            "--output",
            dir.path().join("lake").to_str().unwrap(),
        ],
        &env,
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(REAUTHORIZE), "{stderr}");
    assert!(stderr.contains("wxcc auth login"), "{stderr}");
    assert_eq!(
        std::fs::read(&json_files(&tokens)[0]).unwrap(),
        before,
        "the store is kept as it was"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_inside_its_refresh_margin_is_refreshed_before_the_api_sees_it() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;
    // A token the API would reject, stored as valid for 30 s more of a 12 h lifetime.
    let (store, mut s) = stored(&tokens, None);
    s.tokens.access_token = Some(SecretString::from("stale-but-unexpired"));
    s.tokens.expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    s.tokens.lifetime = Some(Duration::from_secs(43_200));
    let lock = store.lock_blocking().unwrap();
    store.write(&lock, &mut s).unwrap();
    drop(lock);

    let start = small_world().start;
    let out = wxcc(
        &[
            "sync",
            "--from",
            &start.to_string(),
            "--to",
            &start.succ_opt().unwrap().to_string(),
            "--output",
            dir.path().join("lake").to_str().unwrap(),
        ],
        &env,
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["token_refreshes"], 1, "{summary}");
    assert_eq!(summary["api"]["unauthorized"], 0, "{summary}");
    let (_, after) = stored(&tokens, None);
    assert!(after.generation > s.generation);
    assert_ne!(
        after.tokens.access_token.unwrap().expose_secret(),
        "stale-but-unexpired"
    );
    sim.shutdown().await;
}

/// Every value that must never be printed, plus markers that any simulator token or signed URL
/// contains.
fn secrets(sim: &Simulator, tokens: &Path) -> Vec<String> {
    let c = sim.credentials();
    let mut out = vec![
        c.client_secret.clone(),
        c.refresh_token.clone(),
        "_P0A1_".into(),
        "X-Amz-Signature".into(),
    ];
    let (_, s) = stored(tokens, None);
    out.extend(s.tokens.access_token.map(|t| t.expose_secret().to_owned()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_sync_with_two_second_tokens_refreshes_persists_and_prints_no_secret_at_trace() {
    let world = SimConfig {
        days: 4,
        calls_per_day: 40,
        access_token_ttl: Duration::from_secs(2),
        ..small_world()
    };
    let sim = start_sim(world.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = with(store_env(&sim, &tokens), &[("RUST_LOG", "trace")]);
    let imported = import(&sim, &env, dir.path()).await;
    let (_, before) = stored(&tokens, None);
    let started = std::time::Instant::now();
    let out = wxcc(
        &[
            "sync",
            "--from",
            &world.start.to_string(),
            "--to",
            &(world.start + chrono::Duration::days(4)).to_string(),
            "--output",
            dir.path().join("lake").to_str().unwrap(),
            "-vv",
        ],
        &env,
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary["tasks"], sim.world().tasks().len(), "{summary}");
    assert!(
        summary["api"]["unauthorized"].as_u64().unwrap() >= 1,
        "the run outlived its tokens ({elapsed:?}): {summary}"
    );
    let (_, after) = stored(&tokens, None);
    assert!(
        after.generation >= before.generation + summary["token_refreshes"].as_u64().unwrap(),
        "every refresh was persisted"
    );
    assert!(stderr.len() > 10_000, "trace logging was on");
    for secret in secrets(&sim, &tokens) {
        for (name, shown) in [
            ("sync stdout", &stdout),
            ("sync stderr", &stderr),
            ("import stdout", &imported.stdout),
            ("import stderr", &imported.stderr),
        ] {
            assert!(
                !shown.contains(&secret),
                "a secret ({} chars, starting {:?}) appears in {name}",
                secret.len(),
                &secret[..4.min(secret.len())]
            );
        }
    }
    sim.shutdown().await;
}

/// `wxcc sync` over the small world's first `days` days, into `dir`/lake.
async fn sync_days(days: i64, env: &HashMap<String, String>, dir: &Path) -> std::process::Output {
    let start = small_world().start;
    wxcc(
        &[
            "sync",
            "--from",
            &start.to_string(),
            "--to",
            &(start + chrono::Duration::days(days)).to_string(),
            "--output",
            dir.join("lake").to_str().unwrap(),
        ],
        env,
        dir,
    )
    .await
}

fn summary_of(out: &std::process::Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_default()
}

/// REFERENCE.md §1.4's other reading: a server that answers every refresh with a new refresh
/// token and refuses the old one from then on. Import, syncs that outlive their access tokens
/// and `auth refresh` each keep the newest one, so no run ever needs a new login; tokens given
/// in the environment cannot be kept, and the run says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_rotates_refresh_tokens_is_followed_from_run_to_run() {
    let sim = start_sim(SimConfig {
        access_token_ttl: Duration::from_secs(2),
        refresh_tokens: RefreshTokens::Rotate,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;
    let seeded = sim.credentials().refresh_token.clone();
    let current = || {
        let (_, s) = stored(&tokens, None);
        s.tokens.refresh_token.unwrap().expose_secret().to_owned()
    };
    let mut last = current();
    assert_ne!(
        last, seeded,
        "import keeps what its validating grant returned"
    );

    for days in [1, 2] {
        tokio::time::sleep(Duration::from_millis(2100)).await; // the access token expires
        let out = sync_days(days, &env, dir.path()).await;
        let summary = summary_of(&out);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            summary["token_refreshes"].as_u64().unwrap() >= 1,
            "{summary}"
        );
        assert!(summary["refresh_token_expires_at"].is_string(), "{summary}");
        let now = current();
        assert_ne!(now, last, "the rotated token was stored");
        last = now;
    }
    let out = wxcc(&["auth", "refresh"], &env, dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_ne!(current(), last);
    assert_eq!(
        wxcc(&["auth", "status"], &env, dir.path())
            .await
            .status
            .code(),
        Some(0)
    );

    // The server really rotates: the first token is refused.
    let mut given = crate::util::sim_env(&sim);
    given.insert("WXCC_REFRESH_TOKEN".into(), seeded);
    let out = sync_days(1, &given, dir.path()).await;
    assert_eq!(
        out.status.code(),
        Some(REAUTHORIZE),
        "{}",
        text(&out.stderr)
    );

    // Given in the environment, the newest token works once and the run warns that the one it
    // got back is not kept anywhere.
    given.insert("WXCC_REFRESH_TOKEN".into(), current());
    let out = sync_days(1, &given, dir.path()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("new refresh token"), "{stderr}");
    assert!(stderr.contains("wxcc auth import"), "{stderr}");
    sim.shutdown().await;
}

/// The third reading of REFERENCE.md §1.4: a refresh token whose lifetime is never extended,
/// however often it is used. Every run says when it runs out (summary, and a warning within 14
/// days); after that, a run stops with exit code 3 and the store is kept as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_that_is_never_extended_is_announced_then_asks_for_a_login() {
    let lifetime = Duration::from_secs(30);
    let sim = start_sim(SimConfig {
        access_token_ttl: Duration::from_secs(2),
        refresh_token_ttl: lifetime,
        refresh_tokens: RefreshTokens::NeverReset,
        ..small_world()
    })
    .await;
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let out = sync_days(1, &env, dir.path()).await;
    let (summary, stderr) = (summary_of(&out), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(summary["refresh_token_expires_at"].is_string(), "{summary}");
    assert!(stderr.contains("refresh token expires soon"), "{stderr}");

    tokio::time::sleep(lifetime.saturating_sub(started.elapsed()) + Duration::from_millis(500))
        .await;
    let before = std::fs::read(&json_files(&tokens)[0]).unwrap();
    let out = sync_days(1, &env, dir.path()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(REAUTHORIZE), "{stderr}");
    assert!(stderr.contains("wxcc auth login"), "{stderr}");
    assert_eq!(std::fs::read(&json_files(&tokens)[0]).unwrap(), before);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refreshing_at_once_take_turns_and_keep_a_working_token() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;

    // While another process holds the store lock, a refresh waits for it.
    let (store, _) = stored(&tokens, None);
    let held = store.lock_blocking().unwrap();
    let mut waiting = spawn(&["auth", "refresh"], &env, dir.path());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "refresh went ahead while the store was locked"
    );
    drop(held);
    let status = tokio::time::timeout(Duration::from_secs(30), waiting.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    // Two at once: both succeed and the store still works afterwards.
    let (a, b) = tokio::join!(
        wxcc(&["auth", "refresh"], &env, dir.path()),
        wxcc(&["auth", "refresh"], &env, dir.path())
    );
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let (_, s) = stored(&tokens, None);
    assert_eq!(
        s.tokens.refresh_token.unwrap().expose_secret(),
        sim.credentials().refresh_token
    );
    assert!(s.tokens.access_token.is_some());
    let status = wxcc(&["auth", "status"], &env, dir.path()).await;
    assert_eq!(status.status.code(), Some(0));
    assert_eq!(json_files(&tokens).len(), 1, "no stray temporary files");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_on_one_store_refresh_once_between_them() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = store_env(&sim, &tokens);
    import(&sim, &env, dir.path()).await;
    let (store, mut s) = stored(&tokens, None);
    s.tokens = TokenSet {
        access_token: None,
        ..s.tokens
    };
    let lock = store.lock_blocking().unwrap();
    store.write(&lock, &mut s).unwrap();
    drop(lock);

    let values = Overrides::from_env(&env);
    let cfg = AuthConfig::resolve(&values).unwrap();
    let provider = || {
        TokenProvider::from_auth_config(&cfg, net::api_http_client(), RetryPolicy::default())
            .unwrap()
    };
    let (one, two) = (provider(), provider());
    assert_eq!(one.store_path(), Some(store.path()));
    let grants = sim.stats().token_grants;
    let (a, b) = tokio::join!(one.access_token(), two.access_token());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.expose_secret(), b.expose_secret());
    assert_eq!(
        sim.stats().token_grants,
        grants + 1,
        "one refresh between them"
    );
    assert_eq!(one.refresh_count() + two.refresh_count(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_store_round_trips_and_a_wrong_key_is_a_clear_error() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("t");
    let env = with(store_env(&sim, &tokens), &[("WXCC_TOKEN_KEY", KEY_A)]);
    import(&sim, &env, dir.path()).await;
    let file = json_files(&tokens).remove(0);
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(!on_disk.contains("_P0A1_"), "tokens are sealed");
    let (_, s) = stored(&tokens, Some(KEY_A));
    assert!(s.tokens.refresh_token.is_some());

    let ok = wxcc(&["auth", "status"], &env, dir.path()).await;
    assert_eq!(ok.status.code(), Some(0));
    assert!(text(&ok.stdout).contains("encrypted:      yes"));
    let refreshed = wxcc(&["auth", "refresh"], &env, dir.path()).await;
    assert_eq!(
        refreshed.status.code(),
        Some(0),
        "{}",
        text(&refreshed.stderr)
    );

    // A key in a file works the same.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY_A}\n")).unwrap();
    let mut by_file = env.clone();
    by_file.remove("WXCC_TOKEN_KEY");
    by_file.insert(
        "WXCC_TOKEN_KEY_FILE".into(),
        key_file.to_str().unwrap().into(),
    );
    assert_eq!(
        wxcc(&["auth", "status"], &by_file, dir.path())
            .await
            .status
            .code(),
        Some(0)
    );

    let before = std::fs::read(&file).unwrap();
    let wrong = with(env.clone(), &[("WXCC_TOKEN_KEY", KEY_B)]);
    for args in [
        &["auth", "status"][..],
        &["auth", "refresh"],
        &["auth", "import", "--stdin"],
    ] {
        let out = run_with_stdin(args, &wrong, dir.path(), &import_lines(&sim)).await;
        assert_eq!(out.code, Some(USAGE), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot decrypt token store")
                && out.stderr.contains("wrong WXCC_TOKEN_KEY?"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"));
    }
    let mut no_key = env.clone();
    no_key.remove("WXCC_TOKEN_KEY");
    let out = wxcc(&["auth", "status"], &no_key, dir.path()).await;
    assert_eq!(out.status.code(), Some(USAGE));
    assert!(text(&out.stderr).contains("is encrypted: set WXCC_TOKEN_KEY"));
    assert_eq!(std::fs::read(&file).unwrap(), before, "never overwritten");
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_url_prints_the_authorize_url_and_warns_about_scopes_wxcc_does_not_need() {
    let dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = HashMap::from([("WXCC_CLIENT_ID".into(), "Cabc".into())]);
    let out = wxcc(
        &[
            "auth",
            "url",
            "--scopes",
            "cjp:config_read spark:kms,cjp:config_write",
        ],
        &env,
        dir.path(),
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let url = Url::parse(stdout.trim()).unwrap();
    assert!(
        url.as_str()
            .starts_with("https://webexapis.com/v1/authorize?")
    );
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "cjp:config_read spark:kms cjp:config_write");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:8765/callback");
    assert_eq!(q["client_id"], "Cabc");
    assert!(!q["state"].is_empty() && q["code_challenge_method"] == "S256");
    assert!(
        stderr.contains("spark:kms does not apply")
            && stderr.contains("cjp:config_write allows changes"),
        "{stderr}"
    );
    // Without a client id there is nothing to authorize: a usage error.
    let out = wxcc(&["auth", "url"], &HashMap::new(), dir.path()).await;
    assert_eq!(out.status.code(), Some(USAGE));
    assert!(text(&out.stderr).contains("WXCC_CLIENT_ID"));
}
