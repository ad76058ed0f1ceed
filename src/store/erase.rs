//! Compliance: erasing a lead with everything derived from it, and purging transcripts past
//! the retention window.
//!
//! Both record what they did in the audit log by ids and counts only, so the log itself holds
//! no personal data of the erased lead.

use super::{now_ms, Store, StoreError, Timestamp};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use serde::Serialize;
use utoipa::ToSchema;

/// Rows removed by one erasure, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErasureCounts {
    pub leads: u64,
    pub calls: u64,
    pub utterances: u64,
    pub hints: u64,
    pub score_events: u64,
    pub outbox: u64,
    pub upload_jobs: u64,
    /// Uploaded recordings removed from disk.
    pub files: u64,
}

/// What one retention purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    pub utterances: u64,
    /// Hints whose `reason` (which may quote the customer) was blanked.
    pub hint_reasons: u64,
}

/// What a purged hint's reason reads afterwards.
const PURGED_REASON: &str = "[purged]";

/// How often the retention task runs: hourly keeps each purge small (an hour of transcripts)
/// while holding nothing more than an hour past the window.
pub const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Starts the retention task: every `every`, purges transcripts older than `window`. Failures
/// are logged and retried at the next tick. Abort the handle at shutdown.
pub fn spawn_retention(
    store: Store,
    window: std::time::Duration,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            let cutoff = Timestamp::from_ms(now_ms().saturating_sub(window_ms));
            match store.purge_transcripts_older_than(cutoff).await {
                Ok(n) if n.utterances > 0 || n.hint_reasons > 0 => tracing::info!(
                    utterances = n.utterances,
                    hint_reasons = n.hint_reasons,
                    "retention purge"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention purge failed; retrying next tick"),
            }
        }
    })
}

impl Store {
    /// Erases a lead and everything derived from it (calls, utterances, hints, score events,
    /// outbox rows, upload jobs and their files) in one transaction, and records the erasure in
    /// the audit log. `NotFound` when the tenant has no such lead.
    pub async fn erase_lead(
        &self,
        tenant: &str,
        lead_id: &str,
        audit: &AuditEntry,
    ) -> Result<ErasureCounts, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(lead_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let files: Vec<String> = sqlx::query_scalar(
            "SELECT path FROM upload_jobs WHERE tenant_id = $1 AND lead_id = $2",
        )
        .bind(tenant)
        .bind(lead_id)
        .fetch_all(&mut *tx)
        .await?;

        // Children first, explicitly: the foreign keys cascade too, but counting each table is
        // what the audit row reports, and it does not depend on SQLite's foreign_keys pragma.
        const OF_CALLS: &str =
            "call_id IN (SELECT id FROM calls WHERE tenant_id = $1 AND lead_id = $2)";
        let steps: [(&str, String); 7] = [
            (
                "utterances",
                format!("DELETE FROM utterances WHERE tenant_id = $1 AND {OF_CALLS}"),
            ),
            (
                "hints",
                format!("DELETE FROM hints WHERE tenant_id = $1 AND {OF_CALLS}"),
            ),
            (
                "score_events",
                "DELETE FROM score_events WHERE tenant_id = $1 AND lead_id = $2".into(),
            ),
            (
                "outbox",
                "DELETE FROM outbox WHERE tenant_id = $1 AND lead_id = $2".into(),
            ),
            (
                "upload_jobs",
                "DELETE FROM upload_jobs WHERE tenant_id = $1 AND lead_id = $2".into(),
            ),
            (
                "calls",
                "DELETE FROM calls WHERE tenant_id = $1 AND lead_id = $2".into(),
            ),
            (
                "leads",
                "DELETE FROM leads WHERE tenant_id = $1 AND id = $2".into(),
            ),
        ];
        let mut counts = ErasureCounts::default();
        for (table, sql) in &steps {
            let n = sqlx::query(sql)
                .bind(tenant)
                .bind(lead_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            match *table {
                "utterances" => counts.utterances = n,
                "hints" => counts.hints = n,
                "score_events" => counts.score_events = n,
                "outbox" => counts.outbox = n,
                "upload_jobs" => counts.upload_jobs = n,
                "calls" => counts.calls = n,
                _ => counts.leads = n,
            }
        }
        counts.files = files.len() as u64;
        insert_audit_detail(
            &mut tx,
            tenant,
            audit,
            "lead.erase",
            "lead",
            lead_id,
            &serde_json::to_value(counts)?,
        )
        .await?;
        tx.commit().await?;

        // The rows are gone; remove the recordings. A file that cannot be removed is logged
        // (by path, which holds only the job id) — the database no longer points at it.
        for path in files {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(path = %path, error = %e, "failed to remove erased upload")
                }
            }
        }
        Ok(counts)
    }

    /// Deletes utterances stored before `cutoff` and blanks the reasons of hints created
    /// before it (they may quote the customer), recording per tenant what went.
    pub async fn purge_transcripts_older_than(
        &self,
        cutoff: Timestamp,
    ) -> Result<PurgeCounts, StoreError> {
        let mut tx = self.pool.begin().await?;
        let per_tenant: Vec<(String, i64)> = sqlx::query_as(
            "SELECT tenant_id, COUNT(*) FROM utterances WHERE created_at < $1 GROUP BY tenant_id",
        )
        .bind(cutoff.ms())
        .fetch_all(&mut *tx)
        .await?;
        let utterances = sqlx::query("DELETE FROM utterances WHERE created_at < $1")
            .bind(cutoff.ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let hint_reasons =
            sqlx::query("UPDATE hints SET reason = $2 WHERE created_at < $1 AND reason <> $2")
                .bind(cutoff.ms())
                .bind(PURGED_REASON)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let system = AuditEntry::system();
        for (tenant, n) in per_tenant {
            insert_audit_detail(
                &mut tx,
                &tenant,
                &system,
                "transcript.purge",
                "utterances",
                "*",
                &serde_json::json!({ "utterances": n, "cutoff": cutoff, "at": now_ms() }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(PurgeCounts {
            utterances,
            hint_reasons,
        })
    }
}
