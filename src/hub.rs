//! The registry of live calls on this node and the fan-out of their events.
//!
//! Every call's events reach three kinds of listener:
//! * the call's own ingest sockets (the softphone sees `final`, `hint`, ... on its stream), through
//!   a small per-call broadcast channel;
//! * dashboards and agent overlays, through one node-wide broadcast of [`LiveEnvelope`]s, each
//!   serialised once and filtered per subscriber by tenant, team and agent;
//! * the store, through the bounded [`StoreWriter`](crate::store::writer::StoreWriter).
//!
//! Broadcast receivers that fall behind lose the oldest messages (`Lagged`) instead of slowing the
//! call; dashboards then re-sync from a fresh snapshot.

use crate::actors::call::{CallActor, CallObserver, CallSpec};
use crate::actors::scorer::{LeadUpdate, ScoreSink};
use crate::actors::{CallEvent, Code, Track};
use crate::store::calls::CallStart;
use crate::store::scores::ScoreChange;
use crate::store::writer::{CallRecord, Full, StoreWriter};
use actix::Addr;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::{Arc, LazyLock};
use tokio::sync::broadcast;

/// Node-wide live channel. 50 calls × ~10 events/s is 500 messages/s; 4 096 gives a dashboard
/// ~8 s to catch up before it has to re-sync from a snapshot.
pub const LIVE_CHANNEL_CAPACITY: usize = 4096;

/// Per-call channel to that call's own sockets. ~10 events/s; 256 is 25 s of slack.
pub const CALL_CHANNEL_CAPACITY: usize = 256;

static EVENTS_FANNED_OUT: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    crate::actors::metrics::counter(
        "callcoach_hub_events_total",
        "Call events fanned out to sockets, dashboards and the store",
    )
});

/// What a dashboard shows for a call in its grid.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CallSummary {
    pub call_id: String,
    pub tenant: String,
    pub agent_id: String,
    pub lead_id: Option<String>,
    pub team: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    #[schema(value_type = Vec<String>)]
    pub tracks: Vec<Track>,
    pub score: Option<f64>,
    pub stage: Option<String>,
    /// Latest customer (or mixed) sentiment trend, -1..1.
    pub sentiment: Option<f32>,
    pub last_hint: Option<String>,
}

/// One message on `/v1/live`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    Snapshot { calls: Vec<CallSummary> },
    CallStarted { call: CallSummary },
    CallEvent { call_id: String, event: CallEvent },
    CallEnded { call_id: String },
}

/// A live message with what subscribers filter on, serialised once for all of them.
#[derive(Debug)]
pub struct LiveEnvelope {
    pub tenant: String,
    pub team: Option<String>,
    pub agent_id: String,
    pub call_id: String,
    pub json: String,
}

struct LiveCall {
    summary: Mutex<CallSummary>,
    addr: Addr<CallActor>,
    events: broadcast::Sender<Arc<str>>,
}

/// The live calls of this node.
pub struct Hub {
    calls: DashMap<String, Arc<LiveCall>>,
    live: broadcast::Sender<Arc<LiveEnvelope>>,
    store: Option<Recorder>,
    /// Other nodes' live calls (scale-out over PostgreSQL; empty on a single node).
    remote: DashMap<String, CallSummary>,
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

impl Hub {
    pub fn new(store: Option<StoreWriter>) -> Arc<Self> {
        let (live, _) = broadcast::channel(LIVE_CHANNEL_CAPACITY);
        Arc::new(Hub {
            calls: DashMap::new(),
            live,
            store: store.map(Recorder),
            remote: DashMap::new(),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// The store writer, for flushing at shutdown.
    pub fn store_writer(&self) -> Option<&StoreWriter> {
        self.store.as_ref().map(|r| &r.0)
    }

    /// Links this hub to the other nodes; set once at start.
    pub fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.cluster.get()
    }

    /// A live call held by another node.
    pub fn remote_summary(&self, call_id: &str) -> Option<CallSummary> {
        self.remote.get(call_id).map(|s| s.clone())
    }

    /// A live message from another node: keep its call's summary and pass it to local
    /// dashboards and overlays (not back to the cluster).
    pub fn receive_remote(&self, remote: crate::cluster::Remote) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&remote.json) else {
            return;
        };
        match v.get("type").and_then(|t| t.as_str()) {
            Some("call_started") => {
                if let Ok(summary) = serde_json::from_value::<CallSummary>(v["call"].clone()) {
                    self.remote.insert(remote.call_id.clone(), summary);
                }
            }
            Some("call_ended") => {
                self.remote.remove(&remote.call_id);
            }
            Some("call_event") => {
                if let (Ok(event), Some(mut s)) = (
                    serde_json::from_value::<CallEvent>(v["event"].clone()),
                    self.remote.get_mut(&remote.call_id),
                ) {
                    apply(&mut s, &event);
                }
            }
            _ => {}
        }
        let _ = self.live.send(Arc::new(LiveEnvelope {
            tenant: remote.tenant,
            team: remote.team,
            agent_id: remote.agent_id,
            call_id: remote.call_id,
            json: remote.json,
        }));
    }

    /// Where calls' rows go (`None` in tests without a store).
    pub fn recorder(&self) -> Option<&Recorder> {
        self.store.as_ref()
    }

    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<LiveEnvelope>> {
        self.live.subscribe()
    }

    /// The summaries of every live call (callers filter by scope).
    pub fn snapshot(&self) -> Vec<CallSummary> {
        let mut calls: Vec<CallSummary> = self
            .calls
            .iter()
            .map(|c| c.value().summary.lock().clone())
            .chain(self.remote.iter().map(|c| c.value().clone()))
            .collect();
        calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        calls
    }

    pub fn call_addr(&self, call_id: &str) -> Option<Addr<CallActor>> {
        self.calls.get(call_id).map(|c| c.addr.clone())
    }

    pub fn summary(&self, call_id: &str) -> Option<CallSummary> {
        self.calls.get(call_id).map(|c| c.summary.lock().clone())
    }

    /// The live call an agent is on, if any (the most recent when several).
    pub fn call_of_agent(&self, tenant: &str, agent_id: &str) -> Option<CallSummary> {
        self.calls
            .iter()
            .map(|c| c.value().summary.lock().clone())
            .chain(self.remote.iter().map(|c| c.value().clone()))
            .filter(|s| s.tenant == tenant && s.agent_id == agent_id)
            .max_by(|a, b| a.started_at.cmp(&b.started_at))
    }

    /// Subscribes to one call's events (for its ingest sockets).
    pub fn subscribe_call(&self, call_id: &str) -> Option<broadcast::Receiver<Arc<str>>> {
        self.calls.get(call_id).map(|c| c.events.subscribe())
    }

    /// Registers a new call whose actor is being started; returns its event channel.
    pub fn register(
        &self,
        spec: &CallSpec,
        addr: Addr<CallActor>,
        events: broadcast::Sender<Arc<str>>,
    ) {
        let summary = CallSummary {
            call_id: spec.call_id.clone(),
            tenant: spec.tenant.clone(),
            agent_id: spec.agent_id.clone(),
            lead_id: spec.lead_id.clone(),
            team: spec.team.clone(),
            started_at: chrono::Utc::now().to_rfc3339(),
            tracks: Vec::new(),
            score: None,
            stage: None,
            sentiment: None,
            last_hint: None,
        };
        if let Some(store) = &self.store {
            store.record(CallRecord::CallStarted(CallStart {
                tenant: spec.tenant.clone(),
                call_id: spec.call_id.clone(),
                lead_id: spec.lead_id.clone(),
                agent_id: spec.agent_id.clone(),
                team: spec.team.clone(),
                origin: "live",
                started_at: crate::store::types::Timestamp::now(),
            }));
        }
        self.publish(
            spec,
            &LiveMessage::CallStarted {
                call: summary.clone(),
            },
        );
        self.calls.insert(
            spec.call_id.clone(),
            Arc::new(LiveCall {
                summary: Mutex::new(summary),
                addr,
                events,
            }),
        );
    }

    fn publish(&self, spec: &CallSpec, message: &LiveMessage) {
        let json = match serde_json::to_string(message) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "failed to serialise live message");
                return;
            }
        };
        let env = Arc::new(LiveEnvelope {
            tenant: spec.tenant.clone(),
            team: spec.team.clone(),
            agent_id: spec.agent_id.clone(),
            call_id: spec.call_id.clone(),
            json,
        });
        if let Some(cluster) = self.cluster.get() {
            cluster.publish(&env);
        }
        // No subscribers is fine: nobody is watching.
        let _ = self.live.send(env);
    }

    fn update_summary(&self, call_id: &str, event: &CallEvent) {
        if let Some(call) = self.calls.get(call_id) {
            apply(&mut call.summary.lock(), event);
        }
    }
}

/// Keeps a call's summary current with one of its events.
fn apply(s: &mut CallSummary, event: &CallEvent) {
    match event {
        CallEvent::Ready { tracks, .. } => {
            for t in tracks {
                if !s.tracks.contains(t) {
                    s.tracks.push(*t);
                }
            }
        }
        CallEvent::Score { score, stage, .. } => {
            s.score = Some(*score);
            s.stage = Some(stage.clone());
        }
        CallEvent::Sentiment { track, trend, .. } if track.is_customer() => {
            s.sentiment = Some(*trend)
        }
        CallEvent::Hint(h) => s.last_hint = Some(h.title.clone()),
        _ => {}
    }
}

/// The observer each call actor reports to: updates the summary, feeds the call's sockets, the
/// live channel and the store.
pub struct Fanout {
    pub hub: Arc<Hub>,
    pub events: broadcast::Sender<Arc<str>>,
    rows: Option<CallRows>,
}

impl Fanout {
    pub fn new(hub: Arc<Hub>, events: broadcast::Sender<Arc<str>>) -> Self {
        let rows = hub.store.as_ref().map(|r| CallRows::new(r.clone()));
        Fanout { hub, events, rows }
    }
}

/// Turns a call's events into the rows they produce, for live calls and uploads alike.
pub struct CallRows {
    recorder: Recorder,
    /// Finals waiting for their sentiment (which follows within milliseconds) so each utterance
    /// is stored in one row; flushed without sentiment if the sentiment actor is down.
    pending: Mutex<Vec<CallRecord>>,
    last_talk: Mutex<Option<crate::actors::TalkStats>>,
}

impl CallRows {
    pub fn new(recorder: Recorder) -> Self {
        CallRows {
            recorder,
            pending: Mutex::new(Vec::new()),
            last_talk: Mutex::new(None),
        }
    }

    pub fn on_event(&self, call: &CallSpec, event: &CallEvent) {
        let store = &self.recorder;
        match event {
            CallEvent::Final(t) => {
                let stale: Vec<CallRecord> = std::mem::take(&mut *self.pending.lock());
                for record in stale {
                    store.record(record);
                }
                self.pending.lock().push(CallRecord::Utterance {
                    tenant: call.tenant.clone(),
                    call_id: call.call_id.clone(),
                    seq: t.utterance_id.0,
                    track: t.track,
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                    text: t.text.clone(),
                    sentiment: None,
                });
            }
            CallEvent::Sentiment {
                utterance_id,
                score,
                ..
            } => {
                let mut pending = self.pending.lock();
                if let Some(i) = pending.iter().position(
                    |r| matches!(r, CallRecord::Utterance { seq, .. } if *seq == utterance_id.0),
                ) {
                    let mut record = pending.remove(i);
                    if let CallRecord::Utterance { sentiment, .. } = &mut record {
                        *sentiment = Some(score.compound);
                    }
                    drop(pending);
                    store.record(record);
                }
            }
            CallEvent::Hint(hint) => store.record(CallRecord::Hint {
                tenant: call.tenant.clone(),
                call_id: call.call_id.clone(),
                hint: hint.clone(),
            }),
            CallEvent::Talk(talk) => *self.last_talk.lock() = Some(*talk),
            CallEvent::Ended { reason } => {
                let pending: Vec<CallRecord> = std::mem::take(&mut *self.pending.lock());
                for record in pending {
                    store.record(record);
                }
                store.record(CallRecord::CallEnded {
                    tenant: call.tenant.clone(),
                    call_id: call.call_id.clone(),
                    ended_at: crate::store::types::Timestamp::now(),
                    reason: reason.clone(),
                    talk: *self.last_talk.lock(),
                });
            }
            // Scores are stored by the scoring sink (with their outbox rows, transactionally);
            // the rest is live-only.
            _ => {}
        }
    }
}

/// Records waiting for room in a full store writer, beyond its own 16 384-record buffer. 4 096
/// more (~20 s of a 100-call node) rides out the tail of an outage; past that a record is
/// logged and counted as lost rather than letting waiting tasks pile up without bound.
const MAX_WAITING_RECORDS: usize = 4096;

static WAITING: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(MAX_WAITING_RECORDS));
static RECORDS_LOST: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    crate::actors::metrics::counter(
        "callcoach_store_records_lost_total",
        "Call records dropped because the store writer stayed full past the waiting room",
    )
});

/// Hands records to the store writer without waiting. When its buffer is full the record waits
/// for room in a bounded waiting room, so a burst costs latency, not data; beyond that it is
/// logged and counted (`callcoach_store_records_lost_total`).
#[derive(Clone)]
pub struct Recorder(pub StoreWriter);

impl Recorder {
    pub fn record(&self, record: CallRecord) {
        if let Err(Full(record)) = self.0.try_record(record) {
            let Ok(permit) = WAITING.try_acquire() else {
                RECORDS_LOST.inc();
                tracing::error!(kind = record.kind(), "store writer full; record lost");
                return;
            };
            let writer = self.0.clone();
            actix_web::rt::spawn(async move {
                let _permit = permit;
                if let Err(Full(record)) = writer.record(*record).await {
                    tracing::error!(
                        kind = record.kind(),
                        "store writer closed; record not stored"
                    );
                }
            });
        }
    }
}

/// Where the scoring actor's updates go: the store (score event + outbox row in one
/// transaction, through the writer).
pub struct StoreScoreSink(pub Recorder);

impl ScoreSink for StoreScoreSink {
    fn publish(&self, update: &LeadUpdate) {
        let u = &update.update;
        let reason = if u.transitions.is_empty() {
            "rescored from call signals".to_owned()
        } else {
            u.transitions
                .iter()
                .map(|t| t.reason.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        self.0.record(CallRecord::Score(ScoreChange {
            key: uuid::Uuid::new_v4(),
            tenant: update.tenant.clone(),
            lead_id: update.lead_id.clone(),
            call_id: update.call_id.clone(),
            score: Some(u.score),
            // The store keeps its own stage enum with the same names, so the parse cannot fail.
            stage: u
                .stage
                .as_str()
                .parse()
                .unwrap_or(crate::store::types::Stage::New),
            reason,
            contributions: u.contributions.clone(),
        }));
    }
}

impl CallObserver for Fanout {
    fn on_event(&self, call: &CallSpec, event: &CallEvent) {
        EVENTS_FANNED_OUT.inc();
        if let CallEvent::Error { code, .. } = event {
            crate::actors::metrics::ERRORS
                .with_label_values(&[code.as_str()])
                .inc();
        }
        self.hub.update_summary(&call.call_id, event);
        if let Some(rows) = &self.rows {
            rows.on_event(call, event);
        }
        match serde_json::to_string(event) {
            Ok(json) => {
                let _ = self.events.send(Arc::from(json));
            }
            Err(e) => tracing::error!(error = %e, "failed to serialise call event"),
        }
        if let CallEvent::Ended { .. } = event {
            self.hub.calls.remove(&call.call_id);
            self.hub.publish(
                call,
                &LiveMessage::CallEnded {
                    call_id: call.call_id.clone(),
                },
            );
        } else {
            self.hub.publish(
                call,
                &LiveMessage::CallEvent {
                    call_id: call.call_id.clone(),
                    event: event.clone(),
                },
            );
        }
    }
}

/// An error event as the protocols send it.
pub fn error_json(code: Code, message: &str) -> String {
    crate::actors::metrics::ERRORS
        .with_label_values(&[code.as_str()])
        .inc();
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

/// A warning event as the protocols send it.
pub fn warning_json(code: Code, message: &str) -> String {
    serde_json::json!({"type": "warning", "code": code, "message": message}).to_string()
}
