//! The REST handlers for leads, calls, hints, ingest keys and the audit log (uploads are in
//! [`super::uploads`]). Each checks the caller's scope before touching a row and audits writes
//! and transcript reads.

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorBody};
use crate::store::audit::{AuditQuery, AuditRecord};
use crate::store::erase::ErasureCounts;
use crate::store::{
    Call, HintRow, IngestKey, Lead, LeadPage, LeadPatch, LeadQuery, NewIngestKey, NewLead, Outcome,
    ScoreEvent, Stage, Store, StoredUtterance, Timestamp,
};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

type Res<T> = Result<T, ApiError>;

/// Loads a lead of the caller's tenant and checks it is in the caller's scope.
async fn visible_lead(store: &Store, p: &Principal, id: &str) -> Res<Lead> {
    let lead = store
        .get_lead(&p.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("lead"))?;
    if !p.can_see_lead(&lead) {
        return Err(ApiError::Forbidden("lead is outside your scope".into()));
    }
    Ok(lead)
}

async fn visible_call(store: &Store, p: &Principal, id: &str) -> Res<Call> {
    let call = store
        .get_call(&p.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    if !p.can_see_call(&call) {
        return Err(ApiError::Forbidden("call is outside your scope".into()));
    }
    Ok(call)
}

/// Search and page the leads in your scope, newest first.
#[utoipa::path(get, path = "/v1/leads", tag = "leads", params(LeadQuery),
    responses((status = 200, body = LeadPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_leads(
    p: Principal,
    store: web::Data<Store>,
    q: web::Query<LeadQuery>,
) -> Res<web::Json<LeadPage>> {
    Ok(web::Json(
        store.list_leads(&p.tenant, &p.visibility(), &q).await?,
    ))
}

/// Create a lead. Agents create leads they own; supervisors leads of their team.
#[utoipa::path(post, path = "/v1/leads", tag = "leads", request_body = NewLead,
    responses((status = 201, body = Lead), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_lead(
    p: Principal,
    store: web::Data<Store>,
    body: web::Json<NewLead>,
) -> Res<HttpResponse> {
    let mut lead = body.into_inner();
    // Unset owner/team default to the caller's, so an agent's new lead is theirs.
    if lead.owner_id.is_none() && p.role == Role::Agent {
        lead.owner_id = Some(p.sub.clone());
    }
    if lead.team.is_none() {
        lead.team.clone_from(&p.team);
    }
    if !p.may_assign(lead.owner_id.as_deref(), lead.team.as_deref()) {
        return Err(ApiError::Forbidden(
            "the lead would be outside your scope".into(),
        ));
    }
    let created = store.create_lead(&p.tenant, &lead, &p.audit()).await?;
    Ok(HttpResponse::Created().json(created))
}

/// One lead.
#[utoipa::path(get, path = "/v1/leads/{id}", tag = "leads",
    params(("id" = String, Path, description = "lead id")),
    responses((status = 200, body = Lead), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_lead(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Res<web::Json<Lead>> {
    Ok(web::Json(visible_lead(&store, &p, &id).await?))
}

/// Change a lead's fields (absent fields stay as they are).
#[utoipa::path(patch, path = "/v1/leads/{id}", tag = "leads", request_body = LeadPatch,
    params(("id" = String, Path, description = "lead id")),
    responses((status = 200, body = Lead), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_lead(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
    body: web::Json<LeadPatch>,
) -> Res<web::Json<Lead>> {
    let lead = visible_lead(&store, &p, &id).await?;
    let owner = body.owner_id.as_deref().or(lead.owner_id.as_deref());
    let team = body.team.as_deref().or(lead.team.as_deref());
    if !p.may_assign(owner, team) {
        return Err(ApiError::Forbidden(
            "the lead would leave your scope".into(),
        ));
    }
    Ok(web::Json(
        store.update_lead(&p.tenant, &id, &body, &p.audit()).await?,
    ))
}

/// Erase a lead and everything derived from it (calls, transcripts, hints, score history,
/// outbox rows, uploads). Admins only; the erasure is audited without personal data.
#[utoipa::path(delete, path = "/v1/leads/{id}", tag = "leads",
    params(("id" = String, Path, description = "lead id")),
    responses((status = 200, body = ErasureCounts, description = "rows removed, by table"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase_lead(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Res<web::Json<ErasureCounts>> {
    p.require(&[Role::Admin])?;
    Ok(web::Json(
        store.erase_lead(&p.tenant, &id, &p.audit()).await?,
    ))
}

/// Paging of time-ordered lists: entries strictly before `before`, newest first.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimePage {
    /// Only entries before this instant (RFC 3339); pass the last entry's time for the next page.
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<Timestamp>,
    /// 1..=200, default 50.
    pub limit: Option<u32>,
}

/// A lead's calls, newest first.
#[utoipa::path(get, path = "/v1/leads/{id}/calls", tag = "leads",
    params(("id" = String, Path, description = "lead id"), TimePage),
    responses((status = 200, body = Vec<Call>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lead_calls(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
    page: web::Query<TimePage>,
) -> Res<web::Json<Vec<Call>>> {
    visible_lead(&store, &p, &id).await?;
    let limit = page.limit.unwrap_or(crate::store::leads::DEFAULT_PAGE);
    Ok(web::Json(
        store.lead_calls(&p.tenant, &id, page.before, limit).await?,
    ))
}

/// Paging of a score history.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1..=200, default 50.
    pub limit: Option<u32>,
}

/// A lead's score history with each update's per-feature contributions, newest first.
#[utoipa::path(get, path = "/v1/leads/{id}/scores", tag = "leads",
    params(("id" = String, Path, description = "lead id"), LimitQuery),
    responses((status = 200, body = Vec<ScoreEvent>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lead_scores(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Res<web::Json<Vec<ScoreEvent>>> {
    visible_lead(&store, &p, &id).await?;
    let limit = q.limit.unwrap_or(crate::store::leads::DEFAULT_PAGE);
    Ok(web::Json(store.score_history(&p.tenant, &id, limit).await?))
}

/// The body of `POST /v1/leads/{id}/outcome`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    pub outcome: Outcome,
    /// Why, in a few words (kept in the score history; keep personal data out).
    pub note: Option<String>,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutcomeResponse {
    pub lead_id: String,
    pub prev_stage: Stage,
    pub stage: Stage,
    /// The score-history entry recording the transition.
    pub score_event_id: i64,
}

/// Longest outcome note (bytes).
const MAX_NOTE_LEN: usize = 500;

/// Record an outcome (won, lost, nurture): moves the lead's stage with a reason and queues the
/// change for the CRM. A lead already won or lost answers 409.
#[utoipa::path(post, path = "/v1/leads/{id}/outcome", tag = "leads", request_body = OutcomeRequest,
    params(("id" = String, Path, description = "lead id")),
    responses((status = 200, body = OutcomeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_outcome(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
    body: web::Json<OutcomeRequest>,
) -> Res<web::Json<OutcomeResponse>> {
    if body.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE_LEN) {
        return Err(ApiError::BadRequest(format!(
            "note is longer than {MAX_NOTE_LEN} bytes"
        )));
    }
    visible_lead(&store, &p, &id).await?;
    let done = store
        .record_outcome(
            &p.tenant,
            &id,
            body.outcome,
            body.note.as_deref(),
            &p.audit(),
        )
        .await?;
    Ok(web::Json(OutcomeResponse {
        lead_id: id.into_inner(),
        prev_stage: done.prev_stage,
        stage: done.stage,
        score_event_id: done.event_id,
    }))
}

/// The calls in your scope, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(TimePage),
    responses((status = 200, body = Vec<Call>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_calls(
    p: Principal,
    store: web::Data<Store>,
    page: web::Query<TimePage>,
) -> Res<web::Json<Vec<Call>>> {
    let limit = page.limit.unwrap_or(crate::store::leads::DEFAULT_PAGE);
    Ok(web::Json(
        store
            .list_calls(&p.tenant, &p.visibility(), page.before, limit)
            .await?,
    ))
}

/// A call with its (redacted) transcript and hints.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallDetail {
    pub call: Call,
    pub utterances: Vec<StoredUtterance>,
    pub hints: Vec<HintRow>,
}

/// A call with its transcript and hints. Every read is audited.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, body = CallDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_call(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Res<web::Json<CallDetail>> {
    let call = visible_call(&store, &p, &id).await?;
    let utterances = store.call_utterances(&p.tenant, &id).await?;
    let hints = store.call_hints(&p.tenant, &id).await?;
    // Audit before answering: a transcript read that cannot be recorded is not served.
    store
        .audit(&p.tenant, &p.audit(), "transcript.read", "call", &id)
        .await?;
    Ok(web::Json(CallDetail {
        call,
        utterances,
        hints,
    }))
}

/// The body of `POST /v1/hints/{id}/feedback`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub useful: bool,
}

/// Say whether a hint helped (the agent of the call, their supervisor or an admin).
#[utoipa::path(post, path = "/v1/hints/{id}/feedback", tag = "calls", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "hint id")),
    responses((status = 200, body = HintRow), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn hint_feedback(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
    body: web::Json<FeedbackRequest>,
) -> Res<web::Json<HintRow>> {
    let hint = store
        .get_hint(&p.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("hint"))?;
    visible_call(&store, &p, &hint.call_id).await?;
    Ok(web::Json(
        store
            .set_hint_feedback(&p.tenant, &id, body.useful, &p.audit())
            .await?,
    ))
}

/// A new ingest key: the secret is shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedIngestKey {
    pub key: IngestKey,
    /// Give this to the softphone or put it in the Twilio `<Stream>` URL; it cannot be shown again.
    pub secret: String,
}

/// The tenant's ingest keys (admins).
#[utoipa::path(get, path = "/v1/ingest-keys", tag = "admin",
    responses((status = 200, body = Vec<IngestKey>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_ingest_keys(
    p: Principal,
    store: web::Data<Store>,
) -> Res<web::Json<Vec<IngestKey>>> {
    p.require(&[Role::Admin])?;
    Ok(web::Json(store.list_ingest_keys(&p.tenant).await?))
}

/// Create an ingest key for softphones or Twilio (admins).
#[utoipa::path(post, path = "/v1/ingest-keys", tag = "admin", request_body = NewIngestKey,
    responses((status = 201, body = CreatedIngestKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_ingest_key(
    p: Principal,
    store: web::Data<Store>,
    body: web::Json<NewIngestKey>,
) -> Res<HttpResponse> {
    p.require(&[Role::Admin])?;
    let (key, secret) = store
        .create_ingest_key(&p.tenant, &body.label, &p.audit())
        .await?;
    Ok(HttpResponse::Created().json(CreatedIngestKey { key, secret }))
}

/// Revoke an ingest key (admins).
#[utoipa::path(delete, path = "/v1/ingest-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "ingest key id")),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_ingest_key(
    p: Principal,
    store: web::Data<Store>,
    id: web::Path<String>,
) -> Res<HttpResponse> {
    p.require(&[Role::Admin])?;
    store.revoke_ingest_key(&p.tenant, &id, &p.audit()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's audit log, newest first (admins).
#[utoipa::path(get, path = "/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_log(
    p: Principal,
    store: web::Data<Store>,
    q: web::Query<AuditQuery>,
) -> Res<web::Json<Vec<AuditRecord>>> {
    p.require(&[Role::Admin])?;
    Ok(web::Json(store.audit_log(&p.tenant, &q).await?))
}
