//! Listing tasks over a time range without relying on any page parameter.
//!
//! `GET /v1/tasks` documents no working pagination (REFERENCE.md §3.2): the client asks for the
//! largest page and, when a page comes back full, moves `from` to just before the last
//! `createdTime` it saw. The 1 ms overlap re-reads the boundary, so tasks sharing that
//! millisecond are found whether the server treats `from` as inclusive or exclusive; the
//! overlap is removed by de-duplicating on task id. Results are filtered to `[from, to)` on
//! the client, whatever the server's own boundary semantics.

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::model::{Task, TasksPage};
use super::{ApiClient, ApiError, Reject, Result};

/// Channel types the API filters on; used to split a millisecond that holds more tasks than
/// one page.
const CHANNEL_TYPES: [&str; 4] = ["telephony", "chat", "email", "social"];

/// Tasks created in `[from, to)`, unique by id, in ascending `createdTime` order.
#[derive(Debug, Default)]
pub struct TaskListing {
    pub tasks: Vec<Task>,
    /// `meta.orgId` as reported by the API.
    pub org_id: Option<String>,
    pub rejects: Vec<Reject>,
    pub pages: u32,
}

impl ApiClient {
    /// Lists every task created in `[from_ms, to_ms)`.
    pub async fn list_tasks(&self, from_ms: i64, to_ms: i64) -> Result<TaskListing> {
        let mut seen: HashMap<String, Task> = HashMap::new();
        let mut listing = TaskListing::default();
        let page_size = self.settings.page_size.clamp(1, super::MAX_PAGE_SIZE) as usize;
        // One below `from` so an exclusive server still returns tasks created exactly at `from`.
        let mut cursor = from_ms - 1;
        loop {
            let page = self.tasks_page(cursor, to_ms, None, &mut listing).await?;
            let full = page.len() >= page_size;
            let last = page.iter().map(|t| t.attributes.created_time).max();
            keep(&mut seen, page, from_ms, to_ms);
            let Some(last) = last.filter(|_| full) else {
                break;
            };
            let next = last - 1;
            if next > cursor {
                cursor = next;
                continue;
            }
            // A full page that does not advance: more than a page of tasks within two
            // milliseconds. Read that slice once per channel type, then step past it.
            for channel in CHANNEL_TYPES {
                let slice = self
                    .tasks_page(cursor, last + 1, Some(channel), &mut listing)
                    .await?;
                if slice.len() >= page_size {
                    return Err(ApiError::Paging(format!(
                        "more than {page_size} {channel} tasks were created between {cursor} and {last} ms; \
                         the API offers no way to page through them"
                    )));
                }
                keep(&mut seen, slice, from_ms, to_ms);
            }
            cursor = last;
        }
        listing.tasks = seen.into_values().collect();
        listing.tasks.sort_by(|a, b| {
            (a.attributes.created_time, &a.id).cmp(&(b.attributes.created_time, &b.id))
        });
        Ok(listing)
    }

    /// The org the token belongs to, as the API reports it in `meta.orgId` (one small request).
    pub async fn org_id(&self) -> Result<Option<String>> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut listing = TaskListing::default();
        self.tasks_page(now - 60_000, now, None, &mut listing)
            .await?;
        Ok(listing.org_id)
    }

    async fn tasks_page(
        &self,
        from_ms: i64,
        to_ms: i64,
        channel: Option<&str>,
        listing: &mut TaskListing,
    ) -> Result<Vec<Task>> {
        let url = self.url("v1/tasks");
        let mut query: Vec<(&str, String)> = vec![
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
            ("pageSize", self.settings.page_size.to_string()),
        ];
        if let Some(c) = channel {
            query.push(("channelTypes", c.to_owned()));
        }
        if let Some(org) = &self.settings.org_id {
            query.push(("orgId", org.clone()));
        }
        let page: TasksPage = self
            .send("GET /v1/tasks", |http, token| {
                http.get(url.clone())
                    .query(&query)
                    .bearer_auth(token.expose_secret())
            })
            .await?;
        listing.pages += 1;
        if let Some(org) = page.meta.and_then(|m| m.org_id) {
            listing.org_id.get_or_insert(org);
        }
        let mut tasks = Vec::with_capacity(page.data.len());
        for raw in page.data {
            match serde_json::from_value::<Task>(raw.clone()) {
                Ok(t) if t.id.trim().is_empty() => {
                    listing
                        .rejects
                        .push(Reject::new("tasks", "empty task id", &raw))
                }
                Ok(t) => tasks.push(t),
                Err(e) => listing.rejects.push(Reject::new("tasks", e, &raw)),
            }
        }
        Ok(tasks)
    }
}

/// Adds tasks inside `[from, to)`; a task seen twice keeps its latest version.
fn keep(seen: &mut HashMap<String, Task>, page: Vec<Task>, from: i64, to: i64) {
    for t in page {
        let at = t.attributes.created_time;
        if at >= from && at < to {
            seen.insert(t.id.clone(), t);
        }
    }
}
