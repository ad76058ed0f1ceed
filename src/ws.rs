//! The WebSocket protocols, all on actix-ws.
//!
//! * [`native`] — `GET /v1/calls/{call_id}/stream`: JSON `start`, binary frames, `stop`.
//! * [`twilio`] — `GET /v1/twilio/stream`: Twilio Media Streams, byte-compatible.
//! * [`overlay`] — `GET /v1/agents/{agent_id}/hints`: the agent's coaching overlay.
//! * [`live`] — `GET /v1/live`: every live call in the caller's scope, for dashboards.
//!
//! Shared here: authentication of a socket (token or ingest key from the query, or a bearer
//! header), the per-socket message-rate limiter, and starting or joining a call.

pub mod live;
pub mod native;
pub mod overlay;
pub mod twilio;

use crate::actors::call::{CallActor, CallSpec};
use crate::actors::{metrics, Code};
use crate::auth::{IngestPrincipal, Principal, Role};
use crate::error::ApiError;
use crate::hub::{Fanout, CALL_CHANNEL_CAPACITY};
use crate::server::AppState;
use crate::store::leads::Lead;
use actix::Actor;
use actix_web::HttpRequest;
use actix_ws::Session;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Largest WebSocket frame the codec accepts at all. Frames between the configured
/// `max_frame_bytes` and this are answered with `frame_too_large` and the socket stays open;
/// beyond it the codec refuses the frame and the socket is closed with the same code.
pub const HARD_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// How long a socket keeps delivering events after `stop`, so the softphone receives the finals
/// of its last utterances and `ended`. The call actor drains in-flight finals for at most 20 s
/// and then always sends `ended`; 25 s covers that with room for the last tick.
pub const AFTER_STOP_GRACE: Duration = Duration::from_secs(25);

/// Credentials a socket may carry in its URL (browsers and Twilio cannot set headers).
#[derive(Debug, Default, Deserialize)]
pub struct Credentials {
    pub token: Option<String>,
    pub key: Option<String>,
}

/// Who opened an ingest stream: a user's token or a tenant's ingest key.
pub type Caller = IngestPrincipal;

/// Authenticates an ingest socket: `Authorization: Bearer`, then `?token=`, then `?key=`.
pub async fn authenticate_ingest(
    state: &AppState,
    req: &HttpRequest,
    creds: &Credentials,
) -> Result<Caller, ApiError> {
    let presented = crate::auth::bearer(req)
        .or(creds.token.as_deref())
        .or(creds.key.as_deref());
    authenticate_presented(state, presented).await
}

/// Authenticates a token or ingest key given directly (Twilio's `customParameters`).
pub async fn authenticate_presented(
    state: &AppState,
    presented: Option<&str>,
) -> Result<Caller, ApiError> {
    let presented =
        presented.ok_or_else(|| ApiError::Unauthorized("missing token or ingest key".into()))?;
    Ok(state
        .auth
        .authenticate_ingest(&state.store, presented)
        .await?)
}

/// Authenticates a user socket (overlay, dashboard): a bearer header or `?token=`.
pub fn authenticate_user(
    state: &AppState,
    req: &HttpRequest,
    creds: &Credentials,
) -> Result<Principal, ApiError> {
    let token = crate::auth::bearer(req)
        .or(creds.token.as_deref())
        .ok_or_else(|| ApiError::Unauthorized("missing token".into()))?;
    let mut principal = state.auth.verify(token)?;
    principal.ip = req.peer_addr().map(|a| a.ip().to_string());
    Ok(principal)
}

/// Whether `principal` may watch a live call of `agent_id` in `tenant`/`team`: agents their own
/// calls, supervisors their team's, admins their tenant's.
pub fn sees_live(principal: &Principal, tenant: &str, team: Option<&str>, agent_id: &str) -> bool {
    principal.tenant == tenant && principal.may_assign(Some(agent_id), team)
}

/// Whether the caller may stream audio as `agent_id`: an ingest key for any agent of its tenant;
/// an agent only as themself; supervisors and admins on behalf of agents they can see.
pub fn may_stream_for(caller: &Caller, agent_id: &str, team: Option<&str>) -> bool {
    match caller {
        IngestPrincipal::Key(_) => true,
        IngestPrincipal::User(p) => {
            p.sub == agent_id || (p.role != Role::Agent && sees_live(p, &p.tenant, team, agent_id))
        }
    }
}

/// The team a call belongs to: the streaming agent's token says it; with an ingest key the
/// softphone may say it in `start`.
pub fn call_team(caller: &Caller, declared: Option<&str>) -> Option<String> {
    match caller {
        IngestPrincipal::User(p) if p.role == Role::Agent => p.team.clone(),
        // A supervisor streams for agents of their own team unless the softphone says otherwise.
        IngestPrincipal::User(p) => declared.map(str::to_owned).or_else(|| p.team.clone()),
        IngestPrincipal::Key(_) => declared.map(str::to_owned),
    }
}

/// Counts messages per one-second window. Past the limit, messages are dropped and the client
/// is told once per window, so a flood cannot make us send a flood of errors back.
pub struct RateLimiter {
    limit: u32,
    window_start: Instant,
    count: u32,
    told: bool,
}

/// What to do with a message after rate limiting.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Drop it and tell the client (first excess message of the window).
    DropAndTell,
    /// Drop it silently (already told this window).
    Drop,
}

impl RateLimiter {
    pub fn new(limit_per_sec: u32) -> Self {
        RateLimiter {
            limit: limit_per_sec,
            window_start: Instant::now(),
            count: 0,
            told: false,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
            self.told = false;
        }
        self.count += 1;
        if self.count <= self.limit {
            Admit::Yes
        } else if !self.told {
            self.told = true;
            crate::actors::metrics::ERRORS
                .with_label_values(&[Code::RateLimited.as_str()])
                .inc();
            Admit::DropAndTell
        } else {
            crate::actors::metrics::DROPS
                .with_label_values(&["rate_limited"])
                .inc();
            Admit::Drop
        }
    }
}

/// Joins the live call `spec.call_id`, starting its actor if this is the first socket.
pub fn start_or_join_call(
    state: &AppState,
    spec: CallSpec,
) -> Result<actix::Addr<CallActor>, (Code, String)> {
    if state.is_shutting_down() {
        return Err((
            Code::ShuttingDown,
            "this node is shutting down; connect to another".into(),
        ));
    }
    if let Some(addr) = state.hub.call_addr(&spec.call_id) {
        let existing = state.hub.summary(&spec.call_id);
        if existing.is_some_and(|s| s.tenant != spec.tenant) {
            return Err((Code::Forbidden, "call belongs to another tenant".into()));
        }
        return Ok(addr);
    }
    if state.hub.live_calls() >= state.config.limits.max_calls.get() {
        return Err((
            Code::TooManyCalls,
            format!(
                "this node is at its limit of {} live calls",
                state.config.limits.max_calls
            ),
        ));
    }
    let (events, _) = tokio::sync::broadcast::channel(CALL_CHANNEL_CAPACITY);
    let observer = std::sync::Arc::new(Fanout::new(state.hub.clone(), events.clone()));
    let pipeline = state.pipeline.clone();
    let spec2 = spec.clone();
    let addr = CallActor::create(move |_ctx| CallActor::new(spec2, pipeline, observer));
    state.hub.register(&spec, addr.clone(), events);
    if let Some(lead_id) = spec.lead_id.clone() {
        open_lead(state, &spec, lead_id);
    }
    Ok(addr)
}

/// Starts scoring the call's lead with its stored attributes. A lead the CRM has not synced yet
/// is created (owned by the agent) so the call's score history has somewhere to live.
fn open_lead(state: &AppState, spec: &CallSpec, lead_id: String) {
    let store = state.store.clone();
    let scoring = state.pipeline.scoring.clone();
    let spec = spec.clone();
    actix_web::rt::spawn(async move {
        let lead = match store.get_lead(&spec.tenant, &lead_id).await {
            Ok(Some(lead)) => Some(lead),
            Ok(None) => {
                let new = crate::store::leads::NewLead {
                    id: Some(lead_id.clone()),
                    name: lead_id.clone(),
                    source: Some("softphone".into()),
                    owner_id: Some(spec.agent_id.clone()),
                    team: spec.team.clone(),
                    ..Default::default()
                };
                let who = crate::store::audit::AuditEntry::system();
                store.create_lead(&spec.tenant, &new, &who).await.ok()
            }
            Err(e) => {
                tracing::warn!(error = %e, lead_id, "lead lookup failed; scoring without its attributes");
                None
            }
        };
        let features = lead.as_ref().map(lead_features).unwrap_or_default();
        if let Some(scoring) = scoring {
            let _ = scoring
                .send(crate::actors::scorer::OpenLead {
                    tenant: spec.tenant.clone(),
                    lead_id,
                    call_id: spec.call_id.clone(),
                    features,
                })
                .await;
        }
    });
}

/// The scorer's view of a stored lead.
fn lead_features(lead: &Lead) -> crate::actors::scorer::LeadFeatures {
    let days_since = lead.last_contact_at.map(|t| {
        let ms = crate::store::types::now_ms() - t.ms();
        (ms.max(0) as f64) / 86_400_000.0
    });
    crate::actors::scorer::LeadFeatures {
        source: crate::actors::scorer::LeadSource::parse_lenient(
            lead.source.as_deref().unwrap_or(""),
        ),
        prior_contacts: u32::try_from(lead.prior_contacts.max(0)).unwrap_or(u32::MAX),
        days_since_last_contact: days_since,
        stage: lead.stage.as_str().parse().unwrap_or_default(),
    }
}

/// Whether a connection loop should go on.
pub(crate) enum Flow {
    Continue,
    Close,
}

/// Sends an `error` event; the loop ends if the socket is gone.
pub(crate) async fn send_error(session: &mut actix_ws::Session, code: Code, message: &str) -> Flow {
    match session.text(crate::hub::error_json(code, message)).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Close,
    }
}

/// A WebSocket protocol error (a frame over the hard cap, a broken frame): say so, then close.
pub(crate) async fn protocol_error(
    session: &mut actix_ws::Session,
    error: actix_ws::ProtocolError,
) -> Flow {
    let (code, message) = match error {
        actix_ws::ProtocolError::Overflow => (
            Code::FrameTooLarge,
            "frame exceeds the hard limit; closing".to_owned(),
        ),
        e => (Code::BadMessage, format!("websocket protocol error: {e}")),
    };
    let _ = send_error(session, code, &message).await;
    Flow::Close
}

/// Sends one call event to the socket; ends the loop when the call ended or the socket closed.
pub(crate) async fn forward(
    session: &mut Session,
    ev: Result<Arc<str>, broadcast::error::RecvError>,
) -> Flow {
    match ev {
        Ok(json) => {
            let ended = json.starts_with("{\"type\":\"ended\"");
            if session.text(json.to_string()).await.is_err() || ended {
                return Flow::Close;
            }
            Flow::Continue
        }
        Err(broadcast::error::RecvError::Lagged(n)) => {
            metrics::DROPS
                .with_label_values(&["socket_lagged"])
                .inc_by(n);
            Flow::Continue
        }
        Err(broadcast::error::RecvError::Closed) => Flow::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_admits_up_to_the_limit_and_tells_once() {
        let mut rl = RateLimiter::new(3);
        let t0 = Instant::now();
        assert_eq!(rl.admit(t0), Admit::Yes);
        assert_eq!(rl.admit(t0), Admit::Yes);
        assert_eq!(rl.admit(t0), Admit::Yes);
        assert_eq!(rl.admit(t0), Admit::DropAndTell);
        assert_eq!(rl.admit(t0), Admit::Drop);
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(rl.admit(t1), Admit::Yes);
    }
}
