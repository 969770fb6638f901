//! A local simulator of the Webex OAuth endpoints, the WxCC Tasks and Captures APIs and the
//! pre-signed recording downloads, behaving as `REFERENCE.md` describes the real services
//! (not as our client expects them to).
//!
//! It stands apart from the rest of the crate on purpose: it builds its own JSON and never
//! imports the client's payload types, so it cannot share the client's assumptions.
//! One HTTP server serves everything:
//!
//! | route | module |
//! |---|---|
//! | `GET /v1/authorize`, `POST /v1/access_token` | [`oauth`] |
//! | `GET /v1/tasks` | [`wxcc`] (guarded by [`limits`]) |
//! | `POST /v1/captures/query` | [`captures`] (guarded by [`limits`]) |
//! | `GET /media/{org}/{task}/{file}` | [`media`] |
//!
//! The API answers as of a simulated clock ([`Simulator::now`], [`Simulator::set_now`],
//! [`Simulator::advance`]), so the world evolves between two sync runs: tasks appear, calls end,
//! captures show up minutes (sometimes hours) later ([`clock`] has the rules). The clock starts
//! at [`World::default_now`], when everything is final. Token lifetimes and download-URL expiry
//! stay on the wall clock.

mod captures;
mod cast;
mod clock;
mod generate;
mod limits;
mod media;
mod oauth;
mod tokens;
mod wav;
pub mod webhooks;
mod world;
mod wxcc;

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod world_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::{TaskState, TaskTimeline};
pub use wav::AudioPlan;
pub use webhooks::{WebhookDelivery, WebhookKnobs, WebhookStats};
pub use world::{RecordingKind, SimRecording, SimRef, SimTask, SimTranscription, World};
pub use wxcc::contact_junk_record;

use wav::mix64;

/// Label of the random stream the client credentials and the URL-signing key are drawn from.
const SECRETS_STREAM: u64 = 0x5345_4352_4554_5300;
/// Label of the random stream the failing capture tasks are picked from.
const FAILING_CAPTURES_STREAM: u64 = 0x4641_494c_4341_5000;
/// Statuses `failing_capture_status` may take (REFERENCE.md §3.6 lists them for the data APIs).
const FAILING_CAPTURE_STATUSES: [u16; 3] = [404, 422, 500];

/// Everything that shapes the simulated world and the server's behaviour.
///
/// The world (tasks, recordings, audio) depends only on `seed`, `start`, `days`, `calls_per_day`,
/// `median_call_secs`, `max_call_secs` and the capture-timing knobs (`late_capture_*`,
/// `recordings_while_open`); the other knobs change how the server answers.
///
/// Each knob on an UNCONFIRMED point of REFERENCE.md is one plausible reading of it; the defaults
/// are the simulator's historical behaviour.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of everything random: the same seed gives byte-identical data.
    pub seed: u64,
    /// First simulated UTC day (fixed, so the world does not depend on the wall clock).
    pub start: NaiveDate,
    /// Days of history.
    pub days: u32,
    /// Tasks per day, all channels.
    pub calls_per_day: u32,
    /// Requests per minute per client id on the API endpoints; 0 disables the limit.
    pub rate_limit_per_minute: u32,
    /// Share of API requests answered with an injected 500/502/503 (not processed).
    pub error_rate: f64,
    /// Share of audio downloads cut off half-way (full `Content-Length`, connection dropped).
    pub truncate_rate: f64,
    /// Bytes per second each audio download is held to, like a storage host reached over a
    /// WAN; `None` serves as fast as the loopback allows.
    pub download_bytes_per_sec: Option<u64>,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// What a refresh grant does to the refresh token (REFERENCE.md §1.4: the same one back is
    /// the evidence; rotation and a clock that never resets are the other readings).
    pub refresh_tokens: RefreshTokens,
    /// If set, download URLs expire after this instead of `urlExpiration` minutes.
    pub url_ttl: Option<Duration>,
    /// Median talk time (log-normal).
    pub median_call_secs: u32,
    /// Longest talk time.
    pub max_call_secs: u32,
    /// If set, `/v1/tasks` answers 400 when `to - from` exceeds this many days (REFERENCE.md
    /// §3.3; sugar for `max_range_ms`, the smaller limit wins when both are set).
    pub max_range_days: Option<u32>,
    /// If set, `/v1/tasks` answers 400 when `to - from` exceeds this many ms (REFERENCE.md §3.3:
    /// the sibling agent-activities API wants `< 24 h`, i.e. `Some(86_399_999)`).
    pub max_range_ms: Option<i64>,
    /// `from` boundary: `false` selects `createdTime >= from`, `true` selects `> from`
    /// (REFERENCE.md §3.2 leaves this UNCONFIRMED).
    pub from_exclusive: bool,
    /// Honour the undocumented 0-based `page` query parameter on `/v1/tasks`; `false` is the
    /// "no page parameter" reading of REFERENCE.md §3.2 (every request serves page 0).
    pub honour_page_param: bool,
    /// `/v1/tasks` serves at most this many tasks per page whatever `pageSize` asks
    /// (REFERENCE.md §3.2, §7.3: an integrator saw 100 per page); `page` k skips k × that.
    pub page_cap: Option<usize>,
    /// On every `/v1/tasks` page that comes back full, this many slots hold unparseable junk
    /// records instead of tasks, which move to the next page (REFERENCE.md §3.2, §7.1: a page
    /// can be full yet yield fewer parsed tasks). At most page size − 1 per page.
    pub junk_per_full_page: usize,
    /// Customer contact values in every shape a client must protect, not just E.164 numbers
    /// and bare addresses: `tel:`/`sip:`/`mailto:` URIs, `Name <address>`, `+1 (415) 555-0100`
    /// in tasks and capture participants, and junk records (with `junk_per_full_page`) that
    /// carry contact values as numbers, objects and arrays (see [`contact_junk_record`]; three
    /// variants, so `junk_per_full_page` ≥ 3 serves them all).
    pub odd_contacts: bool,
    /// This many telephony tasks with a recording (picked from the seed, see
    /// [`Simulator::failing_capture_task_ids`]) make any `POST /v1/captures/query` naming one
    /// of them fail as a whole, until [`Simulator::lift_faults`] (REFERENCE.md §4, §5.2).
    pub failing_capture_tasks: usize,
    /// Status of those failures: 500 (default), 404 or 422, with an `ApiErrorResponse` body
    /// (REFERENCE.md §3.6, §5.2 list them for the data APIs).
    pub failing_capture_status: u16,
    /// `/v1/tasks` requests whose `[from, to)` overlaps this window answer 500 until
    /// [`Simulator::lift_faults`] (REFERENCE.md §3.6, §5: a window the server cannot serve).
    pub failing_tasks_window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Share of recordings, in per mille, that become available hours after their call,
    /// without any change to their task (REFERENCE.md §4: availability follows the recording
    /// schedule, not the task).
    pub late_capture_per_mille: u64,
    /// Those late recordings appear this many hours (min, max) after their call ends.
    pub late_capture_hours: (u32, u32),
    /// List the recordings of calls still in progress, stopTime = the simulated now and the
    /// audio served = the call so far (REFERENCE.md §4: "captures are available for open tasks
    /// (voice only)").
    pub recordings_while_open: bool,
    /// Initial simulated now (see [`Simulator::now`]); `None` starts at
    /// [`World::default_now`], when every task is final and every capture available.
    pub now: Option<DateTime<Utc>>,
    /// How unreliable `capture:available` webhook delivery is ([`webhooks`]).
    pub webhooks: WebhookKnobs,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default(),
            days: 3,
            calls_per_day: 100,
            rate_limit_per_minute: 300,
            error_rate: 0.0,
            truncate_rate: 0.0,
            download_bytes_per_sec: None,
            access_token_ttl: Duration::from_secs(1_209_599),
            refresh_token_ttl: Duration::from_secs(7_776_000),
            refresh_tokens: RefreshTokens::Same,
            url_ttl: None,
            median_call_secs: 240,
            max_call_secs: 3600,
            max_range_days: None,
            max_range_ms: None,
            from_exclusive: false,
            honour_page_param: true,
            page_cap: None,
            junk_per_full_page: 0,
            odd_contacts: false,
            failing_capture_tasks: 0,
            failing_capture_status: 500,
            failing_tasks_window: None,
            late_capture_per_mille: 30,
            late_capture_hours: (2, 6),
            recordings_while_open: false,
            now: None,
            webhooks: WebhookKnobs::default(),
        }
    }
}

/// The readings of REFERENCE.md §1.4 ("Does the refresh token rotate?").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshTokens {
    /// The same refresh token back; its expiry pushed out to the full lifetime by a refresh
    /// more than 24 h after the last one (the evidence).
    #[default]
    Same,
    /// A new refresh token with every refresh grant; the old one is refused from then on.
    Rotate,
    /// The same refresh token back, its expiry never pushed out: it runs out after its
    /// lifetime however often it is used.
    NeverReset,
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source} (pick another port, or 0 for a free one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    #[error("generating the simulated world failed: {0}")]
    Generation(String),
}

/// The registered integration and the seeded user grant a client needs to talk to the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub org_id: String,
    /// Valid for `refresh_token_ttl` from start, scopes `cjp:config cjp:config_read`.
    pub refresh_token: String,
}

/// Counters of what the simulator did, for tests and the demo summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests to `/v1/tasks` and `/v1/captures/query`, whatever their outcome.
    pub api_requests: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Injected 500/502/503 answers.
    pub injected_errors: u64,
    /// Downloads deliberately cut short.
    pub truncated_downloads: u64,
    /// Audio downloads started (200 or 206).
    pub downloads: u64,
    /// Successful token endpoint answers.
    pub token_grants: u64,
    /// Junk records served in place of tasks on full `/v1/tasks` pages
    /// ([`SimConfig::junk_per_full_page`]).
    pub junk_records: u64,
    /// Answers failed by `failing_capture_tasks` or `failing_tasks_window`.
    pub scripted_failures: u64,
}

#[derive(Default)]
struct Counters {
    api_requests: AtomicU64,
    rate_limited: AtomicU64,
    injected_errors: AtomicU64,
    truncated_downloads: AtomicU64,
    downloads: AtomicU64,
    token_grants: AtomicU64,
    junk_records: AtomicU64,
    scripted_failures: AtomicU64,
}

/// Shared state of all handlers.
pub(crate) struct AppState {
    config: SimConfig,
    world: Arc<World>,
    base_url: String,
    credentials: SimCredentials,
    oauth: tokens::OAuthStore,
    guard: limits::ApiGuard,
    media_secret: String,
    counters: Counters,
    tracking_seq: AtomicU64,
    /// The simulated now, epoch ms: the API answers as of this instant.
    now_ms: AtomicI64,
    /// Tasks whose captures query fails while faults are on, in world order.
    failing_captures: Vec<String>,
    /// Set by [`Simulator::lift_faults`]: no scripted or injected failure from then on.
    faults_lifted: AtomicBool,
    /// Webhook subscriptions and the `capture:available` sender.
    webhooks: webhooks::Webhooks,
}

impl AppState {
    /// A fresh tracking id: deterministic per seed and request order, unique per server.
    fn tracking_uuid(&self) -> String {
        let n = self.tracking_seq.fetch_add(1, Ordering::Relaxed);
        let hi = mix64(self.config.seed ^ 0x7472_6163_6b00_0000 ^ n);
        let lo = mix64(hi ^ n);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_le_bytes());
        bytes[8..].copy_from_slice(&lo.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether scripted and injected faults still apply.
    fn faults_on(&self) -> bool {
        !self.faults_lifted.load(Ordering::SeqCst)
    }

    /// The simulated now.
    fn now(&self) -> DateTime<Utc> {
        let ms = self.now_ms.load(Ordering::SeqCst);
        DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }
}

/// A running simulator; dropping it stops the server too.
pub struct Simulator {
    state: Arc<AppState>,
    shutdown_tx: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    dispatcher: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the world, binds `addr` (use `127.0.0.1:0` for a free port) and serves in a
    /// tokio task until [`Simulator::shutdown`] or drop.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> Result<Simulator, SimError> {
        validate(&config).map_err(SimError::InvalidConfig)?;
        let world_cfg = config.clone();
        let world = tokio::task::spawn_blocking(move || generate::generate(&world_cfg))
            .await
            .map_err(|e| SimError::Generation(e.to_string()))?;
        let world = Arc::new(world);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let shown = if local.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], local.port()))
        } else {
            local
        };
        let base_url = format!("http://{shown}");
        let mut secrets = ChaCha8Rng::seed_from_u64(mix64(config.seed ^ SECRETS_STREAM));
        let client_id = format!("C{}", hex::encode(secrets.random::<[u8; 32]>()));
        let client_secret = hex::encode(secrets.random::<[u8; 32]>());
        let media_secret = hex::encode(secrets.random::<[u8; 32]>());
        let oauth = tokens::OAuthStore::new(&config, &client_id, &client_secret, world.org_id());
        let credentials = SimCredentials {
            client_id,
            client_secret,
            org_id: world.org_id().to_string(),
            refresh_token: oauth.seeded_refresh_token().to_string(),
        };
        let now = config.now.unwrap_or_else(|| world.default_now());
        let failing_captures =
            pick_failing_captures(&world, config.seed, config.failing_capture_tasks);
        let hooks = webhooks::Webhooks::new(&config.webhooks, config.seed, &world.recordings());
        let state = Arc::new(AppState {
            webhooks: hooks,
            failing_captures,
            faults_lifted: AtomicBool::new(false),
            now_ms: AtomicI64::new(now.timestamp_millis()),
            guard: limits::ApiGuard::new(&config),
            config,
            world,
            base_url,
            credentials,
            oauth,
            media_secret,
            counters: Counters::default(),
            tracking_seq: AtomicU64::new(0),
        });
        let app = router(state.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        let dispatcher = tokio::spawn(webhooks::run_dispatcher(state.clone()));
        tracing::info!(base_url = %state.base_url, tasks = state.world.tasks().len(), "simulator started");
        Ok(Simulator {
            state,
            shutdown_tx: Some(shutdown_tx),
            task: Some(task),
            dispatcher: Some(dispatcher),
        })
    }

    /// `http://127.0.0.1:PORT` without a trailing slash; serves OAuth, the API and the media.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    pub fn credentials(&self) -> &SimCredentials {
        &self.state.credentials
    }

    /// The whole simulated history in its final state; see [`World::tasks_as_of`] and
    /// [`World::recordings_available_at`] for what the API shows at [`Simulator::now`].
    pub fn world(&self) -> &Arc<World> {
        &self.state.world
    }

    /// The simulated now: `GET /v1/tasks` and `POST /v1/captures/query` answer as of this
    /// instant (millisecond precision), whatever the wall clock says.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// Moves the simulated clock to `t` (truncated to the millisecond). Going back is allowed:
    /// the API then answers as of that earlier instant.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.state
            .now_ms
            .store(t.timestamp_millis(), Ordering::SeqCst);
    }

    /// Moves the simulated clock by `d` (negative goes back).
    pub fn advance(&self, d: chrono::Duration) {
        let step = d.num_milliseconds();
        let _ = self
            .state
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(step))
            });
    }

    /// `export VAR=value` lines that point any client at this simulator.
    pub fn env_lines(&self) -> String {
        let c = &self.state.credentials;
        let base = &self.state.base_url;
        [
            ("WXCC_API_BASE_URL", base.as_str()),
            ("WXCC_OAUTH_BASE_URL", base.as_str()),
            ("WXCC_CLIENT_ID", c.client_id.as_str()),
            ("WXCC_CLIENT_SECRET", c.client_secret.as_str()),
            ("WXCC_ORG_ID", c.org_id.as_str()),
            ("WXCC_REFRESH_TOKEN", c.refresh_token.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("export {k}={v}\n"))
        .collect()
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            api_requests: get(&c.api_requests),
            rate_limited: get(&c.rate_limited),
            injected_errors: get(&c.injected_errors),
            truncated_downloads: get(&c.truncated_downloads),
            downloads: get(&c.downloads),
            token_grants: get(&c.token_grants),
            junk_records: get(&c.junk_records),
            scripted_failures: get(&c.scripted_failures),
        }
    }

    /// The telephony tasks whose captures query fails while faults are on
    /// ([`SimConfig::failing_capture_tasks`]), in world order.
    pub fn failing_capture_task_ids(&self) -> Vec<String> {
        self.state.failing_captures.clone()
    }

    /// Switches every fault off from now on: failing captures, the failing tasks window, and
    /// the injected 5xx answers and truncated downloads. Rate limits and token expiry stay.
    pub fn lift_faults(&self) {
        self.state.faults_lifted.store(true, Ordering::SeqCst);
    }

    /// Revokes a refresh token (as a user removing the integration would); access tokens
    /// already issued stay valid until they expire.
    pub fn revoke_refresh_token(&self, token: &str) {
        self.state.oauth.revoke_refresh_token(token);
    }

    /// Subscribes `url` to `capture:available` events signed with `secret`, as an admin would
    /// with `POST /v1/subscriptions`; returns the subscription id. Only recordings that become
    /// available from now on are announced, unless [`WebhookKnobs::replay`] is set.
    pub fn subscribe_webhook(&self, url: &str, secret: &str) -> Result<String, SimError> {
        webhooks::subscribe_direct(&self.state, url, secret).map_err(SimError::InvalidConfig)
    }

    /// What the webhook sender did so far.
    pub fn webhook_stats(&self) -> WebhookStats {
        self.state.webhooks.stats()
    }

    /// Every finished delivery (after its retries), in completion order.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.state.webhooks.deliveries()
    }

    /// Stops accepting connections and waits (at most a few seconds) for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Rejects knob values the server could not honour.
fn validate(c: &SimConfig) -> Result<(), String> {
    for (name, rate) in [
        ("error_rate", c.error_rate),
        ("truncate_rate", c.truncate_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name} must be within 0..=1, got {rate}"));
        }
    }
    c.webhooks.validate()?;
    if c.page_cap == Some(0) {
        return Err("page_cap must be at least 1".into());
    }
    if c.max_range_ms.is_some_and(|ms| ms < 0) {
        return Err("max_range_ms must not be negative".into());
    }
    if !FAILING_CAPTURE_STATUSES.contains(&c.failing_capture_status) {
        return Err(format!(
            "failing_capture_status must be one of {FAILING_CAPTURE_STATUSES:?}, got {}",
            c.failing_capture_status
        ));
    }
    if let Some((from, to)) = c.failing_tasks_window
        && from >= to
    {
        return Err(format!(
            "failing_tasks_window is empty: {from} is not before {to}"
        ));
    }
    if c.late_capture_per_mille > 1000 {
        return Err(format!(
            "late_capture_per_mille must be at most 1000, got {}",
            c.late_capture_per_mille
        ));
    }
    let (lo, hi) = c.late_capture_hours;
    if lo > hi || hi > 24 * 365 {
        return Err(format!(
            "late_capture_hours ({lo}, {hi}) must satisfy min <= max <= 8760"
        ));
    }
    Ok(())
}

/// `n` telephony tasks with at least one recording, drawn from the seed, in world order.
fn pick_failing_captures(world: &World, seed: u64, n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let candidates: Vec<usize> = world
        .tasks()
        .iter()
        .enumerate()
        .filter(|(_, t)| t.channel_type == "telephony" && world.has_recordings(&t.id))
        .map(|(i, _)| i)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(mix64(seed ^ FAILING_CAPTURES_STREAM));
    let mut picked: Vec<usize> = candidates.choose_multiple(&mut rng, n).copied().collect();
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| world.tasks()[i].id.clone())
        .collect()
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/authorize", get(oauth::authorize))
        .route("/v1/access_token", post(oauth::access_token))
        .route("/v1/tasks", get(wxcc::tasks))
        .route("/v1/captures/query", post(captures::captures_query))
        .route("/media/{org}/{task}/{file}", get(media::download))
        .route(
            "/v1/subscriptions",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(webhooks::get_one).delete(webhooks::delete),
        )
        .with_state(state)
}
