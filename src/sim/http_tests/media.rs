//! Media: capture JSON shape, downloads, ranges, expiry, truncation.

use super::*;

#[tokio::test]
async fn recording_json_matches_the_sample_and_download_matches_world_sha() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../fixtures/captures-response.derived-concrete.json"
    ))
    .expect("fixture");
    let sample = &fixture["data"][0]["recording"][0];
    let world = sim.world().clone();
    let mut ids: Vec<&str> = world
        .recordings()
        .iter()
        .map(|r| r.task_id.as_str())
        .collect();
    ids.dedup();
    ids.truncate(5);
    let body: Value = captures(&sim, &http, &token, json!({"query": {"taskIds": ids}}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(key_types(&body["meta"]), key_types(&fixture["meta"]));
    let entries = body["data"].as_array().expect("data");
    assert_eq!(entries.len(), ids.len());
    for (entry, id) in entries.iter().zip(&ids) {
        assert_eq!(entry["taskId"], *id, "request order kept");
        for rec in entry["recording"].as_array().expect("recording") {
            assert_eq!(key_types(rec), key_types(sample));
        }
    }
    let (url, rec_id) = first_recording_url(&sim, &http, &token).await;
    assert!(url.contains("X-Amz-Signature="));
    let rec = world.recording(&rec_id).expect("recording");
    let resp = http.get(&url).send().await.expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[reqwest::header::CONTENT_TYPE], "audio/wav");
    assert_eq!(resp.content_length(), Some(world.wav_len(rec)));
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), world.wav_sha256(rec));
    let wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("wav");
    assert_eq!(wav.spec().channels, 2);
    let ranged = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=40-99")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    let expected_range = format!("bytes 40-99/{}", world.wav_len(rec));
    assert_eq!(
        ranged.headers()[reqwest::header::CONTENT_RANGE],
        expected_range.as_str()
    );
    assert_eq!(
        ranged.bytes().await.expect("range body"),
        bytes.slice(40..100)
    );
    let tail = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=100-")
        .send()
        .await
        .expect("range");
    assert_eq!(tail.bytes().await.expect("tail"), bytes.slice(100..));
    assert_eq!(sim.stats().downloads, 3);
}

/// A simulator of `cfg` with calls of 30–40 s, a client, and the first recording's URL and id.
async fn half_minute_call(cfg: SimConfig) -> (Simulator, Client, String, String) {
    let sim = start(SimConfig {
        median_call_secs: 30,
        max_call_secs: 40,
        ..cfg
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let (url, rec_id) = first_recording_url(&sim, &http, &token).await;
    (sim, http, url, rec_id)
}

#[tokio::test]
async fn downloads_can_be_held_to_a_bandwidth() {
    let (_sim, http, url, _) = half_minute_call(SimConfig {
        download_bytes_per_sec: Some(400_000),
        ..small()
    })
    .await;
    let began = std::time::Instant::now();
    let body = http
        .get(&url)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    let secs = began.elapsed().as_secs_f64();
    // The last chunk may leave as early as (len - chunk) / rate.
    let floor = (body.len() as f64 - 32.0 * 1024.0) / 400_000.0;
    assert!(
        body.len() > 200_000,
        "a call of some length: {}",
        body.len()
    );
    assert!(
        secs >= floor,
        "{} bytes in {secs:.2} s: faster than the cap",
        body.len()
    );
}

#[tokio::test]
async fn download_urls_expire_and_reject_tampering_with_403() {
    let sim = start(SimConfig {
        url_ttl: Some(Duration::from_secs(1)),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let (url, _) = first_recording_url(&sim, &http, &token).await;
    assert!(url.contains("X-Amz-Expires=1&"));
    let tampered = url.replace("X-Amz-Expires=1&", "X-Amz-Expires=9&");
    assert_eq!(
        http.get(&tampered).send().await.expect("get").status(),
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = http.get(&url).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let text = resp.text().await.expect("xml");
    assert!(
        text.contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"),
        "{text}"
    );
}

#[tokio::test]
async fn truncated_download_announces_full_length_and_ends_early() {
    let (sim, http, url, rec_id) = half_minute_call(SimConfig {
        truncate_rate: 1.0,
        ..small()
    })
    .await;
    let full = sim
        .world()
        .wav_len(sim.world().recording(&rec_id).expect("recording"));
    let resp = http.get(&url).send().await.expect("headers arrive");
    assert_eq!(resp.content_length(), Some(full));
    assert!(
        resp.bytes().await.is_err(),
        "body must fail before Content-Length is reached"
    );
    assert_eq!(sim.stats().truncated_downloads, 1);
}
