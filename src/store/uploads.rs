//! Upload jobs: a recorded call stored on disk, waiting for (or going through) the offline
//! pipeline, with its progress.

use super::{ensure_tenant, now_ms, JobStatus, Store, StoreError, Timestamp};
use crate::store::audit::{insert_audit_detail, AuditEntry};
use serde::Serialize;
use utoipa::ToSchema;

/// A new job, created once the file is safely on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub id: String,
    pub tenant: String,
    pub created_by: String,
    pub team: Option<String>,
    pub lead_id: Option<String>,
    pub filename: String,
    pub path: String,
    pub size_bytes: i64,
}

/// An upload job and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct UploadJob {
    pub id: String,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub created_by: String,
    pub team: Option<String>,
    pub lead_id: Option<String>,
    /// The call the analysis produced, once it has started.
    pub call_id: Option<String>,
    pub filename: String,
    /// Where the file is kept on the server (not shown to clients).
    #[serde(skip)]
    pub path: String,
    pub size_bytes: i64,
    pub status: JobStatus,
    /// 0..1.
    pub progress: f64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const UPLOAD_COLUMNS: &str = "id, tenant_id, created_by, team, lead_id, call_id, filename, path, \
    size_bytes, status, progress, error, created_at, updated_at";

impl Store {
    /// Registers a queued job for a stored file.
    pub async fn create_upload(
        &self,
        u: &NewUpload,
        audit: &AuditEntry,
    ) -> Result<UploadJob, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        ensure_tenant(&mut tx, &u.tenant).await?;
        if let Some(lead) = &u.lead_id {
            let found: Option<String> =
                sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND id = $2")
                    .bind(&u.tenant)
                    .bind(lead)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        sqlx::query(
            "INSERT INTO upload_jobs (id, tenant_id, created_by, team, lead_id, filename, path,
                 size_bytes, status, progress, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, $9, $9)",
        )
        .bind(&u.id)
        .bind(&u.tenant)
        .bind(&u.created_by)
        .bind(u.team.as_deref())
        .bind(u.lead_id.as_deref())
        .bind(&u.filename)
        .bind(&u.path)
        .bind(u.size_bytes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_audit_detail(
            &mut tx,
            &u.tenant,
            audit,
            "upload.create",
            "upload",
            &u.id,
            &serde_json::json!({ "size_bytes": u.size_bytes }),
        )
        .await?;
        let job = sqlx::query_as::<_, UploadJob>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM upload_jobs WHERE id = $1"
        ))
        .bind(&u.id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(job)
    }

    pub async fn get_upload(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<UploadJob>, StoreError> {
        Ok(sqlx::query_as::<_, UploadJob>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM upload_jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A job by id alone, for the pipeline runner (which takes ids from the upload queue).
    pub async fn upload_by_id(&self, id: &str) -> Result<Option<UploadJob>, StoreError> {
        Ok(sqlx::query_as::<_, UploadJob>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM upload_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Advances a job (called by the pipeline runner). `progress` is clamped to 0..1.
    pub async fn update_upload(
        &self,
        id: &str,
        status: JobStatus,
        progress: f64,
        call_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let done = sqlx::query(
            "UPDATE upload_jobs SET status = $2, progress = $3, call_id = COALESCE($4, call_id),
                 error = $5, updated_at = $6
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(progress)
        .bind(call_id)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
