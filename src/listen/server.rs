//! The webhook endpoint and `/healthz`.
//!
//! A delivery is answered only once its fate is certain: 401/403 for a missing or wrong
//! signature, 400 for a body that is not a `capture:available` event we can act on, 200 once
//! a new event is fsynced to the queue or when it is a duplicate, 503 when the queue cannot
//! be written (the sender retries). Downloads never happen here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::WorkerCounters;
use super::queue::{Accepted, Queue};
use super::signature::{self, Refusal};

/// Header carrying the signature (REFERENCE.md §6.3).
pub const SIGNATURE_HEADER: &str = "x-webexcc-signature";
/// The only event type acted on.
pub const CAPTURE_AVAILABLE: &str = "capture:available";

/// Counters of the receiver.
#[derive(Debug, Default)]
pub struct ReceiverCounters {
    pub unsigned: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub malformed: AtomicU64,
    pub ignored: AtomicU64,
}

/// Shared state of the handlers.
pub struct Receiver {
    pub queue: Arc<Queue>,
    pub secrets: Vec<SecretString>,
    pub counters: ReceiverCounters,
    pub workers: Arc<WorkerCounters>,
}

/// The routes: `POST {path}` and `GET /healthz`.
pub fn router(state: Arc<Receiver>, path: &str) -> Router {
    Router::new()
        .route(path, post(webhook))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// The de-duplication key of an event: `task/recording`, or `task/<download path>` when the
/// event names no recording (only `taskId`, `filePath` and `createdTime` are confirmed fields).
pub fn event_key(data: &Value) -> Option<String> {
    let task = data.get("taskId")?.as_str().filter(|t| !t.is_empty())?;
    if let Some(rec) = data
        .get("recordingId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        return Some(format!("{task}/{rec}"));
    }
    let path = data.get("filePath").and_then(Value::as_str)?;
    let path = url::Url::parse(path).ok().map(|u| u.path().to_owned())?;
    Some(format!("{task}/{path}"))
}

async fn webhook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let sig = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    match signature::verify(&rx.secrets, sig, &body) {
        Ok(()) => {}
        Err(Refusal::Missing) => {
            rx.counters.unsigned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("webhook without a signature refused");
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Err(Refusal::Mismatch) => {
            rx.counters.bad_signatures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("webhook with a bad signature refused");
            return StatusCode::FORBIDDEN.into_response();
        }
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        rx.counters.malformed.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    if event.get("type").and_then(Value::as_str) != Some(CAPTURE_AVAILABLE) {
        rx.counters.ignored.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::OK, Json(json!({"status": "ignored"}))).into_response();
    }
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let (Some(event_id), Some(key)) = (event.get("id").and_then(Value::as_str), event_key(&data))
    else {
        rx.counters.malformed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_REQUEST,
            "event without id, data.taskId or data.filePath",
        )
            .into_response();
    };
    let queue = rx.queue.clone();
    let (id, k) = (event_id.to_owned(), key.clone());
    // fsync off the async threads.
    let accepted = tokio::task::spawn_blocking(move || queue.accept(&id, &k, data)).await;
    match accepted {
        Ok(Ok(Accepted::Queued)) => {
            tracing::debug!(%key, "event queued");
            (StatusCode::OK, Json(json!({"status": "queued"}))).into_response()
        }
        Ok(Ok(Accepted::Duplicate)) => {
            tracing::debug!(%key, "duplicate event acknowledged");
            (StatusCode::OK, Json(json!({"status": "duplicate"}))).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot queue an event; asking the sender to retry");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "queueing task failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

use axum::Json;

async fn healthz(State(rx): State<Arc<Receiver>>) -> Response {
    let c = &rx.counters;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let body = json!({
        "queue": rx.queue.stats(),
        "workers": rx.workers.snapshot(),
        "refused": {
            "unsigned": g(&c.unsigned),
            "bad_signature": g(&c.bad_signatures),
            "malformed": g(&c.malformed),
        },
        "ignored": g(&c.ignored),
        "uptime_s": rx.queue.uptime().as_secs(),
    });
    Json(body).into_response()
}

/// The address to show for a bound listener.
pub fn shown(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_keyed_by_recording_or_else_by_download_path() {
        let full = json!({"taskId": "t1", "recordingId": "r1", "filePath": "http://h/media/o/t1/r1.wav?X-Amz-Signature=a"});
        assert_eq!(event_key(&full).as_deref(), Some("t1/r1"));
        let a = json!({"taskId": "t1", "filePath": "http://h/media/o/t1/r1.wav?X-Amz-Signature=a"});
        let b = json!({"taskId": "t1", "filePath": "http://h/media/o/t1/r1.wav?X-Amz-Signature=b"});
        assert_eq!(
            event_key(&a),
            event_key(&b),
            "a re-signed URL is the same recording"
        );
        assert_eq!(event_key(&json!({"filePath": "http://h/x"})), None);
        assert_eq!(event_key(&json!({"taskId": "t1"})), None);
    }
}
