//! Pre-signed, expiring download URLs and the downloads behind them (REFERENCE.md §4.4–4.5).
//!
//! URLs look like S3 pre-signed URLs and fail like them (403 + XML). Audio is streamed in small
//! chunks straight from the synthesiser, honours single `Range` requests and can be cut short
//! on purpose (`truncate_rate`) to exercise the client's resume/retry path.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

use super::AppState;
use super::wav::AudioPlan;
use super::world::SimRecording;

const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Size of each generated body chunk: small enough to keep memory flat, big enough to be cheap.
const CHUNK: u64 = 32 * 1024;
/// How long a truncated download stalls before the connection is dropped.
const TRUNCATION_PAUSE: Duration = Duration::from_millis(50);

/// Lifetime of URLs handed out now: `url_ttl` if configured, else `urlExpiration` minutes.
pub fn url_ttl_secs(state: &AppState, url_expiration_minutes: i64) -> u64 {
    match state.config.url_ttl {
        Some(ttl) => (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1),
        None => url_expiration_minutes.max(1) as u64 * 60,
    }
}

fn signature(secret: &str, path: &str, date: &str, expires: &str) -> String {
    let mut h = Sha256::new();
    for part in [secret, path, date, expires] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The object name of `rec`'s audio up to `stop_ms`: `{id}.wav` for the final file, or
/// `{id}.{stop_ms}.wav` for the part recorded so far of a call still in progress (the signature
/// covers the name, so the stop point cannot be changed by the holder of the URL).
pub fn recording_object(rec: &SimRecording, stop_ms: i64) -> String {
    if stop_ms >= rec.stop_ms {
        format!("{}.wav", rec.id)
    } else {
        format!("{}.{stop_ms}.wav", rec.id)
    }
}

/// A pre-signed URL for `/media/{org}/{task}/{object}` valid for `ttl_secs` from now.
/// It is a bearer secret: whoever holds it can download until it expires.
pub fn presign(state: &AppState, task_id: &str, object: &str, ttl_secs: u64) -> String {
    let path = format!("/media/{}/{task_id}/{object}", state.world.org_id());
    let date = Utc::now().format(DATE_FORMAT).to_string();
    let expires = ttl_secs.to_string();
    let sig = signature(&state.media_secret, &path, &date, &expires);
    format!(
        "{}{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}",
        state.base_url
    )
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Checks signature and expiry. A URL dated at whole second `d` with `X-Amz-Expires=e` is valid
/// until the end of second `d + e`, so it never expires early.
// The error is the finished HTTP answer, produced at most once per request.
#[allow(clippy::result_large_err)]
fn verify(state: &AppState, uri: &Uri) -> Result<(), Response> {
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let denied = |msg: &str| s3_error(StatusCode::FORBIDDEN, "AccessDenied", msg);
    let (Some(date), Some(expires), Some(sig)) = (
        params.get("X-Amz-Date"),
        params.get("X-Amz-Expires"),
        params.get("X-Amz-Signature"),
    ) else {
        return Err(denied(
            "Query-string authentication requires the X-Amz-Date, X-Amz-Expires and X-Amz-Signature parameters",
        ));
    };
    if signature(&state.media_secret, uri.path(), date, expires) != *sig {
        return Err(s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let issued =
        NaiveDateTime::parse_from_str(date, DATE_FORMAT).map_err(|_| denied("Invalid date"))?;
    let secs: i64 = expires
        .parse()
        .map_err(|_| denied("Invalid X-Amz-Expires"))?;
    let deadline_ms = (issued.and_utc().timestamp() + secs) * 1000 + 999;
    if Utc::now().timestamp_millis() > deadline_ms {
        return Err(denied("Request has expired"));
    }
    Ok(())
}

/// A single byte range of a `len`-byte object, or `Err(())` when it cannot be satisfied.
/// Missing, malformed or multi-range headers select the whole object (RFC 9110 allows ignoring them).
fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(());
        }
        (len - n.min(len), len - 1)
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = if b.is_empty() {
            u64::MAX
        } else {
            match b.parse::<u64>() {
                Ok(end) if end >= start => end,
                _ => return Ok(None),
            }
        };
        if start >= len {
            return Err(());
        }
        (start, end.min(len - 1))
    };
    Ok(Some(range))
}

/// Streams `plan` bytes `[start, end)`; with `cut`, stops at that offset with an I/O error so the
/// server drops the connection before the announced `Content-Length` is reached. With `rate`,
/// no chunk leaves before `bytes sent / rate` seconds into the download.
fn audio_stream(
    plan: AudioPlan,
    start: u64,
    end: u64,
    cut: Option<u64>,
    rate: Option<u64>,
) -> Body {
    let stop = cut.map_or(end, |c| c.min(end));
    let began = tokio::time::Instant::now();
    let stream =
        futures::stream::unfold((plan, start, false), move |(plan, pos, done)| async move {
            if done {
                return None;
            }
            if let Some(rate) = rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64((pos - start) as f64 / rate as f64);
                tokio::time::sleep_until(began + due).await;
            }
            if pos >= stop {
                cut?;
                // Pause first so the server flushes what it has buffered (headers included);
                // the error then makes it drop the connection short of `Content-Length`.
                tokio::time::sleep(TRUNCATION_PAUSE).await;
                let err = io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "simulated truncated download",
                );
                return Some((Err(err), (plan, pos, true)));
            }
            let n = CHUNK.min(stop - pos) as usize;
            let mut buf = vec![0u8; n];
            let got = plan.read_at(pos, &mut buf);
            buf.truncate(got);
            Some((
                Ok::<Bytes, io::Error>(Bytes::from(buf)),
                (plan, pos + got as u64, got == 0),
            ))
        });
    Body::from_stream(stream)
}

fn http_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `GET /media/{org}/{task}/{object}` with a pre-signed query string; no `Authorization`.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((org, task_id, object)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = verify(&state, &uri) {
        return resp;
    }
    let world = &state.world;
    let not_found = || {
        s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
    };
    if org != world.org_id() {
        return not_found();
    }
    if let Some(key) = object.strip_suffix(".json") {
        return match world.transcription(key).filter(|t| t.task_id == task_id) {
            Some(t) => {
                let body = serde_json::json!({
                    "taskId": t.task_id, "source": t.source, "languageCode": t.language_code,
                    "utterances": [
                        {"speaker": "Caller", "startMs": 0, "text": "Hi, I have a question about my account."},
                        {"speaker": "Agent", "startMs": 3200, "text": "Sure, I can help you with that."}
                    ]
                });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            None => not_found(),
        };
    }
    let Some((rec, stop_ms)) = object.strip_suffix(".wav").and_then(|name| {
        let (id, stop) = match name.split_once('.') {
            Some((id, stop)) => (id, Some(stop.parse::<i64>().ok()?)),
            None => (name, None),
        };
        let rec = world.recording(id).filter(|r| r.task_id == task_id)?;
        match stop {
            None => Some((rec, rec.stop_ms)),
            Some(s) if (rec.start_ms..rec.stop_ms).contains(&s) => Some((rec, s)),
            Some(_) => None,
        }
    }) else {
        return not_found();
    };
    let partial = stop_ms < rec.stop_ms;
    let served = SimRecording {
        stop_ms,
        ..rec.clone()
    };
    let rec = &served;
    let plan = world.audio_plan(rec);
    let len = plan.len();
    let (status, start, end) = match parse_range(&headers, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        Err(()) => {
            let mut resp = s3_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    AppState::bump(&state.counters.downloads);
    let body_len = end - start;
    let cut = (state.faults_on() && state.guard.truncate_download(state.config.truncate_rate))
        .then(|| {
            AppState::bump(&state.counters.truncated_downloads);
            tracing::debug!(recording = %rec.id, "download will be truncated");
            start + body_len / 2
        });
    let etag_key = if partial {
        format!("{}:{}:{stop_ms}", world.seed, rec.id)
    } else {
        format!("{}:{}", world.seed, rec.id)
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(etag_key))[..32]);
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::CONTENT_LENGTH, body_len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::LAST_MODIFIED, http_date(rec.stop_ms));
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    builder
        .body(audio_stream(
            plan,
            start,
            end,
            cut,
            state.config.download_bytes_per_sec,
        ))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
