//! HTTP machinery shared by the OAuth and WxCC clients: one retry policy, one place that decides
//! what is transient, and `Retry-After` parsing (object_store's `client/retry.rs` is the model).

use std::time::Duration;

use backon::ExponentialBuilder;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Bounds for retrying transient failures (429, 5xx, timeouts, connection resets).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Upper bound on the time spent sleeping between attempts of one request.
    pub max_total_delay: Duration,
    /// Floor for the wait after a 429 whose `Retry-After` is absent, zero or malformed, so a
    /// rate-limited client never spins.
    pub min_rate_limited_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_total_delay: Duration::from_secs(15 * 60),
            min_rate_limited_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter, bounded in count and total time.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_total_delay(Some(self.max_total_delay))
    }

    /// The wait before the next attempt: the server's `Retry-After` when it gave a usable one,
    /// else the backoff delay, never less than the rate-limit floor after a 429.
    /// `None` (backoff exhausted) stays `None`.
    pub fn next_delay(
        &self,
        backoff: Option<Duration>,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let backoff = backoff?;
        let wait = match retry_after {
            // Honour the server, but a bogus hour-long value must not stall a run forever.
            Some(server) => server.min(Duration::from_secs(3600)),
            None => backoff,
        };
        Some(if rate_limited {
            wait.max(self.min_rate_limited_delay)
        } else {
            wait
        })
    }
}

/// Statuses worth another attempt: the request was not processed or the server was briefly
/// unable to (REFERENCE.md §5.1 lists 423, 429, 502, 503, 504; 500 is retried with backoff too).
pub fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 423 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After` as delay-seconds or an HTTP date. Zero, negative or malformed values
/// give `None`, so the caller falls back to its own backoff.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs > 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    wait.to_std().ok().filter(|d| !d.is_zero())
}

/// True for errors where another attempt may succeed: timeouts, refused or reset connections,
/// bodies cut short.
pub fn is_transient_transport(err: &reqwest::Error) -> bool {
    err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() || err.is_decode()
}

/// One reqwest client per process for the API and OAuth hosts. No redirects are followed: a
/// redirect from a JSON API would be a misconfiguration we want to see.
pub fn api_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("wxcc/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("static reqwest configuration is valid")
}

/// The client for pre-signed media downloads: no overall timeout (recordings can be hours
/// long), but a read timeout so a stalled transfer fails and is retried.
pub fn media_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("wxcc/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .build()
        .expect("static reqwest configuration is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_accepts_seconds_and_rejects_nonsense() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("0")), None);
        assert_eq!(retry_after(&headers("-3")), None);
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        let d = retry_after(&headers(&later.to_rfc2822())).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn rate_limited_waits_are_never_tight() {
        let p = RetryPolicy::default();
        let d = p.next_delay(Some(Duration::from_millis(1)), true, None);
        assert_eq!(d, Some(Duration::from_secs(1)));
        let d = p.next_delay(
            Some(Duration::from_millis(1)),
            true,
            Some(Duration::from_secs(9)),
        );
        assert_eq!(d, Some(Duration::from_secs(9)));
        assert_eq!(p.next_delay(None, true, Some(Duration::from_secs(9))), None);
    }
}
