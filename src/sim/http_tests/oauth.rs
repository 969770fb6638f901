//! OAuth: authorize redirects, code and refresh grants, token errors.

use super::*;

#[tokio::test]
async fn refresh_grant_accepts_form_json_and_basic_auth_and_keeps_the_refresh_token() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let form = refresh(&sim, &http).await;
    assert_eq!(form["token_type"], "Bearer");
    assert_eq!(form["expires_in"], 1_209_599);
    assert_eq!(form["refresh_token"], c.refresh_token.as_str());
    assert_eq!(form["scope"], "cjp:config cjp:config_read");
    let access = form["access_token"].as_str().expect("access token");
    assert!(access.ends_with(&format!("_P0A1_{}", c.org_id)));
    let url = format!("{}/v1/access_token", sim.base_url());
    let json_body: Value = http
        .post(&url)
        .json(&json!({"grant_type": "refresh_token", "client_id": c.client_id, "client_secret": c.client_secret, "refresh_token": c.refresh_token}))
        .send()
        .await
        .expect("json refresh")
        .json()
        .await
        .expect("json body");
    assert_eq!(
        json_body["access_token"], access,
        "same access token within 24 h"
    );
    let basic = http
        .post(&url)
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("basic refresh");
    assert_eq!(basic.status(), StatusCode::OK);
    assert_eq!(sim.stats().token_grants, 3);
}

#[tokio::test]
async fn bad_or_revoked_refresh_token_is_400_invalid_grant() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let url = format!("{}/v1/access_token", sim.base_url());
    let send = |token: String| {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", c.client_id.clone()),
            ("client_secret", c.client_secret.clone()),
            ("refresh_token", token),
        ];
        http.post(&url).form(&form).send()
    };
    let resp = send("garbage_P0A1_x".into()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "The refresh token provided is expired, revoked, malformed, or invalid."
    );
    assert!(
        body["trackingId"]
            .as_str()
            .is_some_and(|t| t.starts_with("ROUTER_"))
    );
    sim.revoke_refresh_token(&c.refresh_token);
    let resp = send(c.refresh_token.clone()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let wrong_secret = http
        .post(&url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", "x"),
            ("refresh_token", "y"),
        ])
        .send()
        .await
        .expect("request");
    let body: Value = wrong_secret.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_issues_tokens_once() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let verifier = "v".repeat(20) + "erifier-0123456789-abcdefghijklmnop";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:8123/callback";
    let resp = http
        .get(authorize_url(
            &sim,
            redirect,
            "cjp:config_read cjp:config",
            Some(&challenge),
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(params["state"], "st-123");
    let code = params["code"].clone();
    let redeem = |verifier: &str, code: &str| {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("client_id", c.client_id.clone()),
            ("client_secret", c.client_secret.clone()),
            ("code", code.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        http.post(format!("{}/v1/access_token", sim.base_url()))
            .form(&form)
            .send()
    };
    let ok = redeem(&verifier, &code).await.expect("redeem");
    assert_eq!(ok.status(), StatusCode::OK);
    let tokens: Value = ok.json().await.expect("tokens");
    assert_eq!(tokens["scope"], "cjp:config_read cjp:config");
    assert_eq!(tokens["refresh_token_expires_in"], 7_776_000);
    let again = redeem(&verifier, &code).await.expect("reuse");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.expect("error")["error"],
        "invalid_grant"
    );
    let resp = http
        .get(authorize_url(
            &sim,
            redirect,
            "cjp:config",
            Some(&challenge),
        ))
        .send()
        .await
        .expect("authorize");
    let code = location_params(&resp)["code"].clone();
    let wrong = redeem("not-the-verifier-but-long-enough-to-look-right-xx", &code)
        .await
        .expect("redeem");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn authorize_reports_bad_scope_by_redirect_and_never_redirects_to_unknown_uris() {
    let sim = start(small()).await;
    let http = client();
    let resp = http
        .get(authorize_url(
            &sim,
            "http://localhost:9/cb",
            "cjp:config spark-admin:recordings_read",
            None,
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(params["error"], "invalid_scope");
    assert_eq!(params["state"], "st-123");
    assert!(!params.contains_key("code"));
    let resp = http
        .get(authorize_url(
            &sim,
            "https://evil.example/cb",
            "cjp:config",
            None,
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(reqwest::header::LOCATION).is_none());
}
