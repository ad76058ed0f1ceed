//! The dashboard feed: `GET /v1/live?token=…` (WebSocket).
//!
//! On connect: a `snapshot` of every live call in the caller's scope; then `call_started`,
//! `call_event` and `call_ended` messages for those calls. A dashboard that falls behind gets a
//! fresh snapshot instead of a silent gap.

use super::{authenticate_user, sees_live, Credentials};
use crate::actors::metrics;
use crate::auth::Principal;
use crate::hub::{LiveEnvelope, LiveMessage};
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Session};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<Credentials>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let principal = authenticate_user(&state, &req, &query)?;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(4096).aggregate_continuations();
    actix_web::rt::spawn(run(state.into_inner(), principal, session, stream));
    Ok(response)
}

fn in_scope(principal: &Principal, env: &LiveEnvelope) -> bool {
    sees_live(principal, &env.tenant, env.team.as_deref(), &env.agent_id)
}

async fn send_snapshot(state: &AppState, principal: &Principal, session: &mut Session) -> bool {
    let calls = state
        .hub
        .snapshot()
        .into_iter()
        .filter(|c| sees_live(principal, &c.tenant, c.team.as_deref(), &c.agent_id))
        .collect();
    let json = match serde_json::to_string(&LiveMessage::Snapshot { calls }) {
        Ok(j) => j,
        Err(_) => return false,
    };
    session.text(json).await.is_ok()
}

async fn run(
    state: Arc<AppState>,
    principal: Principal,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    // Subscribe before the snapshot so nothing falls between the two.
    let mut live = state.hub.subscribe_live();
    let mut shutdown = state.shutdown.subscribe();
    if !send_snapshot(&state, &principal, &mut session).await {
        return;
    }
    loop {
        tokio::select! {
            env = live.recv() => match env {
                Ok(env) => {
                    if in_scope(&principal, &env) && session.text(env.json.clone()).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    metrics::DROPS.with_label_values(&["dashboard_lagged"]).inc_by(n);
                    if !send_snapshot(&state, &principal, &mut session).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            msg = stream.recv() => match msg {
                Some(Ok(AggregatedMessage::Ping(p))) => {
                    if session.pong(&p).await.is_err() { break; }
                }
                Some(Ok(AggregatedMessage::Close(_))) | None | Some(Err(_)) => break,
                // The feed is one-way; anything else from the client is ignored.
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => {
                let _ = session.text(crate::hub::warning_json(
                    crate::actors::Code::ShuttingDown, "server is shutting down; reconnect")).await;
                break;
            }
        }
    }
    let _ = session.close(None).await;
}
