//! `POST /v1/uploads` stores a recorded call and queues it for post-call analysis;
//! `GET /v1/uploads/{id}` reports the job's progress.
//!
//! The body is the raw audio (WAV, FLAC, MP3 or OGG), streamed to disk with a size cap, never
//! held in memory whole. The server's pipeline runner takes job ids from the [`UploadQueue`],
//! runs the same pipeline as a live call and advances the job with `Store::update_upload`.

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorBody};
use crate::store::{NewUpload, Store, UploadJob};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use utoipa::IntoParams;

/// Jobs waiting for the pipeline runner. Offline analysis of a 5-minute call takes about a
/// minute on the reference box, so 32 queued jobs is half an hour of work: past that, asking
/// the client to come back (503) beats accepting files we will not touch for hours.
pub const UPLOAD_QUEUE_CAPACITY: usize = 32;
/// Default size cap: an hour of 16-bit 16 kHz mono WAV is 115 MB; 8 kHz stereo telephony the
/// same; compressed formats far less. 200 MB admits that with headroom.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 * 1024 * 1024;
/// Extensions the decoder (symphonia) is built with.
pub const ACCEPTED_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];

/// Where uploads go and how big they may be; registered by the server as `web::Data` (without
/// it, `POST /v1/uploads` answers 503 `unavailable`).
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
    max_bytes: u64,
    jobs: mpsc::Sender<String>,
}

/// The receiving end: job ids, in upload order, for the pipeline runner.
pub type UploadQueue = mpsc::Receiver<String>;

impl Uploads {
    /// Files are kept under `dir` (created if missing), named by job id.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<(Uploads, UploadQueue)> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let (jobs, rx) = mpsc::channel(UPLOAD_QUEUE_CAPACITY);
        Ok((
            Uploads {
                dir,
                max_bytes,
                jobs,
            },
            rx,
        ))
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// Query of `POST /v1/uploads`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The recording's file name; its extension (wav, flac, mp3, ogg) picks the decoder.
    pub filename: String,
    /// The lead the call was with (must be in your scope).
    pub lead_id: Option<String>,
}

fn extension(filename: &str) -> Option<String> {
    let ext = std::path::Path::new(filename)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    ACCEPTED_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// The file name without any directory part, trimmed to 128 bytes (it is only shown back).
fn display_name(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let mut end = base.len().min(128);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base[..end].to_owned()
}

/// Upload a recorded call for post-call analysis; answers 202 with the queued job.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the recording: WAV, FLAC, MP3 or OGG"),
    responses((status = 202, body = UploadJob), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_upload(
    p: Principal,
    store: web::Data<Store>,
    uploads: Option<web::Data<Uploads>>,
    q: web::Query<UploadParams>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(uploads) = uploads else {
        return Err(ApiError::Unavailable(
            "uploads are not enabled on this server".into(),
        ));
    };
    let ext = extension(&q.filename).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "filename must end in one of {}",
            ACCEPTED_EXTENSIONS.join(", ")
        ))
    })?;
    if let Some(lead_id) = &q.lead_id {
        let lead = store
            .get_lead(&p.tenant, lead_id)
            .await?
            .ok_or_else(|| ApiError::not_found("lead"))?;
        if !p.can_see_lead(&lead) {
            return Err(ApiError::Forbidden("lead is outside your scope".into()));
        }
    }
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "uploads are limited to {} bytes",
            uploads.max_bytes
        ))
    };
    if declared.is_some_and(|n| n > uploads.max_bytes) {
        return Err(too_large());
    }
    if uploads.jobs.capacity() == 0 {
        return Err(ApiError::Unavailable(
            "too many uploads waiting for analysis".into(),
        ));
    }

    let id = uuid::Uuid::now_v7().to_string();
    let path = uploads.dir.join(format!("{id}.{ext}"));
    let mut file = tokio::fs::File::create(&path).await.map_err(|e| {
        tracing::error!(error = %e, "failed to create upload file");
        ApiError::Internal
    })?;
    let mut size: u64 = 0;
    let streamed: Result<(), ApiError> = async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
            size += chunk.len() as u64;
            if size > uploads.max_bytes {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(|e| {
                tracing::error!(error = %e, "failed to write upload");
                ApiError::Internal
            })?;
        }
        file.flush().await.map_err(|_| ApiError::Internal)?;
        if size == 0 {
            return Err(ApiError::BadRequest("empty upload".into()));
        }
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = streamed {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }

    let new = NewUpload {
        id: id.clone(),
        tenant: p.tenant.clone(),
        created_by: p.sub.clone(),
        team: p.team.clone(),
        lead_id: q.lead_id.clone(),
        filename: display_name(&q.filename),
        path: path.to_string_lossy().into_owned(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
    };
    let job = match store.create_upload(&new, &p.audit()).await {
        Ok(job) => job,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
    };
    if uploads.jobs.try_send(id.clone()).is_err() {
        // Lost the race for the last slot: say so rather than leave a job nobody will run.
        let _ = store
            .update_upload(
                &id,
                crate::store::JobStatus::Failed,
                0.0,
                None,
                Some("analysis queue full"),
            )
            .await;
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::Unavailable(
            "too many uploads waiting for analysis".into(),
        ));
    }
    Ok(HttpResponse::Accepted().json(job))
}

/// Progress of an upload job (its creator, their team's supervisor, or an admin).
#[utoipa::path(get, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = UploadJob), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_upload(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Result<web::Json<UploadJob>, ApiError> {
    let job = store
        .get_upload(&p.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("upload"))?;
    let allowed = match p.role {
        Role::Admin => true,
        Role::Supervisor => job.created_by == p.sub || (p.team.is_some() && job.team == p.team),
        Role::Agent => job.created_by == p.sub,
    };
    if !allowed {
        return Err(ApiError::Forbidden("upload is outside your scope".into()));
    }
    Ok(web::Json(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decodable_extensions_are_accepted() {
        assert_eq!(extension("call.WAV").as_deref(), Some("wav"));
        assert_eq!(extension("a/b/c.flac").as_deref(), Some("flac"));
        assert_eq!(extension("notes.txt"), None);
        assert_eq!(extension("noext"), None);
    }

    #[test]
    fn display_names_drop_directories() {
        assert_eq!(display_name("../../etc/passwd.wav"), "passwd.wav");
        assert_eq!(display_name("C:\\calls\\x.mp3"), "x.mp3");
        assert_eq!(display_name(&"é".repeat(100)).len(), 128);
    }
}
