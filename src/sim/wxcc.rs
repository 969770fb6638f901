//! `GET /v1/tasks` of the simulated WxCC API (REFERENCE.md §3), answered as of the simulated
//! now: tasks created later are invisible and the others show their state at that instant.
//! The JSON is built from private structs so key order is stable and the output deterministic.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::clock::TaskState;
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

/// One slot of a page: a task, or a junk record standing in for one.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry<'a> {
    Task(TaskJson<'a>),
    Junk(Value),
}

#[derive(Serialize)]
struct TasksResponse<'a> {
    meta: OrgMeta<'a>,
    data: Vec<Entry<'a>>,
}

/// A record no task parser accepts: wrong-typed or missing `id`, garbled attributes. Never a
/// real task, never carries a usable `createdTime`. `n` picks the variant.
fn junk_record(n: usize, contacts: bool) -> Value {
    if contacts {
        return contact_junk_record(n);
    }
    match n % 3 {
        0 => serde_json::json!({"id": 12345, "attributes": "garbled"}),
        1 => serde_json::json!({"attributes": {"channelType": "telephony", "status": "completed"}}),
        _ => serde_json::json!({"id": null, "attributes": {"createdTime": "garbled"}}),
    }
}

/// With [`SimConfig::odd_contacts`](super::SimConfig::odd_contacts): junk that carries
/// customer contact values, as numbers, objects, arrays and odd strings, in fields a parser
/// fails on, so the record ends up in quarantine with its contact values (a client must
/// protect them there too). `n` picks the variant; public so tests know what to look for.
pub fn contact_junk_record(n: usize) -> Value {
    match n % 3 {
        0 => serde_json::json!({"id": "junk-contact-0", "attributes": {
            "channelType": "telephony", "status": "completed",
            "destination": 18_005_550_198_u64,
            "origin": {"uri": "tel:+14155550199", "name": "Jane Roe <jane.roe@corp.example>"}}}),
        1 => serde_json::json!({"id": "junk-contact-1", "attributes": {
            "channelType": "telephony",
            "origin": "sip:+14155550197@sip.carrier.example;user=phone",
            "destination": "tel:+18005550196",
            "participants": [14_155_550_195_u64, "Roe, Jane <tel:+14155550194>"]}}),
        _ => serde_json::json!({"id": "junk-contact-2", "attributes": {
            "channelType": "email",
            "origin": ["jack.poe@corp.example", "+1 (415) 555-0192"],
            "destination": "mailto:support.desk@corp.example"}}),
    }
}

fn task_json<'a>(t: &'a SimTask, s: TaskState<'a>) -> TaskJson<'a> {
    TaskJson {
        id: &t.id,
        attributes: TaskAttributes {
            owner: s.owner.map(|o| Named {
                id: &o.id,
                name: &o.name,
            }),
            queue: Named {
                id: &t.queue.id,
                name: &t.queue.name,
            },
            channel_type: &t.channel_type,
            status: s.status,
            created_time: t.created_ms,
            last_updated_time: s.last_updated_ms,
            capture_requested: s.capture_requested,
            origin: &t.origin,
            destination: &t.destination,
            direction: &t.direction,
            reason_code: t.reason_code.as_deref(),
            extra: &t.extra_attributes,
        },
    }
}

/// The `GET /v1/tasks` body for these tasks in their final state:
/// `{"meta":{"orgId"},"data":[…]}`, no links, no total. (What the API serves from
/// [`World::default_now`] on; tests compare against it.)
#[cfg(test)]
pub fn render_tasks<'a>(org_id: &str, tasks: impl IntoIterator<Item = &'a SimTask>) -> Vec<u8> {
    render(
        org_id,
        tasks
            .into_iter()
            .map(|t| Entry::Task(task_json(t, t.final_state()))),
    )
}

/// The `GET /v1/tasks` body for these tasks as of `now_ms` (tasks created later are left out).
#[cfg(test)]
pub fn render_tasks_at<'a>(
    org_id: &str,
    tasks: impl IntoIterator<Item = &'a SimTask>,
    now_ms: i64,
) -> Vec<u8> {
    render(
        org_id,
        slots_at(tasks.into_iter().map(Slot::Task), now_ms, false),
    )
}

/// The entries of `slots` as of `now_ms` (tasks created later are left out).
fn slots_at<'a>(
    slots: impl IntoIterator<Item = Slot<'a>>,
    now_ms: i64,
    contact_junk: bool,
) -> impl Iterator<Item = Entry<'a>> {
    slots.into_iter().filter_map(move |s| match s {
        Slot::Task(t) => Some(Entry::Task(task_json(t, t.state_at_ms(now_ms)?))),
        Slot::Junk(n) => Some(Entry::Junk(junk_record(n, contact_junk))),
    })
}

fn render<'a>(org_id: &str, data: impl Iterator<Item = Entry<'a>>) -> Vec<u8> {
    let body = TasksResponse {
        meta: OrgMeta { org_id },
        data: data.collect(),
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

/// `now_ms` is the simulated now, the default of `to`.
fn parse_task_query(state: &AppState, raw: Option<&str>, now_ms: i64) -> Result<TaskQuery, String> {
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
    // "Default = now": the simulated now, inclusive (`to` is otherwise exclusive).
    let to = int("to")?.unwrap_or(now_ms.saturating_add(1));
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
    if let Some(max) = state.config.max_range_ms
        && to.saturating_sub(from) > max
    {
        return Err(format!(
            "the time range between 'from' and 'to' must not exceed {max} ms"
        ));
    }
    let page_size = int("pageSize")?.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(format!(
            "'pageSize' must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        ));
    }
    // The server's own cap wins over what the client asks for.
    let page_size = (page_size as usize).min(state.config.page_cap.unwrap_or(usize::MAX));
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
        page_size,
        page,
        org_id: params.get("orgId").cloned(),
    })
}

/// One slot of a page before rendering.
#[derive(Clone, Copy, Debug)]
enum Slot<'w> {
    Task(&'w SimTask),
    /// A junk record; the number picks its variant.
    Junk(usize),
}

/// The page asked for: tasks created in `[from, to)` (or `(from, to)`) and by `now_ms`,
/// ascending by `createdTime` then id, `page_size` slots per page. With `junk` > 0 every page
/// that comes back full has that many junk slots, evenly spread and never last, and the tasks
/// they displace move to the next page; a page that is not full has none.
fn select<'w>(
    world: &'w World,
    q: &TaskQuery,
    from_exclusive: bool,
    junk: usize,
    now_ms: i64,
) -> Vec<Slot<'w>> {
    let tasks = world.created_by(now_ms);
    let lo = if from_exclusive {
        tasks.partition_point(|t| t.created_ms <= q.from)
    } else {
        tasks.partition_point(|t| t.created_ms < q.from)
    };
    let hi = tasks.partition_point(|t| t.created_ms < q.to).max(lo);
    let junk = junk.min(q.page_size - 1);
    let real_per_full = q.page_size - junk;
    let skip = q.page.saturating_mul(real_per_full);
    let mut page: Vec<&SimTask> = tasks[lo..hi]
        .iter()
        .filter(|t| {
            q.channels
                .as_ref()
                .is_none_or(|c| c.contains(&t.channel_type))
        })
        .skip(skip)
        .take(real_per_full + 1)
        .collect();
    if page.len() <= real_per_full || junk == 0 {
        page.truncate(q.page_size);
        return page.into_iter().map(Slot::Task).collect();
    }
    page.truncate(real_per_full);
    let junk_at: Vec<usize> = (1..=junk).map(|i| i * q.page_size / (junk + 1)).collect();
    let mut tasks = page.into_iter();
    (0..q.page_size)
        .filter_map(|slot| match junk_at.iter().position(|&j| j == slot) {
            Some(i) => Some(Slot::Junk(q.page + i)),
            None => tasks.next().map(Slot::Task),
        })
        .collect()
}

/// Whether `q` asks for tasks created in `window` (epoch ms, half-open).
fn overlaps(q: &TaskQuery, from_exclusive: bool, window: (i64, i64)) -> bool {
    let first = q.from.saturating_add(i64::from(from_exclusive));
    first.max(window.0) < q.to.min(window.1)
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
    // One reading of the clock per request, so `to` and the task states agree.
    let now_ms = state.now().timestamp_millis();
    let query = match parse_task_query(&state, raw.as_deref(), now_ms) {
        Ok(q) => q,
        Err(msg) => return api_error(StatusCode::BAD_REQUEST, tid, &msg),
    };
    let world = &state.world;
    if let Some(resp) = limits::foreign_org(query.org_id.as_deref(), world.org_id(), tid) {
        return resp;
    }
    let cfg = &state.config;
    if let Some((a, b)) = cfg.failing_tasks_window
        && state.faults_on()
        && overlaps(
            &query,
            cfg.from_exclusive,
            (a.timestamp_millis(), b.timestamp_millis()),
        )
    {
        AppState::bump(&state.counters.scripted_failures);
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            tid,
            "Internal server error",
        );
    }
    let selected = select(
        world,
        &query,
        cfg.from_exclusive,
        cfg.junk_per_full_page,
        now_ms,
    );
    let junk = selected
        .iter()
        .filter(|s| matches!(s, Slot::Junk(_)))
        .count();
    state
        .counters
        .junk_records
        .fetch_add(junk as u64, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(
        from = query.from,
        to = query.to,
        now = now_ms,
        returned = selected.len(),
        junk,
        "tasks served"
    );
    let entries = slots_at(selected, now_ms, cfg.odd_contacts);
    json_ok(tid, render(world.org_id(), entries))
}
