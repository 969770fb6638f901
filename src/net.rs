//! HTTP machinery shared by the OAuth and WxCC clients: one retry policy, one place that decides
//! what is transient, and `Retry-After` parsing (object_store's `client/retry.rs` is the model).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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

/// Upper bound on a recording's body when the server sends no `Content-Length`: a WAV file
/// cannot be larger (its RIFF sizes are 32-bit).
pub const MAX_MEDIA_BYTES: u64 = u32::MAX as u64;

/// What the media client may reach. The download URLs come from the API's responses, so they
/// are untrusted input: without a policy a compromised or confused API could steer wxcc into
/// internal services (cloud metadata, admin consoles) or downgrade the transfer to plain http.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPolicy {
    /// The API itself is on loopback (the simulator, a local test double): plain http and
    /// loopback/private addresses are then expected and allowed.
    pub loopback: bool,
}

impl MediaPolicy {
    /// The policy that fits an API base URL: relaxed only when the API is on loopback.
    pub fn for_api(api_base_url: &url::Url) -> MediaPolicy {
        MediaPolicy {
            loopback: crate::config::is_loopback(api_base_url),
        }
    }

    /// Https to public addresses only.
    pub fn strict() -> MediaPolicy {
        MediaPolicy { loopback: false }
    }

    /// Checks a URL before any connection: scheme, and the host when it is an address literal
    /// (names are checked after resolution, by [`PolicyResolver`]).
    pub fn check(&self, url: &url::Url) -> Result<(), MediaRefused> {
        match url.scheme() {
            "https" => {}
            "http" if self.loopback && crate::config::is_loopback(url) => {}
            "http" if self.loopback => {
                return Err(MediaRefused("plain http to a non-loopback host"));
            }
            "http" => return Err(MediaRefused("plain http (https required)")),
            _ => return Err(MediaRefused("not an http(s) URL")),
        }
        match url.host() {
            None => Err(MediaRefused("no host")),
            Some(url::Host::Ipv4(ip)) => self.check_ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(ip.into()),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), MediaRefused> {
        if self.loopback || is_public(ip) {
            Ok(())
        } else {
            Err(MediaRefused(
                "a private, loopback or link-local address (public addresses only)",
            ))
        }
    }
}

/// Why a media URL was not fetched. Holds a fixed phrase, never the URL (a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("download URL refused by the media policy: {0}")]
pub struct MediaRefused(pub &'static str);

/// Addresses reachable by anyone on the internet: not loopback, private (RFC 1918, unique
/// local), link-local (cloud metadata lives there), CGNAT, multicast, broadcast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0xdb8)
        }
    }
}

/// Resolves names, then drops every address the policy refuses, so a name that points inside
/// (DNS rebinding included: the address checked is the address connected to) never connects.
/// `overrides` maps names to fixed addresses (tests map a name to a private address without
/// any real traffic).
#[derive(Debug, Clone, Default)]
pub struct PolicyResolver {
    policy: Option<MediaPolicy>,
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl PolicyResolver {
    pub fn new(policy: MediaPolicy) -> PolicyResolver {
        PolicyResolver {
            policy: Some(policy),
            overrides: HashMap::new(),
        }
    }

    /// Answers `name` with `addrs` instead of asking DNS.
    pub fn with_override(mut self, name: &str, addrs: Vec<IpAddr>) -> PolicyResolver {
        self.overrides.insert(name.to_ascii_lowercase(), addrs);
        self
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_ascii_lowercase();
        let fixed = self.overrides.get(&name).cloned();
        let policy = self.policy.unwrap_or(MediaPolicy::strict());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match fixed {
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(MediaRefused(
                    "the host resolves only to private, loopback or link-local addresses",
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a media request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The policy refused the URL or a redirect: fatal for this recording, never retried.
    #[error(transparent)]
    Refused(#[from] MediaRefused),
    /// The request could not even be built (a malformed URL): fatal, never retried.
    #[error("download URL is malformed")]
    Invalid,
    /// A transport failure (timeout, reset): may pass on retry. The URL is stripped.
    #[error("download failed: {0}")]
    Transport(String),
}

/// The client for pre-signed media downloads, with its [`MediaPolicy`] applied to the URL, to
/// every redirect and to every resolved address. It carries no credentials, sends no
/// `Referer`, ignores proxies (the address check must see the real target), and has no overall
/// timeout (recordings can be hours long) but a read timeout so a stalled transfer fails and
/// is retried.
#[derive(Debug, Clone)]
pub struct MediaClient {
    http: reqwest::Client,
    policy: MediaPolicy,
}

impl MediaClient {
    pub fn new(policy: MediaPolicy) -> MediaClient {
        MediaClient::with_resolver(PolicyResolver::new(policy))
    }

    /// A client whose resolver is given (tests: [`PolicyResolver::with_override`]).
    pub fn with_resolver(resolver: PolicyResolver) -> MediaClient {
        let policy = resolver.policy.unwrap_or(MediaPolicy::strict());
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error(MediaRefused("too many redirects"));
            }
            let downgrade = attempt.url().scheme() != "https"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                return attempt.error(MediaRefused("redirect from https to plain http"));
            }
            match policy.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("wxcc/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .redirect(redirects)
            .referer(false)
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .build()
            .expect("static reqwest configuration is valid");
        MediaClient { http, policy }
    }

    pub fn policy(&self) -> MediaPolicy {
        self.policy
    }

    /// Sends `GET url` once the policy allows it. Errors never contain the URL.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, MediaError> {
        let parsed = url::Url::parse(url).map_err(|_| MediaError::Invalid)?;
        self.policy.check(&parsed)?;
        self.http
            .get(parsed)
            .send()
            .await
            .map_err(classify_media_error)
    }
}

/// A refusal by the resolver or redirect policy surfaces inside reqwest's error chain.
fn classify_media_error(err: reqwest::Error) -> MediaError {
    if err.is_builder() {
        return MediaError::Invalid;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<MediaRefused>() {
            return MediaError::Refused(refused.clone());
        }
        source = e.source();
    }
    MediaError::Transport(err.without_url().to_string())
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
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "52.95.110.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn strict_policy_wants_https_and_loopback_mode_allows_local_http() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let strict = MediaPolicy::strict();
        assert!(
            strict
                .check(&url("https://bucket.s3.amazonaws.com/a"))
                .is_ok()
        );
        assert!(
            strict
                .check(&url("http://bucket.s3.amazonaws.com/a"))
                .is_err()
        );
        assert!(strict.check(&url("https://10.0.0.1/a")).is_err());
        assert!(strict.check(&url("ftp://host/a")).is_err());
        let local = MediaPolicy::for_api(&url("http://127.0.0.1:8080"));
        assert!(local.loopback);
        assert!(local.check(&url("http://127.0.0.1:9/a")).is_ok());
        assert!(local.check(&url("http://media.example/a")).is_err());
        assert!(local.check(&url("https://media.example/a")).is_ok());
        assert!(!MediaPolicy::for_api(&url("https://api.wxcc-us1.cisco.com")).loopback);
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
