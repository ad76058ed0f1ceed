//! The batched writer that keeps live calls off the database's latency.
//!
//! Call actors hand records to [`StoreWriter::try_record`], which never waits: the record goes
//! into a bounded buffer or comes straight back as [`Full`] (counted), and the caller decides
//! what to do with it. One task drains the buffer, writing whatever has accumulated (up to
//! [`BATCH_MAX`] records) in one transaction. When the database is slow or down, the task
//! retries the batch with capped exponential backoff while the buffer absorbs new records;
//! once the database is back, everything buffered reaches it in order.
//!
//! A record the database refuses for good (e.g. a score for a lead erased meanwhile) is
//! isolated by retrying the batch one record at a time, then logged and counted as rejected —
//! nothing disappears without a metric and a log line. Shutdown stops intake, drains the buffer
//! and retries for at most [`SHUTDOWN_GRACE`]; anything still unwritten is logged and counted.

use super::calls::{
    end_call_tx, insert_hint_tx, insert_utterance_tx, set_feedback_tx, start_call_tx,
};
use super::scores::record_score_tx;
use super::{CallStart, Role, ScoreChange, Store, StoreError, Timestamp};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use callcoach_actors::metrics::{counter, counter_vec, gauge, stage_histogram};
use callcoach_actors::{Hint, TalkStats, Track};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

/// Records the buffer holds. A live call produces ~2 records/s (finals on two tracks, a score
/// update per final, the odd hint); at the 100-call default that is ~200/s, so 16 384 rides out
/// ~80 s of database outage before callers see `Full`, at ~0.5 KiB a record (~8 MiB).
pub const WRITER_CAPACITY: usize = 16_384;
/// Records per transaction: large enough that a backlog drains in a few round trips (a
/// 512-row SQLite transaction commits in ~10 ms), small enough to keep each lock short.
pub const BATCH_MAX: usize = 512;
/// First retry delay after a transient failure; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries: recovery is noticed within 5 s without hammering a
/// database that is restarting.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long shutdown keeps retrying an unreachable database before giving up (logged and
/// counted): inside the 30 s grace most orchestrators give a stopping pod.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

static WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "callcoach_store_writer_written_total",
        "Records the store writer committed",
    )
});
static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "callcoach_store_writer_refused_total",
        "Records handed back to the caller by try_record, by reason (full, closed)",
        &["reason"],
    )
});
static REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "callcoach_store_writer_rejected_total",
        "Records the database refused permanently (logged with their kind)",
    )
});
static UNWRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "callcoach_store_writer_unwritten_total",
        "Records still unwritten when shutdown's grace ran out",
    )
});
static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "callcoach_store_writer_retries_total",
        "Batch writes retried after a transient error",
    )
});
static DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "callcoach_store_writer_queue_depth",
        "Records waiting in the store writer's buffer",
    )
});
static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    stage_histogram(
        "callcoach_store_writer_batch_seconds",
        "Time to commit one batch of records",
    )
});

/// Something a live call wants stored.
#[derive(Debug, Clone, PartialEq)]
pub enum CallRecord {
    CallStarted(CallStart),
    /// A final utterance; `text` must already be redacted.
    Utterance {
        tenant: String,
        call_id: String,
        seq: u32,
        track: Track,
        start_ms: u64,
        end_ms: u64,
        text: String,
        sentiment: Option<f32>,
    },
    Hint {
        tenant: String,
        call_id: String,
        hint: Hint,
    },
    Score(ScoreChange),
    CallEnded {
        tenant: String,
        call_id: String,
        ended_at: Timestamp,
        reason: String,
        talk: Option<TalkStats>,
    },
    /// An agent's verdict on a hint, from the overlay.
    Feedback {
        tenant: String,
        hint_id: String,
        useful: bool,
        by: String,
    },
}

impl CallRecord {
    /// The record's kind, for logs and metrics (no content: that may be personal).
    pub fn kind(&self) -> &'static str {
        match self {
            CallRecord::CallStarted(_) => "call_started",
            CallRecord::Utterance { .. } => "utterance",
            CallRecord::Hint { .. } => "hint",
            CallRecord::Score(_) => "score",
            CallRecord::CallEnded { .. } => "call_ended",
            CallRecord::Feedback { .. } => "feedback",
        }
    }
}

/// The buffer was full (or the writer shut down); the record comes back to the caller
/// (boxed: a score change is a few hundred bytes and `Result<(), Full>` stays small).
#[derive(Debug, thiserror::Error)]
#[error("store writer buffer is full")]
pub struct Full(pub Box<CallRecord>);

/// Handle to the writer task; cheap to clone, one per call actor if convenient.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<CallRecord>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl StoreWriter {
    /// Starts the writer task on the current tokio runtime with [`WRITER_CAPACITY`].
    pub fn start(store: Store) -> StoreWriter {
        Self::with_capacity(store, WRITER_CAPACITY)
    }

    /// As [`start`](Self::start) with another buffer size (tests).
    pub fn with_capacity(store: Store, capacity: usize) -> StoreWriter {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(store, rx, stop_rx));
        StoreWriter {
            tx,
            shared: Arc::new(Shared {
                stop,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Queues a record without waiting; `Full` hands it back when the buffer is full or the
    /// writer has shut down.
    pub fn try_record(&self, record: CallRecord) -> Result<(), Full> {
        match self.tx.try_send(record) {
            Ok(()) => {
                DEPTH.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(r)) => {
                REFUSED.with_label_values(&["full"]).inc();
                Err(Full(Box::new(r)))
            }
            Err(mpsc::error::TrySendError::Closed(r)) => {
                REFUSED.with_label_values(&["closed"]).inc();
                Err(Full(Box::new(r)))
            }
        }
    }

    /// Queues a record, waiting for room (for callers off the audio path, e.g. upload jobs).
    pub async fn record(&self, record: CallRecord) -> Result<(), Full> {
        match self.tx.send(record).await {
            Ok(()) => {
                DEPTH.inc();
                Ok(())
            }
            Err(mpsc::error::SendError(r)) => {
                REFUSED.with_label_values(&["closed"]).inc();
                Err(Full(Box::new(r)))
            }
        }
    }

    /// Records waiting in the buffer.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Stops intake, writes everything buffered (retrying for up to [`SHUTDOWN_GRACE`] if the
    /// database is down) and waits for the task to finish. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.shared.stop.send(true);
        let task = self.shared.task.lock().await.take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "store writer task failed");
            }
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<CallRecord>, mut stop: watch::Receiver<bool>) {
    let mut pending: VecDeque<CallRecord> = VecDeque::with_capacity(BATCH_MAX);
    let mut deadline: Option<Instant> = None;
    loop {
        if pending.is_empty() {
            tokio::select! {
                biased;
                got = rx.recv() => match got {
                    Some(r) => pending.push_back(r),
                    None => break,
                },
                _ = stop.changed(), if deadline.is_none() => {
                    // Refuse new records but keep draining what is already buffered.
                    rx.close();
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                    continue;
                }
            }
        }
        while pending.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(r) => pending.push_back(r),
                Err(_) => break,
            }
        }
        if deadline.is_none() && *stop.borrow() {
            rx.close();
            deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        }
        DEPTH.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        if !write_with_retry(&store, &mut pending, deadline, &mut stop).await {
            break;
        }
    }
    let left = pending.len() + rx.len();
    if left > 0 {
        UNWRITTEN.inc_by(left as u64);
        tracing::error!(
            records = left,
            "store writer gave up at shutdown: database unreachable"
        );
    }
    DEPTH.set(0);
}

/// Writes `pending` (emptying it) unless the shutdown deadline passes first (returns false).
async fn write_with_retry(
    store: &Store,
    pending: &mut VecDeque<CallRecord>,
    mut deadline: Option<Instant>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = RETRY_MIN;
    while !pending.is_empty() {
        let started = Instant::now();
        let batch: Vec<&CallRecord> = pending.iter().collect();
        match write_batch(store, &batch).await {
            Ok(()) => {
                BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
                WRITTEN.inc_by(pending.len() as u64);
                pending.clear();
                return true;
            }
            Err(e) if e.is_transient() => {
                RETRIES.inc();
                tracing::warn!(error = %e, records = pending.len(), "store write failed; retrying");
            }
            Err(e) => {
                tracing::warn!(error = %e, "store batch refused; isolating the bad record");
                // One by one: the good records go in, the bad ones are counted and logged.
                while let Some(r) = pending.front() {
                    match write_batch(store, &[r]).await {
                        Ok(()) => {
                            WRITTEN.inc();
                            pending.pop_front();
                        }
                        Err(e) if e.is_transient() => break,
                        Err(e) => {
                            REJECTED.inc();
                            tracing::error!(kind = r.kind(), error = %e, "store refused a record");
                            pending.pop_front();
                        }
                    }
                }
                if pending.is_empty() {
                    return true;
                }
                RETRIES.inc();
            }
        }
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        }
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                backoff.min(left)
            }
            None => backoff,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Shutdown starts the grace clock at once rather than after this sleep.
            _ = stop.changed(), if deadline.is_none() => {}
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
    true
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// Worth retrying: the database could not be reached, was busy, or the commit's outcome is
    /// unknown (replaying is safe: every write is idempotent or keyed).
    #[error("{0}")]
    Transient(StoreError),
    /// A record the database will never take.
    #[error("{0}")]
    Refused(StoreError),
}

impl BatchError {
    fn is_transient(&self) -> bool {
        matches!(self, BatchError::Transient(_))
    }
}

async fn write_batch(store: &Store, batch: &[&CallRecord]) -> Result<(), BatchError> {
    // Failing to get a connection or to commit says nothing about the records.
    let mut tx = store
        .pool
        .begin()
        .await
        .map_err(|e| BatchError::Transient(e.into()))?;
    for r in batch {
        apply(&mut tx, r).await.map_err(|e| {
            if e.is_transient() {
                BatchError::Transient(e)
            } else {
                BatchError::Refused(e)
            }
        })?;
    }
    tx.commit()
        .await
        .map_err(|e| BatchError::Transient(e.into()))?;
    Ok(())
}

async fn apply(conn: &mut sqlx::AnyConnection, r: &CallRecord) -> Result<(), StoreError> {
    match r {
        CallRecord::CallStarted(c) => start_call_tx(conn, c).await,
        CallRecord::Utterance {
            tenant,
            call_id,
            seq,
            track,
            start_ms,
            end_ms,
            text,
            sentiment,
        } => {
            insert_utterance_tx(
                conn, tenant, call_id, *seq, *track, *start_ms, *end_ms, text, *sentiment,
            )
            .await
        }
        CallRecord::Hint {
            tenant,
            call_id,
            hint,
        } => insert_hint_tx(conn, tenant, call_id, hint).await,
        CallRecord::Score(c) => record_score_tx(conn, c).await.map(|_| ()),
        CallRecord::CallEnded {
            tenant,
            call_id,
            ended_at,
            reason,
            talk,
        } => end_call_tx(conn, tenant, call_id, *ended_at, reason, talk.as_ref()).await,
        CallRecord::Feedback {
            tenant,
            hint_id,
            useful,
            by,
        } => {
            if !set_feedback_tx(conn, tenant, hint_id, *useful, by).await? {
                return Err(StoreError::NotFound);
            }
            let who = AuditEntry {
                actor: by.clone(),
                role: Role::Agent,
                ip: None,
            };
            insert_audit_detail(
                conn,
                tenant,
                &who,
                "hint.feedback",
                "hint",
                hint_id,
                &serde_json::json!({ "useful": useful }),
            )
            .await
        }
    }
}
