//! The listing being built from task pages: each record parsed or quarantined, tasks kept
//! once by id inside the range, rejects kept once, gaps sorted and merged.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Reject;
use super::model::Task;

/// Channel types the API filters on; used to split a millisecond that holds more tasks than
/// one page.
pub(super) const CHANNEL_TYPES: [&str; 4] = ["telephony", "chat", "email", "social"];

/// Tasks created in `[from, to)`, unique by id, in ascending `createdTime` order.
#[derive(Debug, Default)]
pub struct TaskListing {
    pub tasks: Vec<Task>,
    /// `meta.orgId` as reported by the API.
    pub org_id: Option<String>,
    /// Records that could not be understood, each once.
    pub rejects: Vec<Reject>,
    /// Pages received.
    pub pages: u32,
    /// Records received over all pages, parsed or not, re-reads of a boundary included.
    pub raw_records: u64,
    /// Parts of the range that could not be listed: sorted, non-overlapping, inside the range.
    /// Every task outside them is in `tasks`; tasks inside them may be missing.
    pub gaps: Vec<ListingGap>,
    /// The listing covers `[from, until)`: the whole range asked for, or less when it stopped
    /// early at the number of tasks asked for (list the rest from `until`).
    pub until: i64,
}

/// A part `[from_ms, to_ms)` of a listing the API would not serve; list it again later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListingGap {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The HTTP status of the last failure, if the server answered one.
    pub status: Option<u16>,
    pub reason: String,
}

/// One page as received: each record parsed or quarantined, in the server's order.
pub(super) struct Page {
    pub(super) org_id: Option<String>,
    pub(super) records: Vec<Record>,
    /// Records on the page, parsed or not: what the server counted against its page size.
    pub(super) raw: usize,
}

pub(super) struct Record {
    /// Task id, or the raw text of a record that has none usable.
    key: String,
    /// `createdTime`, also read from quarantined records that have one.
    time: Option<i64>,
    item: Item,
}

enum Item {
    Task(Box<Task>),
    Reject(Reject),
}

impl Record {
    pub(super) fn parse(raw: serde_json::Value) -> Record {
        let time = raw
            .pointer("/attributes/createdTime")
            .and_then(serde_json::Value::as_i64);
        let item = match serde_json::from_value::<Task>(raw.clone()) {
            Ok(t) if t.id.trim().is_empty() => {
                Item::Reject(Reject::new("tasks", "empty task id", &raw))
            }
            Ok(t) => Item::Task(Box::new(t)),
            Err(e) => Item::Reject(Reject::new("tasks", e, &raw)),
        };
        let key = match &item {
            Item::Task(t) => format!("id:{}", t.id),
            Item::Reject(r) => format!("raw:{}", r.raw),
        };
        Record { key, time, item }
    }
}

impl Page {
    pub(super) fn times(&self) -> impl Iterator<Item = i64> + '_ {
        self.records.iter().filter_map(|r| r.time)
    }

    /// Ascending by `createdTime` and nothing before the `from` asked for.
    pub(super) fn ascending_from(&self, from_param: i64) -> bool {
        let mut prev = from_param;
        self.times().all(|t| {
            let ok = t >= prev;
            prev = t;
            ok
        })
    }

    /// Tasks a channel-type filter may not return.
    pub(super) fn untyped_tasks(&self) -> usize {
        self.records
            .iter()
            .filter(|r| match &r.item {
                Item::Task(t) => !t
                    .attributes
                    .channel_type
                    .as_deref()
                    .is_some_and(|c| CHANNEL_TYPES.iter().any(|k| k.eq_ignore_ascii_case(c))),
                Item::Reject(_) => false,
            })
            .count()
    }
}

/// The listing being built.
pub(super) struct Collector {
    from: i64,
    to: i64,
    tasks: HashMap<String, Task>,
    rejected: HashSet<String>,
    /// Quarantined records with their `createdTime`, if they had one.
    rejects: Vec<(Option<i64>, Reject)>,
    listing: TaskListing,
    pub(super) failures_in_a_row: u32,
}

impl Collector {
    pub(super) fn new(from: i64, to: i64) -> Collector {
        Collector {
            from,
            to,
            tasks: HashMap::new(),
            rejected: HashSet::new(),
            rejects: Vec::new(),
            listing: TaskListing::default(),
            failures_in_a_row: 0,
        }
    }

    pub(super) fn note(&mut self, page: Page) -> Page {
        self.listing.pages += 1;
        self.listing.raw_records += page.raw as u64;
        if let Some(org) = &page.org_id {
            self.listing.org_id.get_or_insert_with(|| org.clone());
        }
        page
    }

    /// Keeps a page's records inside `[from, to)` (a task seen twice keeps its latest version,
    /// a reject is kept once); returns how many were new to `seen`.
    pub(super) fn take(&mut self, page: Page, seen: &mut HashSet<String>) -> usize {
        let mut added = 0;
        for r in page.records {
            if seen.insert(r.key) {
                added += 1;
            }
            let inside = r.time.is_none_or(|t| t >= self.from && t < self.to);
            match r.item {
                Item::Task(t) if inside => {
                    self.tasks.insert(t.id.clone(), *t);
                }
                Item::Reject(rej) if inside && self.rejected.insert(rej.raw.clone()) => {
                    self.rejects.push((r.time, rej))
                }
                _ => {}
            }
        }
        added
    }

    pub(super) fn gap(&mut self, from: i64, to: i64, status: Option<u16>, reason: String) {
        let (from, to) = (from.max(self.from), to.min(self.to));
        if from < to {
            self.listing.gaps.push(ListingGap {
                from_ms: from,
                to_ms: to,
                status,
                reason,
            });
        }
    }

    /// Tasks collected so far.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Ends the listing at `until`: what was read from there on is dropped, to be listed again
    /// with the rest of the range.
    pub(super) fn stop_at(&mut self, until: i64) {
        self.to = until.clamp(self.from, self.to);
    }

    pub(super) fn finish(mut self) -> TaskListing {
        let mut listing = std::mem::take(&mut self.listing);
        let to = self.to;
        listing.until = to;
        listing.tasks = self
            .tasks
            .into_values()
            .filter(|t| t.attributes.created_time < to)
            .collect();
        listing.rejects = self
            .rejects
            .into_iter()
            .filter(|(time, _)| time.is_none_or(|t| t < to))
            .map(|(_, r)| r)
            .collect();
        listing.gaps.retain_mut(|g| {
            g.to_ms = g.to_ms.min(to);
            g.from_ms < g.to_ms
        });
        listing.tasks.sort_by(|a, b| {
            (a.attributes.created_time, &a.id).cmp(&(b.attributes.created_time, &b.id))
        });
        listing.gaps = merge_gaps(listing.gaps);
        listing
    }
}

/// Sorts gaps and merges any that overlap, so they can be retried as they are.
fn merge_gaps(mut gaps: Vec<ListingGap>) -> Vec<ListingGap> {
    gaps.sort_by_key(|g| (g.from_ms, g.to_ms));
    let mut out: Vec<ListingGap> = Vec::with_capacity(gaps.len());
    for g in gaps {
        match out.last_mut() {
            Some(prev) if g.from_ms < prev.to_ms => prev.to_ms = prev.to_ms.max(g.to_ms),
            _ => out.push(g),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from_ms: i64, to_ms: i64) -> ListingGap {
        ListingGap {
            from_ms,
            to_ms,
            status: None,
            reason: String::new(),
        }
    }

    #[test]
    fn gaps_come_out_sorted_and_without_overlap() {
        let merged = merge_gaps(vec![gap(10, 20), gap(0, 5), gap(15, 30), gap(30, 31)]);
        assert_eq!(merged, [gap(0, 5), gap(10, 30), gap(30, 31)]);
    }

    #[test]
    fn order_is_judged_on_every_record_with_a_time() {
        let page = |times: &[i64]| {
            Page {
            org_id: None,
            records: times
                .iter()
                .map(|&t| {
                    Record::parse(serde_json::json!({"id": format!("t{t}"), "attributes": {"createdTime": t}}))
                })
                .chain([Record::parse(serde_json::json!({"junk": 1}))])
                .collect(),
            raw: times.len() + 1,
        }
        };
        assert!(page(&[5, 5, 7]).ascending_from(4));
        assert!(!page(&[7, 5]).ascending_from(4));
        assert!(!page(&[3, 5]).ascending_from(4), "before the cursor");
    }
}
