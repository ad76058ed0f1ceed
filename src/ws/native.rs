//! The native softphone protocol: `GET /v1/calls/{call_id}/stream?track=…`.
//!
//! A JSON `start` (encoding, sample rate, channels and which track each channel is, lead and
//! agent), then binary frames of interleaved samples, then `{"type":"stop"}`. The server answers
//! with the call's events as JSON (`ready`, `partial`, `final`, `sentiment`, `hint`, `talk`,
//! `score`, `warning`, `error`, `ended`). Two sockets may feed one call, one per track.
//!
//! Bad input is answered with an `error` event carrying a stable code and the socket stays open
//! where that is safe: a malformed frame is dropped, a flood is throttled, an oversized frame is
//! refused. Nothing a client sends can take down the call of another socket.

use super::{
    authenticate_ingest, call_team, forward, may_stream_for, protocol_error, send_error,
    start_or_join_call, Admit, Caller, Credentials, Flow, RateLimiter, AFTER_STOP_GRACE,
    HARD_MAX_FRAME_BYTES,
};
use crate::actors::audio::pcm::Encoding;
use crate::actors::call::{AttachSource, Audio, CallActor, CallSpec, DetachSource, SourceId};
use crate::actors::{metrics, Code, Track};
use crate::auth::IngestPrincipal;
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Session};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// The track a mono stream carries (default `mixed`).
    pub track: Option<String>,
    #[serde(flatten)]
    pub creds: Credentials,
}

/// The `start` message. Fields are checked one by one so each problem gets its own code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    #[serde(rename = "type")]
    pub kind: String,
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u8,
    #[serde(default)]
    pub tracks: Option<Vec<String>>,
    #[serde(default)]
    pub lead_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The agent's team, when an ingest key (which knows no team) opens the stream.
    #[serde(default)]
    pub team: Option<String>,
}

/// A validated `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFormat {
    pub encoding: Encoding,
    pub sample_rate: u32,
    pub tracks: Vec<Track>,
}

impl StreamFormat {
    /// Bytes per interleaved sample frame (all channels).
    pub fn frame_bytes(&self) -> usize {
        self.encoding.sample_bytes() * self.tracks.len()
    }
}

/// Validates a `start` message into a stream format; the error carries the protocol code.
pub fn validate_start(
    start: &Start,
    default_track: Option<&str>,
) -> Result<StreamFormat, (Code, String)> {
    if start.kind != "start" {
        return Err((Code::BadStart, "the first message must be `start`".into()));
    }
    let encoding = match start.encoding.as_str() {
        "pcm_s16le" => Encoding::PcmS16le,
        "f32le" => Encoding::F32le,
        "mulaw" => Encoding::Mulaw,
        other => {
            return Err((
                Code::UnsupportedEncoding,
                format!("encoding `{other}` is not supported (pcm_s16le, f32le, mulaw)"),
            ))
        }
    };
    if !(8_000..=48_000).contains(&start.sample_rate) {
        return Err((
            Code::BadSampleRate,
            format!("sample_rate {} is outside 8000..=48000", start.sample_rate),
        ));
    }
    if !(1..=2).contains(&start.channels) {
        return Err((
            Code::BadChannels,
            format!("channels {} is not 1 or 2", start.channels),
        ));
    }
    let parse = |s: &str| s.parse::<Track>().map_err(|e| (Code::BadChannels, e));
    let tracks = match (&start.tracks, start.channels) {
        (Some(names), n) => {
            if names.len() != usize::from(n) {
                return Err((
                    Code::BadChannels,
                    format!("{} tracks given for {n} channels", names.len()),
                ));
            }
            names
                .iter()
                .map(|s| parse(s))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, 1) => vec![parse(default_track.unwrap_or("mixed"))?],
        (None, _) => vec![Track::Agent, Track::Customer],
    };
    if tracks.len() == 2 && (tracks[0] == tracks[1] || tracks.contains(&Track::Mixed)) {
        return Err((
            Code::BadChannels,
            "two channels must be the agent and the customer".into(),
        ));
    }
    Ok(StreamFormat {
        encoding,
        sample_rate: start.sample_rate,
        tracks,
    })
}

pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    call_id: web::Path<String>,
    query: web::Query<StreamQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let caller = authenticate_ingest(&state, &req, &query.creds).await?;
    let call_id = call_id.into_inner();
    if call_id.is_empty() || call_id.len() > 128 {
        return Err(crate::error::ApiError::BadRequest(
            "call id must be 1..=128 characters".into(),
        )
        .into());
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(HARD_MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(HARD_MAX_FRAME_BYTES);
    let default_track = query.track.clone();
    actix_web::rt::spawn(async move {
        let mut conn = Connection {
            state: state.into_inner(),
            session,
            caller,
            call_id,
            default_track,
            phase: Phase::AwaitingStart,
        };
        conn.run(stream).await;
    });
    Ok(response)
}

enum Phase {
    AwaitingStart,
    Streaming {
        addr: actix::Addr<CallActor>,
        source: SourceId,
        format: StreamFormat,
        events: broadcast::Receiver<Arc<str>>,
    },
    Stopped {
        events: broadcast::Receiver<Arc<str>>,
        until: tokio::time::Instant,
    },
}

struct Connection {
    state: Arc<AppState>,
    session: Session,
    caller: Caller,
    call_id: String,
    default_track: Option<String>,
    phase: Phase,
}

impl Connection {
    async fn run(&mut self, mut stream: actix_ws::AggregatedMessageStream) {
        let mut limiter = RateLimiter::new(self.state.config.limits.max_messages_per_sec);
        let mut shutdown = self.state.shutdown.subscribe();
        loop {
            let flow = match &mut self.phase {
                Phase::AwaitingStart => tokio::select! {
                    msg = stream.recv() => self.on_message(msg, &mut limiter).await,
                    _ = shutdown.changed() => Flow::Close,
                },
                Phase::Streaming { events, .. } => tokio::select! {
                    biased;
                    ev = events.recv() => forward(&mut self.session, ev).await,
                    msg = stream.recv() => self.on_message(msg, &mut limiter).await,
                    _ = shutdown.changed() => {
                        let _ = self.session.text(crate::hub::warning_json(
                            Code::ShuttingDown, "server is shutting down; in-flight utterances are being finished")).await;
                        self.stop().await;
                        Flow::Continue
                    }
                },
                Phase::Stopped { events, until } => {
                    let until = *until;
                    tokio::select! {
                        ev = events.recv() => forward(&mut self.session, ev).await,
                        msg = stream.recv() => self.on_message(msg, &mut limiter).await,
                        _ = tokio::time::sleep_until(until) => Flow::Close,
                    }
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        self.stop().await;
        let _ = self.session.clone().close(None).await;
    }

    async fn error(&mut self, code: Code, message: &str) -> Flow {
        send_error(&mut self.session, code, message).await
    }

    async fn on_message(
        &mut self,
        msg: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
        limiter: &mut RateLimiter,
    ) -> Flow {
        let msg = match msg {
            None => return Flow::Close,
            Some(Err(e)) => return protocol_error(&mut self.session, e).await,
            Some(Ok(msg)) => msg,
        };
        if matches!(
            msg,
            AggregatedMessage::Text(_) | AggregatedMessage::Binary(_)
        ) {
            match limiter.admit(Instant::now()) {
                Admit::Yes => {}
                Admit::Drop => return Flow::Continue,
                Admit::DropAndTell => {
                    return self
                        .error(
                            Code::RateLimited,
                            &format!(
                                "more than {} messages per second; excess dropped",
                                self.state.config.limits.max_messages_per_sec
                            ),
                        )
                        .await
                }
            }
        }
        match msg {
            AggregatedMessage::Text(text) => self.on_text(&text).await,
            AggregatedMessage::Binary(bytes) => self.on_binary(bytes).await,
            AggregatedMessage::Ping(p) => match self.session.pong(&p).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Close,
            },
            AggregatedMessage::Pong(_) => Flow::Continue,
            AggregatedMessage::Close(_) => Flow::Close,
        }
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        if text.len() > self.state.config.limits.max_text_bytes {
            return self
                .error(Code::MessageTooLarge, "text message too large")
                .await;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .error(Code::BadMessage, &format!("invalid JSON: {e}"))
                    .await
            }
        };
        match value.get("type").and_then(|t| t.as_str()) {
            Some("start") => self.on_start(value).await,
            Some("stop") => {
                if matches!(self.phase, Phase::Streaming { .. }) {
                    self.stop().await;
                    Flow::Continue
                } else {
                    self.error(Code::AfterStop, "no stream is running").await
                }
            }
            Some(other) => {
                let other = other.to_owned();
                self.error(Code::BadMessage, &format!("unknown message type `{other}`"))
                    .await
            }
            None => self.error(Code::BadMessage, "message has no `type`").await,
        }
    }

    async fn on_start(&mut self, value: serde_json::Value) -> Flow {
        match self.phase {
            Phase::AwaitingStart => {}
            Phase::Streaming { .. } => {
                return self.error(Code::BadStart, "stream already started").await
            }
            Phase::Stopped { .. } => {
                return self.error(Code::AfterStop, "stream already stopped").await
            }
        }
        let start: Start = match serde_json::from_value(value) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .error(Code::BadStart, &format!("invalid start: {e}"))
                    .await
            }
        };
        let format = match validate_start(&start, self.default_track.as_deref()) {
            Ok(f) => f,
            Err((code, msg)) => return self.error(code, &msg).await,
        };
        let agent_id = match (&start.agent_id, &self.caller) {
            (Some(a), _) => a.clone(),
            (None, IngestPrincipal::User(p)) => p.sub.clone(),
            (None, IngestPrincipal::Key(_)) => {
                return self
                    .error(Code::BadStart, "agent_id is required with an ingest key")
                    .await
            }
        };
        let team = call_team(&self.caller, start.team.as_deref());
        if !may_stream_for(&self.caller, &agent_id, team.as_deref()) {
            return self
                .error(Code::Forbidden, "this token may not stream for that agent")
                .await;
        }
        let spec = CallSpec {
            call_id: self.call_id.clone(),
            tenant: self.caller.tenant().to_owned(),
            agent_id,
            lead_id: start.lead_id.clone(),
            team,
        };
        let addr = match start_or_join_call(&self.state, spec) {
            Ok(a) => a,
            Err((code, msg)) => return self.error(code, &msg).await,
        };
        let Some(events) = self.state.hub.subscribe_call(&self.call_id) else {
            return self.error(Code::Internal, "call vanished").await;
        };
        let source = SourceId(
            self.state
                .next_source
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let attach = addr
            .send(AttachSource {
                source,
                encoding: format.encoding,
                sample_rate: format.sample_rate,
                tracks: format.tracks.clone(),
            })
            .await;
        match attach {
            Ok(Ok(())) => {
                self.phase = Phase::Streaming {
                    addr,
                    source,
                    format,
                    events,
                };
                Flow::Continue
            }
            Ok(Err(e)) => self.error(e.code(), &e.to_string()).await,
            Err(_) => self.error(Code::Internal, "call is not available").await,
        }
    }

    async fn on_binary(&mut self, bytes: bytes::Bytes) -> Flow {
        let max = self.state.config.limits.max_frame_bytes;
        let (addr, source, format) = match &self.phase {
            Phase::Streaming {
                addr,
                source,
                format,
                ..
            } => (addr, *source, format),
            Phase::AwaitingStart => {
                return self
                    .error(Code::NotStarted, "send `start` before audio")
                    .await
            }
            Phase::Stopped { .. } => {
                return self
                    .error(Code::AfterStop, "audio after `stop` is ignored")
                    .await
            }
        };
        if bytes.len() > max {
            return self
                .error(
                    Code::FrameTooLarge,
                    &format!("frame of {} bytes exceeds {max}", bytes.len()),
                )
                .await;
        }
        if bytes.is_empty() || bytes.len() % format.frame_bytes() != 0 {
            return self
                .error(
                    Code::MalformedFrame,
                    &format!(
                        "frame of {} bytes is not a whole number of {}-byte sample frames",
                        bytes.len(),
                        format.frame_bytes()
                    ),
                )
                .await;
        }
        if addr.try_send(Audio { source, bytes }).is_err() {
            metrics::DROPS.with_label_values(&["call_mailbox"]).inc();
        }
        Flow::Continue
    }

    /// Detaches this socket's tracks; keeps forwarding events for a grace period.
    async fn stop(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::AwaitingStart);
        self.phase = match phase {
            Phase::Streaming {
                addr,
                source,
                events,
                ..
            } => {
                // `send`, not `try_send`: the detach flushes the last utterance and must arrive.
                let _ = addr.send(DetachSource { source }).await;
                Phase::Stopped {
                    events,
                    until: tokio::time::Instant::now() + AFTER_STOP_GRACE,
                }
            }
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(json: &str) -> Start {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn start_validation_gives_each_problem_its_code() {
        let ok = validate_start(
            &start(r#"{"type":"start","encoding":"pcm_s16le","sample_rate":16000,"channels":2}"#),
            None,
        )
        .unwrap();
        assert_eq!(ok.tracks, vec![Track::Agent, Track::Customer]);
        assert_eq!(ok.frame_bytes(), 4);
        let mono = validate_start(
            &start(r#"{"type":"start","encoding":"mulaw","sample_rate":8000,"channels":1}"#),
            Some("customer"),
        )
        .unwrap();
        assert_eq!(mono.tracks, vec![Track::Customer]);
        let cases = [
            (
                r#"{"type":"start","encoding":"opus","sample_rate":16000,"channels":1}"#,
                Code::UnsupportedEncoding,
            ),
            (
                r#"{"type":"start","encoding":"f32le","sample_rate":96000,"channels":1}"#,
                Code::BadSampleRate,
            ),
            (
                r#"{"type":"start","encoding":"f32le","sample_rate":16000,"channels":3}"#,
                Code::BadChannels,
            ),
            (
                r#"{"type":"start","encoding":"f32le","sample_rate":16000,"channels":2,"tracks":["agent","agent"]}"#,
                Code::BadChannels,
            ),
            (
                r#"{"type":"start","encoding":"f32le","sample_rate":16000,"channels":1,"tracks":["bot"]}"#,
                Code::BadChannels,
            ),
        ];
        for (json, code) in cases {
            assert_eq!(
                validate_start(&start(json), None).unwrap_err().0,
                code,
                "{json}"
            );
        }
    }
}
