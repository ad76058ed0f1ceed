//! CRM sync: the outbox dispatcher that posts score and stage changes to a webhook.
//!
//! Score and stage changes are written to the `outbox` table in the same transaction as the
//! change itself (`store::scores`). The [`Dispatcher`] claims due rows with a lease, posts each
//! as GoHighLevel-compatible JSON ([`GhlPayload`]: contact id, tags, custom fields for score and
//! stage), signs the body with HMAC-SHA256 and sends the row's idempotency key, then marks the
//! row delivered — or failed, with its next attempt after an exponential backoff with jitter
//! ([`Backoff`]). A circuit breaker ([`Breaker`]) stops hammering an endpoint that keeps failing
//! and probes it again later.
//!
//! Delivery is at least once and nothing is dropped: a row leaves the outbox's due set only
//! when the endpoint answered 2xx. If the dispatcher dies between posting and marking, the row's
//! lease runs out and it is posted again with the same `Idempotency-Key`, which is how the
//! receiver recognises the retry. A row the endpoint rejects (4xx) stays too, retried at the
//! longest backoff, with the answer in `last_error` for an operator to see.
//!
//! ## What the receiver gets
//! `POST <webhook_url>` with headers
//! * `Content-Type: application/json`
//! * `Idempotency-Key: score:<uuid>` — the same on every retry of one change
//! * `X-Callcoach-Event: stage_changed | score_changed`
//! * `X-Callcoach-Timestamp: <unix seconds>` and
//!   `X-Callcoach-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` — verify
//!   the signature over the raw body and reject old timestamps to stop replays (the scheme
//!   Stripe and Slack use).

use crate::store::{OutboxRow, Store, StoreError};
use callcoach_actors::metrics;
use futures_util::stream::{self, StreamExt};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use prometheus::{Histogram, IntCounterVec, IntGauge};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Rows claimed per poll. 100 keeps one claim query cheap (an index range scan) while a busy
/// node's backlog of a few thousand changes drains in tens of polls.
pub const CLAIM_BATCH: u32 = 100;
/// Posts in flight at once. CRM webhooks (GoHighLevel's included) rate-limit per location at
/// around 10 requests/s sustained; 8 concurrent posts reach that without queueing at the CRM.
pub const CONCURRENCY: usize = 8;
/// How long a claimed row is hidden from other dispatchers: longer than a whole batch can take
/// (CLAIM_BATCH / CONCURRENCY × REQUEST_TIMEOUT = 13 × 10 s would be the worst case, but the
/// breaker opens long before every post times out), short enough that a dead node's rows are
/// retried within minutes.
pub const LEASE: Duration = Duration::from_secs(120);
/// One webhook request, connect to last byte. 10 s is GoHighLevel's own webhook timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle poll period: a change reaches the CRM within ~½ s even when nobody nudges the
/// dispatcher, at two cheap index lookups per second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// While a half-open probe is out, others look again after this long (a probe takes one request).
const PROBE_RECHECK: Duration = Duration::from_millis(100);
/// Longest `last_error` message sent to the store; the store truncates further.
const ERROR_EXCERPT: usize = 300;

type HmacSha256 = Hmac<Sha256>;

static DELIVERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_crm_deliveries_total",
        "Outbox rows posted to the CRM webhook, by result (delivered, failed, rejected, short_circuited, malformed)",
        &["result"],
    )
});
static POST_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_crm_post_seconds",
        "Duration of one CRM webhook request",
    )
});
static BREAKER_STATE: LazyLock<IntGauge> = LazyLock::new(|| {
    metrics::gauge(
        "callcoach_crm_breaker_state",
        "CRM webhook circuit breaker: 0 closed, 1 open, 2 half-open",
    )
});
static BREAKER_TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_crm_breaker_transitions_total",
        "CRM webhook circuit breaker state changes, by new state",
        &["to"],
    )
});
static STORE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_crm_store_errors_total",
        "Outbox reads and writes that failed (rows are retried after their lease)",
        &["op"],
    )
});

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrmError {
    #[error("invalid webhook url `{0}` (expected http:// or https://)")]
    BadUrl(String),
    #[error("a webhook secret is required to sign deliveries")]
    MissingSecret,
    #[error("invalid dispatcher setting: {0}")]
    BadSetting(String),
    #[error("failed to build the http client: {0}")]
    Client(String),
}

// ---------------------------------------------------------------------------------------------
// Backoff

/// Exponential backoff with "equal jitter": attempt `n` (1-based) waits a uniform time in
/// `[c/2, c]` where `c = min(max, base · 2ⁿ⁻¹)`. Half the delay is fixed so retries keep
/// spreading out; the random half keeps many failed rows from retrying in lockstep (AWS
/// Architecture Blog, "Exponential Backoff and Jitter", 2015).
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 1 h: a blip is retried within seconds, an outage costs the CRM at most a
    /// few requests per row per hour (11 doublings reach the cap after ~1 h of failures).
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The cap `c` for the `attempt`-th failure (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(62);
        let factor = 1u64 << exp;
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max)
    }

    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let c = self.ceiling(attempt);
        let half = c / 2;
        let spread = (c - half).as_nanos() as u64;
        half + Duration::from_nanos(if spread == 0 {
            0
        } else {
            rng.gen_range(0..=spread)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failed posts that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses posts before letting one probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    /// 5 failures in a row: with an endpoint that fails a random 10 % of requests, 5 in a row
    /// happen once in 100 000 posts, while a real outage trips it within a second. 30 s open:
    /// long enough for a restarting CRM endpoint, short enough that deliveries resume promptly.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    const fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: post freely.
    Go,
    /// Half-open: post one request; its result closes or reopens the breaker.
    Probe,
    /// Open (or a probe is already out): wait until the given instant.
    Wait(Instant),
}

/// Closed → (threshold consecutive failures) → open → (after `open_for`) → half-open → one
/// probe → closed on success, open again on failure. Time is passed in, so tests drive it.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    open_until: Instant,
    probe_out: bool,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        BREAKER_STATE.set(BreakerState::Closed.gauge());
        Breaker {
            cfg,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            open_until: Instant::now(),
            probe_out: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    fn set(&mut self, to: BreakerState) {
        if self.state != to {
            tracing::info!(
                from = self.state.as_str(),
                to = to.as_str(),
                "crm circuit breaker"
            );
            self.state = to;
            BREAKER_STATE.set(to.gauge());
            BREAKER_TRANSITIONS.with_label_values(&[to.as_str()]).inc();
        }
    }

    /// Asks to post at `now`. A `Probe` answer must be followed by `on_success` or `on_failure`.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Go,
            BreakerState::Open if now < self.open_until => Permit::Wait(self.open_until),
            BreakerState::Open | BreakerState::HalfOpen => {
                self.set(BreakerState::HalfOpen);
                if self.probe_out {
                    // One probe at a time; look again shortly.
                    Permit::Wait(now + self.cfg.open_for.min(PROBE_RECHECK))
                } else {
                    self.probe_out = true;
                    Permit::Probe
                }
            }
        }
    }

    pub fn on_success(&mut self, _now: Instant) {
        self.consecutive_failures = 0;
        self.probe_out = false;
        self.set(BreakerState::Closed);
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.probe_out = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trip = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.consecutive_failures >= self.cfg.failure_threshold,
            BreakerState::Open => false,
        };
        if trip {
            self.open_until = now + self.cfg.open_for;
            self.set(BreakerState::Open);
        }
    }

    /// What [`permit`](Self::permit) would answer, without taking a probe: `Go` when closed,
    /// `Probe` when a probe could be sent, `Wait` otherwise. The dispatcher uses it to size its
    /// next claim (one row while half-open).
    pub fn peek(&self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed => Permit::Go,
            BreakerState::Open if now < self.open_until => Permit::Wait(self.open_until),
            _ if self.probe_out => Permit::Wait(now + self.cfg.open_for.min(PROBE_RECHECK)),
            _ => Permit::Probe,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payload and signature

/// The outbox payload the store writes (see `store::scores`); unknown fields are ignored so the
/// store may add to it.
#[derive(Debug, Clone, Deserialize)]
struct OutboxEvent {
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    score: Option<f64>,
    stage: String,
    #[serde(default)]
    prev_stage: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    score_event_id: Option<i64>,
    #[serde(default)]
    at: Option<String>,
}

/// One custom field, in GoHighLevel's contact API shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    pub key: String,
    pub field_value: serde_json::Value,
}

/// The body posted for one outbox row: the fields GoHighLevel's contact upsert and inbound
/// webhook triggers map (`contactId`, `locationId`, `tags`, `customFields`), plus the full event
/// under `callcoach` for receivers that want more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GhlPayload {
    /// `stage_changed` or `score_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The row's idempotency key (also sent as the `Idempotency-Key` header).
    pub event_id: String,
    /// The tenant: a GoHighLevel location (sub-account).
    pub location_id: String,
    /// The lead id, which is the CRM's contact id for imported leads.
    pub contact_id: String,
    pub tags: Vec<String>,
    pub custom_fields: Vec<CustomField>,
    pub callcoach: serde_json::Value,
}

/// Custom field keys created in the CRM for the score (0–100) and the stage name.
pub const FIELD_SCORE: &str = "callcoach_score";
pub const FIELD_STAGE: &str = "callcoach_stage";
pub const FIELD_REASON: &str = "callcoach_stage_reason";

impl GhlPayload {
    /// Builds the body for a row; `None` when the stored payload is not the store's JSON.
    pub fn from_row(row: &OutboxRow) -> Option<GhlPayload> {
        let ev: OutboxEvent = serde_json::from_str(&row.payload).ok()?;
        let mut custom_fields = vec![CustomField {
            key: FIELD_STAGE.to_owned(),
            field_value: serde_json::Value::from(ev.stage.clone()),
        }];
        if let Some(score) = ev.score.filter(|s| s.is_finite()) {
            // CRMs show a whole percentage; the exact value is under `callcoach.score`.
            let pct = (score.clamp(0.0, 1.0) * 100.0).round() as i64;
            custom_fields.insert(
                0,
                CustomField {
                    key: FIELD_SCORE.to_owned(),
                    field_value: serde_json::Value::from(pct),
                },
            );
        }
        if let Some(reason) = &ev.reason {
            custom_fields.push(CustomField {
                key: FIELD_REASON.to_owned(),
                field_value: serde_json::Value::from(reason.clone()),
            });
        }
        let callcoach = serde_json::json!({
            "score": ev.score,
            "stage": ev.stage,
            "prev_stage": ev.prev_stage,
            "reason": ev.reason,
            "call_id": ev.call_id,
            "score_event_id": ev.score_event_id,
            "at": ev.at,
            "outbox_id": row.id,
        });
        Some(GhlPayload {
            kind: row.kind.clone(),
            event_id: row.idempotency_key.clone(),
            location_id: row.tenant_id.clone(),
            contact_id: row.lead_id.clone(),
            // Tags drive GoHighLevel workflows ("tag added" triggers): one stable tag for every
            // lead we score, one per stage so a workflow can start on "callcoach-qualified".
            tags: vec!["callcoach".to_owned(), format!("callcoach-{}", ev.stage)],
            custom_fields,
            callcoach,
        })
    }
}

/// `hex(HMAC-SHA256(secret, data))`.
pub fn hmac_sha256_hex(secret: &[u8], data: &[u8]) -> String {
    // unwrap: HMAC accepts keys of any length (RFC 2104 hashes long keys, pads short ones).
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Callcoach-Signature` value for a body sent at `timestamp` (unix seconds).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut data = Vec::with_capacity(body.len() + 21);
    data.extend_from_slice(timestamp.to_string().as_bytes());
    data.push(b'.');
    data.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(secret, &data))
}

/// Checks a signature header in constant time (for receivers and tests).
pub fn verify_signature(secret: &[u8], timestamp: u64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    // unwrap: any key length is valid for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Dispatcher

/// Everything the dispatcher needs; [`DispatcherConfig::new`] fills the documented defaults.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub webhook_url: reqwest::Url,
    pub secret: Vec<u8>,
    pub claim_batch: u32,
    pub concurrency: usize,
    pub lease: Duration,
    pub request_timeout: Duration,
    pub poll_interval: Duration,
    pub backoff: Backoff,
    pub breaker: BreakerConfig,
}

impl DispatcherConfig {
    pub fn new(webhook_url: &str, secret: &str) -> Result<DispatcherConfig, CrmError> {
        let url = reqwest::Url::parse(webhook_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| CrmError::BadUrl(webhook_url.to_owned()))?;
        if secret.is_empty() {
            return Err(CrmError::MissingSecret);
        }
        Ok(DispatcherConfig {
            webhook_url: url,
            secret: secret.as_bytes().to_vec(),
            claim_batch: CLAIM_BATCH,
            concurrency: CONCURRENCY,
            lease: LEASE,
            request_timeout: REQUEST_TIMEOUT,
            poll_interval: POLL_INTERVAL,
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
        })
    }

    fn validate(&self) -> Result<(), CrmError> {
        let bad = |m: &str| Err(CrmError::BadSetting(m.to_owned()));
        if self.claim_batch == 0 || self.concurrency == 0 {
            return bad("claim batch and concurrency must be at least 1");
        }
        if self.lease <= self.request_timeout {
            return bad("the lease must be longer than one request");
        }
        if self.backoff.base.is_zero() || self.backoff.max < self.backoff.base {
            return bad("backoff base must be positive and at most its max");
        }
        if self.breaker.failure_threshold == 0 {
            return bad("breaker failure threshold must be at least 1");
        }
        Ok(())
    }
}

/// How one post ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// Transport error, timeout, 5xx or 429: the endpoint is unwell (counts for the breaker).
    Failed(String),
    /// Another 4xx: the endpoint is up but refused this body (does not trip the breaker).
    Rejected(String),
    /// Not sent: the breaker was open.
    ShortCircuited(Instant),
    /// The stored payload is not the store's JSON.
    Malformed,
}

/// Counts since start, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchStats {
    pub delivered: u64,
    pub failed: u64,
    pub rejected: u64,
    pub short_circuited: u64,
    pub malformed: u64,
}

struct Shared {
    store: Store,
    cfg: DispatcherConfig,
    client: reqwest::Client,
    breaker: Mutex<Breaker>,
    stats: Mutex<DispatchStats>,
    nudge: Notify,
}

/// A running dispatcher: nudge it when rows were written, read its breaker, shut it down.
pub struct DispatcherHandle {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Wakes the dispatcher now instead of at its next poll.
    pub fn nudge(&self) {
        self.shared.nudge.notify_one();
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.lock().state()
    }

    pub fn stats(&self) -> DispatchStats {
        *self.shared.stats.lock()
    }

    /// Stops claiming, lets the posts in flight finish and be marked, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.shared.nudge.notify_one();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "crm dispatcher task failed");
        }
    }
}

/// The outbox dispatcher (one per node; several nodes share the outbox safely through leases).
pub struct Dispatcher;

/// Starts the dispatcher for the server's CRM settings: `Ok(None)` when no webhook is
/// configured (rows then wait in the outbox, nothing is lost, until one is), an error for a
/// webhook without a secret or with a bad URL.
pub fn start(
    store: Store,
    cfg: &crate::config::CrmConfig,
) -> Result<Option<DispatcherHandle>, CrmError> {
    let Some(url) = cfg.webhook_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let secret = cfg.webhook_secret.as_deref().unwrap_or("");
    let handle = Dispatcher::spawn(store, DispatcherConfig::new(url, secret)?)?;
    tracing::info!(webhook = %url, "crm dispatcher started");
    Ok(Some(handle))
}

impl Dispatcher {
    /// Starts the dispatcher on the current tokio runtime.
    pub fn spawn(store: Store, cfg: DispatcherConfig) -> Result<DispatcherHandle, CrmError> {
        cfg.validate()?;
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(cfg.concurrency)
            .user_agent(concat!("callcoach/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CrmError::Client(e.to_string()))?;
        let shared = Arc::new(Shared {
            store,
            breaker: Mutex::new(Breaker::new(cfg.breaker.clone())),
            cfg,
            client,
            stats: Mutex::new(DispatchStats::default()),
            nudge: Notify::new(),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(run(Arc::clone(&shared), rx));
        Ok(DispatcherHandle {
            shared,
            shutdown,
            task,
        })
    }
}

async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = shared.breaker.lock().peek(Instant::now());
        let limit = match permit {
            Permit::Go => shared.cfg.claim_batch,
            Permit::Probe => 1,
            Permit::Wait(until) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        let rows = match shared.store.outbox_claim_due(limit, shared.cfg.lease).await {
            Ok(rows) => rows,
            Err(e) => {
                STORE_ERRORS.with_label_values(&["claim"]).inc();
                tracing::warn!(error = %e, "crm outbox claim failed");
                Vec::new()
            }
        };
        if rows.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(shared.cfg.poll_interval) => {}
                _ = shared.nudge.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let full_batch = rows.len() as u32 >= limit && permit == Permit::Go;
        stream::iter(rows)
            .for_each_concurrent(shared.cfg.concurrency, |row| {
                let shared = Arc::clone(&shared);
                async move { deliver(&shared, row).await }
            })
            .await;
        if !full_batch {
            // A short batch means the due set is drained: wait for the next poll or nudge.
            tokio::select! {
                _ = tokio::time::sleep(shared.cfg.poll_interval) => {}
                _ = shared.nudge.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Posts one row (unless the breaker is open) and records the result in the outbox.
async fn deliver(shared: &Shared, row: OutboxRow) {
    let attempt = post(shared, &row).await;
    let now = Instant::now();
    let label = match &attempt {
        Attempt::Delivered => "delivered",
        Attempt::Failed(_) => "failed",
        Attempt::Rejected(_) => "rejected",
        Attempt::ShortCircuited(_) => "short_circuited",
        Attempt::Malformed => "malformed",
    };
    DELIVERIES.with_label_values(&[label]).inc();
    {
        let mut stats = shared.stats.lock();
        match &attempt {
            Attempt::Delivered => stats.delivered += 1,
            Attempt::Failed(_) => stats.failed += 1,
            Attempt::Rejected(_) => stats.rejected += 1,
            Attempt::ShortCircuited(_) => stats.short_circuited += 1,
            Attempt::Malformed => stats.malformed += 1,
        }
    }
    let attempts = u32::try_from(row.attempts.max(0))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let result = match attempt {
        Attempt::Delivered => shared.store.outbox_mark_delivered(row.id).await,
        Attempt::Failed(error) => {
            let delay = shared.cfg.backoff.delay(attempts, &mut rand::thread_rng());
            mark_failed(shared, &row, delay, &error).await
        }
        Attempt::Rejected(error) => {
            // The endpoint is up and refuses this body: retrying soon will not help.
            mark_failed(shared, &row, shared.cfg.backoff.max, &error).await
        }
        Attempt::Malformed => {
            let error = "stored payload is not valid outbox json";
            mark_failed(shared, &row, shared.cfg.backoff.max, error).await
        }
        Attempt::ShortCircuited(until) => {
            // Not attempted: hand the row back for when the breaker lets posts through again,
            // without counting an attempt (attempts drive the backoff).
            release(shared, &row, until.saturating_duration_since(now)).await
        }
    };
    if let Err(e) = result {
        // The row keeps its lease and is claimed again when it runs out: at least once.
        STORE_ERRORS.with_label_values(&["mark"]).inc();
        tracing::warn!(error = %e, outbox_id = row.id, "crm outbox mark failed");
    }
}

async fn mark_failed(
    shared: &Shared,
    row: &OutboxRow,
    delay: Duration,
    error: &str,
) -> Result<(), StoreError> {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let next = crate::store::Timestamp::from_ms(crate::store::now_ms().saturating_add(delay_ms));
    shared.store.outbox_mark_failed(row.id, next, error).await
}

/// Moves a claimed row's next attempt to `after` from now, leaving `attempts` alone (written here
/// rather than in `store::outbox` because only the dispatcher releases rows unattempted).
async fn release(shared: &Shared, row: &OutboxRow, after: Duration) -> Result<(), StoreError> {
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND delivered_at IS NULL")
        .bind(row.id)
        .bind(crate::store::now_ms().saturating_add(after_ms))
        .execute(shared.store.pool())
        .await?;
    Ok(())
}

async fn post(shared: &Shared, row: &OutboxRow) -> Attempt {
    let Some(payload) = GhlPayload::from_row(row) else {
        return Attempt::Malformed;
    };
    let permit = shared.breaker.lock().permit(Instant::now());
    if let Permit::Wait(until) = permit {
        return Attempt::ShortCircuited(until);
    }
    // unwrap-free: a payload of strings and numbers always serialises; an error is a bug we
    // report as a failed attempt rather than panic over.
    let body = match serde_json::to_vec(&payload) {
        Ok(b) => b,
        Err(e) => return Attempt::Failed(format!("failed to encode payload: {e}")),
    };
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let started = std::time::Instant::now();
    let sent = shared
        .client
        .post(shared.cfg.webhook_url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &row.idempotency_key)
        .header("X-Callcoach-Event", &row.kind)
        .header("X-Callcoach-Timestamp", timestamp.to_string())
        .header(
            "X-Callcoach-Signature",
            signature(&shared.cfg.secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    POST_SECONDS.observe(started.elapsed().as_secs_f64());
    let now = Instant::now();
    let attempt = match sent {
        Ok(resp) if resp.status().is_success() => Attempt::Delivered,
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
            let msg = format!("http {}: {}", status.as_u16(), excerpt.trim());
            if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
            {
                Attempt::Failed(msg)
            } else {
                Attempt::Rejected(msg)
            }
        }
        Err(e) => Attempt::Failed(format!("request failed: {e}")),
    };
    let mut breaker = shared.breaker.lock();
    match &attempt {
        Attempt::Failed(_) => breaker.on_failure(now),
        // A 4xx answer proves the endpoint is reachable and working.
        Attempt::Delivered | Attempt::Rejected(_) => breaker.on_success(now),
        Attempt::ShortCircuited(_) | Attempt::Malformed => {}
    }
    attempt
}

#[cfg(test)]
mod tests;
