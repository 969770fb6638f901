//! `wxcc check`: passes against the simulator, and each kind of broken deployment fails on its
//! own line with the documented exit code.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use wxcc::sim::SimConfig;

use crate::util::{sim_env, small_world, start_sim, text, wxcc};

const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const REAUTHORIZE: i32 = 3;

/// Runs `wxcc check --output <dir>/out` and returns (exit code, stdout).
async fn check(env: &HashMap<String, String>, cwd: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out_dir = cwd.join("out");
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    if !extra.contains(&"--output") {
        args.extend(["--output", out_dir.to_str().unwrap()]);
    }
    let out = wxcc(&args, env, cwd).await;
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(&env["WXCC_CLIENT_SECRET"])
            && !stdout.contains(&env["WXCC_REFRESH_TOKEN"]),
        "no secret in the report"
    );
    (out.status.code(), format!("{stdout}{}", text(&out.stderr)))
}

/// The line of check `name`, e.g. `FAIL store    …`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{name:<8} ")))
        })
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
}

fn failed(out: &str, name: &str) -> bool {
    line(out, name).starts_with("FAIL ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_against_the_simulator_and_leaves_nothing_behind() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let env = sim_env(&sim);
    let (code, out) = check(&env, dir.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    for name in [
        "config", "token", "scopes", "api", "clock", "store", "scratch",
    ] {
        assert!(line(&out, name).starts_with("ok   "), "{out}");
    }
    assert!(
        line(&out, "clock").contains("Date"),
        "the simulator sends a Date header: {out}"
    );
    assert!(
        crate::util::files(&dir.path().join("out")).is_empty(),
        "the probe objects are deleted"
    );

    let (code, out) = check(&env, dir.path(), &["--json"]).await;
    assert_eq!(code, Some(0), "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["exit_code"], 0);
    let checks = json["orgs"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7);
    assert!(checks.iter().all(|c| c["status"] == "pass"), "{json}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_that_does_not_parse_fails_the_config_line_with_exit_2() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("wxcc.toml");
    std::fs::write(&bad, "output = [unclosed\n").unwrap();
    let (code, out) = check(
        &sim_env(&sim),
        dir.path(),
        &["--config", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(USAGE), "{out}");
    assert!(failed(&out, "config"), "{out}");

    let (code, out) = check(
        &sim_env(&sim),
        dir.path(),
        &["--config", bad.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(code, Some(USAGE), "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(json["orgs"][0]["checks"][0]["class"], "config");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_fails_the_token_line_with_exit_3() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    sim.revoke_refresh_token(&sim.credentials().refresh_token);
    let (code, out) = check(&sim_env(&sim), dir.path(), &[]).await;
    assert_eq!(code, Some(REAUTHORIZE), "{out}");
    assert!(failed(&out, "token"), "{out}");
    assert!(line(&out, "token").contains("wxcc auth login"), "{out}");
    assert!(line(&out, "api").starts_with("skip "), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_near_its_expiry_fails_the_token_line_with_exit_3() {
    let sim = start_sim(SimConfig {
        refresh_token_ttl: Duration::from_secs(2 * 24 * 3600),
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(&sim_env(&sim), dir.path(), &["--warn-days", "3"]).await;
    assert_eq!(code, Some(REAUTHORIZE), "{out}");
    assert!(line(&out, "token").contains("expires"), "{out}");
    let (code, out) = check(&sim_env(&sim), dir.path(), &["--warn-days", "1"]).await;
    assert_eq!(code, Some(0), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_without_cjp_config_read_fails_the_scopes_line_with_exit_3() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    let refresh = grant_with_scope(&sim.base_url(), &env, "cjp:config").await;
    env.insert("WXCC_REFRESH_TOKEN".into(), refresh);
    let (code, out) = check(&env, dir.path(), &[]).await;
    assert_eq!(code, Some(REAUTHORIZE), "{out}");
    assert!(failed(&out, "scopes"), "{out}");
    assert!(line(&out, "scopes").contains("cjp:config_read"), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_fails_the_api_line_with_exit_1() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut env = sim_env(&sim);
    env.insert(
        "WXCC_API_BASE_URL".into(),
        format!("http://127.0.0.1:{closed}"),
    );
    let (code, out) = check(&env, dir.path(), &[]).await;
    assert_eq!(code, Some(FAILURE), "{out}");
    assert!(failed(&out, "api"), "{out}");
    assert!(line(&out, "token").starts_with("ok "), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_fails_the_store_line_with_exit_1() {
    // Tests run as root, which ignores permission bits: a folder below a regular file cannot be
    // created by anyone.
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out_dir = file.join("lake");
    let (code, out) = check(
        &sim_env(&sim),
        dir.path(),
        &["--output", out_dir.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(FAILURE), "{out}");
    assert!(failed(&out, "store"), "{out}");
    assert!(line(&out, "api").starts_with("ok "), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_with_less_free_space_than_wanted_fails_the_scratch_line_with_exit_1() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut env = sim_env(&sim);
    env.insert("WXCC_SCRATCH_DIR".into(), scratch.display().to_string());
    // More than any disk here has: a full scratch disk without filling one.
    env.insert("WXCC_CHECK_SCRATCH_MIB".into(), (1u64 << 40).to_string());
    let (code, out) = check(&env, dir.path(), &[]).await;
    assert_eq!(code, Some(FAILURE), "{out}");
    assert!(failed(&out, "scratch"), "{out}");
    assert!(
        line(&out, "scratch").contains(scratch.to_str().unwrap()),
        "{out}"
    );
    sim.shutdown().await;
}

/// A refresh token granted only `scope`, through the simulator's authorization-code flow.
async fn grant_with_scope(base: &str, env: &HashMap<String, String>, scope: &str) -> String {
    let redirect = "http://127.0.0.1:9/callback";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{base}/v1/authorize"))
        .query(&[
            ("client_id", env["WXCC_CLIENT_ID"].as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("client_id", &env["WXCC_CLIENT_ID"])
        .append_pair("client_secret", &env["WXCC_CLIENT_SECRET"])
        .append_pair("code", &code)
        .append_pair("redirect_uri", redirect)
        .finish();
    let token: serde_json::Value = http
        .post(format!("{base}/v1/access_token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["scope"], scope, "{token}");
    token["refresh_token"].as_str().unwrap().to_owned()
}
