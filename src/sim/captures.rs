//! `POST /v1/captures/query` of the simulated WxCC API (REFERENCE.md §4): recordings and
//! transcripts per task, in request order, with freshly pre-signed download URLs. Only the
//! captures available at the simulated now are listed (see [`super::clock`]).

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::limits::{self, Endpoint, api_error};
use super::world::{SimRecording, SimTranscription};
use super::wxcc::json_ok;
use super::{AppState, media};

const MAX_TASK_IDS: usize = 10;
const MAX_URL_EXPIRATION: i64 = 60;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordingAttributes<'a> {
    file_name: &'a str,
    file_path: String,
    start_time: i64,
    stop_time: i64,
    participants: &'a [String],
    channel1: &'a str,
    channel2: &'a str,
    call_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitive: Option<bool>,
}

#[derive(Serialize)]
struct RecordingJson<'a> {
    id: &'a str,
    segment: bool,
    attributes: RecordingAttributes<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptionJson<'a> {
    #[serde(rename = "Source")]
    source: &'a str,
    #[serde(rename = "Provider")]
    provider: &'a str,
    id: &'a str,
    file_name: &'a str,
    file_path: String,
    start_time: String,
    language_code: &'a str,
    create_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskCaptures<'a> {
    task_id: &'a str,
    recording: Vec<RecordingJson<'a>>,
    transcription: Vec<TranscriptionJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CapturesMeta<'a> {
    org_id: &'a str,
    url_expiration: i64,
}

#[derive(Serialize)]
struct CapturesResponse<'a> {
    meta: CapturesMeta<'a>,
    data: Vec<TaskCaptures<'a>>,
}

/// `r` as listed at `now_ms`: a recording of a call still in progress stops at `now_ms`, and its
/// URL serves the audio up to there.
fn recording_json<'a>(
    state: &AppState,
    r: &'a SimRecording,
    ttl_secs: u64,
    now_ms: i64,
) -> RecordingJson<'a> {
    let stop_ms = r.stop_ms_at(now_ms);
    RecordingJson {
        id: &r.id,
        segment: r.segment,
        attributes: RecordingAttributes {
            file_name: &r.file_name,
            file_path: media::presign(
                state,
                &r.task_id,
                &media::recording_object(r, stop_ms),
                ttl_secs,
            ),
            start_time: r.start_ms,
            stop_time: stop_ms,
            participants: &r.participants,
            channel1: &r.channel1,
            channel2: &r.channel2,
            call_type: &r.call_type,
            sensitive: r.sensitive,
        },
    }
}

fn transcription_json<'a>(
    state: &AppState,
    t: &'a SimTranscription,
    ttl_secs: u64,
) -> TranscriptionJson<'a> {
    TranscriptionJson {
        source: &t.source,
        provider: &t.provider,
        id: &t.id,
        file_name: &t.file_name,
        file_path: media::presign(
            state,
            &t.task_id,
            &format!("{}.json", t.object_key),
            ttl_secs,
        ),
        start_time: t.start_ms.to_string(),
        language_code: &t.language_code,
        create_time: t.create_ms.to_string(),
    }
}

/// Validated captures query.
struct CaptureQuery {
    task_ids: Vec<String>,
    url_expiration: i64,
    include_segments: bool,
    include_va: bool,
    org_id: Option<String>,
}

fn parse_capture_query(body: &[u8]) -> Result<CaptureQuery, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let query = value
        .get("query")
        .and_then(Value::as_object)
        .ok_or("'query' is required")?;
    let ids = query.get("taskIds").ok_or("'query.taskIds' is required")?;
    let ids = ids
        .as_array()
        .ok_or("'query.taskIds' must be an array of task ids")?;
    let task_ids = ids
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or("'query.taskIds' must contain strings only")
        })
        .collect::<Result<Vec<_>, _>>()?;
    if task_ids.len() > MAX_TASK_IDS {
        return Err(format!(
            "'query.taskIds' must contain at most {MAX_TASK_IDS} items, got {}",
            task_ids.len()
        ));
    }
    if task_ids.iter().collect::<HashSet<_>>().len() != task_ids.len() {
        return Err("'query.taskIds' must not contain duplicate ids".to_string());
    }
    let url_expiration = match query.get("urlExpiration") {
        None | Some(Value::Null) => MAX_URL_EXPIRATION,
        Some(v) => match v.as_i64() {
            Some(n) if n <= 0 => {
                return Err("Error: urlExpiration should be greater than 0.".to_string());
            }
            Some(n) if n > MAX_URL_EXPIRATION => {
                return Err(format!(
                    "Error: urlExpiration should not be greater than {MAX_URL_EXPIRATION}."
                ));
            }
            Some(n) => n,
            None => {
                return Err(
                    "'query.urlExpiration' must be an integer number of minutes".to_string()
                );
            }
        },
    };
    let flag = |name: &str| match query.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("'query.{name}' must be a boolean")),
    };
    let org_id = match query.get("orgId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("'query.orgId' must be a string".to_string()),
    };
    Ok(CaptureQuery {
        task_ids,
        url_expiration,
        include_segments: flag("includeSegments")?,
        include_va: flag("includeVARecordings")?,
        org_id,
    })
}

/// `POST /v1/captures/query`.
pub async fn captures_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Captures) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let tid = &admitted.tracking_id;
    let query = match parse_capture_query(&body) {
        Ok(q) => q,
        Err(msg) => return api_error(StatusCode::BAD_REQUEST, tid, &msg),
    };
    let world = &state.world;
    if let Some(resp) = limits::foreign_org(query.org_id.as_deref(), world.org_id(), tid) {
        return resp;
    }
    if state.faults_on()
        && let Some(failing) = query
            .task_ids
            .iter()
            .find(|id| state.failing_captures.contains(id))
    {
        AppState::bump(&state.counters.scripted_failures);
        tracing::debug!(task = %failing, "scripted captures failure");
        let status = StatusCode::from_u16(state.config.failing_capture_status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let description = match status {
            StatusCode::NOT_FOUND => "Captures not found for the requested task",
            StatusCode::UNPROCESSABLE_ENTITY => {
                "Captures of the requested task cannot be processed"
            }
            _ => "Internal server error",
        };
        return api_error(status, tid, description);
    }
    let ttl_secs = media::url_ttl_secs(&state, query.url_expiration);
    let now = state.now();
    let now_ms = now.timestamp_millis();
    let data = query
        .task_ids
        .iter()
        .map(|task_id| TaskCaptures {
            task_id,
            recording: world
                .recordings_for_at(task_id, query.include_segments, query.include_va, now)
                .into_iter()
                .map(|r| recording_json(&state, r, ttl_secs, now_ms))
                .collect(),
            transcription: world
                .transcriptions_for_at(task_id, now)
                .into_iter()
                .map(|t| transcription_json(&state, t, ttl_secs))
                .collect(),
        })
        .collect();
    let body = CapturesResponse {
        meta: CapturesMeta {
            org_id: world.org_id(),
            url_expiration: query.url_expiration,
        },
        data,
    };
    json_ok(tid, serde_json::to_vec(&body).unwrap_or_default())
}
