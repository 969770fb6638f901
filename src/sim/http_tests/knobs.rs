//! The switches for the UNCONFIRMED readings of the reference and the scripted faults.

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::world::RecordingKind;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("instant in range")
}

async fn tasks_json(sim: &Simulator, http: &Client, token: &str, query: &str) -> Value {
    let resp = get_tasks(sim, http, token, query).await;
    assert_eq!(resp.status(), StatusCode::OK, "{query}");
    resp.json().await.expect("tasks JSON")
}

fn data(body: &Value) -> Vec<Value> {
    body["data"].as_array().expect("data").clone()
}

/// Ids of the entries that are tasks (string `id`).
fn task_ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

/// The entry of recording `rec_id` in the captures of `task_id` at `now_ms`, if listed.
async fn listed_recording(
    sim: &Simulator,
    http: &Client,
    token: &str,
    task_id: &str,
    rec_id: &str,
    now_ms: i64,
) -> Option<Value> {
    sim.set_now(at(now_ms));
    let body: Value = captures(sim, http, token, json!({"query": {"taskIds": [task_id]}}))
        .await
        .json()
        .await
        .expect("captures JSON");
    body["data"][0]["recording"]
        .as_array()
        .expect("recordings")
        .iter()
        .find(|r| r["id"] == rec_id)
        .cloned()
}

/// Start of the first simulated day of [`small`], epoch ms.
fn first_day_ms() -> i64 {
    small()
        .start
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .timestamp_millis()
}

fn world_ids(sim: &Simulator) -> Vec<String> {
    sim.world().tasks().iter().map(|t| t.id.clone()).collect()
}

#[tokio::test]
async fn page_cap_limits_every_page_with_and_without_the_page_param() {
    for honour_page_param in [true, false] {
        let sim = start(SimConfig {
            page_cap: Some(5),
            honour_page_param,
            ..small()
        })
        .await;
        let http = client();
        let token = bearer(&sim, &http).await;
        let first = data(&tasks_json(&sim, &http, &token, "from=0&pageSize=1000").await);
        assert_eq!(task_ids(&first), world_ids(&sim)[..5].to_vec());
        let small_ask = data(&tasks_json(&sim, &http, &token, "from=0&pageSize=3").await);
        assert_eq!(small_ask.len(), 3, "a smaller pageSize still applies");
        let second = data(&tasks_json(&sim, &http, &token, "from=0&pageSize=1000&page=1").await);
        let want = if honour_page_param {
            world_ids(&sim)[5..10].to_vec()
        } else {
            task_ids(&first)
        };
        assert_eq!(task_ids(&second), want, "page k skips k × the cap");
    }
}

#[tokio::test]
async fn junk_takes_slots_of_full_pages_only_and_is_counted() {
    let sim = start(SimConfig {
        junk_per_full_page: 1,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let (mut ids, mut full_pages) = (Vec::new(), 0u64);
    for page in 0.. {
        let entries = data(
            &tasks_json(
                &sim,
                &http,
                &token,
                &format!("from=0&pageSize=7&page={page}"),
            )
            .await,
        );
        let junk: Vec<usize> = (0..entries.len())
            .filter(|&i| !entries[i]["id"].is_string())
            .collect();
        ids.extend(task_ids(&entries));
        if entries.len() < 7 {
            assert!(junk.is_empty(), "no junk on the last, short page");
            break;
        }
        full_pages += 1;
        assert_eq!(
            junk,
            vec![3],
            "one junk record in the middle of a full page"
        );
        assert!(entries[6]["id"].is_string(), "a full page ends with a task");
    }
    assert!(full_pages > 3);
    assert_eq!(
        ids,
        world_ids(&sim),
        "displaced tasks move to the next page"
    );
    assert_eq!(sim.stats().junk_records, full_pages);
    // A page that is not full has no junk even when the same request would be full otherwise.
    let last = sim.world().tasks()[4].created_ms + 1;
    let few = data(&tasks_json(&sim, &http, &token, &format!("from=0&to={last}&pageSize=7")).await);
    assert_eq!(task_ids(&few), world_ids(&sim)[..few.len()].to_vec());
    assert!(few.iter().all(|t| t["id"].is_string()));
}

#[tokio::test]
async fn a_range_over_max_range_ms_answers_400() {
    let sim = start(SimConfig {
        max_range_ms: Some(86_399_999),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let from = sim.world().tasks()[0].created_ms;
    let ok = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from={from}&to={}", from + 86_399_999),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let over = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from={from}&to={}", from + 86_400_000),
    )
    .await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    let body: Value = over.json().await.expect("error body");
    assert_eq!(body["error"]["key"], "400");
    assert!(body["trackingId"].is_string());
    // `to` defaults to now, far beyond a day after `from`.
    let open_ended = get_tasks(&sim, &http, &token, &format!("from={from}")).await;
    assert_eq!(open_ended.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failing_captures_fail_whole_batches_naming_them_until_lifted() {
    let cfg = SimConfig {
        failing_capture_tasks: 3,
        failing_capture_status: 422,
        ..small()
    };
    let sim = start(cfg.clone()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let failing = sim.failing_capture_task_ids();
    assert_eq!(failing.len(), 3);
    for id in &failing {
        let task = world.task(id).expect("a world task");
        assert_eq!(task.channel_type, "telephony");
        assert!(!world.recordings_for(id, false, false).is_empty());
    }
    let again = start(cfg).await;
    assert_eq!(
        again.failing_capture_task_ids(),
        failing,
        "picked from the seed"
    );
    again.shutdown().await;
    let healthy: Vec<String> = world
        .tasks()
        .iter()
        .map(|t| t.id.clone())
        .filter(|t| !failing.contains(t) && !world.recordings_for(t, false, false).is_empty())
        .take(4)
        .collect();
    let mixed = [healthy[0].clone(), failing[1].clone(), healthy[1].clone()];
    let resp = captures(&sim, &http, &token, json!({"query": {"taskIds": mixed}})).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.headers().contains_key("trackingid"));
    let body: Value = resp.json().await.expect("error body");
    assert_eq!(body["error"]["key"], "422");
    let ok = captures(&sim, &http, &token, json!({"query": {"taskIds": healthy}})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(sim.stats().scripted_failures, 1);
    sim.lift_faults();
    let body: Value = captures(&sim, &http, &token, json!({"query": {"taskIds": mixed}}))
        .await
        .json()
        .await
        .expect("captures JSON");
    assert!(
        !body["data"][1]["recording"]
            .as_array()
            .expect("recordings")
            .is_empty()
    );
    assert_eq!(sim.stats().scripted_failures, 1);
}

#[tokio::test]
async fn only_statuses_500_404_422_are_accepted_for_failing_captures() {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let bad = SimConfig {
        failing_capture_status: 418,
        ..small()
    };
    assert!(matches!(
        Simulator::start(bad, addr).await,
        Err(crate::sim::SimError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn tasks_overlapping_the_failing_window_answer_500_until_lifted() {
    let day = first_day_ms();
    let (ws, we) = (day + 10 * 3_600_000, day + 11 * 3_600_000);
    let sim = start(SimConfig {
        failing_tasks_window: Some((at(ws), at(we))),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let status = |q: String| {
        let (sim, http, token) = (&sim, &http, &token);
        async move { get_tasks(sim, http, token, &q).await.status() }
    };
    assert_eq!(
        status("from=0".into()).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        status(format!("from=0&to={ws}")).await,
        StatusCode::OK,
        "[from, to) is half-open"
    );
    assert_eq!(status(format!("from={we}")).await, StatusCode::OK);
    assert_eq!(
        status(format!("from={}&to={}", we - 1, we)).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let resp = get_tasks(&sim, &http, &token, &format!("from={ws}&to={}", ws + 1)).await;
    let body: Value = resp.json().await.expect("error body");
    assert_eq!(body["error"]["key"], "500");
    assert_eq!(sim.stats().scripted_failures, 3);
    sim.lift_faults();
    let all = tasks_json(&sim, &http, &token, "from=0&pageSize=1000").await;
    assert_eq!(task_ids(&data(&all)), world_ids(&sim));
}

#[tokio::test]
async fn lift_faults_stops_injected_errors_too() {
    let sim = start(SimConfig {
        error_rate: 1.0,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    assert!(
        get_tasks(&sim, &http, &token, "from=0")
            .await
            .status()
            .is_server_error()
    );
    sim.lift_faults();
    assert_eq!(
        get_tasks(&sim, &http, &token, "from=0").await.status(),
        StatusCode::OK
    );
    assert_eq!(sim.stats().injected_errors, 1);
}

#[tokio::test]
async fn a_late_capture_appears_without_any_change_to_its_task() {
    let sim = start(SimConfig {
        late_capture_per_mille: 1000,
        late_capture_hours: (3, 4),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let rec = world.recordings()[0].clone();
    let delay = rec.available_ms - rec.stop_ms;
    assert!((3 * 3_600_000..4 * 3_600_000).contains(&delay), "{delay}");
    let task = world.task(&rec.task_id).expect("task").clone();
    let query = format!("from={}&to={}", task.created_ms, task.created_ms + 1);
    sim.set_now(at(rec.available_ms - 1));
    let before = get_tasks(&sim, &http, &token, &query)
        .await
        .bytes()
        .await
        .expect("body");
    let (t, r) = (&task.id, &rec.id);
    let listed = listed_recording(&sim, &http, &token, t, r, rec.available_ms - 1).await;
    assert!(listed.is_none());
    let listed = listed_recording(&sim, &http, &token, t, r, rec.available_ms).await;
    assert!(listed.is_some());
    let after = get_tasks(&sim, &http, &token, &query)
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(
        before, after,
        "the task is untouched when its capture appears"
    );
}

#[tokio::test]
async fn an_open_call_is_listed_with_a_growing_stop_time_and_the_audio_so_far() {
    let sim = start(SimConfig {
        recordings_while_open: true,
        median_call_secs: 30,
        max_call_secs: 40,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let rec = world
        .all_recordings()
        .iter()
        .find(|r| r.kind == RecordingKind::Main && r.stop_ms - r.start_ms > 8_000)
        .expect("a call longer than 8 s")
        .clone();
    let task = world.task(&rec.task_id).expect("task").clone();
    let listed = |now_ms: i64| listed_recording(&sim, &http, &token, &task.id, &rec.id, now_ms);
    assert!(
        listed(rec.start_ms + 500).await.is_none(),
        "not before the call connects"
    );
    let final_wav = {
        let done = listed(rec.stop_ms).await.expect("listed at the end");
        assert_eq!(done["attributes"]["stopTime"], rec.stop_ms);
        let url = done["attributes"]["filePath"].as_str().expect("url");
        http.get(url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
    };
    assert_eq!(
        hex::encode(Sha256::digest(&final_wav)),
        world.wav_sha256(&rec)
    );
    let mut previous = 0;
    for so_far in [3_000, 6_000] {
        let now = rec.start_ms + so_far;
        let entry = listed(now).await.expect("listed while in progress");
        let one = format!("from={}&to={}", task.created_ms, task.created_ms + 1);
        let tasks = data(&tasks_json(&sim, &http, &token, &one).await);
        let open = tasks
            .iter()
            .find(|t| t["id"] == task.id.as_str())
            .expect("listed");
        assert_eq!(
            open["attributes"]["status"], "assigned",
            "the call is in progress"
        );
        assert_eq!(entry["attributes"]["stopTime"], now);
        let url = entry["attributes"]["filePath"].as_str().expect("url");
        let resp = http.get(url).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = resp.bytes().await.expect("body");
        assert!(bytes.len() > previous && bytes.len() < final_wav.len());
        previous = bytes.len();
        assert_eq!(bytes.len() as u64, 44 + so_far as u64 * 8 * 4);
        assert_eq!(
            bytes[44..],
            final_wav[44..bytes.len()],
            "a prefix of the final audio"
        );
        let wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("valid wav");
        assert_eq!(u64::from(wav.duration()), so_far as u64 * 8);
        let expected = world
            .recordings_as_of(at(now))
            .into_iter()
            .find(|r| r.id == rec.id)
            .expect("ground truth lists it");
        assert_eq!(expected.stop_ms, now);
        assert_eq!(
            world.wav_sha256(&expected),
            hex::encode(Sha256::digest(&bytes))
        );
    }
}
