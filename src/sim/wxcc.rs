//! `GET /v1/tasks` of the simulated WxCC API (REFERENCE.md §3).
//! The JSON is built from private structs so key order is stable and the output deterministic.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::limits::{self, Endpoint, api_error};
use super::world::{SimTask, World};

const CHANNEL_TYPES: [&str; 4] = ["email", "chat", "telephony", "social"];
const MAX_PAGE_SIZE: i64 = 1000;
const DEFAULT_PAGE_SIZE: i64 = 100;

#[derive(Serialize)]
struct Named<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskAttributes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<Named<'a>>,
    queue: Named<'a>,
    channel_type: &'a str,
    status: &'a str,
    created_time: i64,
    last_updated_time: i64,
    capture_requested: Option<bool>,
    origin: &'a str,
    destination: &'a str,
    direction: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct TaskJson<'a> {
    id: &'a str,
    attributes: TaskAttributes<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgMeta<'a> {
    org_id: &'a str,
}

#[derive(Serialize)]
struct TasksResponse<'a> {
    meta: OrgMeta<'a>,
    data: Vec<TaskJson<'a>>,
}

fn task_json(t: &SimTask) -> TaskJson<'_> {
    TaskJson {
        id: &t.id,
        attributes: TaskAttributes {
            owner: t.owner.as_ref().map(|o| Named {
                id: &o.id,
                name: &o.name,
            }),
            queue: Named {
                id: &t.queue.id,
                name: &t.queue.name,
            },
            channel_type: &t.channel_type,
            status: &t.status,
            created_time: t.created_ms,
            last_updated_time: t.last_updated_ms,
            capture_requested: t.capture_requested,
            origin: &t.origin,
            destination: &t.destination,
            direction: &t.direction,
            reason_code: t.reason_code.as_deref(),
            extra: &t.extra_attributes,
        },
    }
}

/// The `GET /v1/tasks` body for these tasks: `{"meta":{"orgId"},"data":[…]}`, no links, no total.
pub fn render_tasks<'a>(org_id: &str, tasks: impl IntoIterator<Item = &'a SimTask>) -> Vec<u8> {
    let body = TasksResponse {
        meta: OrgMeta { org_id },
        data: tasks.into_iter().map(task_json).collect(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

pub fn json_ok(tracking_id: &str, body: Vec<u8>) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    limits::set_tracking(&mut resp, tracking_id);
    resp
}

/// Validated `GET /v1/tasks` parameters.
struct TaskQuery {
    from: i64,
    to: i64,
    channels: Option<Vec<String>>,
    page_size: usize,
    page: usize,
    org_id: Option<String>,
}

fn parse_task_query(state: &AppState, raw: Option<&str>) -> Result<TaskQuery, String> {
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let int = |name: &str| -> Result<Option<i64>, String> {
        params
            .get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("'{name}' must be an integer, got '{v}'"))
            })
            .transpose()
    };
    let from = int("from")?.ok_or("'from' is required (epoch milliseconds)")?;
    let to = int("to")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    if from > to {
        return Err(format!("'from' ({from}) must not be after 'to' ({to})"));
    }
    if let Some(days) = state.config.max_range_days
        && to - from > i64::from(days) * 86_400_000
    {
        return Err(format!(
            "the time range between 'from' and 'to' must not exceed {days} day(s)"
        ));
    }
    let page_size = int("pageSize")?.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(format!(
            "'pageSize' must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        ));
    }
    let page = if state.config.honour_page_param {
        let page = int("page")?.unwrap_or(0);
        usize::try_from(page).map_err(|_| format!("'page' must be 0 or more, got {page}"))?
    } else {
        0
    };
    let channels = match params.get("channelTypes") {
        None => None,
        Some(list) => {
            let wanted: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(bad) = wanted.iter().find(|c| !CHANNEL_TYPES.contains(&c.as_str())) {
                return Err(format!(
                    "'channelTypes' contains '{bad}'; allowed: email, chat, telephony, social"
                ));
            }
            (!wanted.is_empty()).then_some(wanted)
        }
    };
    Ok(TaskQuery {
        from,
        to,
        channels,
        page_size: page_size as usize,
        page,
        org_id: params.get("orgId").cloned(),
    })
}

/// Tasks created in `[from, to)` (or `(from, to)`), ascending by `createdTime` then id.
fn select<'w>(world: &'w World, q: &TaskQuery, from_exclusive: bool) -> Vec<&'w SimTask> {
    let tasks = world.tasks();
    let lo = if from_exclusive {
        tasks.partition_point(|t| t.created_ms <= q.from)
    } else {
        tasks.partition_point(|t| t.created_ms < q.from)
    };
    let hi = tasks.partition_point(|t| t.created_ms < q.to).max(lo);
    let skip = q.page.saturating_mul(q.page_size);
    tasks[lo..hi]
        .iter()
        .filter(|t| {
            q.channels
                .as_ref()
                .is_none_or(|c| c.contains(&t.channel_type))
        })
        .skip(skip)
        .take(q.page_size)
        .collect()
}

/// `GET /v1/tasks`.
pub async fn tasks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let admitted = match limits::admit(&state, &headers, Endpoint::Tasks) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let tid = &admitted.tracking_id;
    let query = match parse_task_query(&state, raw.as_deref()) {
        Ok(q) => q,
        Err(msg) => return api_error(StatusCode::BAD_REQUEST, tid, &msg),
    };
    let world = &state.world;
    if query.org_id.as_deref().is_some_and(|o| o != world.org_id()) {
        return api_error(
            StatusCode::FORBIDDEN,
            tid,
            "The token does not have access to the requested organization",
        );
    }
    let selected = select(world, &query, state.config.from_exclusive);
    tracing::debug!(
        from = query.from,
        to = query.to,
        returned = selected.len(),
        "tasks served"
    );
    json_ok(tid, render_tasks(world.org_id(), selected))
}
