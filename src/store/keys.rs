//! Per-tenant ingest keys for softphones and Twilio (which cannot send an `Authorization`
//! header): random secrets shown once, kept only as their SHA-256.
//!
//! A key is 32 random bytes, so a fast hash is enough (no password-style stretching needed:
//! there is nothing to brute-force); lookups go by the hash's unique index.

use super::{ensure_tenant, now_ms, Store, StoreError, Timestamp};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Every ingest key starts with this, so leaked keys are easy to grep for and to tell from JWTs.
pub const KEY_PREFIX: &str = "cck_";
/// Random bytes per key: 256 bits, the same strength as the HS256 signing key.
const KEY_BYTES: usize = 32;

/// An ingest key's record (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct IngestKey {
    pub id: String,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub label: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// The body of `POST /v1/ingest-keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIngestKey {
    /// What the key is for ("twilio main line").
    pub label: String,
}

/// SHA-256 of a presented key, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn looks_like_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_BYTES * 2 && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

impl Store {
    /// Creates a key for `tenant`; returns its record and the secret, which is not stored and
    /// cannot be shown again.
    pub async fn create_ingest_key(
        &self,
        tenant: &str,
        label: &str,
        audit: &AuditEntry,
    ) -> Result<(IngestKey, String), StoreError> {
        let label = label.trim();
        if label.is_empty() || label.len() > super::leads::MAX_FIELD_LEN {
            return Err(StoreError::Invalid("label must be 1..=256 bytes".into()));
        }
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        ensure_tenant(&mut tx, tenant).await?;
        sqlx::query(
            "INSERT INTO ingest_keys (id, tenant_id, key_hash, label, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(hash_key(&secret))
        .bind(label)
        .bind(&audit.actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        insert_audit_detail(
            &mut tx,
            tenant,
            audit,
            "ingest_key.create",
            "ingest_key",
            &id,
            &serde_json::json!({}),
        )
        .await?;
        let key = sqlx::query_as::<_, IngestKey>(
            "SELECT id, tenant_id, label, created_by, created_at, revoked_at FROM ingest_keys WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((key, secret))
    }

    /// The live (not revoked) key matching `presented`, if any.
    pub async fn find_ingest_key(&self, presented: &str) -> Result<Option<IngestKey>, StoreError> {
        if !looks_like_key(presented) {
            return Ok(None);
        }
        Ok(sqlx::query_as::<_, IngestKey>(
            "SELECT id, tenant_id, label, created_by, created_at, revoked_at FROM ingest_keys
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_key(presented))
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn list_ingest_keys(&self, tenant: &str) -> Result<Vec<IngestKey>, StoreError> {
        Ok(sqlx::query_as::<_, IngestKey>(
            "SELECT id, tenant_id, label, created_by, created_at, revoked_at FROM ingest_keys
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(i64::from(super::leads::MAX_PAGE))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a key of the tenant; `NotFound` if there is no such live key.
    pub async fn revoke_ingest_key(
        &self,
        tenant: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE ingest_keys SET revoked_at = $3
             WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit_detail(
            &mut tx,
            tenant,
            audit,
            "ingest_key.revoke",
            "ingest_key",
            id,
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_are_looked_up() {
        assert!(looks_like_key(&format!("cck_{}", "ab".repeat(32))));
        assert!(!looks_like_key("cck_short"));
        assert!(!looks_like_key(&format!("xyz_{}", "ab".repeat(32))));
        assert!(!looks_like_key(&format!("cck_{}", "zz".repeat(32))));
    }
}
