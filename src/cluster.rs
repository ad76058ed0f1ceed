//! Scale-out across nodes sharing one PostgreSQL, with no new infrastructure: live events cross
//! nodes through `LISTEN`/`NOTIFY`.
//!
//! A call lives on the node that holds its socket. Every live message a node publishes is also
//! sent as a `NOTIFY callcoach_live` (serialised once, tagged with the node id); every node
//! listens and re-broadcasts the other nodes' messages to its own dashboards and overlays, and
//! keeps their calls' summaries so a snapshot shows every call of the cluster. Supervisor
//! whispers and overlay feedback for a call on another node travel the other way, on
//! `callcoach_control`, and the node holding the call delivers them.
//!
//! PostgreSQL limits a notification payload to 8000 bytes; a larger message (a very long
//! transcript line) stays on its node and is counted. A broken listener connection is
//! re-established with backoff; messages sent meanwhile are lost to remote dashboards only (they
//! re-sync from their next snapshot), never to the call or the store.

use crate::actors::call::{Feedback, Whisper};
use crate::actors::metrics;
use crate::hub::{Hub, LiveEnvelope};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;

const LIVE_CHANNEL: &str = "callcoach_live";
const CONTROL_CHANNEL: &str = "callcoach_control";
/// PostgreSQL's payload limit is 8000 bytes; keep room for the channel bookkeeping.
const MAX_PAYLOAD: usize = 7900;
/// Outgoing notifications waiting for the database: ~1 s of a busy 50-call node. Past that the
/// database is too slow to be a live bus and remote dashboards re-sync from snapshots instead.
const OUTBOX_CAPACITY: usize = 1024;
/// Reconnect backoff for the listener: quick first retry, at most every 5 s.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

static CLUSTER_DROPS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_cluster_dropped_total",
        "Live messages not sent to other nodes, by reason (too_large, backlog, error)",
        &["reason"],
    )
});
static CLUSTER_RECEIVED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_cluster_received_total",
        "Live messages received from other nodes",
    )
});

/// A live message on the wire between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Remote {
    pub node: String,
    pub tenant: String,
    pub team: Option<String>,
    pub agent_id: String,
    pub call_id: String,
    /// The `/v1/live` message, as JSON text.
    pub json: String,
}

/// A request for the node that holds a call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    Whisper {
        call_id: String,
        text: String,
    },
    Feedback {
        call_id: String,
        hint_id: uuid::Uuid,
        useful: bool,
    },
}

impl Control {
    fn call_id(&self) -> &str {
        match self {
            Control::Whisper { call_id, .. } | Control::Feedback { call_id, .. } => call_id,
        }
    }
}

/// This node's link to the others.
#[derive(Clone)]
pub struct Cluster {
    node: String,
    outbox: mpsc::Sender<String>,
    pool: PgPool,
}

impl Cluster {
    /// Joins the cluster on `database_url` (PostgreSQL) and starts the listener and notifier.
    pub async fn join(database_url: &str, hub: Arc<Hub>) -> Result<Cluster, sqlx::Error> {
        let node = uuid::Uuid::new_v4().simple().to_string();
        // Two connections: NOTIFY is one short statement; the listener holds its own.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(database_url)
            .await?;
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let cluster = Cluster { node, outbox, pool };
        tokio::spawn(notifier(cluster.pool.clone(), rx));
        tokio::spawn(listener(database_url.to_owned(), cluster.node.clone(), hub));
        tracing::info!(node = %cluster.node, "joined cluster over PostgreSQL LISTEN/NOTIFY");
        Ok(cluster)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Sends a local live message to the other nodes (never blocks).
    pub fn publish(&self, env: &LiveEnvelope) {
        let remote = Remote {
            node: self.node.clone(),
            tenant: env.tenant.clone(),
            team: env.team.clone(),
            agent_id: env.agent_id.clone(),
            call_id: env.call_id.clone(),
            json: env.json.clone(),
        };
        let Ok(payload) = serde_json::to_string(&remote) else {
            return;
        };
        if payload.len() > MAX_PAYLOAD {
            CLUSTER_DROPS.with_label_values(&["too_large"]).inc();
            return;
        }
        if self
            .outbox
            .try_send(format!("{LIVE_CHANNEL}\n{payload}"))
            .is_err()
        {
            CLUSTER_DROPS.with_label_values(&["backlog"]).inc();
        }
    }

    /// Asks whichever node holds the call to deliver `control`.
    pub async fn control(&self, control: &Control) -> Result<(), sqlx::Error> {
        let payload = serde_json::to_string(control).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CONTROL_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn notifier(pool: PgPool, mut rx: mpsc::Receiver<String>) {
    while let Some(item) = rx.recv().await {
        let Some((channel, payload)) = item.split_once('\n') else {
            continue;
        };
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            CLUSTER_DROPS.with_label_values(&["error"]).inc();
            tracing::debug!(error = %e, "cluster notify failed");
        }
    }
}

async fn listener(url: String, node: String, hub: Arc<Hub>) {
    let mut backoff = RECONNECT_MIN;
    loop {
        match listen_once(&url, &node, &hub).await {
            Ok(()) => backoff = RECONNECT_MIN,
            Err(e) => {
                tracing::warn!(error = %e, "cluster listener lost its connection; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
}

async fn listen_once(url: &str, node: &str, hub: &Arc<Hub>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([LIVE_CHANNEL, CONTROL_CHANNEL]).await?;
    loop {
        let note = listener.recv().await?;
        match note.channel() {
            LIVE_CHANNEL => {
                let Ok(remote) = serde_json::from_str::<Remote>(note.payload()) else {
                    continue;
                };
                if remote.node == node {
                    continue;
                }
                CLUSTER_RECEIVED.inc();
                hub.receive_remote(remote);
            }
            CONTROL_CHANNEL => {
                let Ok(control) = serde_json::from_str::<Control>(note.payload()) else {
                    continue;
                };
                // Only the node holding the call has its actor; the others ignore the request.
                let Some(addr) = hub.call_addr(control.call_id()) else {
                    continue;
                };
                match control {
                    Control::Whisper { text, .. } => {
                        let _ = addr.send(Whisper { text }).await;
                    }
                    Control::Feedback {
                        hint_id, useful, ..
                    } => {
                        let _ = addr.send(Feedback { hint_id, useful }).await;
                    }
                }
            }
            _ => {}
        }
    }
}
