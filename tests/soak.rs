//! Fault-injection soak (issue #7): real-time calls stream the generated sales call into a real
//! server on PostgreSQL while the test injects four faults, then checks that nothing was lost.
//!
//! * (a) 20 transcription-worker panics, one every few seconds, spread over the calls;
//! * (b) PostgreSQL stopped for 30 s (`pg_ctlcluster … stop -m fast`) and started again;
//! * (c) the CRM webhook answering 500/503 for 30 s, then 200;
//! * (d) softphones dropping their TCP connection mid-utterance (one with a reset, one with a
//!   FIN) and reconnecting to the same call id, retrying while the server refuses, resuming with
//!   the live audio (what was said while disconnected is gone, as on a real phone).
//!
//! Asserted: `/healthz` answers throughout; hints reach the softphones during (b) and (c); every
//! `final`, `hint` and `score` a softphone received is in the database after recovery; the CRM
//! outbox drains; the worker restarts are counted; memory comes back to its warm baseline (heap in
//! use tightly, RSS within glibc's retention). A summary with the recovery times is printed
//! (README.md, "Soak").
//!
//! Run: `cargo test --release --test soak -- --nocapture` (as root: it stops and starts the local
//! PostgreSQL cluster; a guard and a watchdog process always start it again).

mod common;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use callcoach::auth::Role;
use callcoach::client::audio::SourceAudio;
use callcoach::client::call::{self, Timeline};
use callcoach::client::replay::{replay, End, Prepared, Protocol, ReplayOptions, TrackLayout};
use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::JobKind;
use common::db::TestDb;
use common::server::TestServer;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Concurrent softphones: three real-time calls are about what the two 1-thread workers of the
/// 2-core box transcribe as they come (a few `backlog` warnings at the busiest moments), so a
/// lost row would be the faults' doing and not an overloaded pool's.
const CALLS: usize = 3;
/// Calls start this far apart so their utterances (and hints) do not all land at the same instant.
const STAGGER: Duration = Duration::from_secs(4);
/// (a): the 20 worker panics, the first a little after the calls start, then one every
/// 7 s (20 × 7 s = 140 s, inside the 175 s call), each only once the previous one has fired.
const PANICS: u32 = 20;
const FIRST_PANIC: Duration = Duration::from_secs(6);
const PANIC_EVERY: Duration = Duration::from_secs(7);
/// (b): the 30 s outage, while every call is mid-stream.
const PG_DOWN_AT: Duration = Duration::from_secs(25);
const PG_DOWN_FOR: Duration = Duration::from_secs(30);
/// (c): the webhook fails for as long as the database did, after the database is back so the
/// two recoveries are measured separately.
const CRM_FAIL_AT: Duration = Duration::from_secs(75);
const CRM_FAIL_FOR: Duration = Duration::from_secs(30);
/// (d): where each call's softphone loses its connection, as audio positions (moved to the
/// middle of the next line spoken from there, so the drop is mid-utterance). Call 0 streams
/// clean; call 1's first drop reconnects during the database outage.
const DROPS: [&[u64]; CALLS] = [&[], &[38_000, 112_000], &[62_000, 138_000]];
/// A refused reconnect (the old call is still draining: `after_stop`) is retried this often, as
/// a softphone's reconnect loop would, for at most the call actor's 20 s drain plus slack.
const RECONNECT_EVERY: Duration = Duration::from_millis(250);
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(30);
/// After recovery, every received row must be in the database within this long. The store
/// writer retries at most every 5 s (`store::writer::RETRY_MAX`); 60 s is generous.
const ROWS_LAND_WITHIN: Duration = Duration::from_secs(60);
/// The outbox must drain within this long after the webhook recovers. The dispatcher's breaker
/// stays open 30 s and a row that failed six times waits up to 32 s (`crm::Backoff`), so ~60 s
/// is expected; a row whose delivered mark was lost to the outage waits for its 120 s lease
/// (`crm::LEASE`). 150 s covers the lease.
const OUTBOX_DRAIN_WITHIN: Duration = Duration::from_secs(150);
/// Memory after the calls, against its warm baseline, measured two ways. The leak check is the
/// heap glibc holds in use (`mallinfo2`: arena bytes allocated plus mapped chunks): live memory,
/// independent of what the allocator keeps. What may legitimately stay: the test's own records
/// of a few thousand events and the webhook's keys, the database pools' connections and
/// statement caches. A whisper state leaked per panic (20 × ~20 MB) or a call session's audio
/// path and actor left behind (7 sessions, a few MB each) would not fit.
const HEAP_TOLERANCE_MB: f64 = 24.0;
/// How long after the calls the heap may take to come back within tolerance.
const HEAP_SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// RSS, after `malloc_trim(0)` on both sides, may stay well above its baseline without a leak:
/// each worker panic frees and rebuilds a ~20 MB whisper state, and once glibc has freed one
/// mapped buffer it raises its mmap threshold (up to 32 MiB), so the rebuilt buffers come from
/// arenas that fragment and stay resident. Measured over four runs of this soak: +73 to +79 MB
/// trimmed (+218 to +241 MB untrimmed); a 1-worker probe gave +97 MB after 20 rebuilds, +2 MB
/// with `MALLOC_MMAP_THRESHOLD_=131072`. The bound catches leaks of a whisper state's order (20
/// leaked states are +400 MB); the heap check above catches the small ones.
const RSS_TOLERANCE_MB: f64 = 160.0;
/// Webhook secret (any value; the receiver checks the signature with it).
const SECRET: &str = "whsec_soak_4b1d";

// ---------------------------------------------------------------------------------------------
// What the softphones saw

/// One message a softphone received, stamped with the wall clock.
struct Seen {
    at: Instant,
    call_id: String,
    json: Value,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn push(&self, call_id: &str, json: Value) {
        self.0.lock().push(Seen {
            at: Instant::now(),
            call_id: call_id.to_owned(),
            json,
        });
    }

    fn kind(v: &Value) -> &str {
        v.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Every `final` received up to `until`, as the database keys its content.
    fn finals(&self, until: Instant) -> Vec<Utterance> {
        self.0
            .lock()
            .iter()
            .filter(|s| s.at <= until && Self::kind(&s.json) == "final")
            .map(|s| {
                let j = &s.json;
                Utterance {
                    call_id: s.call_id.clone(),
                    track: j["track"].as_str().unwrap_or("").to_owned(),
                    start_ms: j["start_ms"].as_i64().unwrap_or(-1),
                    end_ms: j["end_ms"].as_i64().unwrap_or(-1),
                    text: j["text"].as_str().unwrap_or("").to_owned(),
                }
            })
            .collect()
    }

    /// `(lead_id, score in 1e-9 units, stage)` of every `score` received up to `until`.
    fn scores(&self, until: Instant) -> Vec<(String, i64, String)> {
        self.0
            .lock()
            .iter()
            .filter(|s| s.at <= until && Self::kind(&s.json) == "score")
            .map(|s| {
                let j = &s.json;
                (
                    j["lead_id"].as_str().unwrap_or("").to_owned(),
                    nano(j["score"].as_f64().unwrap_or(-1.0)),
                    j["stage"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Ids of every `hint` received up to `until`.
    fn hints(&self, until: Instant) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|s| s.at <= until && Self::kind(&s.json) == "hint")
            .filter_map(|s| s.json["id"].as_str().map(str::to_owned))
            .collect()
    }

    fn count_between(&self, kind: &str, from: Instant, to: Instant) -> usize {
        self.0
            .lock()
            .iter()
            .filter(|s| s.at >= from && s.at <= to && Self::kind(&s.json) == kind)
            .count()
    }

    /// `type:code` of every `warning` and `error`, counted.
    fn problems(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in self.0.lock().iter() {
            let kind = Self::kind(&s.json);
            if kind == "warning" || kind == "error" {
                let code = s.json["code"].as_str().unwrap_or("?");
                *out.entry(format!("{kind}:{code}")).or_insert(0) += 1;
            }
        }
        out
    }
}

/// A final utterance by content: call, track, audio span and (redacted) text. Not by number: a
/// reconnect to the same call id starts a new call session whose utterance ids restart at 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
struct Utterance {
    call_id: String,
    track: String,
    start_ms: i64,
    end_ms: i64,
    text: String,
}

/// Scores compared exactly as they travelled (JSON and DOUBLE PRECISION both keep an f64), in
/// integer units so they can be counted in a map.
fn nano(x: f64) -> i64 {
    (x * 1e9).round() as i64
}

// ---------------------------------------------------------------------------------------------
// The CRM webhook

#[derive(Default)]
struct Webhook {
    failing: AtomicBool,
    /// Idempotency keys acknowledged with 200.
    delivered: Mutex<HashSet<String>>,
    failed_answers: Mutex<u64>,
    bad_signatures: Mutex<u64>,
}

impl Webhook {
    fn handle(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(key), Some(ts), Some(sig)) = (
            header("idempotency-key"),
            header("x-callcoach-timestamp").and_then(|t| t.parse::<u64>().ok()),
            header("x-callcoach-signature"),
        ) else {
            *self.bad_signatures.lock() += 1;
            return HttpResponse::BadRequest().finish();
        };
        if !callcoach::crm::verify_signature(SECRET.as_bytes(), ts, body, &sig) {
            *self.bad_signatures.lock() += 1;
            return HttpResponse::Unauthorized().finish();
        }
        if self.failing.load(Ordering::SeqCst) {
            let mut n = self.failed_answers.lock();
            *n += 1;
            // Both ways a CRM says "not now": a crash and a maintenance page.
            return if *n % 2 == 0 {
                HttpResponse::InternalServerError().body("boom")
            } else {
                HttpResponse::ServiceUnavailable().body("maintenance")
            };
        }
        self.delivered.lock().insert(key);
        HttpResponse::Ok().json(serde_json::json!({"ok": true}))
    }
}

/// The webhook's HTTP server on its own thread and actix system, stopped on drop.
struct WebhookServer {
    url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookServer {
    fn start(hook: Arc<Webhook>) -> WebhookServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let hook = Arc::clone(&hook);
                    App::new().route(
                        "/hook",
                        web::post().to(move |req: HttpRequest, body: web::Bytes| {
                            let hook = Arc::clone(&hook);
                            async move { hook.handle(&req, &body) }
                        }),
                    )
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            })
        });
        WebhookServer {
            url,
            handle: rx.recv().unwrap(),
            thread: Some(thread),
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(handle.stop(false))
        })
        .join()
        .ok();
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL outage

/// Stops and starts the local cluster. Whatever happens to the test, the cluster is started
/// again: by [`PgOutage::start`], by `Drop` on a panic, and by a watchdog shell started before
/// the stop that starts it after the outage plus a margin even if this process is killed.
struct PgOutage {
    version: String,
    stopped: bool,
    watchdog: Option<std::process::Child>,
}

impl PgOutage {
    fn new() -> PgOutage {
        // The Debian layout: /etc/postgresql/<version>/main.
        let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
            .expect("/etc/postgresql (the soak stops the local cluster with pg_ctlcluster)")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("main").is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
        let version = versions.pop().expect("a PostgreSQL cluster named main");
        PgOutage {
            version,
            stopped: false,
            watchdog: None,
        }
    }

    async fn stop(&mut self, outage: Duration) {
        let version = self.version.clone();
        let margin = outage.as_secs() + 30;
        self.watchdog = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep {margin}; pg_ctlcluster --skip-systemctl-redirect {version} main start >/dev/null 2>&1"
            ))
            .spawn()
            .ok();
        self.stopped = true;
        // Off the test's runtime, which is also pacing the softphones.
        let out = tokio::task::spawn_blocking(move || pg_ctl(&version, "stop"))
            .await
            .expect("pg_ctlcluster stop");
        assert!(
            out.status.success(),
            "pg_ctlcluster stop failed (the soak needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the cluster and waits until it accepts connections.
    async fn start(&mut self) {
        let version = self.version.clone();
        let (out, ready) = tokio::task::spawn_blocking(move || {
            let out = pg_ctl(&version, "start");
            (out, wait_pg_ready(Duration::from_secs(60)))
        })
        .await
        .expect("pg_ctlcluster start");
        assert!(
            ready,
            "PostgreSQL did not come back: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.stopped = false;
        self.kill_watchdog();
    }

    fn kill_watchdog(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // Ours, started in `stop`; the cluster is up, so its job is done.
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for PgOutage {
    fn drop(&mut self) {
        if self.stopped {
            let _ = pg_ctl(&self.version, "start");
            wait_pg_ready(Duration::from_secs(60));
        }
        self.kill_watchdog();
    }
}

fn pg_ctl(version: &str, action: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", version, "main", action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    cmd.output().expect("run pg_ctlcluster")
}

fn wait_pg_ready(limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let ok = std::process::Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Softphones

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Who a call is.
#[derive(Clone)]
struct Party {
    call_id: String,
    agent_id: String,
    lead_id: String,
    token: String,
}

/// How one softphone's call went.
#[derive(Default)]
struct CallReport {
    call_id: String,
    sessions: usize,
    drops: usize,
    /// Codes of refused reconnects, and the longest wait from a drop to an accepted reconnect.
    refusals: BTreeMap<String, usize>,
    longest_reconnect: Duration,
    ended: bool,
}

/// `audio[from_ms..]` (or `..to_ms`) of the recording.
fn slice(audio: &SourceAudio, from_ms: u64, to_ms: Option<u64>) -> SourceAudio {
    let at = |ms: u64| ((ms * u64::from(audio.rate) / 1000) as usize).min(audio.len());
    // At least one 20 ms frame, should a reconnect come after the recording's end.
    let frame = audio.rate as usize / 50;
    let a = at(from_ms).min(audio.len() - frame);
    let b = to_ms.map_or(audio.len(), at).max(a + frame);
    SourceAudio::new(
        audio.rate,
        audio.channels.iter().map(|c| c[a..b].to_vec()).collect(),
    )
    .expect("audio slice")
}

/// Opens a native stream and sends `start`; `Err(code)` when the server refuses it.
async fn open(url: &str, party: &Party, log: &Log) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let start = serde_json::json!({"type":"start","encoding":"pcm_s16le","sample_rate":16000,
        "channels":2,"tracks":["agent","customer"],"lead_id":party.lead_id,"agent_id":party.agent_id});
    ws.send(Message::text(start.to_string()))
        .await
        .map_err(|e| format!("send start: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no ready".to_owned())?;
        let Some(Ok(Message::Text(text))) = msg else {
            return Err("closed before ready".into());
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        log.push(&party.call_id, v.clone());
        match Log::kind(&v) {
            "ready" => return Ok(ws),
            "error" => return Err(v["code"].as_str().unwrap_or("?").to_owned()),
            _ => {}
        }
    }
}

/// Streams 16 kHz stereo `audio` in real time, 20 ms frames, logging what comes back, then
/// drops the TCP connection without `stop` or a close frame: with `reset`, an RST (linger 0),
/// as when a NAT or a crashing app kills the socket; otherwise a FIN.
async fn stream_and_drop(mut ws: Ws, audio: &SourceAudio, party: &Party, log: &Log, reset: bool) {
    const FRAME: usize = 320; // 20 ms at 16 kHz
    let t0 = tokio::time::Instant::now();
    let frames = audio.len().div_ceil(FRAME);
    let mut i = 0;
    while i < frames {
        let due = t0 + Duration::from_millis(20 * (i as u64 + 1));
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    log.push(&party.call_id, serde_json::from_str(&text).unwrap_or_default());
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break,
            },
            _ = tokio::time::sleep_until(due) => {
                let (a, b) = (i * FRAME, ((i + 1) * FRAME).min(audio.len()));
                let mut bytes = Vec::with_capacity((b - a) * 4);
                for s in a..b {
                    for ch in &audio.channels {
                        let x = (ch[s].clamp(-1.0, 1.0) * 32767.0) as i16;
                        bytes.extend_from_slice(&x.to_le_bytes());
                    }
                }
                if ws.send(Message::binary(bytes)).await.is_err() {
                    break;
                }
                i += 1;
            }
        }
    }
    if reset {
        if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            // Deprecated because a non-zero linger blocks the dropping thread; zero does not
            // wait for anything: the kernel discards the send buffer and answers with RST.
            #[allow(deprecated)]
            tcp.set_linger(Some(Duration::ZERO)).expect("linger 0");
        }
    }
    drop(ws);
}

/// The middle of the first script line (either speaker) at or after `ms` that lasts ≥ 1.5 s.
fn mid_utterance(timeline: &Timeline, ms: u64) -> u64 {
    timeline
        .lines
        .iter()
        .find(|l| l.start_ms >= ms && l.end_ms - l.start_ms >= 1_500)
        .map(|l| (l.start_ms + l.end_ms) / 2)
        .expect("a long line after the drop point")
}

/// One softphone for the whole call: streams from audio 0, drops at each of `drops`, reconnects
/// to the same call id (retrying refusals) and resumes with the audio that is live by then, and
/// ends the last session with `stop` through the real replay client.
async fn run_call(
    server: &TestServer,
    audio: &SourceAudio,
    drops: &[u64],
    party: Party,
    log: Log,
) -> CallReport {
    let url = server.ws(&format!(
        "/v1/calls/{}/stream?token={}",
        party.call_id, party.token
    ));
    let mut report = CallReport {
        call_id: party.call_id.clone(),
        ..Default::default()
    };
    // Audio position at `clock`: the call's audio runs on whether or not a socket carries it.
    let mut pos_ms = 0u64;
    let mut clock = Instant::now();
    let mut dropped_at: Option<Instant> = None;
    let live_pos = |pos: u64, clock: Instant| pos + clock.elapsed().as_millis() as u64;
    for (n, &drop_ms) in drops.iter().enumerate() {
        let ws = loop {
            match open(&url, &party, &log).await {
                Ok(ws) => break ws,
                Err(code) => {
                    *report.refusals.entry(code.clone()).or_default() += 1;
                    let waited = dropped_at.map_or(Duration::ZERO, |d| d.elapsed());
                    assert!(
                        waited < RECONNECT_GIVE_UP,
                        "{}: reconnect refused for {waited:?} (last: {code})",
                        party.call_id
                    );
                    tokio::time::sleep(RECONNECT_EVERY).await;
                }
            }
        };
        if let Some(d) = dropped_at {
            report.longest_reconnect = report.longest_reconnect.max(d.elapsed());
        }
        report.sessions += 1;
        let from = live_pos(pos_ms, clock);
        assert!(from < drop_ms, "{}: drop {n} is in the past", party.call_id);
        stream_and_drop(
            ws,
            &slice(audio, from, Some(drop_ms)),
            &party,
            &log,
            n % 2 == 0,
        )
        .await;
        report.drops += 1;
        pos_ms = drop_ms;
        clock = Instant::now();
        dropped_at = Some(clock);
    }
    // The last session: the real softphone client, which ends with `stop` and waits for `ended`.
    loop {
        let from = live_pos(pos_ms, clock);
        let prepared = Prepared::new(
            &slice(audio, from, None),
            Protocol::Native,
            TrackLayout::default(),
        )
        .expect("prepare audio");
        let mut opts = ReplayOptions::new(server.ws(""));
        opts.call_id = party.call_id.clone();
        opts.token = Some(party.token.clone());
        opts.agent_id = Some(party.agent_id.clone());
        opts.lead_id = Some(party.lead_id.clone());
        opts.realtime = true;
        let call_id = party.call_id.clone();
        let mut ready_at = None;
        let outcome = replay(&prepared, &opts, |e| {
            if e.kind() == "ready" && ready_at.is_none() {
                ready_at = Some(Instant::now());
            }
            log.push(&call_id, e.json.clone())
        })
        .await
        .expect("replay");
        match outcome.end {
            End::Refused { code, .. } => {
                *report.refusals.entry(code.clone()).or_default() += 1;
                let waited = dropped_at.map_or(Duration::ZERO, |d| d.elapsed());
                assert!(
                    waited < RECONNECT_GIVE_UP,
                    "{}: reconnect refused for {waited:?} (last: {code})",
                    party.call_id
                );
                tokio::time::sleep(RECONNECT_EVERY).await;
            }
            end => {
                if let (Some(d), Some(r)) = (dropped_at, ready_at) {
                    report.longest_reconnect = report.longest_reconnect.max(r - d);
                }
                report.sessions += 1;
                report.ended = matches!(end, End::Ended { .. });
                return report;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Observing the server

async fn metrics(http: &reqwest::Client, server: &TestServer) -> String {
    http.get(server.http("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

/// Sum of a metric's samples whose label set contains `label` (all samples when empty).
fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// RSS after handing glibc's free memory back to the kernel (see [`RSS_TOLERANCE_MB`]).
fn trimmed_rss_mb() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only releases free memory; it takes the arena locks itself.
        unsafe {
            malloc_trim(0);
        }
    }
    rss_mb()
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmRSS")
        / 1024.0
}

/// What the database holds for the test tenant.
struct DbRows {
    finals: HashSet<Utterance>,
    scores: HashMap<(String, i64, String), usize>,
    hints: HashSet<String>,
    utterances: usize,
    score_events: usize,
    outbox: usize,
    outbox_pending: i64,
}

async fn db_rows(db: &TestDb) -> Result<DbRows, sqlx::Error> {
    let pool = db.store.pool();
    let utterances: Vec<Utterance> =
        sqlx::query_as("SELECT call_id, track, start_ms, end_ms, text FROM utterances")
            .fetch_all(pool)
            .await?;
    let score_rows: Vec<(String, Option<f64>, String)> =
        sqlx::query_as("SELECT lead_id, score, stage FROM score_events")
            .fetch_all(pool)
            .await?;
    let hints: Vec<(String,)> = sqlx::query_as("SELECT id FROM hints")
        .fetch_all(pool)
        .await?;
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(pool)
        .await?;
    let outbox_pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(pool)
            .await?;
    let mut scores = HashMap::new();
    for (lead, score, stage) in &score_rows {
        *scores
            .entry((lead.clone(), nano(score.unwrap_or(-1.0)), stage.clone()))
            .or_insert(0) += 1;
    }
    Ok(DbRows {
        utterances: utterances.len(),
        finals: utterances.into_iter().collect(),
        score_events: score_rows.len(),
        scores,
        hints: hints.into_iter().map(|(id,)| id).collect(),
        outbox: outbox as usize,
        outbox_pending,
    })
}

/// What the softphones received up to `until` and the database does not hold (yet).
#[derive(Debug, Default)]
struct Missing {
    finals: Vec<Utterance>,
    scores: Vec<(String, i64, String)>,
    hints: Vec<String>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.finals.is_empty() && self.scores.is_empty() && self.hints.is_empty()
    }
}

fn missing(log: &Log, rows: &DbRows, until: Instant) -> Missing {
    let mut scores = rows.scores.clone();
    let mut out = Missing::default();
    for f in log.finals(until) {
        if !rows.finals.contains(&f) {
            out.finals.push(f);
        }
    }
    // A multiset: two identical score events need two rows.
    for s in log.scores(until) {
        match scores.get_mut(&s) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.scores.push(s),
        }
    }
    for h in log.hints(until) {
        if !rows.hints.contains(&h) {
            out.hints.push(h);
        }
    }
    out
}

/// Polls until every row received up to `until` is in the database: how long that took, or
/// what is still missing after `limit`.
async fn wait_rows_landed(
    db: &TestDb,
    log: &Log,
    until: Instant,
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let last = match db_rows(db).await {
            Ok(rows) => {
                let m = missing(log, &rows, until);
                if m.is_empty() {
                    return Ok(started.elapsed());
                }
                format!("{m:?}")
            }
            Err(e) => format!("database: {e}"),
        };
        if started.elapsed() >= limit {
            return Err(format!("still missing after {limit:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until no outbox row created up to `created_before_ms` is undelivered: how long that
/// took, or how many are still pending after `limit`.
async fn wait_outbox_drained(
    db: &TestDb,
    created_before_ms: i64,
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let pending: Result<i64, _> = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND created_at <= $1",
        )
        .bind(created_before_ms)
        .fetch_one(db.store.pool())
        .await;
        if let Ok(0) = pending {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            return Err(format!("{pending:?} rows undelivered after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A recovery time for the summary.
fn secs(r: &Result<Duration, String>) -> String {
    match r {
        Ok(d) => format!("{:.1} s", d.as_secs_f64()),
        Err(_) => "never".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The soak

#[actix_web::test]
async fn calls_survive_worker_panics_a_database_outage_a_failing_crm_and_dropped_sockets() {
    let test_started = Instant::now();
    let timeline: Timeline = call::generate(&call::default_dir())
        .expect("generate the sales call (needs espeak-ng, festival, sox)");
    let audio = callcoach::client::audio::load(&timeline.wav_path()).expect("load call");
    assert_eq!(
        (audio.rate, audio.channels.len()),
        (16_000, 2),
        "the softphone here sends the generated 16 kHz stereo call as is"
    );
    let drops: Vec<Vec<u64>> = DROPS
        .iter()
        .map(|d| d.iter().map(|&ms| mid_utterance(&timeline, ms)).collect())
        .collect();

    let mut pg = PgOutage::new();
    let db = TestDb::postgres().await;
    let hook = Arc::new(Webhook::default());
    let webhook = WebhookServer::start(Arc::clone(&hook));
    let server = TestServer::start(|c| {
        c.database_url = db.url.clone();
        c.whisper.allow_fault_injection = true;
        c.crm.webhook_url = Some(webhook.url.clone());
        c.crm.webhook_secret = Some(SECRET.to_owned());
    });
    let transcriber = server
        .state
        .pipeline
        .transcriber
        .clone()
        .expect("model loaded");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    // Warm-up: one short call as fast as the socket takes it, so whisper's buffers, the pools
    // and the allocator's arenas exist before the baseline is taken. Its first decode panics:
    // the first panic of a process fills Rust's symbolization cache when RUST_BACKTRACE is set
    // (+60 MB of heap with this binary's debug info, once; tests/asr.rs measures a rebuilt
    // worker at +0), which is not a leak and belongs in the baseline.
    transcriber.inject_panics(1).expect("fault injection is on");
    let warm = Prepared::new(
        &slice(&audio, 0, Some(20_000)),
        Protocol::Native,
        TrackLayout::default(),
    )
    .expect("prepare");
    let mut opts = ReplayOptions::new(server.ws(""));
    opts.token = Some(server.token("agent-warm", Role::Agent));
    opts.agent_id = Some("agent-warm".into());
    opts.lead_id = Some("lead-warm".into());
    opts.realtime = false;
    let warm = replay(&warm, &opts, |_| {}).await.expect("warm-up call");
    assert!(
        warm.events.iter().any(|e| e.kind() == "final"),
        "warm-up call got no transcript"
    );
    // A worker's whisper state grows by ~26 MB the first time it decodes at the full 1 500-frame
    // window, and keeps that until it is rebuilt (measured: a 28 s clip after a 3 s one, +26.1 MB;
    // a second 28 s clip, +0). During the calls, long utterances and guard retries reach that
    // window on some workers and not others, which made the residual 14-38 MB from run to run.
    // So both workers decode a full window before the baseline. That makes the baseline the
    // largest the live states can legitimately be; rebuilt states start smaller.
    let full_window: Arc<[f32]> = {
        let call = decode_file(timeline.wav_path()).expect("decode call");
        Arc::from(&call.samples_16k_mono[..28 * 16_000])
    };
    for _ in 0..2 {
        // Two jobs at once: each idle worker takes one.
        let (x, y) = tokio::join!(
            transcriber.transcribe(Arc::clone(&full_window), JobKind::Final),
            transcriber.transcribe(Arc::clone(&full_window), JobKind::Final)
        );
        for r in [x, y] {
            assert_eq!(r.expect("full-window decode").audio_ctx, 1_500);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_baseline_raw = rss_mb();
    let rss_baseline = trimmed_rss_mb();
    let heap_baseline = common::heap::heap_in_use_mb().unwrap_or(0.0);
    let m0 = metrics(&http, &server).await;
    let restarts_before = metric(
        &m0,
        "callcoach_actor_restarts_total",
        "actor=\"transcriber_worker\"",
    );

    let log = Log::default();
    let done = AtomicBool::new(false);
    let t0 = Instant::now();
    let at = |d: Duration| tokio::time::Instant::from_std(t0 + d);

    // The calls.
    let calls = async {
        let runs = (0..CALLS).map(|k| {
            let party = Party {
                call_id: format!("soak-call-{k}"),
                agent_id: format!("agent-{k}"),
                lead_id: format!("soak-lead-{k}"),
                token: server.token(&format!("agent-{k}"), Role::Agent),
            };
            let (log, audio, drops, server) = (log.clone(), &audio, &drops[k], &server);
            async move {
                tokio::time::sleep(STAGGER * k as u32).await;
                run_call(server, audio, drops, party, log).await
            }
        });
        let reports = futures_util::future::join_all(runs).await;
        done.store(true, Ordering::SeqCst);
        reports
    };

    // The server must answer /healthz throughout.
    let health = async {
        let (mut ok, mut failures, mut slowest) = (0u32, Vec::new(), Duration::ZERO);
        while !done.load(Ordering::SeqCst) {
            let asked = Instant::now();
            match http.get(server.http("/healthz")).send().await {
                Ok(r) if r.status().is_success() => ok += 1,
                Ok(r) => failures.push(format!("{:?}: {}", t0.elapsed(), r.status())),
                Err(e) => failures.push(format!("{:?}: {e}", t0.elapsed())),
            }
            slowest = slowest.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (ok, failures, slowest)
    };

    // (a) Worker panics, one at a time: the next is armed once the previous has fired.
    let panics = async {
        let mut injected = 0u32;
        let mut next = at(FIRST_PANIC);
        while injected < PANICS && !done.load(Ordering::SeqCst) {
            tokio::time::sleep_until(next).await;
            let fired = metric(
                &metrics(&http, &server).await,
                "callcoach_actor_restarts_total",
                "actor=\"transcriber_worker\"",
            ) - restarts_before;
            if fired >= f64::from(injected) {
                transcriber
                    .inject_panics(1)
                    .expect("fault injection enabled");
                injected += 1;
                next += PANIC_EVERY;
            } else {
                next += Duration::from_millis(500);
            }
        }
        injected
    };

    // (b) PostgreSQL down for 30 s; then how long until everything received so far is stored.
    let pg_outage = async {
        tokio::time::sleep_until(at(PG_DOWN_AT)).await;
        let depth_before = metric(
            &metrics(&http, &server).await,
            "callcoach_store_writer_queue_depth",
            "",
        );
        pg.stop(PG_DOWN_FOR).await;
        let down = Instant::now();
        let mut deepest = depth_before;
        while down.elapsed() < PG_DOWN_FOR {
            tokio::time::sleep(Duration::from_secs(1)).await;
            deepest = deepest.max(metric(
                &metrics(&http, &server).await,
                "callcoach_store_writer_queue_depth",
                "",
            ));
        }
        let starting = Instant::now();
        pg.start().await;
        let up = Instant::now();
        // From `pg_ctlcluster start`: the writer may already reconnect while the command waits.
        let landed = wait_rows_landed(&db, &log, up, ROWS_LAND_WITHIN)
            .await
            .map(|_| starting.elapsed());
        (down, starting, up, deepest, landed)
    };

    // (c) The webhook fails for 30 s; then how long until every row due by then is delivered.
    let crm_outage = async {
        tokio::time::sleep_until(at(CRM_FAIL_AT)).await;
        hook.failing.store(true, Ordering::SeqCst);
        let from = Instant::now();
        tokio::time::sleep(CRM_FAIL_FOR).await;
        hook.failing.store(false, Ordering::SeqCst);
        let to = Instant::now();
        let pending_then = db.store.outbox_pending().await.unwrap_or(-1);
        let drained =
            wait_outbox_drained(&db, callcoach::store::now_ms(), OUTBOX_DRAIN_WITHIN).await;
        (from, to, pending_then, drained)
    };

    let (reports, (health_ok, health_failures, health_slowest), injected, pg_res, crm_res) =
        tokio::join!(calls, health, panics, pg_outage, crm_outage);
    let calls_done = Instant::now();
    let (pg_down, pg_starting, pg_up, writer_deepest, rows_landed_after_pg) = pg_res;
    let (crm_from, crm_to, outbox_pending_at_recovery, outbox_drained_after_crm) = crm_res;

    // Everything the softphones received is stored, and the outbox empties.
    let tail_landed = wait_rows_landed(&db, &log, calls_done, ROWS_LAND_WITHIN).await;
    let final_drain = wait_outbox_drained(&db, i64::MAX, OUTBOX_DRAIN_WITHIN).await;
    let rows = db_rows(&db).await.expect("count rows");
    let m1 = metrics(&http, &server).await;
    let restarts = metric(
        &m1,
        "callcoach_actor_restarts_total",
        "actor=\"transcriber_worker\"",
    ) - restarts_before;

    // Memory: the calls are over and their rows written; give the actors a moment to be dropped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after_raw = rss_mb();
    let rss_after = trimmed_rss_mb();
    // Heap: sampled each second until it is back within tolerance (or HEAP_SETTLE_WITHIN
    // passes); the trajectory goes in the summary, so a slow release shows as such.
    let heap_now = || common::heap::heap_in_use_mb().unwrap_or(0.0);
    let mut heap_after = heap_now();
    let mut heap_trajectory = vec![heap_after - heap_baseline];
    let settle_from = Instant::now();
    while heap_after - heap_baseline > HEAP_TOLERANCE_MB
        && settle_from.elapsed() < HEAP_SETTLE_WITHIN
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        heap_after = heap_now();
        heap_trajectory.push(heap_after - heap_baseline);
    }

    // ---- summary
    let finals = log.finals(calls_done).len();
    let scores = log.scores(calls_done).len();
    let hints = log.hints(calls_done).len();
    let hints_pg = log.count_between("hint", pg_down, pg_up);
    let finals_pg = log.count_between("final", pg_down, pg_up);
    let hints_crm = log.count_between("hint", crm_from, crm_to);
    let sessions: usize = reports.iter().map(|r| r.sessions).sum();
    let dropped: usize = reports.iter().map(|r| r.drops).sum();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reports {
        for (code, n) in &r.refusals {
            *refusals.entry(code.clone()).or_default() += n;
        }
    }
    let longest_reconnect = reports
        .iter()
        .map(|r| r.longest_reconnect)
        .max()
        .unwrap_or_default();
    let delivered = hook.delivered.lock().len();
    let failed_answers = *hook.failed_answers.lock();
    eprintln!(
        "soak summary ({:.0} s in all, {:.0} s of calls)\n\
         calls: {CALLS} softphones, {sessions} sessions, {dropped} drops mid-utterance, \
         reconnect refusals {refusals:?}, longest drop-to-accepted {:.1} s\n\
         received: {finals} finals, {hints} hints, {scores} score events; \
         stored: {} utterances, {} hints, {} score events, {} outbox rows\n\
         (a) worker panics injected {injected}, restarts counted {restarts}\n\
         (b) PostgreSQL down {:.1} s (accepting again {:.1} s after `start`): {finals_pg} finals \
         and {hints_pg} hints delivered meanwhile, writer buffer peaked at {writer_deepest} \
         records; everything received by then stored {} after `start`\n\
         (c) webhook failing {:.1} s ({failed_answers} posts answered 500/503): {hints_crm} hints \
         meanwhile; {outbox_pending_at_recovery} rows pending at recovery, drained {} after; \
         {delivered} deliveries acknowledged\n\
         after the calls: rows stored within {}, outbox empty within {}\n\
         healthz: {health_ok} probes ok, {} failed, slowest {:?}\n\
         RSS: baseline {rss_baseline_raw:.0} MB, after {rss_after_raw:.0} MB ({:+.0} MB); \
         after malloc_trim: {rss_baseline:.0} MB, {rss_after:.0} MB ({:+.1} MB); \
         heap in use: {heap_baseline:.0} MB, {heap_after:.0} MB ({:+.1} MB); MB above the \
         baseline, each second from 3 s after the calls: {heap_trajectory:.1?}\n\
         stream problems: {:?}",
        test_started.elapsed().as_secs_f64(),
        calls_done.duration_since(t0).as_secs_f64(),
        longest_reconnect.as_secs_f64(),
        rows.utterances,
        rows.hints.len(),
        rows.score_events,
        rows.outbox,
        pg_up.duration_since(pg_down).as_secs_f64(),
        pg_up.duration_since(pg_starting).as_secs_f64(),
        secs(&rows_landed_after_pg),
        crm_to.duration_since(crm_from).as_secs_f64(),
        secs(&outbox_drained_after_crm),
        secs(&tail_landed),
        secs(&final_drain),
        health_failures.len(),
        health_slowest,
        rss_after_raw - rss_baseline_raw,
        rss_after - rss_baseline,
        heap_after - heap_baseline,
        log.problems(),
    );

    {
        let seen = log.0.lock();
        let mut hint_times: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for s in seen.iter().filter(|s| Log::kind(&s.json) == "hint") {
            hint_times
                .entry(s.call_id.as_str())
                .or_default()
                .push(s.at.duration_since(t0).as_secs());
        }
        eprintln!("hint arrivals (s after the first call started): {hint_times:?}");
    }

    // ---- assertions
    assert!(
        health_failures.is_empty(),
        "/healthz failed: {health_failures:?}"
    );
    for r in &reports {
        assert!(
            r.ended,
            "{}: the last session did not end cleanly",
            r.call_id
        );
    }
    assert_eq!(dropped, drops.iter().map(Vec::len).sum::<usize>());
    assert!(
        finals > 0 && scores > 0 && hints > 0,
        "the calls produced nothing"
    );
    assert!(
        hints_pg > 0,
        "no hint reached a softphone while PostgreSQL was down"
    );
    assert!(
        hints_crm > 0,
        "no hint reached a softphone while the CRM webhook failed"
    );
    assert_eq!(injected, PANICS, "not every panic was injected");
    assert!(
        restarts >= f64::from(PANICS),
        "{restarts} worker restarts counted for {PANICS} panics"
    );
    rows_landed_after_pg.expect("rows received before PostgreSQL came back were not stored");
    outbox_drained_after_crm.expect("outbox rows due at the webhook's recovery were not delivered");
    tail_landed.expect("rows received during the calls were not stored");
    final_drain.expect("the outbox did not drain after the calls");
    let m = missing(&log, &rows, calls_done);
    assert!(m.is_empty(), "received but not stored: {m:?}");
    assert_eq!(rows.outbox_pending, 0);
    assert!(rows.outbox > 0, "no score change reached the outbox");
    assert!(failed_answers > 0, "the webhook outage was not exercised");
    assert_eq!(*hook.bad_signatures.lock(), 0);
    for (name, label) in [
        ("callcoach_store_records_lost_total", ""),
        ("callcoach_store_writer_rejected_total", ""),
        ("callcoach_store_writer_unwritten_total", ""),
    ] {
        assert_eq!(metric(&m1, name, label), 0.0, "{name} moved");
    }
    assert_eq!(metric(&m1, "callcoach_calls_live", ""), 0.0);
    assert!(
        heap_after - heap_baseline <= HEAP_TOLERANCE_MB,
        "heap in use {heap_after:.0} MB did not return to its {heap_baseline:.0} MB baseline (tolerance {HEAP_TOLERANCE_MB} MB)"
    );
    assert!(
        rss_after - rss_baseline <= RSS_TOLERANCE_MB,
        "trimmed RSS {rss_after:.0} MB did not return to its {rss_baseline:.0} MB baseline (tolerance {RSS_TOLERANCE_MB} MB)"
    );

    drop(server);
    drop(webhook);
    drop(pg);
    db.cleanup().await;
}
