//! Task listing against scripted servers that misbehave the ways REFERENCE.md §3.2–3.3 leave
//! open (issue #11): pages capped below `pageSize`, junk on a full page, range limits, a span
//! that always fails, descending order. Each server is a few lines of axum on 127.0.0.1:0.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::mock_tests::{client, client_with, serve};
use super::{ApiClient, ApiError, ApiSettings, TaskListing};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_700_006_400_000; // a UTC midnight

/// One stored record: its time on the server side and what the server sends.
#[derive(Clone)]
struct Rec {
    time: i64,
    channel: &'static str,
    body: serde_json::Value,
}

fn task(id: impl Into<String>, time: i64, channel: &'static str) -> Rec {
    let id = id.into();
    Rec {
        time,
        channel,
        body: serde_json::json!({"id": id, "attributes": {"createdTime": time, "channelType": channel}}),
    }
}

/// `n` tasks spread over `[from, from + len)`, with a few sharing a millisecond.
fn spread(n: usize, from: i64, len: i64) -> Vec<Rec> {
    const CHANNELS: [&str; 3] = ["telephony", "chat", "email"];
    (0..n)
        .map(|i| {
            let time = from + (i as i64 / 3 * 3) * len / n as i64;
            task(format!("t{i:05}"), time, CHANNELS[i % 3])
        })
        .collect()
}

/// What the scripted server does; defaults answer like the documented API.
#[derive(Clone, Default)]
struct Script {
    records: Vec<Rec>,
    /// Most records per page, whatever `pageSize` asks (0: no cap beyond `pageSize`).
    cap: usize,
    descending: bool,
    /// 400 for a request with `to - from` above this.
    refuse_over: Option<i64>,
    /// Fail every request whose range would include this time, with this status.
    poison: Option<(i64, u16)>,
}

#[derive(Default)]
struct Log {
    /// `(from, to, status)` of every request.
    requests: Vec<(i64, i64, u16)>,
    params: HashSet<String>,
}

struct Mock {
    script: Script,
    log: Mutex<Log>,
}

async fn tasks(State(m): State<Arc<Mock>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = &m.script;
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (from, to) = (num("from").unwrap_or(0), num("to").unwrap_or(i64::MAX));
    let status = if s.refuse_over.is_some_and(|max| to - from > max) {
        400
    } else {
        match s.poison {
            Some((at, status)) if from < at && at < to => status,
            _ => 200,
        }
    };
    {
        let mut log = m.log.lock().unwrap();
        log.requests.push((from, to, status));
        log.params.extend(q.keys().cloned());
    }
    match status {
        200 => {}
        0 => return "{\"data\": [".into_response(),
        s => return (StatusCode::from_u16(s).unwrap(), "{}").into_response(),
    }
    let size = num("pageSize").unwrap_or(100) as usize;
    let size = if s.cap > 0 { size.min(s.cap) } else { size };
    let channel = q.get("channelTypes");
    let mut rows: Vec<&Rec> = s
        .records
        .iter()
        .filter(|r| r.time > from && r.time < to)
        .filter(|r| channel.is_none_or(|c| c == r.channel))
        .collect();
    rows.sort_by_key(|r| r.time);
    if s.descending {
        rows.reverse();
    }
    let data: Vec<_> = rows
        .into_iter()
        .take(size)
        .map(|r| r.body.clone())
        .collect();
    axum::Json(serde_json::json!({"meta": {"orgId": "o1"}, "data": data})).into_response()
}

async fn start(script: Script, tune: impl FnOnce(&mut ApiSettings)) -> (ApiClient, Arc<Mock>) {
    let mock = Arc::new(Mock {
        script,
        log: Mutex::default(),
    });
    let app = Router::new()
        .route("/v1/tasks", get(tasks))
        .with_state(mock.clone());
    (client_with(serve(app).await, tune), mock)
}

fn ids(listing: &TaskListing) -> Vec<String> {
    listing.tasks.iter().map(|t| t.id.clone()).collect()
}

/// Ids of the records whose time falls in `[from, to)` and outside `gaps`.
fn expected(records: &[Rec], from: i64, to: i64, listing: &TaskListing) -> Vec<String> {
    let mut out: Vec<(i64, String)> = records
        .iter()
        .filter(|r| r.time >= from && r.time < to)
        .filter(|r| {
            !listing
                .gaps
                .iter()
                .any(|g| r.time >= g.from_ms && r.time < g.to_ms)
        })
        .filter_map(|r| Some((r.time, r.body["id"].as_str()?.to_owned())))
        .collect();
    out.sort();
    out.into_iter().map(|(_, id)| id).collect()
}

fn assert_no_page_param(mock: &Mock) {
    let log = mock.log.lock().unwrap();
    assert!(!log.params.contains("page"), "{:?}", log.params);
    assert!(!log.params.contains("offset"), "{:?}", log.params);
}

#[tokio::test]
async fn a_server_capping_pages_below_page_size_still_lists_everything() {
    let records = spread(1080, T0, DAY);
    let script = Script {
        records: records.clone(),
        cap: 100,
        ..Script::default()
    };
    let (api, mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert_eq!(ids(&listing), expected(&records, T0, T0 + DAY, &listing));
    assert_eq!(listing.tasks.len(), 1080);
    assert!(listing.gaps.is_empty() && listing.rejects.is_empty());
    assert_eq!(listing.org_id.as_deref(), Some("o1"));
    assert_no_page_param(&mock);
}

#[tokio::test]
async fn one_junk_record_on_a_full_page_misses_nothing_and_is_quarantined_once() {
    let mut records = spread(1500, T0, DAY / 2);
    // Junk that still has a time, and junk that has none, both on the first full page.
    records[400].body = serde_json::json!({"attributes": {"createdTime": records[400].time}});
    records[999].body = serde_json::json!({"id": "", "attributes": {}});
    let script = Script {
        records: records.clone(),
        ..Script::default()
    };
    let (api, _mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY / 2).await.unwrap();
    let want: Vec<String> = expected(&records, T0, T0 + DAY / 2, &listing)
        .into_iter()
        .filter(|id| !id.is_empty())
        .collect();
    assert_eq!(ids(&listing), want);
    assert_eq!(listing.tasks.len(), 1498);
    assert_eq!(listing.rejects.len(), 2, "{:?}", listing.rejects);
    assert!(listing.raw_records >= 1500);
    assert!(listing.gaps.is_empty());
}

#[tokio::test]
async fn no_request_spans_24_hours_even_for_a_two_day_range() {
    let records = spread(300, T0, 2 * DAY);
    let script = Script {
        records: records.clone(),
        ..Script::default()
    };
    let (api, mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + 2 * DAY).await.unwrap();
    assert_eq!(
        ids(&listing),
        expected(&records, T0, T0 + 2 * DAY, &listing)
    );
    assert_eq!(listing.tasks.len(), 300);
    let log = mock.log.lock().unwrap();
    for &(from, to, _) in &log.requests {
        assert!(to - from < DAY, "a request spans {} ms", to - from);
    }
}

#[tokio::test]
async fn a_range_refusal_narrows_the_span_for_the_rest_of_the_process() {
    let records = spread(500, T0, 2 * DAY);
    let script = Script {
        records: records.clone(),
        // The first request (half a day) is refused; half of it (6 h) is then accepted.
        refuse_over: Some(DAY / 3),
        ..Script::default()
    };
    let (api, mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert_eq!(ids(&listing), expected(&records, T0, T0 + DAY, &listing));
    assert!(listing.gaps.is_empty());
    assert!(api.stats().narrowed >= 1);
    let refused = |m: &Mock| {
        m.log
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.2 == 400)
            .count()
    };
    let before = refused(&mock);
    assert_eq!(before, 1);

    let next = api.list_tasks(T0 + DAY, T0 + 2 * DAY).await.unwrap();
    assert_eq!(
        ids(&next),
        expected(&records, T0 + DAY, T0 + 2 * DAY, &next)
    );
    assert_eq!(refused(&mock), before, "the narrower span is remembered");
}

#[tokio::test]
async fn a_span_that_always_fails_becomes_a_small_gap_and_the_rest_is_listed() {
    let records = spread(400, T0, DAY);
    let poison = records[123].time;
    for status in [500, 422, 0] {
        let script = Script {
            records: records.clone(),
            poison: Some((poison, status)),
            ..Script::default()
        };
        let (api, _mock) = start(script, |s| s.retry.max_retries = 2).await;
        let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
        assert_eq!(listing.gaps.len(), 1, "{status}: {:?}", listing.gaps);
        let gap = &listing.gaps[0];
        assert!(gap.from_ms <= poison && poison < gap.to_ms, "{gap:?}");
        assert!(gap.to_ms - gap.from_ms <= 60_000, "{gap:?}");
        let want_status = (status != 0).then_some(status);
        assert_eq!(gap.status, want_status, "{gap:?}");
        assert!(!gap.reason.is_empty());
        let want = expected(&records, T0, T0 + DAY, &listing);
        assert_eq!(ids(&listing), want);
        assert!(want.len() >= 390, "only the gap is missing: {}", want.len());
        assert_eq!(api.stats().task_gaps, 1);
    }
}

#[tokio::test]
async fn an_outage_fails_the_listing_instead_of_halving_it_forever() {
    let app = Router::new().route(
        "/v1/tasks",
        get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
    );
    let api = client_with(serve(app).await, |s| s.retry.max_retries = 1);
    let err = api.list_tasks(T0, T0 + DAY).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Transport {
                status: Some(503),
                ..
            }
        ),
        "{err}"
    );
    let requests = api.stats().requests;
    assert!(requests < 100, "{requests} requests");
}

#[tokio::test]
async fn forbidden_stays_fatal() {
    let app = Router::new().route("/v1/tasks", get(|| async { StatusCode::FORBIDDEN }));
    let api = client(serve(app).await);
    let err = api.list_tasks(T0, T0 + DAY).await.unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 403, .. }), "{err}");
    assert_eq!(api.stats().requests, 1);
}

#[tokio::test]
async fn descending_pages_are_narrowed_until_complete() {
    let records = spread(1000, T0, DAY);
    let script = Script {
        records: records.clone(),
        cap: 100,
        descending: true,
        ..Script::default()
    };
    let (api, mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert_eq!(ids(&listing), expected(&records, T0, T0 + DAY, &listing));
    assert_eq!(listing.tasks.len(), 1000);
    assert!(listing.gaps.is_empty(), "{:?}", listing.gaps);
    assert!(api.stats().narrowed >= 1);
    assert_no_page_param(&mock);
}

#[tokio::test]
async fn a_millisecond_holding_more_than_a_page_is_read_per_channel() {
    let mut records = spread(50, T0, DAY);
    let crowded = T0 + DAY / 3;
    let channels = ["telephony", "chat", "email"];
    records.extend((0..250).map(|i| task(format!("c{i:03}"), crowded, channels[i % 3])));
    let script = Script {
        records: records.clone(),
        cap: 100,
        ..Script::default()
    };
    let (api, _mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert!(listing.gaps.is_empty(), "{:?}", listing.gaps);
    let mut got = ids(&listing);
    let mut want = expected(&records, T0, T0 + DAY, &listing);
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(listing.tasks.len(), 300);
}

#[tokio::test]
async fn a_millisecond_one_channel_overfills_becomes_a_gap() {
    let mut records = spread(600, T0, DAY);
    let crowded = T0 + DAY / 2 + 7;
    records.extend((0..150).map(|i| task(format!("c{i:03}"), crowded, "telephony")));
    let script = Script {
        records: records.clone(),
        cap: 100,
        ..Script::default()
    };
    let (api, _mock) = start(script, |_| {}).await;
    let listing = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert_eq!(listing.gaps.len(), 1, "{:?}", listing.gaps);
    let gap = &listing.gaps[0];
    assert!(gap.from_ms <= crowded && crowded < gap.to_ms && gap.to_ms - gap.from_ms <= 2);
    let mut got: Vec<String> = ids(&listing)
        .into_iter()
        .filter(|id| !id.starts_with('c'))
        .collect();
    got.sort();
    let mut want = expected(&records, T0, T0 + DAY, &listing);
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_busy_range_listed_a_part_at_a_time_gives_every_task_once() {
    let mut records = spread(1080, T0, DAY);
    records[500].body = serde_json::json!({"attributes": {"createdTime": records[500].time}});
    let script = Script {
        records: records.clone(),
        cap: 100,
        ..Script::default()
    };
    let (api, _mock) = start(script, |_| {}).await;
    let whole = api.list_tasks(T0, T0 + DAY).await.unwrap();
    assert_eq!(whole.until, T0 + DAY);
    let mut parts = Vec::new();
    let mut rejects = 0;
    let mut from = T0;
    while from < T0 + DAY {
        let part = api.list_tasks_upto(from, T0 + DAY, 250).await.unwrap();
        assert!(part.until > from, "progress from {from}");
        assert!(
            part.tasks.len() < 250 + 100,
            "bounded: {}",
            part.tasks.len()
        );
        assert!(
            part.tasks
                .iter()
                .all(|t| (from..part.until).contains(&t.attributes.created_time))
        );
        rejects += part.rejects.len();
        parts.extend(ids(&part));
        from = part.until;
    }
    assert_eq!(parts, ids(&whole), "same tasks, once each, in order");
    assert_eq!(rejects, 1, "the junk record is quarantined once");
}
