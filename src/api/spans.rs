//! What the task listing learns about the server while it runs, and how it cuts a time range
//! into requests. Shared by every clone of the client, so a window pays for a lesson once.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// A 400 on `/v1/tasks` is read as "range too long" only when the request spanned more than
/// this; a shorter request refused with 400 is a genuine bad request and stays fatal.
pub const RANGE_REFUSAL_MIN_SPAN_MS: i64 = 60_000;

/// Request spans and page sizes seen so far.
#[derive(Debug)]
pub(super) struct Learned {
    /// Largest `to - from` a request may carry; starts at the setting, halves on range refusals.
    span_limit: AtomicI64,
    /// Most records any page has held.
    largest_page: AtomicUsize,
    /// Most records a page held that was then shown to be cut short (the next page of the
    /// same span brought new ids): the server's real cap, which may be below `pageSize`.
    largest_truncated: AtomicUsize,
}

impl Learned {
    pub(super) fn new(max_request_span_ms: i64) -> Learned {
        Learned {
            // `to - from` of 2 ms is the least that still covers one millisecond with the
            // 1 ms-under-from request.
            span_limit: AtomicI64::new(max_request_span_ms.max(2)),
            largest_page: AtomicUsize::new(0),
            largest_truncated: AtomicUsize::new(0),
        }
    }

    pub(super) fn span_limit(&self) -> i64 {
        self.span_limit.load(Ordering::Relaxed)
    }

    /// A range refusal for a request spanning `asked` ms: allow at most half of it from now on.
    pub(super) fn range_refused(&self, asked: i64) -> i64 {
        let half = (asked / 2).max(2);
        self.span_limit.fetch_min(half, Ordering::Relaxed).min(half)
    }

    /// Notes a page's raw size; `true` when no page so far was larger, so a page of this size
    /// may be the server's cap (used where a wrong "complete" would lose tasks).
    pub(super) fn largest_so_far(&self, raw: usize) -> bool {
        let before = self.largest_page.fetch_max(raw, Ordering::Relaxed);
        raw > 0 && raw >= before
    }

    pub(super) fn truncated(&self, raw: usize) {
        self.largest_truncated.fetch_max(raw, Ordering::Relaxed);
    }

    /// Whether a page of `raw` records may have been cut by the server's cap: at least
    /// `pageSize` (a server may ignore it), or at least the largest page seen cut short.
    /// The largest page seen is not used here: in a quiet org it is tiny, and a millisecond
    /// holding that many tasks would be taken for an overflowing one.
    pub(super) fn full(&self, raw: usize, page_size: usize) -> bool {
        let cap = match self.largest_truncated.load(Ordering::Relaxed) {
            0 => page_size,
            seen => seen.min(page_size),
        };
        raw > 0 && raw >= cap
    }
}

/// Cuts `[from, to)` into consecutive, near-equal spans such that each request for one of
/// them, which asks from one millisecond before the span (`from - 1`) to its end, has
/// `to - from <= limit`.
pub(super) fn cut_spans(from: i64, to: i64, limit: i64) -> Vec<(i64, i64)> {
    if from >= to {
        return Vec::new();
    }
    let longest = (limit - 1).max(1);
    let len = to - from;
    let count = (len + longest - 1) / longest;
    let (base, extra) = (len / count, len % count);
    let mut out = Vec::with_capacity(count as usize);
    let mut start = from;
    for i in 0..count {
        let end = start + base + i64::from(i < extra);
        out.push((start, end));
        start = end;
    }
    out
}

/// How many failed requests in a row are tolerated while narrowing `[from, to)` down to
/// `min_span`: enough to chase two bad spots to the bottom, not enough to halve a whole
/// outage into thousands of requests.
pub(super) fn failure_budget(len: i64, min_span: i64) -> u32 {
    let mut levels = 1;
    let mut span = len.max(1);
    while span > min_span.max(1) {
        span /= 2;
        levels += 1;
    }
    2 * levels + 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn check(from: i64, to: i64, limit: i64) -> Vec<(i64, i64)> {
        let spans = cut_spans(from, to, limit);
        assert_eq!(spans.first().map(|s| s.0), Some(from));
        assert_eq!(spans.last().map(|s| s.1), Some(to));
        for w in spans.windows(2) {
            assert_eq!(w[0].1, w[1].0, "contiguous");
        }
        for &(a, b) in &spans {
            assert!(a < b, "non-empty");
            assert!(
                b - (a - 1) <= limit,
                "request span {} > {limit}",
                b - (a - 1)
            );
        }
        spans
    }

    #[test]
    fn a_day_needs_two_requests_under_the_24_hour_limit() {
        let spans = check(0, DAY, DAY - 1);
        assert_eq!(spans, [(0, DAY / 2), (DAY / 2, DAY)]);
        for (a, b) in spans {
            assert!(b - (a - 1) < DAY);
        }
    }

    #[test]
    fn short_ranges_stay_whole_and_odd_lengths_spread_evenly() {
        assert_eq!(check(5, 10, DAY - 1), [(5, 10)]);
        assert_eq!(check(0, 10, 4), [(0, 3), (3, 6), (6, 8), (8, 10)]);
        assert_eq!(check(0, 3, 2), [(0, 1), (1, 2), (2, 3)]);
        assert!(cut_spans(7, 7, 10).is_empty());
        let two_days = check(1_700_000_000_000, 1_700_000_000_000 + 2 * DAY, DAY - 1);
        assert_eq!(two_days.len(), 3);
    }

    #[test]
    fn range_refusals_halve_the_limit_and_never_widen_it() {
        let l = Learned::new(DAY - 1);
        assert_eq!(l.range_refused(DAY - 1), DAY / 2 - 1);
        assert_eq!(
            l.range_refused(DAY),
            DAY / 2 - 1,
            "a wider refusal teaches nothing"
        );
        assert_eq!(l.range_refused(1000), 500);
        assert_eq!(l.span_limit(), 500);
    }

    #[test]
    fn a_page_is_full_at_page_size_or_at_the_cap_seen_cut_short() {
        let l = Learned::new(DAY);
        assert!(!l.full(3, 1000));
        assert!(l.full(1000, 1000));
        l.truncated(100);
        assert!(l.full(100, 1000) && !l.full(99, 1000));
        assert!(!l.full(0, 1000));
        assert!(l.largest_so_far(3));
        assert!(!l.largest_so_far(2));
    }

    #[test]
    fn the_failure_budget_covers_a_descent_to_the_minimum_span() {
        // 86 400 000 → 60 000 takes 11 halvings.
        assert_eq!(failure_budget(DAY, 60_000), 2 * 12 + 4);
        assert_eq!(failure_budget(10, 60_000), 6);
    }
}
