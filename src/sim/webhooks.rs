//! Webhook subscriptions and the `capture:available` sender (REFERENCE.md §6.3, §7 item 11).
//!
//! `POST/GET /v1/subscriptions`, `GET/DELETE /v1/subscriptions/{id}` keep subscriptions in
//! memory. A dispatcher watches the simulated clock: each recording that becomes available
//! (its `available_ms` passes) is announced to every active `capture:available` subscription as
//! a CloudEvents-like envelope, signed with `X-WebexCC-Signature` = lowercase hex
//! HMAC-SHA256 of the raw body with the subscription secret.
//!
//! Delivery is as unreliable as the reference says the real one is, by knobs drawn from the
//! seed ([`WebhookKnobs`]): events are lost, duplicated (the same event id again, or the same
//! recording under a new id), reordered, delayed, or signed with a wrong secret. A delivery
//! refused with 5xx or a connection error is retried a few times, then dropped.
//!
//! The `data` of `capture:available` is only known to carry `taskId`, `filePath` and
//! `createdTime`; by default the simulator adds the capture's own fields (`recordingId`,
//! `fileName`, `startTime`, `stopTime`, `channel1`, `channel2`, `callType`, `participants`,
//! `segment`), one plausible reading of the UNCONFIRMED payload; `minimal` sends the three
//! confirmed fields only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sha2::Sha256;

use super::limits::{self, Endpoint, api_error};
use super::wav::mix64;
use super::world::SimRecording;
use super::wxcc::json_ok;
use super::{AppState, media};

/// Label of the random stream webhook faults and event ids are drawn from.
const WEBHOOK_STREAM: u64 = 0x5745_4248_4f4f_4b00;
/// The event type the dispatcher announces.
pub const CAPTURE_AVAILABLE: &str = "capture:available";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-WebexCC-Signature";
/// Deliveries of one event tried before it is dropped (first try included).
const MAX_ATTEMPTS: u32 = 4;
/// How often the dispatcher looks at the simulated clock.
const TICK: Duration = Duration::from_millis(50);

/// How unreliable webhook delivery is; every decision is drawn from the seed in event order.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookKnobs {
    /// Share of events never sent.
    pub loss_rate: f64,
    /// Share of events sent twice (half with the same event id, half with a new one).
    pub duplicate_rate: f64,
    /// Share of events swapped with the next one of their batch.
    pub reorder_rate: f64,
    /// Each delivery waits a random time up to this long (which also reorders).
    pub max_delay: Duration,
    /// Share of deliveries signed with a wrong secret.
    pub bad_signature_rate: f64,
    /// Deliveries started per second; 0 sends as fast as possible.
    pub events_per_sec: u32,
    /// Send only the confirmed `data` fields (`taskId`, `filePath`, `createdTime`).
    pub minimal: bool,
    /// A new subscription is also told about every recording already available; otherwise it
    /// hears only of recordings that become available after it was made.
    pub replay: bool,
}

impl Default for WebhookKnobs {
    fn default() -> Self {
        WebhookKnobs {
            loss_rate: 0.0,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            max_delay: Duration::ZERO,
            bad_signature_rate: 0.0,
            events_per_sec: 0,
            minimal: false,
            replay: false,
        }
    }
}

impl WebhookKnobs {
    pub(super) fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("webhook loss_rate", self.loss_rate),
            ("webhook duplicate_rate", self.duplicate_rate),
            ("webhook reorder_rate", self.reorder_rate),
            ("webhook bad_signature_rate", self.bad_signature_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be within 0..=1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// One delivery attempt's final outcome, for tests and the ground truth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub task_id: String,
    pub recording_id: String,
    /// Signed with a wrong secret on purpose.
    pub bad_signature: bool,
    /// Final HTTP status; `None` when every attempt failed to connect.
    pub status: Option<u16>,
    /// Wall-clock instant of the first attempt, epoch ms.
    pub sent_ms: i64,
}

/// Counters of the sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events planned (one per recording and subscription).
    pub events: u64,
    /// Events dropped on purpose (`loss_rate`).
    pub lost: u64,
    /// Extra deliveries made on purpose (`duplicate_rate`).
    pub duplicated: u64,
    /// Deliveries signed with a wrong secret.
    pub bad_signatures: u64,
    /// Deliveries answered 2xx.
    pub accepted: u64,
    /// Deliveries answered 401/403.
    pub refused: u64,
    /// Deliveries that ended otherwise (other status, or no connection after retries).
    pub failed: u64,
}

struct Subscription {
    id: String,
    name: String,
    description: String,
    event_types: Vec<String>,
    destination_url: String,
    secret: String,
    created_ms: i64,
    /// Recordings available at or before this instant (simulated ms) were announced.
    cursor_ms: i64,
}

/// One planned delivery.
struct Planned {
    url: String,
    secret: String,
    body: Vec<u8>,
    bad_signature: bool,
    delay: Duration,
    event_id: String,
    task_id: String,
    recording_id: String,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    bad_signatures: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// Subscriptions, the fault dice and what was delivered.
pub(crate) struct Webhooks {
    knobs: WebhookKnobs,
    subs: Mutex<Vec<Subscription>>,
    rng: Mutex<ChaCha8Rng>,
    deliveries: Mutex<Vec<WebhookDelivery>>,
    counters: Counters,
    /// Recordings of the default captures query, ordered by the instant they become available.
    by_availability: Vec<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Webhooks {
    pub(crate) fn new(knobs: &WebhookKnobs, seed: u64, recordings: &[&SimRecording]) -> Webhooks {
        let mut by_availability: Vec<usize> = (0..recordings.len()).collect();
        by_availability.sort_by_key(|&i| (recordings[i].available_ms, i));
        Webhooks {
            knobs: knobs.clone(),
            subs: Mutex::new(Vec::new()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(mix64(seed ^ WEBHOOK_STREAM))),
            deliveries: Mutex::new(Vec::new()),
            counters: Counters::default(),
            by_availability,
        }
    }

    fn uuid(&self) -> String {
        let bytes: [u8; 16] = lock(&self.rng).random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    pub(crate) fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebhookStats {
            events: get(&c.events),
            lost: get(&c.lost),
            duplicated: get(&c.duplicated),
            bad_signatures: get(&c.bad_signatures),
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            failed: get(&c.failed),
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        lock(&self.deliveries).clone()
    }

    /// Registers a subscription; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        name: &str,
        description: &str,
        event_types: Vec<String>,
        destination_url: &str,
        secret: &str,
        now_ms: i64,
    ) -> String {
        let id = self.uuid();
        let cursor_ms = if self.knobs.replay { i64::MIN } else { now_ms };
        lock(&self.subs).push(Subscription {
            id: id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
            event_types,
            destination_url: destination_url.to_owned(),
            secret: secret.to_owned(),
            created_ms: now_ms,
            cursor_ms,
        });
        id
    }
}

/// HMAC-SHA256 of `body` with `secret`, lowercase hex: the `X-WebexCC-Signature` value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The event announcing `rec` to subscription `sub_id`.
fn envelope(state: &AppState, sub_id: &str, event_id: &str, rec: &SimRecording) -> Value {
    let ttl = media::url_ttl_secs(state, 60);
    let file_path = media::presign(
        state,
        &rec.task_id,
        &media::recording_object(rec, rec.stop_ms),
        ttl,
    );
    let mut data = json!({
        "taskId": rec.task_id,
        "filePath": file_path,
        "createdTime": rec.available_ms,
    });
    if !state.webhooks.knobs.minimal {
        let extra = json!({
            "recordingId": rec.id,
            "fileName": rec.file_name,
            "startTime": rec.start_ms,
            "stopTime": rec.stop_ms,
            "channel1": rec.channel1,
            "channel2": rec.channel2,
            "callType": rec.call_type,
            "participants": rec.participants,
            "segment": rec.segment,
        });
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
    }
    json!({
        "id": event_id,
        "specversion": "1.0",
        "type": CAPTURE_AVAILABLE,
        "source": format!("/com/cisco/wxcc/{sub_id}"),
        "comciscoorgid": state.world.org_id(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Plans the deliveries owed at the simulated now, drawing every fault in event order.
fn plan(state: &AppState) -> Vec<Planned> {
    let hooks = &state.webhooks;
    let now_ms = state.now().timestamp_millis();
    let recordings = state.world.recordings();
    let mut out = Vec::new();
    let mut subs = lock(&hooks.subs);
    for sub in subs.iter_mut() {
        if !sub.event_types.iter().any(|t| t == CAPTURE_AVAILABLE) || sub.cursor_ms >= now_ms {
            continue;
        }
        let due = hooks
            .by_availability
            .iter()
            .map(|&i| recordings[i])
            .filter(|r| r.available_ms > sub.cursor_ms && r.available_ms <= now_ms);
        let mut batch: Vec<Planned> = Vec::new();
        let knobs = &hooks.knobs;
        for rec in due {
            hooks.counters.events.fetch_add(1, Ordering::Relaxed);
            let event_id = hooks.uuid();
            let mut rng = lock(&hooks.rng);
            let lost = rng.random_bool(knobs.loss_rate);
            let dup = rng.random_bool(knobs.duplicate_rate);
            let dup_new_id = rng.random_bool(0.5);
            drop(rng);
            if lost {
                hooks.counters.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut ids = vec![event_id.clone()];
            if dup {
                hooks.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                ids.push(if dup_new_id { hooks.uuid() } else { event_id });
            }
            for id in ids {
                let body =
                    serde_json::to_vec(&envelope(state, &sub.id, &id, rec)).unwrap_or_default();
                let mut rng = lock(&hooks.rng);
                let bad_signature = rng.random_bool(knobs.bad_signature_rate);
                let delay = if knobs.max_delay.is_zero() {
                    Duration::ZERO
                } else {
                    knobs.max_delay.mul_f64(rng.random::<f64>())
                };
                drop(rng);
                batch.push(Planned {
                    url: sub.destination_url.clone(),
                    secret: sub.secret.clone(),
                    body,
                    bad_signature,
                    delay,
                    event_id: id,
                    task_id: rec.task_id.clone(),
                    recording_id: rec.id.clone(),
                });
            }
        }
        let mut i = 0;
        while i + 1 < batch.len() {
            if lock(&hooks.rng).random_bool(knobs.reorder_rate) {
                batch.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        sub.cursor_ms = now_ms;
        out.extend(batch);
    }
    out
}

/// One delivery with its retries; records the outcome.
async fn deliver(state: Arc<AppState>, http: reqwest::Client, p: Planned) {
    tokio::time::sleep(p.delay).await;
    let hooks = &state.webhooks;
    let signature = if p.bad_signature {
        hooks
            .counters
            .bad_signatures
            .fetch_add(1, Ordering::Relaxed);
        sign(format!("not-{}", p.secret).as_bytes(), &p.body)
    } else {
        sign(p.secret.as_bytes(), &p.body)
    };
    let mut status = None;
    let sent_ms = chrono::Utc::now().timestamp_millis();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let sent = http
            .post(&p.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .body(p.body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let s = resp.status().as_u16();
                status = Some(s);
                if s < 500 {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "webhook delivery failed to connect");
            }
        }
    }
    let counter = match status {
        Some(s) if (200..300).contains(&s) => &hooks.counters.accepted,
        Some(401 | 403) => &hooks.counters.refused,
        _ => &hooks.counters.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    lock(&hooks.deliveries).push(WebhookDelivery {
        event_id: p.event_id,
        task_id: p.task_id,
        recording_id: p.recording_id,
        bad_signature: p.bad_signature,
        status,
        sent_ms,
    });
}

/// The dispatcher: looks at the clock every tick and starts the deliveries owed, paced.
pub(crate) async fn run_dispatcher(state: Arc<AppState>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let pace = match state.webhooks.knobs.events_per_sec {
        0 => None,
        n => Some(Duration::from_secs_f64(1.0 / f64::from(n))),
    };
    loop {
        let planned = plan(&state);
        for p in planned {
            tokio::spawn(deliver(state.clone(), http.clone(), p));
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// A destination the simulator may call: https on any host, or plain http on loopback (a
/// deviation from the real service, which wants https on port 443, so tests can run locally).
fn check_destination(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("destinationUrl is not a URL: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("destinationUrl must be an https URL".into()),
    }
}

fn sub_json(sub: &Subscription, org: &str) -> Value {
    let created = chrono::DateTime::from_timestamp_millis(sub.created_ms)
        .unwrap_or_default()
        .to_rfc3339();
    json!({
        "id": sub.id,
        "name": sub.name,
        "description": sub.description,
        "eventTypes": sub.event_types,
        "destinationUrl": sub.destination_url,
        "createdTime": created,
        "createdBy": "simulator",
        "lastUpdatedTime": created,
        "lastUpdatedBy": "simulator",
        "status": "active",
        "orgId": org,
    })
}

struct NewSubscription {
    name: String,
    description: String,
    event_types: Vec<String>,
    destination_url: String,
    secret: String,
}

fn parse_new(body: &[u8]) -> Result<NewSubscription, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = text("name").ok_or("'name' is required")?;
    if !(4..=64).contains(&name.chars().count()) {
        return Err("'name' must be 4 to 64 characters".into());
    }
    let description = text("description").unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err("'description' must be at most 1024 characters".into());
    }
    let event_types: Vec<String> = v
        .get("eventTypes")
        .and_then(Value::as_array)
        .ok_or("'eventTypes' is required")?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    if !(1..=32).contains(&event_types.len()) {
        return Err("'eventTypes' must list 1 to 32 event types".into());
    }
    let destination_url = text("destinationUrl").ok_or("'destinationUrl' is required")?;
    check_destination(&destination_url)?;
    let secret = text("secret").unwrap_or_default();
    if !secret.is_empty() && !(32..=256).contains(&secret.chars().count()) {
        return Err("'secret' must be 32 to 256 characters".into());
    }
    Ok(NewSubscription {
        name,
        description,
        event_types,
        destination_url,
        secret,
    })
}

/// `POST /v1/subscriptions`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Subscriptions) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let tid = &admitted.tracking_id;
    let new = match parse_new(&body) {
        Ok(n) => n,
        Err(msg) => return api_error(StatusCode::BAD_REQUEST, tid, &msg),
    };
    let now_ms = state.now().timestamp_millis();
    let id = state.webhooks.add(
        &new.name,
        &new.description,
        new.event_types,
        &new.destination_url,
        &new.secret,
        now_ms,
    );
    let subs = lock(&state.webhooks.subs);
    let Some(sub) = subs.iter().find(|s| s.id == id) else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            tid,
            "Internal server error",
        );
    };
    let org = state.world.org_id();
    let body = json!({"meta": {"orgId": org}, "data": sub_json(sub, org)});
    let mut resp = json_ok(tid, serde_json::to_vec(&body).unwrap_or_default());
    *resp.status_mut() = StatusCode::CREATED;
    resp
}

/// `GET /v1/subscriptions` (secrets are never echoed).
pub(crate) async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Subscriptions) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let org = state.world.org_id();
    let data: Vec<Value> = lock(&state.webhooks.subs)
        .iter()
        .map(|s| sub_json(s, org))
        .collect();
    let body = json!({"meta": {"orgId": org}, "data": data});
    json_ok(
        &admitted.tracking_id,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// `GET /v1/subscriptions/{id}`.
pub(crate) async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Subscriptions) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let org = state.world.org_id();
    let subs = lock(&state.webhooks.subs);
    match subs.iter().find(|s| s.id == id) {
        Some(sub) => {
            let body = json!({"meta": {"orgId": org}, "data": sub_json(sub, org)});
            json_ok(
                &admitted.tracking_id,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        None => api_error(
            StatusCode::NOT_FOUND,
            &admitted.tracking_id,
            "Subscription not found",
        ),
    }
}

/// `DELETE /v1/subscriptions/{id}`: 204, or 404 for an unknown id.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Subscriptions) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let mut subs = lock(&state.webhooks.subs);
    let before = subs.len();
    subs.retain(|s| s.id != id);
    if subs.len() == before {
        return api_error(
            StatusCode::NOT_FOUND,
            &admitted.tracking_id,
            "Subscription not found",
        );
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    limits::set_tracking(&mut resp, &admitted.tracking_id);
    resp
}

/// Registers a `capture:available` subscription without the API (in-process tests, and
/// `wxcc sim --webhook-url`).
pub(crate) fn subscribe_direct(
    state: &AppState,
    url: &str,
    secret: &str,
) -> Result<String, String> {
    check_destination(url)?;
    let now_ms = state.now().timestamp_millis();
    Ok(state.webhooks.add(
        "simulator subscription",
        "",
        vec![CAPTURE_AVAILABLE.to_owned()],
        url,
        secret,
        now_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn destinations_are_https_or_loopback_http() {
        assert!(check_destination("https://example.com/hook").is_ok());
        assert!(check_destination("http://127.0.0.1:9000/webhook").is_ok());
        assert!(check_destination("http://example.com/hook").is_err());
        assert!(check_destination("not a url").is_err());
    }

    #[test]
    fn subscription_bodies_are_validated_like_the_reference() {
        let ok = br#"{"name":"Capture Recordings Event","eventTypes":["capture:available"],"destinationUrl":"https://example.com/x","secret":"my-32-plus-character-long-secret"}"#;
        assert!(parse_new(ok).is_ok());
        let short_secret = br#"{"name":"Capture","eventTypes":["capture:available"],"destinationUrl":"https://example.com/x","secret":"short"}"#;
        assert!(parse_new(short_secret).is_err());
        let no_types =
            br#"{"name":"Capture","eventTypes":[],"destinationUrl":"https://example.com/x"}"#;
        assert!(parse_new(no_types).is_err());
        let short_name = br#"{"name":"Cap","eventTypes":["capture:available"],"destinationUrl":"https://example.com/x"}"#;
        assert!(parse_new(short_name).is_err());
    }

    #[test]
    fn knobs_outside_zero_to_one_are_refused() {
        let bad = WebhookKnobs {
            loss_rate: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert!(WebhookKnobs::default().validate().is_ok());
    }
}
