//! Calls, their utterances (redacted text) and their hints with agents' feedback.
//!
//! Every insert here is idempotent (`ON CONFLICT DO NOTHING` on the natural key) so the
//! [`writer`](super::writer) can replay a batch whose commit it could not confirm. An utterance
//! whose number a *different* utterance of the same call id already holds is stored after the
//! call's last number instead ([`insert_utterance_tx`]).

use super::{
    ensure_tenant, now_ms, Arg, JsonText, SqlBuilder, Store, StoreError, Timestamp, Visibility,
};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use callcoach_actors::metrics;
use callcoach_actors::{Hint, TalkStats, Track};
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::LazyLock;
use utoipa::ToSchema;

/// Utterances returned with one call: a 4-hour call (the longest admitted) at one utterance
/// every 2 s per track is ~14 400; the cap keeps one response bounded.
pub const MAX_UTTERANCES_PER_CALL_READ: i64 = 20_000;
/// Hints returned with one call (playbooks cap hints per rule per call far below this).
pub const MAX_HINTS_PER_CALL_READ: i64 = 5_000;

/// What is known when a call starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStart {
    pub tenant: String,
    pub call_id: String,
    pub lead_id: Option<String>,
    pub agent_id: String,
    pub team: Option<String>,
    /// `live` or `upload`.
    pub origin: &'static str,
    pub started_at: Timestamp,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Call {
    pub id: String,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub lead_id: Option<String>,
    pub agent_id: String,
    pub team: Option<String>,
    /// `live` or `upload`.
    pub origin: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    /// Talk-time figures at the end of the call.
    #[schema(value_type = Option<Object>)]
    pub talk_stats: Option<JsonText<TalkStats>>,
}

const CALL_COLUMNS: &str =
    "id, tenant_id, lead_id, agent_id, team, origin, started_at, ended_at, end_reason, talk_stats";

/// One final utterance of a call (text already redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct StoredUtterance {
    /// The utterance's number within the call (shared by both tracks).
    pub seq: i64,
    /// `agent`, `customer` or `mixed`.
    pub track: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// Compound sentiment in -1..1, when analysed.
    pub sentiment: Option<f64>,
}

/// A hint as stored, with the agent's feedback when given.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HintRow {
    pub id: String,
    pub call_id: String,
    pub rule: String,
    pub kind: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub reason: String,
    pub evidence: Vec<i64>,
    pub at_ms: i64,
    pub created_at: Timestamp,
    /// `true` useful, `false` not useful, absent when no feedback was given.
    pub useful: Option<bool>,
    pub feedback_by: Option<String>,
    pub feedback_at: Option<Timestamp>,
}

// `useful` is INTEGER on SQLite and BOOLEAN on PostgreSQL; the query turns it into 0/1 so
// one decoder reads both.
const HINT_SELECT: &str = "SELECT id, call_id, rule, kind, priority, title, body, reason, \
    evidence, at_ms, created_at, CASE WHEN useful THEN 1 WHEN NOT useful THEN 0 END AS useful, \
    feedback_by, feedback_at FROM hints";

impl<'r> sqlx::FromRow<'r, AnyRow> for HintRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let evidence: JsonText<Vec<i64>> = row.try_get("evidence")?;
        let useful: Option<i64> = row.try_get("useful")?;
        Ok(HintRow {
            id: row.try_get("id")?,
            call_id: row.try_get("call_id")?,
            rule: row.try_get("rule")?,
            kind: row.try_get("kind")?,
            priority: row.try_get("priority")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            reason: row.try_get("reason")?,
            evidence: evidence.0,
            at_ms: row.try_get("at_ms")?,
            created_at: row.try_get("created_at")?,
            useful: useful.map(|u| u != 0),
            feedback_by: row.try_get("feedback_by")?,
            feedback_at: row.try_get("feedback_at")?,
        })
    }
}

/// The snake_case wire name of a serde enum (hint kind, priority).
fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) async fn start_call_tx(
    conn: &mut sqlx::AnyConnection,
    c: &CallStart,
) -> Result<(), StoreError> {
    ensure_tenant(conn, &c.tenant).await?;
    if let Some(lead) = &c.lead_id {
        // A softphone may start a call for a lead the CRM has not synced yet: register it,
        // owned by the calling agent, so the call and its score have somewhere to live.
        sqlx::query(
            "INSERT INTO leads (tenant_id, id, name, owner_id, team, stage, created_at, updated_at)
             VALUES ($1, $2, $2, $3, $4, 'new', $5, $5)
             ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(&c.tenant)
        .bind(lead)
        .bind(&c.agent_id)
        .bind(c.team.as_deref())
        .bind(c.started_at.ms())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO calls (tenant_id, id, lead_id, agent_id, team, origin, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(&c.tenant)
    .bind(&c.call_id)
    .bind(c.lead_id.as_deref())
    .bind(&c.agent_id)
    .bind(c.team.as_deref())
    .bind(c.origin)
    .bind(c.started_at.ms())
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn end_call_tx(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    call_id: &str,
    ended_at: Timestamp,
    reason: &str,
    talk: Option<&TalkStats>,
) -> Result<(), StoreError> {
    let talk = talk.map(serde_json::to_string).transpose()?;
    sqlx::query(
        "UPDATE calls SET ended_at = $3, end_reason = $4, talk_stats = COALESCE($5, talk_stats)
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(call_id)
    .bind(ended_at.ms())
    .bind(reason)
    .bind(talk)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many times a renumbered utterance looks for a free number: another node writing the same
/// call id at the same moment is the only way the number just computed can be taken, and that
/// race does not repeat indefinitely.
const RENUMBER_ATTEMPTS: usize = 3;

static RENUMBERED: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_store_utterances_renumbered_total",
        "Final utterances stored after the call's last number because theirs was taken by a \
         different utterance of the same call id (a call id reused by a new call session)",
    )
});

/// Stores a final utterance under `(call, seq)`; idempotent for replays.
///
/// The number can be taken by this very utterance (the writer replaying a batch whose commit it
/// could not confirm: finals are immutable, the first write stands) or by a different one: a
/// softphone that reconnects to its call id after the call ended starts a new call session
/// whose utterance numbers and audio clock begin again at 1 and 0. An utterance is the same
/// when its track and audio span are; a different one is stored after the call's last number
/// (counted in `callcoach_store_utterances_renumbered_total`) rather than dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_utterance_tx(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    call_id: &str,
    seq: u32,
    track: Track,
    start_ms: u64,
    end_ms: u64,
    redacted_text: &str,
    sentiment: Option<f32>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO utterances (tenant_id, call_id, seq, track, start_ms, end_ms, text, sentiment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, call_id, seq) DO NOTHING",
    )
    .bind(tenant)
    .bind(call_id)
    .bind(i64::from(seq))
    .bind(track.as_str())
    .bind(ms(start_ms))
    .bind(ms(end_ms))
    .bind(redacted_text)
    .bind(sentiment.map(f64::from))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted > 0 {
        return Ok(());
    }
    // Looked up under any number: replayed, a renumbered utterance finds its own number held by
    // the earlier session.
    let stored: Option<i64> = sqlx::query_scalar(
        "SELECT seq FROM utterances
         WHERE tenant_id = $1 AND call_id = $2 AND start_ms = $3 AND end_ms = $4 AND track = $5
         LIMIT 1",
    )
    .bind(tenant)
    .bind(call_id)
    .bind(ms(start_ms))
    .bind(ms(end_ms))
    .bind(track.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if stored.is_some() {
        return Ok(());
    }
    for _ in 0..RENUMBER_ATTEMPTS {
        let inserted = sqlx::query(
            "INSERT INTO utterances (tenant_id, call_id, seq, track, start_ms, end_ms, text, sentiment, created_at)
             SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $8
             FROM utterances WHERE tenant_id = $1 AND call_id = $2
             ON CONFLICT (tenant_id, call_id, seq) DO NOTHING",
        )
        .bind(tenant)
        .bind(call_id)
        .bind(track.as_str())
        .bind(ms(start_ms))
        .bind(ms(end_ms))
        .bind(redacted_text)
        .bind(sentiment.map(f64::from))
        .bind(now_ms())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted > 0 {
            RENUMBERED.inc();
            tracing::warn!(
                call_id,
                seq,
                "utterance number taken by an earlier session of this call id; stored after the call's last one"
            );
            return Ok(());
        }
    }
    Err(StoreError::Conflict(format!(
        "no free utterance number for call {call_id} after {RENUMBER_ATTEMPTS} attempts"
    )))
}

pub(crate) async fn insert_hint_tx(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    call_id: &str,
    hint: &Hint,
) -> Result<(), StoreError> {
    let evidence: Vec<u32> = hint.evidence.iter().map(|u| u.0).collect();
    sqlx::query(
        "INSERT INTO hints (id, tenant_id, call_id, rule, kind, priority, title, body, reason,
             evidence, at_ms, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(hint.id.to_string())
    .bind(tenant)
    .bind(call_id)
    .bind(&hint.rule)
    .bind(wire_name(&hint.kind))
    .bind(wire_name(&hint.priority))
    .bind(&hint.title)
    .bind(&hint.body)
    .bind(&hint.reason)
    .bind(serde_json::to_string(&evidence)?)
    .bind(ms(hint.at_ms))
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Returns whether a hint of the tenant was found.
pub(crate) async fn set_feedback_tx(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    hint_id: &str,
    useful: bool,
    by: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE hints SET useful = $3, feedback_by = $4, feedback_at = $5
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(hint_id)
    .bind(useful)
    .bind(by)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Records the start of a call (idempotent: a second start of the same call is ignored).
    pub async fn start_call(&self, c: &CallStart) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        start_call_tx(&mut tx, c).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn end_call(
        &self,
        tenant: &str,
        call_id: &str,
        ended_at: Timestamp,
        reason: &str,
        talk: Option<&TalkStats>,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        end_call_tx(&mut conn, tenant, call_id, ended_at, reason, talk).await
    }

    /// Stores one final utterance; `redacted_text` must already have gone through
    /// `actors::redact` (the raw text is never persisted).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_utterance(
        &self,
        tenant: &str,
        call_id: &str,
        seq: u32,
        track: Track,
        start_ms: u64,
        end_ms: u64,
        redacted_text: &str,
        sentiment: Option<f32>,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_utterance_tx(
            &mut conn,
            tenant,
            call_id,
            seq,
            track,
            start_ms,
            end_ms,
            redacted_text,
            sentiment,
        )
        .await
    }

    pub async fn insert_hint(
        &self,
        tenant: &str,
        call_id: &str,
        hint: &Hint,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_hint_tx(&mut conn, tenant, call_id, hint).await
    }

    pub async fn get_call(&self, tenant: &str, call_id: &str) -> Result<Option<Call>, StoreError> {
        Ok(sqlx::query_as::<_, Call>(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A lead's calls, newest first, optionally only those started before `before`.
    pub async fn lead_calls(
        &self,
        tenant: &str,
        lead_id: &str,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<Call>, StoreError> {
        let limit = limit.clamp(1, super::leads::MAX_PAGE);
        Ok(sqlx::query_as::<_, Call>(&format!(
            "SELECT {CALL_COLUMNS} FROM calls
             WHERE tenant_id = $1 AND lead_id = $2 AND started_at < $3
             ORDER BY started_at DESC, id DESC LIMIT $4"
        ))
        .bind(tenant)
        .bind(lead_id)
        .bind(before.map_or(i64::MAX, Timestamp::ms))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Calls of the tenant visible under `vis` (agents: their own; supervisors: their team's),
    /// newest first.
    pub async fn list_calls(
        &self,
        tenant: &str,
        vis: &Visibility,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<Call>, StoreError> {
        let limit = limit.clamp(1, super::leads::MAX_PAGE);
        let mut b = SqlBuilder::new(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE "));
        b.push("tenant_id = ?", [Arg::Text(tenant.into())]);
        match vis {
            Visibility::Tenant => {}
            Visibility::Team(t) => {
                b.push(" AND team = ?", [Arg::Text(t.clone())]);
            }
            Visibility::Owner(a) => {
                b.push(" AND agent_id = ?", [Arg::Text(a.clone())]);
            }
        }
        b.push(
            " AND started_at < ? ORDER BY started_at DESC, id DESC LIMIT ?",
            [
                Arg::Int(before.map_or(i64::MAX, Timestamp::ms)),
                Arg::Int(i64::from(limit)),
            ],
        );
        Ok(b.query_as().fetch_all(&self.pool).await?)
    }

    /// A call's utterances in time order (both tracks interleaved).
    pub async fn call_utterances(
        &self,
        tenant: &str,
        call_id: &str,
    ) -> Result<Vec<StoredUtterance>, StoreError> {
        Ok(sqlx::query_as::<_, StoredUtterance>(
            "SELECT seq, track, start_ms, end_ms, text, sentiment FROM utterances
             WHERE tenant_id = $1 AND call_id = $2 ORDER BY start_ms, seq LIMIT $3",
        )
        .bind(tenant)
        .bind(call_id)
        .bind(MAX_UTTERANCES_PER_CALL_READ)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A call's hints in the order they fired.
    pub async fn call_hints(
        &self,
        tenant: &str,
        call_id: &str,
    ) -> Result<Vec<HintRow>, StoreError> {
        Ok(sqlx::query_as::<_, HintRow>(&format!(
            "{HINT_SELECT} WHERE tenant_id = $1 AND call_id = $2 ORDER BY at_ms, id LIMIT $3"
        ))
        .bind(tenant)
        .bind(call_id)
        .bind(MAX_HINTS_PER_CALL_READ)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn get_hint(
        &self,
        tenant: &str,
        hint_id: &str,
    ) -> Result<Option<HintRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, HintRow>(&format!(
                "{HINT_SELECT} WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant)
            .bind(hint_id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    /// Records whether a hint helped, with an audit row; `NotFound` for an unknown hint.
    pub async fn set_hint_feedback(
        &self,
        tenant: &str,
        hint_id: &str,
        useful: bool,
        audit: &AuditEntry,
    ) -> Result<HintRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !set_feedback_tx(&mut tx, tenant, hint_id, useful, &audit.actor).await? {
            return Err(StoreError::NotFound);
        }
        insert_audit_detail(
            &mut tx,
            tenant,
            audit,
            "hint.feedback",
            "hint",
            hint_id,
            &serde_json::json!({ "useful": useful }),
        )
        .await?;
        let row = sqlx::query_as::<_, HintRow>(&format!(
            "{HINT_SELECT} WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(hint_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }
}
