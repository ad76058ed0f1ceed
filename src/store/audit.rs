//! The audit log: who wrote what and who read which transcript, when and from where.
//!
//! Entries carry identifiers and counts, never personal data: an erasure is recorded by the
//! lead's id and how many rows went, not by the name or number that was erased.

use super::{now_ms, Arg, JsonText, Role, SqlBuilder, Store, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who is acting, attached to every audited write (built by `auth` from the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: String,
    pub role: Role,
    /// Peer address of the request, when there is one.
    pub ip: Option<String>,
}

impl AuditEntry {
    /// Writes done by the server itself (retention purge, pipeline jobs).
    pub fn system() -> Self {
        AuditEntry {
            actor: "system".into(),
            role: Role::Admin,
            ip: None,
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub actor: String,
    pub role: Role,
    /// `lead.create`, `lead.erase`, `transcript.read`, ...
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub detail: JsonText<serde_json::Value>,
    pub ip: Option<String>,
    pub at: Timestamp,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries before this id (paging backwards).
    pub before_id: Option<i64>,
    /// 1..=200, default 50.
    pub limit: Option<u32>,
}

pub(crate) async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    who: &AuditEntry,
    action: &str,
    target_kind: &str,
    target_id: &str,
) -> Result<(), StoreError> {
    insert_audit_detail(
        conn,
        tenant,
        who,
        action,
        target_kind,
        target_id,
        &serde_json::json!({}),
    )
    .await
}

pub(crate) async fn insert_audit_detail(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    who: &AuditEntry,
    action: &str,
    target_kind: &str,
    target_id: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, role, action, target_kind, target_id, detail, ip, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(&who.actor)
    .bind(who.role.as_str())
    .bind(action)
    .bind(target_kind)
    .bind(target_id)
    .bind(serde_json::to_string(detail)?)
    .bind(who.ip.as_deref())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records one audited action on its own (reads; writes record theirs in their transaction).
    pub async fn audit(
        &self,
        tenant: &str,
        who: &AuditEntry,
        action: &str,
        target_kind: &str,
        target_id: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, tenant, who, action, target_kind, target_id).await
    }

    /// The tenant's audit log, newest first.
    pub async fn audit_log(
        &self,
        tenant: &str,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = q
            .limit
            .unwrap_or(super::leads::DEFAULT_PAGE)
            .clamp(1, super::leads::MAX_PAGE);
        let mut b = SqlBuilder::new(
            "SELECT id, tenant_id, actor, role, action, target_kind, target_id, detail, ip, at
             FROM audit_log WHERE ",
        );
        b.push("tenant_id = ?", [Arg::Text(tenant.into())]);
        if let Some(a) = &q.actor {
            b.push(" AND actor = ?", [Arg::Text(a.clone())]);
        }
        if let Some(a) = &q.action {
            b.push(" AND action = ?", [Arg::Text(a.clone())]);
        }
        if let Some(id) = q.before_id {
            b.push(" AND id < ?", [Arg::Int(id)]);
        }
        b.push(" ORDER BY id DESC LIMIT ?", [Arg::Int(i64::from(limit))]);
        Ok(b.query_as().fetch_all(&self.pool).await?)
    }
}
