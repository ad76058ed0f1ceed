//! `POST /v1/calls/{call_id}/whisper` — a supervisor's text hint to the agent on a live call.
//!
//! The whisper travels through the call actor like any hint, so it reaches the agent's overlay,
//! the dashboards and the store in order with the call's other events.

use crate::actors::call::Whisper;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::server::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// A whisper is read at a glance mid-sentence: 280 characters (a tweet) is already a lot.
pub const MAX_WHISPER_CHARS: usize = 280;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhisperRequest {
    pub text: String,
}

#[utoipa::path(
    post,
    path = "/v1/calls/{call_id}/whisper",
    params(("call_id" = String, Path, description = "Live call id")),
    request_body = WhisperRequest,
    responses(
        (status = 200, description = "The hint as delivered to the overlay"),
        (status = 202, description = "Forwarded to the node holding the call"),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Not a supervisor of this call's team"),
        (status = 404, description = "No such live call"),
    ),
    security(("bearer" = []))
)]
pub async fn whisper(
    principal: Principal,
    call_id: web::Path<String>,
    body: web::Json<WhisperRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let call_id = call_id.into_inner();
    principal.require(&[Role::Supervisor, Role::Admin])?;
    let text = body.into_inner().text;
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_WHISPER_CHARS {
        return Err(ApiError::BadRequest(format!(
            "whisper text must be 1..={MAX_WHISPER_CHARS} characters"
        )));
    }
    let not_found = || ApiError::NotFound(format!("no live call `{call_id}`"));
    let local = state.hub.summary(&call_id);
    let summary = local
        .clone()
        .or_else(|| state.hub.remote_summary(&call_id))
        .ok_or_else(not_found)?;
    if !crate::ws::sees_live(
        &principal,
        &summary.tenant,
        summary.team.as_deref(),
        &summary.agent_id,
    ) {
        // Same answer as for a missing call: do not confirm calls outside the caller's scope.
        return Err(not_found());
    }
    state
        .store
        .audit(
            &principal.tenant,
            &principal.audit(),
            "call.whisper",
            "call",
            &call_id,
        )
        .await?;
    if local.is_none() {
        // The call lives on another node: that node delivers the whisper.
        let cluster = state.hub.cluster().ok_or_else(not_found)?;
        cluster
            .control(&crate::cluster::Control::Whisper {
                call_id: call_id.clone(),
                text: text.to_owned(),
            })
            .await
            .map_err(|e| ApiError::Unavailable(format!("cannot reach the call's node: {e}")))?;
        return Ok(HttpResponse::Accepted().json(serde_json::json!({"forwarded": true})));
    }
    let addr = state.hub.call_addr(&call_id).ok_or_else(not_found)?;
    let hint = addr
        .send(Whisper {
            text: text.to_owned(),
        })
        .await
        .map_err(|_| ApiError::NotFound(format!("call `{call_id}` just ended")))?;
    Ok(HttpResponse::Ok().json(hint))
}
