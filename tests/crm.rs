//! CRM sync end to end: score changes written through the real store (SQLite file and
//! PostgreSQL), the real dispatcher, and a real HTTP webhook on 127.0.0.1 that verifies every
//! signature, deduplicates on the idempotency key like a careful receiver, and misbehaves on
//! purpose: down (503), not listening at all, or failing half of all requests — some before
//! and some after it applied the event (the lost-acknowledgement case that makes at-least-once
//! delivery send duplicates).

#[path = "common/db.rs"]
mod db;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use callcoach::crm::{
    verify_signature, Backoff, BreakerConfig, BreakerState, Dispatcher, DispatcherConfig,
    DispatcherHandle,
};
use callcoach::store::{AuditEntry, NewLead, ScoreChange, Stage, Store};
use db::TestDb;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_test_7f3a";

/// How the webhook answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// 503 for everything, nothing applied.
    Down,
    /// Fails `p` of requests: half answer 503 before applying, half apply and then answer 500.
    Flaky(f64),
}

#[derive(Default)]
struct Seen {
    /// Key → body of the first applied delivery.
    applied: HashMap<String, Vec<u8>>,
    /// Requests whose key was already applied (retries of an unacknowledged delivery).
    duplicates: u64,
    /// Duplicates whose body differed from the first (must stay 0: a retry is the same event).
    changed_duplicates: u64,
    /// 2xx answers per key.
    acks: HashMap<String, u32>,
    requests: u64,
    bad_signatures: u64,
    missing_headers: u64,
}

struct Receiver {
    mode: Mutex<Mode>,
    rng: Mutex<rand::rngs::StdRng>,
    seen: Mutex<Seen>,
}

impl Receiver {
    fn new(mode: Mode) -> Arc<Receiver> {
        Arc::new(Receiver {
            mode: Mutex::new(mode),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(20261203)),
            seen: Mutex::new(Seen::default()),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    fn handle(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut seen = self.seen.lock();
        seen.requests += 1;
        let (Some(key), Some(ts), Some(sig)) = (
            header("idempotency-key"),
            header("x-callcoach-timestamp").and_then(|t| t.parse::<u64>().ok()),
            header("x-callcoach-signature"),
        ) else {
            seen.missing_headers += 1;
            return HttpResponse::BadRequest().body("missing headers");
        };
        if !verify_signature(SECRET.as_bytes(), ts, body, &sig) {
            seen.bad_signatures += 1;
            return HttpResponse::Unauthorized().body("bad signature");
        }
        let (fail, after_apply) = match *self.mode.lock() {
            Mode::Up => (false, false),
            Mode::Down => return HttpResponse::ServiceUnavailable().body("maintenance"),
            Mode::Flaky(p) => {
                let mut rng = self.rng.lock();
                (rng.gen_bool(p), rng.gen_bool(0.5))
            }
        };
        if fail && !after_apply {
            return HttpResponse::ServiceUnavailable().body("try later");
        }
        let differs = seen.applied.get(&key).map(|first| first.as_slice() != body);
        match differs {
            Some(differs) => {
                seen.duplicates += 1;
                seen.changed_duplicates += u64::from(differs);
            }
            None => {
                seen.applied.insert(key.clone(), body.to_vec());
            }
        }
        if fail {
            return HttpResponse::InternalServerError().body("applied, then crashed");
        }
        *seen.acks.entry(key).or_default() += 1;
        HttpResponse::Ok().json(serde_json::json!({"ok": true}))
    }
}

/// The webhook server, on its own thread and actix system, stopped on drop.
struct Webhook {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    fn start(receiver: Arc<Receiver>, listener: TcpListener) -> Webhook {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let r = Arc::clone(&receiver);
                    App::new().route(
                        "/hook",
                        web::post().to(move |req: HttpRequest, body: web::Bytes| {
                            let r = Arc::clone(&r);
                            async move { r.handle(&req, &body) }
                        }),
                    )
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            })
        });
        let handle = rx.recv().unwrap();
        Webhook {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn url(addr: SocketAddr) -> String {
        format!("http://{addr}/hook")
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs the server's own runtime to make progress; it runs on its thread.
        std::thread::spawn(move || block_on_fresh_runtime(handle.stop(false)))
            .join()
            .ok();
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

fn block_on_fresh_runtime<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Fast policies so thousands of retries fit in a test: the same code paths, shorter clocks.
fn config(url: &str) -> DispatcherConfig {
    let mut c = DispatcherConfig::new(url, SECRET).unwrap();
    c.claim_batch = 100;
    c.concurrency = 8;
    c.lease = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(2);
    c.poll_interval = Duration::from_millis(20);
    c.backoff = Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(200),
    };
    c.breaker = BreakerConfig {
        failure_threshold: 5,
        open_for: Duration::from_millis(100),
    };
    c
}

/// `leads` leads with `per_lead` score changes each; every change moves the score by 0.6, so
/// each one writes an outbox row (the first also changes the stage new → contacted).
async fn produce(store: &Store, tenant: &str, leads: usize, per_lead: usize) -> HashSet<String> {
    let audit = AuditEntry::system();
    for l in 0..leads {
        let lead = NewLead {
            id: Some(format!("lead-{l}")),
            name: format!("Lead {l}"),
            ..NewLead::default()
        };
        store.create_lead(tenant, &lead, &audit).await.unwrap();
    }
    let mut keys = HashSet::new();
    for i in 0..per_lead {
        for l in 0..leads {
            let key = uuid::Uuid::new_v4();
            let change = ScoreChange {
                key,
                tenant: tenant.to_owned(),
                lead_id: format!("lead-{l}"),
                call_id: Some(format!("call-{l}")),
                score: Some(if i % 2 == 0 { 0.2 } else { 0.8 }),
                stage: Stage::Contacted,
                reason: format!("change {i}"),
                contributions: vec![],
            };
            // The store's own writer retries transient errors the same way: on SQLite a
            // write transaction can meet the dispatcher's concurrent updates (SQLITE_BUSY).
            let mut tries = 0;
            let done = loop {
                match store.record_score(&change).await {
                    Ok(done) => break done,
                    Err(e) if e.is_transient() && tries < 50 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => panic!("record_score failed: {e}"),
                }
            };
            assert!(
                done.outbox_id.is_some(),
                "every change here is worth sending"
            );
            keys.insert(format!("score:{key}"));
        }
    }
    keys
}

async fn outbox_keys(store: &Store) -> Vec<(String, Option<i64>, i64)> {
    sqlx::query_as::<_, (String, Option<i64>, i64)>(
        "SELECT idempotency_key, delivered_at, attempts FROM outbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

async fn wait_until<F: FnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_drained(store: &Store, limit: Duration) {
    let start = Instant::now();
    loop {
        let pending = store.outbox_pending().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{pending} outbox rows still pending after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The endpoint answers 503, then is not listening at all, then recovers: the breaker opens,
/// nothing is delivered or lost meanwhile, and everything arrives once it is back.
async fn outage_then_recovery(db: &TestDb) {
    let store = &db.store;
    let receiver = Receiver::new(Mode::Down);
    let webhook = Webhook::start(
        Arc::clone(&receiver),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let keys = produce(store, "acme", 20, 10).await;
    assert_eq!(keys.len(), 200);

    let dispatcher = Dispatcher::spawn(store.clone(), config(&Webhook::url(webhook.addr))).unwrap();
    wait_until("the breaker to open", Duration::from_secs(20), || {
        dispatcher.breaker_state() == BreakerState::Open
    })
    .await;
    // Let it probe a few times while the endpoint stays down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = dispatcher.stats();
    assert_eq!(during.delivered, 0);
    assert!(during.failed >= 5, "{during:?}");
    assert!(
        during.short_circuited > 0,
        "an open breaker holds rows back: {during:?}"
    );
    assert!(
        during.failed < 60,
        "the breaker must stop the hammering: {during:?}"
    );
    assert_eq!(store.outbox_pending().await.unwrap(), 200);
    let rows = outbox_keys(store).await;
    assert!(rows.iter().any(|(_, _, attempts)| *attempts > 0));

    // Now the endpoint goes away entirely (connection refused), then comes back on its port.
    let addr = webhook.addr;
    drop(webhook);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.outbox_pending().await.unwrap(), 200);
    assert_eq!(receiver.seen.lock().applied.len(), 0);

    receiver.set_mode(Mode::Up);
    let listener = TcpListener::bind(addr).expect("rebind the webhook's port");
    let webhook = Webhook::start(Arc::clone(&receiver), listener);
    wait_drained(store, Duration::from_secs(30)).await;
    assert_eq!(dispatcher.breaker_state(), BreakerState::Closed);

    {
        let seen = receiver.seen.lock();
        let applied: HashSet<String> = seen.applied.keys().cloned().collect();
        assert_eq!(applied, keys, "every change arrived, none invented");
        assert_eq!(seen.bad_signatures, 0);
        assert_eq!(seen.missing_headers, 0);
        assert!(seen.acks.values().all(|&n| n == 1));
    }
    dispatcher.shutdown().await;
    drop(webhook);
}

/// 10 000 changes through a webhook that fails half of all requests.
async fn ten_thousand_through_a_flaky_webhook(db: &TestDb) {
    let store = &db.store;
    let receiver = Receiver::new(Mode::Flaky(0.5));
    let webhook = Webhook::start(
        Arc::clone(&receiver),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    // Deliver while changes are still being written, as on a live node.
    let dispatcher: DispatcherHandle =
        Dispatcher::spawn(store.clone(), config(&Webhook::url(webhook.addr))).unwrap();
    let keys = produce(store, "acme", 100, 100).await;
    assert_eq!(keys.len(), 10_000);
    dispatcher.nudge();
    wait_drained(store, Duration::from_secs(300)).await;
    let stats = dispatcher.stats();
    dispatcher.shutdown().await;

    let rows = outbox_keys(store).await;
    assert_eq!(rows.len(), 10_000);
    assert!(rows
        .iter()
        .all(|(_, delivered, attempts)| delivered.is_some() && *attempts >= 1));
    let stored: HashSet<String> = rows.iter().map(|(k, _, _)| k.clone()).collect();
    assert_eq!(stored, keys);

    let seen = receiver.seen.lock();
    let applied: HashSet<String> = seen.applied.keys().cloned().collect();
    // 0 lost: every change was applied by the receiver; none it did not send.
    assert_eq!(applied, keys);
    // Duplicates only as at-least-once retries: same key, byte-identical event...
    assert!(
        seen.duplicates > 0,
        "lost acknowledgements must cause retries"
    );
    assert_eq!(seen.changed_duplicates, 0);
    // ...and never a second successful delivery of one change.
    assert_eq!(seen.acks.len(), 10_000);
    assert!(seen.acks.values().all(|&n| n == 1));
    assert_eq!(seen.bad_signatures, 0);
    assert_eq!(stats.delivered, 10_000);
    assert!(stats.failed > 3_000, "half the posts failed: {stats:?}");
    let total_attempts: i64 = rows.iter().map(|r| r.2).sum();
    eprintln!(
        "flaky webhook ({:?}): {} requests, {} duplicates seen by the receiver, {} attempts recorded, {:?}",
        store.backend(),
        seen.requests,
        seen.duplicates,
        total_attempts,
        stats
    );
    drop(seen);
    drop(webhook);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_then_recovery() {
        let db = super::TestDb::sqlite().await;
        super::outage_then_recovery(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_through_a_flaky_webhook() {
        let db = super::TestDb::sqlite().await;
        super::ten_thousand_through_a_flaky_webhook(&db).await;
        db.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_then_recovery() {
        let db = super::TestDb::postgres().await;
        super::outage_then_recovery(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_through_a_flaky_webhook() {
        let db = super::TestDb::postgres().await;
        super::ten_thousand_through_a_flaky_webhook(&db).await;
        db.cleanup().await;
    }
}
