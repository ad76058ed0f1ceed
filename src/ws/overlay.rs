//! The agent's coaching overlay: `GET /v1/agents/{agent_id}/hints?token=…` (WebSocket).
//!
//! The overlay follows whichever live call the agent is on: `attached` (with the call id) when a
//! call starts or is already running, the call's `hint`, `talk`, `checklist`, `warning` and the
//! agent-facing `final`/`partial` events while it runs, `detached` when it ends. The overlay
//! answers hints with `{"type":"feedback","hint_id":…,"useful":bool}`; feedback reaches the coach
//! (a dismissed rule is not repeated) and the database.

use super::{authenticate_user, Credentials};
use crate::actors::call::Feedback;
use crate::actors::{metrics, Code};
use crate::auth::Role;
use crate::hub::{error_json, LiveEnvelope};
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Session};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Largest message an overlay sends (feedback is ~100 bytes).
const MAX_OVERLAY_MESSAGE: usize = 4096;

/// Event types an agent's overlay receives. Sentiment and score stay on the supervisor's side.
const OVERLAY_EVENTS: &[&str] = &[
    "hint",
    "talk",
    "checklist",
    "warning",
    "final",
    "partial",
    "ended",
];

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OverlayMessage {
    Feedback { hint_id: uuid::Uuid, useful: bool },
}

pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    agent_id: web::Path<String>,
    query: web::Query<Credentials>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let principal = authenticate_user(&state, &req, &query)?;
    let agent_id = agent_id.into_inner();
    // The agent's own overlay; supervisors and admins may open an agent's overlay to see what
    // the agent sees (the server scopes them to their tenant; agents never see another agent).
    if principal.sub != agent_id && principal.role == Role::Agent {
        return Err(crate::error::ApiError::Forbidden(
            "this token may not open another agent's overlay".into(),
        )
        .into());
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_OVERLAY_MESSAGE)
        .aggregate_continuations();
    actix_web::rt::spawn(run(
        state.into_inner(),
        principal.tenant.clone(),
        agent_id,
        principal,
        session,
        stream,
    ));
    Ok(response)
}

fn attached_json(call_id: &str) -> String {
    serde_json::json!({"type": "attached", "call_id": call_id}).to_string()
}

/// Pulls the `event` object out of a `call_event` envelope without re-serialising it.
fn event_of(env: &LiveEnvelope) -> Option<(String, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_str(&env.json).ok()?;
    let kind = v.get("type")?.as_str()?.to_owned();
    Some((kind, v))
}

async fn run(
    state: Arc<AppState>,
    tenant: String,
    agent_id: String,
    principal: crate::auth::Principal,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let mut live = state.hub.subscribe_live();
    let mut shutdown = state.shutdown.subscribe();
    let mut current = state
        .hub
        .call_of_agent(&tenant, &agent_id)
        .map(|c| c.call_id);
    match &current {
        Some(call_id) => {
            if session.text(attached_json(call_id)).await.is_err() {
                return;
            }
        }
        None => {
            if session.text(r#"{"type":"detached"}"#).await.is_err() {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            env = live.recv() => match env {
                Ok(env) => {
                    if env.tenant != tenant || env.agent_id != agent_id { continue; }
                    let Some((kind, v)) = event_of(&env) else { continue };
                    let out = match kind.as_str() {
                        "call_started" => { current = Some(env.call_id.clone()); Some(attached_json(&env.call_id)) }
                        "call_ended" => {
                            if current.as_deref() == Some(env.call_id.as_str()) { current = None; }
                            Some(r#"{"type":"detached"}"#.to_owned())
                        }
                        "call_event" => {
                            if current.as_deref() != Some(env.call_id.as_str()) {
                                current = Some(env.call_id.clone());
                                if session.text(attached_json(&env.call_id)).await.is_err() { break; }
                            }
                            let event = &v["event"];
                            let t = event.get("type").and_then(|t| t.as_str()).unwrap_or("");
                            OVERLAY_EVENTS.contains(&t).then(|| event.to_string())
                        }
                        _ => None,
                    };
                    if let Some(out) = out {
                        if session.text(out).await.is_err() { break; }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    metrics::DROPS.with_label_values(&["overlay_lagged"]).inc_by(n);
                }
                Err(RecvError::Closed) => break,
            },
            _ = shutdown.changed() => {
                let _ = session
                    .text(crate::hub::warning_json(
                        Code::ShuttingDown,
                        "server is shutting down; reconnect to another node",
                    ))
                    .await;
                break;
            }
            msg = stream.recv() => match msg {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    let reply = handle_message(&state, &principal, current.as_deref(), &text).await;
                    if let Some(reply) = reply {
                        if session.text(reply).await.is_err() { break; }
                    }
                }
                Some(Ok(AggregatedMessage::Ping(p))) => { if session.pong(&p).await.is_err() { break; } }
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    if session.text(error_json(Code::BadMessage, "the overlay sends JSON text")).await.is_err() { break; }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | None => break,
                Some(Err(_)) => {
                    let _ = session.text(error_json(Code::MessageTooLarge, "message too large")).await;
                    break;
                }
            },
        }
    }
    let _ = session.close(None).await;
}

/// Handles one overlay message; returns an error reply when it is bad.
async fn handle_message(
    state: &AppState,
    principal: &crate::auth::Principal,
    call_id: Option<&str>,
    text: &str,
) -> Option<String> {
    let msg: OverlayMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(error_json(
                Code::BadMessage,
                &format!("invalid message: {e}"),
            ))
        }
    };
    match msg {
        OverlayMessage::Feedback { hint_id, useful } => {
            if let Some(call_id) = call_id {
                if let Some(addr) = state.hub.call_addr(call_id) {
                    // Feedback is not on the audio path; waiting for mailbox room is fine.
                    let _ = addr.send(Feedback { hint_id, useful }).await;
                } else if let Some(cluster) = state.hub.cluster() {
                    let control = crate::cluster::Control::Feedback {
                        call_id: call_id.to_owned(),
                        hint_id,
                        useful,
                    };
                    if let Err(e) = cluster.control(&control).await {
                        tracing::warn!(error = %e, "feedback not forwarded to the call's node");
                    }
                }
            }
            let hint_id = hint_id.to_string();
            match state
                .store
                .set_hint_feedback(&principal.tenant, &hint_id, useful, &principal.audit())
                .await
            {
                Ok(_) => None,
                Err(crate::store::StoreError::NotFound) => {
                    Some(error_json(Code::NotFound, "no such hint"))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to store hint feedback");
                    Some(error_json(
                        Code::Internal,
                        "feedback could not be stored; try again",
                    ))
                }
            }
        }
    }
}
