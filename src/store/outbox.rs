//! The CRM outbox: rows written in the same transaction as the change they announce, claimed
//! by the dispatcher (`crm`) with a lease, then marked delivered or failed with a next attempt.
//!
//! Delivery is at least once: a dispatcher that dies after posting but before marking leaves
//! the row to be claimed again when its lease runs out; the receiver deduplicates on the
//! `idempotency_key` sent with every post.

use super::{now_ms, Backend, Store, StoreError, Timestamp};
use serde::Serialize;
use std::time::Duration;

/// Longest `last_error` kept (bytes): enough for a status line and a short body excerpt.
const MAX_ERROR_LEN: usize = 1024;

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub tenant_id: String,
    pub lead_id: String,
    /// `stage_changed` or `score_changed`.
    pub kind: String,
    /// JSON text of the event.
    pub payload: String,
    pub idempotency_key: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

const OUTBOX_COLUMNS: &str = "id, tenant_id, lead_id, kind, payload, idempotency_key, attempts, \
    next_attempt_at, created_at, delivered_at, last_error";

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Store {
    /// Claims up to `limit` rows that are due, oldest first, hiding them from other claimers
    /// for `lease` (their `next_attempt_at` moves to now + lease). Claim again after the lease
    /// to retry rows whose dispatcher died.
    pub async fn outbox_claim_due(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        // On PostgreSQL several nodes may claim at once: SKIP LOCKED gives each its own rows.
        // SQLite has one writer at a time, so the plain subquery is already exclusive.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET next_attempt_at = $2
             WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1
                          ORDER BY next_attempt_at, id LIMIT $3{lock})
             RETURNING {OUTBOX_COLUMNS}"
        );
        let mut rows: Vec<OutboxRow> = sqlx::query_as(&sql)
            .bind(now)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.sort_by_key(|r| (r.created_at, r.id));
        Ok(rows)
    }

    /// Marks a row delivered; it is never claimed again.
    pub async fn outbox_mark_delivered(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn outbox_mark_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
             WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(next_attempt_at.ms())
        .bind(truncate(error, MAX_ERROR_LEN))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a claimed row's next attempt to `at` without counting an attempt (a dispatcher
    /// that claimed a row but did not try it: circuit open, shutting down).
    pub async fn outbox_release(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(at.ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows not yet delivered (a gauge for `/metrics` and a check for tests).
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// One row by id (tests and operators).
    pub async fn outbox_get(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
