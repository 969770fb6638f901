//! Listing tasks over a time range without relying on any page parameter (issue #11).
//!
//! `GET /v1/tasks` documents no working pagination, no page cap below 1000 that it honours, and
//! no maximum range (REFERENCE.md §3.2, §3.3), so nothing here trusts any of them:
//!
//! - **Request spans.** `[from, to)` is cut so that every request has `to - from` at most
//!   [`ApiSettings::max_request_span_ms`](super::ApiSettings) (under 24 h, the documented limit
//!   of the sibling agent-activities API). A request asks from one millisecond before its span,
//!   so a server that reads `from` as exclusive still returns tasks created exactly at it; the
//!   limit includes that millisecond. A 400 for a request longer than a minute is taken as a
//!   range refusal: the limit halves for the rest of the process and that part is asked again.
//! - **Paging.** Within a span the client asks again from just before the last `createdTime`
//!   it saw for as long as pages move forward, whatever size the server serves; it stops on an
//!   empty page or one that only re-reads the last millisecond. Duplicates from the overlap are
//!   removed by id. A millisecond holding more than a page is read once per channel type.
//! - **Order.** A page not ascending by `createdTime` makes the cursor meaningless. Such a page
//!   is trusted only when it is shorter than the largest page the server has served (then it
//!   holds every task of the rest of the span, whatever the order); otherwise the span is
//!   halved until pages are short or ascending, and below the minimum span it becomes a gap.
//! - **Failures.** A span whose request keeps failing after the client's retries is halved
//!   down to [`ApiSettings::min_gap_span_ms`](super::ApiSettings) and then recorded as a
//!   [`ListingGap`](super::ListingGap); the rest is listed. Authentication failures stay fatal, and so does a run
//!   of failures long enough to be an outage rather than a bad spot.
//!
//! Records that cannot be parsed are quarantined as rejects, once each, and counted in the
//! raw page size. Results are filtered to `[from, to)` on the client, whatever the server's
//! own boundary semantics.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use secrecy::ExposeSecret;

use super::listing::{CHANNEL_TYPES, Collector, Page, Record, TaskListing};
use super::model::TasksPage;
use super::spans::{RANGE_REFUSAL_MIN_SPAN_MS, cut_spans, failure_budget};
use super::{ApiClient, ApiError, Result};
use crate::net::RetryPolicy;

/// Retries per request once a span is being narrowed after a failure: the full policy was
/// already spent on the wider span, and a narrower one that fails is recorded as a gap.
const NARROWING_RETRIES: usize = 3;

impl ApiClient {
    /// Lists every task created in `[from_ms, to_ms)`, except in `gaps`.
    ///
    /// Errors only for what narrowing cannot help: authentication, an unreachable or
    /// rate-limiting server, a 400 for a short request, or a long run of failures.
    pub async fn list_tasks(&self, from_ms: i64, to_ms: i64) -> Result<TaskListing> {
        self.list_tasks_upto(from_ms, to_ms, usize::MAX).await
    }

    /// Like [`ApiClient::list_tasks`], but stops at the first page boundary after about
    /// `max_tasks` tasks, so a busy day can be listed and processed a part at a time with
    /// memory bounded by the part. The listing says how far it got (`until`).
    pub async fn list_tasks_upto(
        &self,
        from_ms: i64,
        to_ms: i64,
        max_tasks: usize,
    ) -> Result<TaskListing> {
        let mut acc = Collector::new(from_ms, to_ms);
        let min_span = self.settings.min_gap_span_ms.max(1);
        let budget = failure_budget(to_ms - from_ms, min_span);
        let narrowing = RetryPolicy {
            max_retries: self.settings.retry.max_retries.min(NARROWING_RETRIES),
            ..self.settings.retry.clone()
        };
        // Spans still to list, earliest last; `true` once narrowed after a failure.
        let mut todo = vec![(from_ms, to_ms, false)];
        while let Some((from, to, after_failure)) = todo.pop() {
            if from >= to {
                continue;
            }
            let limit = self.learned.span_limit();
            if to - (from - 1) > limit {
                let pieces = cut_spans(from, to, limit);
                todo.extend(pieces.into_iter().rev().map(|(a, b)| (a, b, after_failure)));
                continue;
            }
            let policy = if after_failure {
                &narrowing
            } else {
                &self.settings.retry
            };
            let (resume, failed, status, reason) = match self
                .list_span(from, to, policy, &mut acc, max_tasks)
                .await?
            {
                SpanEnd::Done => continue,
                SpanEnd::Enough { until } => {
                    acc.stop_at(until);
                    break;
                }
                SpanEnd::RangeRefused { resume, asked } => {
                    let limit = self.learned.range_refused(asked);
                    self.stats.narrowed.fetch_add(1, Relaxed);
                    tracing::info!(asked, limit, "/v1/tasks refused the range; narrowing");
                    todo.push((resume, to, after_failure));
                    continue;
                }
                SpanEnd::Unordered { resume } => (
                    resume,
                    false,
                    None,
                    "pages not in createdTime order".to_owned(),
                ),
                SpanEnd::Failed { resume, error } => {
                    acc.failures_in_a_row += 1;
                    if acc.failures_in_a_row > budget {
                        return Err(error);
                    }
                    let status = match &error {
                        ApiError::Status { status, .. } => Some(*status),
                        ApiError::Transport { status, .. } => *status,
                        _ => None,
                    };
                    (resume, true, status, error.to_string())
                }
            };
            let after_failure = after_failure || failed;
            if to - resume > min_span {
                let mid = resume + (to - resume) / 2;
                self.stats.narrowed.fetch_add(1, Relaxed);
                tracing::debug!(resume, mid, to, %reason, "narrowing a task span");
                todo.push((mid, to, after_failure));
                todo.push((resume, mid, after_failure));
            } else {
                self.stats.task_gaps.fetch_add(1, Relaxed);
                tracing::warn!(from = resume, to, %reason, "tasks not listed; recorded as a gap");
                acc.gap(resume, to, status, reason);
            }
        }
        Ok(acc.finish())
    }

    /// Pages through one request span. Everything before the returned `resume` is listed.
    async fn list_span(
        &self,
        from: i64,
        to: i64,
        policy: &RetryPolicy,
        acc: &mut Collector,
        max_tasks: usize,
    ) -> Result<SpanEnd> {
        let page_size = self.settings.page_size.clamp(1, super::MAX_PAGE_SIZE) as usize;
        let mut seen: HashSet<String> = HashSet::new();
        let mut cursor = from - 1;
        // Whether the server returns tasks created exactly at `from` (an inclusive `from`).
        let mut inclusive = false;
        let mut previous_raw: Option<usize> = None;
        loop {
            let page = match self.tasks_page(cursor, to, None, policy).await {
                Ok(page) => acc.note(page),
                Err(e) => return trouble(e, cursor, to),
            };
            acc.failures_in_a_row = 0;
            // Possibly cut by the server's cap: strictly (no page was larger) for decisions that
            // only cost requests, by the cap seen cut short for those that record a gap.
            let as_large_as_any = self.learned.largest_so_far(page.raw);
            let full = self.learned.full(page.raw, page_size);
            if page.raw == 0 {
                return Ok(SpanEnd::Done);
            }
            let ordered = page.ascending_from(cursor);
            inclusive |= page.times().any(|t| t == cursor);
            let last = page.times().max();
            let untyped = page.untyped_tasks();
            let raw = page.raw;
            let added = acc.take(page, &mut seen);
            if added > 0
                && let Some(previous) = previous_raw
            {
                // The page before did not hold the rest of the span: it was cut at its size.
                self.learned.truncated(previous);
            }
            previous_raw = Some(raw);
            if !ordered {
                return Ok(if as_large_as_any {
                    SpanEnd::Unordered { resume: cursor + 1 }
                } else {
                    SpanEnd::Done
                });
            }
            let Some(last) = last else {
                // Only records without a createdTime: nothing to page on.
                return Ok(if full {
                    SpanEnd::Failed {
                        resume: cursor + 1,
                        error: ApiError::Paging("a full page without any createdTime".into()),
                    }
                } else {
                    SpanEnd::Done
                });
            };
            if last >= to {
                return Ok(SpanEnd::Done);
            }
            // Ascending: everything before `last` is in hand, `last` itself maybe not all.
            if last - 1 > cursor {
                if acc.len() >= max_tasks {
                    return Ok(SpanEnd::Enough { until: last });
                }
                cursor = last - 1;
                continue;
            }
            // The page holds only `cursor` and `cursor + 1`.
            if added == 0 && !full {
                // A re-read of the last millisecond: the span is listed.
                return Ok(SpanEnd::Done);
            }
            if full || as_large_as_any {
                // Perhaps more than a page within two milliseconds: read them once per channel.
                let split = Split {
                    cursor,
                    last,
                    span_from: from,
                    raw,
                    untyped,
                };
                if let Some(end) = self.split_by_channel(split, policy, acc, &mut seen).await? {
                    return Ok(end);
                }
            }
            // Everything up to `last` is in hand: step past it. `last == cursor` only when the
            // server returned a task created at `from`, so it reads `from` inclusively.
            if last >= to - 1 {
                return Ok(SpanEnd::Done);
            }
            cursor = if inclusive { last + 1 } else { last };
        }
    }

    /// Reads the tasks of `(cursor, last]` once per channel type, after a page that held
    /// only those milliseconds and may have been cut short. Records a gap for them when a
    /// channel still fills a page, or when the page was cut short and held tasks without a
    /// known channel type (which no filter returns). `Some` ends the span.
    async fn split_by_channel(
        &self,
        split: Split,
        policy: &RetryPolicy,
        acc: &mut Collector,
        seen: &mut HashSet<String>,
    ) -> Result<Option<SpanEnd>> {
        let Split {
            cursor,
            last,
            span_from,
            raw,
            untyped,
        } = split;
        let page_size = self.settings.page_size.clamp(1, super::MAX_PAGE_SIZE) as usize;
        let mut slices = Vec::with_capacity(CHANNEL_TYPES.len());
        for channel in CHANNEL_TYPES {
            match self
                .tasks_page(cursor, last + 1, Some(channel), policy)
                .await
            {
                Ok(page) => slices.push((channel, acc.note(page))),
                Err(e) => return trouble(e, cursor, last + 1).map(Some),
            }
        }
        let typed: usize = slices.iter().map(|(_, p)| p.raw).sum();
        let cut_short = typed > raw - untyped;
        if cut_short {
            // The unfiltered page missed some: the server's cap is its size.
            self.learned.truncated(raw);
        }
        let mut overflow = (untyped > 0 && (cut_short || self.learned.full(raw, page_size)))
            .then(|| "tasks without a known channel type".to_owned());
        for (channel, slice) in slices {
            self.learned.largest_so_far(slice.raw);
            if self.learned.full(slice.raw, page_size) {
                overflow = Some(format!("more than a page of {channel} tasks"));
            }
            acc.take(slice, seen);
        }
        if let Some(reason) = overflow {
            let gap_from = (cursor + 1).min(last).max(span_from);
            tracing::warn!(from = gap_from, to = last + 1, %reason,
                "a millisecond holds more tasks than the API pages");
            self.stats.task_gaps.fetch_add(1, Relaxed);
            acc.gap(gap_from, last + 1, None, reason);
        }
        Ok(None)
    }

    /// The org the token belongs to, as the API reports it in `meta.orgId` (one small request).
    pub async fn org_id(&self) -> Result<Option<String>> {
        let now = chrono::Utc::now().timestamp_millis();
        let page = self
            .tasks_page(now - 60_000, now, None, &self.settings.retry)
            .await?;
        Ok(page.org_id)
    }

    async fn tasks_page(
        &self,
        from_ms: i64,
        to_ms: i64,
        channel: Option<&str>,
        policy: &RetryPolicy,
    ) -> Result<Page> {
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
            .send_with("GET /v1/tasks", policy, |http, token| {
                http.get(url.clone())
                    .query(&query)
                    .bearer_auth(token.expose_secret())
            })
            .await?;
        let raw = page.data.len();
        let records = page.data.into_iter().map(Record::parse).collect();
        Ok(Page {
            org_id: page.meta.and_then(|m| m.org_id),
            records,
            raw,
        })
    }
}

/// The page that prompted a split by channel: it held only `(cursor, last]` (and `cursor`
/// itself from a server that reads `from` inclusively).
struct Split {
    cursor: i64,
    last: i64,
    span_from: i64,
    raw: usize,
    untyped: usize,
}

/// How listing one request span ended.
enum SpanEnd {
    Done,
    /// The listing has the tasks it asked for: everything before `until` is in hand.
    Enough {
        until: i64,
    },
    /// A 400 for a request spanning `asked` ms.
    RangeRefused {
        resume: i64,
        asked: i64,
    },
    /// A full page out of `createdTime` order.
    Unordered {
        resume: i64,
    },
    Failed {
        resume: i64,
        error: ApiError,
    },
}

/// Sorts a failed request into what narrowing can help with and what it cannot.
fn trouble(error: ApiError, from_param: i64, to_param: i64) -> Result<SpanEnd> {
    let resume = from_param + 1;
    let asked = to_param - from_param;
    match &error {
        ApiError::Status { status: 400, .. } if asked > RANGE_REFUSAL_MIN_SPAN_MS => {
            Ok(SpanEnd::RangeRefused { resume, asked })
        }
        ApiError::Status {
            status: 400 | 401 | 403,
            ..
        } => Err(error),
        ApiError::Status { .. } | ApiError::Malformed { .. } => {
            Ok(SpanEnd::Failed { resume, error })
        }
        ApiError::Transport {
            status: Some(500..),
            ..
        } => Ok(SpanEnd::Failed { resume, error }),
        ApiError::Auth(_) | ApiError::Transport { .. } | ApiError::Paging(_) => Err(error),
    }
}
