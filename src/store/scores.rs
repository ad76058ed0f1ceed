//! Score history and stage changes, with the CRM outbox row written in the same transaction.
//!
//! Every score update is kept (with its per-feature contributions) so a lead's score can be
//! explained after the fact. Only changes the CRM cares about become outbox rows: a stage
//! change, or a score that moved at least [`CRM_SCORE_DELTA`] since the last one sent.

use super::{now_ms, Stage, Store, StoreError, Timestamp};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use crate::store::types::{JsonText, Outcome};
use callcoach_actors::Contribution;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

/// A score must move 5 points (0.05) before the CRM hears of it again: CRMs show it as a
/// percentage and reps act on coarse bands, while the scorer updates on every final utterance
/// (several a minute) — sending each would flood the webhook with changes nobody sees.
pub const CRM_SCORE_DELTA: f64 = 0.05;

/// A new score (and possibly stage) for a lead, from the scorer or an explicit outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreChange {
    /// Unique per change, chosen by the producer: it makes the outbox row's idempotency key,
    /// so a replayed write cannot send the CRM the same change twice.
    pub key: uuid::Uuid,
    pub tenant: String,
    pub lead_id: String,
    pub call_id: Option<String>,
    /// 0..1; `None` keeps the lead's current score (outcomes).
    pub score: Option<f64>,
    pub stage: Stage,
    /// Why (threshold crossed, outcome recorded, ...), shown in the history.
    pub reason: String,
    pub contributions: Vec<Contribution>,
}

/// What [`Store::record_score`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRecorded {
    pub event_id: i64,
    pub prev_stage: Stage,
    pub stage: Stage,
    /// The outbox row written for the CRM, when the change was worth sending.
    pub outbox_id: Option<i64>,
}

/// The OpenAPI shape of [`Contribution`] (which lives in the pipeline crate).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContributionDoc {
    pub feature: String,
    pub value: f64,
    pub weight: f64,
    /// `value * weight`, in log-odds.
    pub contribution: f64,
}

/// One entry of a lead's score history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ScoreEvent {
    pub id: i64,
    pub lead_id: String,
    pub call_id: Option<String>,
    pub score: Option<f64>,
    pub stage: Stage,
    pub prev_stage: Stage,
    pub reason: String,
    #[schema(value_type = Vec<ContributionDoc>)]
    pub contributions: JsonText<Vec<Contribution>>,
    pub created_at: Timestamp,
}

/// The outbox payload of a score or stage change (no personal data: ids, score, stage).
#[derive(Debug, Clone, Serialize)]
struct OutboxPayload<'a> {
    tenant: &'a str,
    lead_id: &'a str,
    call_id: Option<&'a str>,
    score: Option<f64>,
    stage: Stage,
    prev_stage: Stage,
    reason: &'a str,
    score_event_id: i64,
    at: Timestamp,
}

pub(crate) async fn record_score_tx(
    conn: &mut sqlx::AnyConnection,
    c: &ScoreChange,
) -> Result<ScoreRecorded, StoreError> {
    let row =
        sqlx::query("SELECT stage, score, crm_score FROM leads WHERE tenant_id = $1 AND id = $2")
            .bind(&c.tenant)
            .bind(&c.lead_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
    let prev_stage: Stage = row.try_get("stage")?;
    let prev_score: Option<f64> = row.try_get("score")?;
    let crm_score: Option<f64> = row.try_get("crm_score")?;
    if let Some(s) = c.score {
        if !(0.0..=1.0).contains(&s) {
            return Err(StoreError::Invalid(format!("score {s} is outside 0..1")));
        }
    }
    // A closed lead (won/lost) is not reopened by a score: only a person moves it again.
    let stage = if prev_stage.is_closed() {
        prev_stage
    } else {
        c.stage
    };
    let score = c.score.or(prev_score);
    let now = now_ms();

    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO score_events (tenant_id, lead_id, call_id, score, stage, prev_stage, reason,
             contributions, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&c.tenant)
    .bind(&c.lead_id)
    .bind(c.call_id.as_deref())
    .bind(score)
    .bind(stage.as_str())
    .bind(prev_stage.as_str())
    .bind(&c.reason)
    .bind(serde_json::to_string(&c.contributions)?)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;

    let stage_changed = stage != prev_stage;
    let score_moved = match (score, crm_score) {
        (Some(s), Some(sent)) => (s - sent).abs() >= CRM_SCORE_DELTA,
        (Some(_), None) => true,
        (None, _) => false,
    };
    sqlx::query(
        "UPDATE leads SET score = $3, stage = $4, updated_at = $5,
             crm_score = CASE WHEN $6 = 1 THEN $3 ELSE crm_score END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&c.tenant)
    .bind(&c.lead_id)
    .bind(score)
    .bind(stage.as_str())
    .bind(now)
    .bind(i64::from(stage_changed || score_moved))
    .execute(&mut *conn)
    .await?;

    let outbox_id = if stage_changed || score_moved {
        let kind = if stage_changed {
            "stage_changed"
        } else {
            "score_changed"
        };
        let payload = OutboxPayload {
            tenant: &c.tenant,
            lead_id: &c.lead_id,
            call_id: c.call_id.as_deref(),
            score,
            stage,
            prev_stage,
            reason: &c.reason,
            score_event_id: event_id,
            at: Timestamp::from_ms(now),
        };
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO outbox (tenant_id, lead_id, kind, payload, idempotency_key, attempts,
                 next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(&c.tenant)
        .bind(&c.lead_id)
        .bind(kind)
        .bind(serde_json::to_string(&payload)?)
        .bind(format!("score:{}", c.key))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        None
    };
    Ok(ScoreRecorded {
        event_id,
        prev_stage,
        stage,
        outbox_id,
    })
}

impl Store {
    /// Stores a score update: the history row, the lead's current score/stage and, when the
    /// change is worth sending, the CRM outbox row — all in one transaction.
    pub async fn record_score(&self, c: &ScoreChange) -> Result<ScoreRecorded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = record_score_tx(&mut tx, c).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records an explicit outcome (won, lost, nurture): moves the lead's stage with a reason,
    /// writes the outbox row and the audit row in one transaction. A closed lead (won or lost)
    /// cannot take another outcome (`Conflict`).
    pub async fn record_outcome(
        &self,
        tenant: &str,
        lead_id: &str,
        outcome: Outcome,
        note: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<ScoreRecorded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Stage =
            sqlx::query_scalar("SELECT stage FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(lead_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        if current.is_closed() {
            return Err(StoreError::Conflict(format!("lead is already {current}")));
        }
        let stage = outcome.stage();
        let reason = match note {
            Some(n) => format!("outcome {stage} recorded by {}: {n}", audit.actor),
            None => format!("outcome {stage} recorded by {}", audit.actor),
        };
        let change = ScoreChange {
            key: uuid::Uuid::new_v4(),
            tenant: tenant.to_owned(),
            lead_id: lead_id.to_owned(),
            call_id: None,
            score: None,
            stage,
            reason,
            contributions: Vec::new(),
        };
        let done = record_score_tx(&mut tx, &change).await?;
        insert_audit_detail(
            &mut tx,
            tenant,
            audit,
            "lead.outcome",
            "lead",
            lead_id,
            &serde_json::json!({ "from": current, "to": stage }),
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// A lead's score history, newest first.
    pub async fn score_history(
        &self,
        tenant: &str,
        lead_id: &str,
        limit: u32,
    ) -> Result<Vec<ScoreEvent>, StoreError> {
        let limit = limit.clamp(1, super::leads::MAX_PAGE);
        Ok(sqlx::query_as::<_, ScoreEvent>(
            "SELECT id, lead_id, call_id, score, stage, prev_stage, reason, contributions, created_at
             FROM score_events WHERE tenant_id = $1 AND lead_id = $2
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(lead_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
