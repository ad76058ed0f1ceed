//! Twilio Media Streams: `GET /v1/twilio/stream`, byte-compatible with what Twilio's `<Stream>`
//! sends: `connected`, `start`, `media` (base64 μ-law 8 kHz mono per track), `dtmf`, `mark`,
//! `stop`. `inbound` is the customer, `outbound` the agent.
//!
//! Twilio cannot send headers, so credentials come in the `<Stream>` URL's query (`?key=` or
//! `?token=`) or in `customParameters` (`key`/`token`), which also carry `agent_id`, `lead_id` and
//! optionally `call_id` (default: the `callSid`).
//!
//! Messages are re-ordered by `sequenceNumber` in a small window, and a gap in a track's
//! `timestamp` is filled with silence so the audio clock (and talk-time coaching) stays true.

use super::{
    authenticate_presented, call_team, forward, may_stream_for, protocol_error, send_error,
    start_or_join_call, Admit, Credentials, Flow, RateLimiter, AFTER_STOP_GRACE,
    HARD_MAX_FRAME_BYTES,
};
use crate::actors::audio::pcm::Encoding;
use crate::actors::call::{AttachSource, Audio, CallActor, CallSpec, DetachSource, SourceId};
use crate::actors::{metrics, Code, Track};
use crate::auth::IngestPrincipal;
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, Session};
use base64::Engine;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

/// Twilio sends 20 ms of 8 kHz μ-law per media message: 160 bytes.
const TWILIO_RATE: u32 = 8_000;
/// Messages held back waiting for a missing sequence number. Ten messages is 100 ms of a
/// two-track stream: enough to fix a reordering, short enough not to delay speech noticeably.
const REORDER_WINDOW: usize = 10;
/// A timestamp gap larger than this is filled with silence; up to one 20 ms frame of jitter is
/// normal. Gaps are capped at 2 s of padding so a bogus timestamp cannot make us allocate much.
const GAP_TOLERANCE_MS: u64 = 20;
const MAX_GAP_FILL_MS: u64 = 2_000;
/// μ-law silence (the encoding of 0).
const MULAW_SILENCE: u8 = 0xFF;

/// Twilio's messages. Unknown fields are ignored: Twilio adds fields over time.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TwilioMessage {
    Connected {
        #[serde(default)]
        protocol: Option<String>,
    },
    Start {
        #[serde(rename = "sequenceNumber")]
        sequence_number: Option<String>,
        start: StartInfo,
    },
    Media {
        #[serde(rename = "sequenceNumber")]
        sequence_number: Option<String>,
        media: Media,
    },
    Dtmf {
        #[serde(rename = "sequenceNumber")]
        sequence_number: Option<String>,
    },
    Mark {
        #[serde(rename = "sequenceNumber")]
        sequence_number: Option<String>,
    },
    Stop {
        #[serde(rename = "sequenceNumber")]
        sequence_number: Option<String>,
    },
}

impl TwilioMessage {
    pub fn sequence(&self) -> Option<u64> {
        let s = match self {
            TwilioMessage::Connected { .. } => return None,
            TwilioMessage::Start {
                sequence_number, ..
            }
            | TwilioMessage::Media {
                sequence_number, ..
            }
            | TwilioMessage::Dtmf { sequence_number }
            | TwilioMessage::Mark { sequence_number }
            | TwilioMessage::Stop { sequence_number } => sequence_number.as_deref()?,
        };
        s.parse().ok()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInfo {
    pub stream_sid: Option<String>,
    pub call_sid: String,
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(default)]
    pub custom_parameters: HashMap<String, String>,
    pub media_format: MediaFormat,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Deserialize)]
pub struct Media {
    pub track: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub payload: String,
}

/// Maps Twilio's track names to ours.
pub fn track_of(name: &str) -> Option<Track> {
    match name {
        "inbound" | "inbound_track" => Some(Track::Customer),
        "outbound" | "outbound_track" => Some(Track::Agent),
        _ => None,
    }
}

/// Puts messages back in `sequenceNumber` order within a small window.
#[derive(Debug)]
pub struct Reorder<T> {
    next: Option<u64>,
    held: BTreeMap<u64, T>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            next: None,
            held: BTreeMap::new(),
        }
    }
}

impl<T> Reorder<T> {
    /// Offers a message; returns those now deliverable, in order. Late duplicates are dropped.
    pub fn push(&mut self, seq: u64, item: T) -> Vec<T> {
        // Twilio numbers messages from 1 upward. Nothing can follow u64::MAX (the counter below
        // would overflow), so it is dropped as bogus before it can become the window's start.
        if seq == u64::MAX {
            metrics::DROPS.with_label_values(&["twilio_late"]).inc();
            return Vec::new();
        }
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            metrics::DROPS.with_label_values(&["twilio_late"]).inc();
            return Vec::new();
        }
        self.held.insert(seq, item);
        let mut out = Vec::new();
        loop {
            let next = self.next.unwrap_or(seq);
            if let Some(item) = self.held.remove(&next) {
                out.push(item);
                self.next = Some(next + 1);
            } else if self.held.len() > REORDER_WINDOW {
                // The missing message is not coming: skip the gap.
                if let Some((&first, _)) = self.held.iter().next() {
                    metrics::DROPS.with_label_values(&["twilio_gap"]).inc();
                    self.next = Some(first);
                }
            } else {
                break;
            }
        }
        out
    }

    /// Everything still held, in order (at `stop`).
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held).into_values().collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct TwilioQuery {
    #[serde(flatten)]
    pub creds: Credentials,
}

pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TwilioQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(HARD_MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(HARD_MAX_FRAME_BYTES);
    let creds = query.into_inner().creds;
    actix_web::rt::spawn(async move {
        let mut conn = TwilioConnection {
            state: state.into_inner(),
            session,
            creds,
            call: None,
            reorder: Reorder::default(),
            stopped_until: None,
        };
        conn.run(stream).await;
    });
    Ok(response)
}

struct TrackFeed {
    source: SourceId,
    /// Next expected timestamp (ms since stream start).
    next_ts: Option<u64>,
}

struct LiveCall {
    addr: actix::Addr<CallActor>,
    feeds: HashMap<Track, TrackFeed>,
    events: broadcast::Receiver<Arc<str>>,
}

struct TwilioConnection {
    state: Arc<AppState>,
    session: Session,
    creds: Credentials,
    call: Option<LiveCall>,
    reorder: Reorder<TwilioMessage>,
    stopped_until: Option<tokio::time::Instant>,
}

impl TwilioConnection {
    async fn run(&mut self, mut stream: actix_ws::AggregatedMessageStream) {
        let mut limiter = RateLimiter::new(self.state.config.limits.max_messages_per_sec);
        let mut shutdown = self.state.shutdown.subscribe();
        let mut told_shutdown = false;
        loop {
            let until = self.stopped_until;
            let grace = async {
                match until {
                    Some(u) => tokio::time::sleep_until(u).await,
                    None => std::future::pending().await,
                }
            };
            let flow = if let Some(call) = &mut self.call {
                tokio::select! {
                    biased;
                    ev = call.events.recv() => forward(&mut self.session, ev).await,
                    msg = stream.recv() => self.on_message(msg, &mut limiter).await,
                    _ = shutdown.changed(), if !told_shutdown => {
                        told_shutdown = true;
                        self.on_shutdown().await
                    }
                    _ = grace => Flow::Close,
                }
            } else {
                tokio::select! {
                    msg = stream.recv() => self.on_message(msg, &mut limiter).await,
                    _ = shutdown.changed(), if !told_shutdown => {
                        told_shutdown = true;
                        Flow::Close
                    }
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        self.detach_all().await;
        let _ = self.session.clone().close(None).await;
    }

    /// The server is draining: say so, flush this stream's tracks, keep delivering their finals.
    async fn on_shutdown(&mut self) -> Flow {
        let _ = self
            .session
            .text(crate::hub::warning_json(
                Code::ShuttingDown,
                "server is shutting down; in-flight utterances are being finished",
            ))
            .await;
        self.detach_all().await;
        self.stopped_until = Some(tokio::time::Instant::now() + AFTER_STOP_GRACE);
        Flow::Continue
    }

    async fn error(&mut self, code: Code, message: &str) -> Flow {
        send_error(&mut self.session, code, message).await
    }

    async fn on_message(
        &mut self,
        msg: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
        limiter: &mut RateLimiter,
    ) -> Flow {
        let text = match msg {
            None => return Flow::Close,
            Some(Err(e)) => return protocol_error(&mut self.session, e).await,
            Some(Ok(AggregatedMessage::Text(t))) => t,
            Some(Ok(AggregatedMessage::Binary(_))) => {
                return self
                    .error(Code::BadMessage, "Twilio streams send JSON text messages")
                    .await
            }
            Some(Ok(AggregatedMessage::Ping(p))) => {
                return match self.session.pong(&p).await {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Close,
                }
            }
            Some(Ok(AggregatedMessage::Pong(_))) => return Flow::Continue,
            Some(Ok(AggregatedMessage::Close(_))) => return Flow::Close,
        };
        match limiter.admit(Instant::now()) {
            Admit::Yes => {}
            Admit::Drop => return Flow::Continue,
            Admit::DropAndTell => {
                return self
                    .error(
                        Code::RateLimited,
                        "message rate limit exceeded; excess dropped",
                    )
                    .await
            }
        }
        if text.len() > self.state.config.limits.max_text_bytes {
            return self.error(Code::MessageTooLarge, "message too large").await;
        }
        let message: TwilioMessage = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .error(Code::BadMessage, &format!("invalid Twilio message: {e}"))
                    .await
            }
        };
        let ready = match message.sequence() {
            Some(seq) => self.reorder.push(seq, message),
            None => vec![message],
        };
        for message in ready {
            if let Flow::Close = self.handle(message).await {
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    async fn handle(&mut self, message: TwilioMessage) -> Flow {
        match message {
            TwilioMessage::Connected { .. } => Flow::Continue,
            TwilioMessage::Start { start, .. } => self.on_start(start).await,
            TwilioMessage::Media { media, .. } => self.on_media(media).await,
            // DTMF and marks carry nothing the coach uses today; accepted so Twilio is happy.
            TwilioMessage::Dtmf { .. } | TwilioMessage::Mark { .. } => Flow::Continue,
            TwilioMessage::Stop { .. } => {
                for held in self.reorder.drain() {
                    if let TwilioMessage::Media { media, .. } = held {
                        self.on_media(media).await;
                    }
                }
                self.detach_all().await;
                self.stopped_until = Some(tokio::time::Instant::now() + AFTER_STOP_GRACE);
                Flow::Continue
            }
        }
    }

    async fn on_start(&mut self, start: StartInfo) -> Flow {
        if self.call.is_some() {
            return self.error(Code::BadStart, "stream already started").await;
        }
        let fmt = &start.media_format;
        if fmt.encoding != "audio/x-mulaw" || fmt.sample_rate != TWILIO_RATE || fmt.channels != 1 {
            return self
                .error(
                    Code::UnsupportedEncoding,
                    &format!(
                        "expected audio/x-mulaw 8000 Hz mono, got {} {} Hz {} ch",
                        fmt.encoding, fmt.sample_rate, fmt.channels
                    ),
                )
                .await;
        }
        let params = &start.custom_parameters;
        let presented = self
            .creds
            .token
            .clone()
            .or_else(|| self.creds.key.clone())
            .or_else(|| params.get("token").cloned())
            .or_else(|| params.get("key").cloned());
        let caller = match authenticate_presented(&self.state, presented.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.error(Code::Unauthorized, &e.to_string()).await;
                return Flow::Close;
            }
        };
        let agent_id = match (params.get("agent_id"), &caller) {
            (Some(a), _) => a.clone(),
            (None, IngestPrincipal::User(p)) => p.sub.clone(),
            (None, IngestPrincipal::Key(_)) => {
                return self
                    .error(Code::BadStart, "customParameters.agent_id is required")
                    .await
            }
        };
        let team = call_team(&caller, params.get("team").map(String::as_str));
        if !may_stream_for(&caller, &agent_id, team.as_deref()) {
            return self
                .error(
                    Code::Forbidden,
                    "this credential may not stream for that agent",
                )
                .await;
        }
        let tracks: Vec<Track> = if start.tracks.is_empty() {
            vec![Track::Customer]
        } else {
            let mut t = Vec::new();
            for name in &start.tracks {
                match track_of(name) {
                    Some(track) if !t.contains(&track) => t.push(track),
                    Some(_) => {}
                    None => {
                        return self
                            .error(Code::BadChannels, &format!("unknown track `{name}`"))
                            .await
                    }
                }
            }
            t
        };
        let call_id = params
            .get("call_id")
            .cloned()
            .unwrap_or_else(|| start.call_sid.clone());
        let spec = CallSpec {
            call_id: call_id.clone(),
            tenant: caller.tenant().to_owned(),
            agent_id,
            lead_id: params.get("lead_id").cloned(),
            team,
        };
        let addr = match start_or_join_call(&self.state, spec) {
            Ok(a) => a,
            Err((code, msg)) => return self.error(code, &msg).await,
        };
        let Some(events) = self.state.hub.subscribe_call(&call_id) else {
            return self.error(Code::Internal, "call vanished").await;
        };
        let mut feeds = HashMap::new();
        for track in tracks {
            let source = SourceId(
                self.state
                    .next_source
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            );
            let attached = addr
                .send(AttachSource {
                    source,
                    encoding: Encoding::Mulaw,
                    sample_rate: TWILIO_RATE,
                    tracks: vec![track],
                })
                .await;
            match attached {
                Ok(Ok(())) => {
                    feeds.insert(
                        track,
                        TrackFeed {
                            source,
                            next_ts: None,
                        },
                    );
                }
                Ok(Err(e)) => return self.error(e.code(), &e.to_string()).await,
                Err(_) => return self.error(Code::Internal, "call is not available").await,
            }
        }
        self.call = Some(LiveCall {
            addr,
            feeds,
            events,
        });
        Flow::Continue
    }

    async fn on_media(&mut self, media: Media) -> Flow {
        let Some(call) = &mut self.call else {
            return self.error(Code::NotStarted, "media before start").await;
        };
        if self.stopped_until.is_some() {
            return self
                .error(Code::AfterStop, "media after stop is ignored")
                .await;
        }
        let Some(track) = track_of(&media.track) else {
            return self
                .error(
                    Code::BadMessage,
                    &format!("unknown track `{}`", media.track),
                )
                .await;
        };
        let Some(feed) = call.feeds.get_mut(&track) else {
            return self
                .error(
                    Code::BadMessage,
                    &format!("track `{}` was not announced in start", media.track),
                )
                .await;
        };
        let payload =
            match base64::engine::general_purpose::STANDARD.decode(media.payload.as_bytes()) {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => {
                    return self
                        .error(Code::MalformedFrame, "empty media payload")
                        .await
                }
                Err(e) => {
                    return self
                        .error(Code::MalformedFrame, &format!("payload is not base64: {e}"))
                        .await
                }
            };
        if payload.len() > self.state.config.limits.max_frame_bytes {
            return self
                .error(Code::FrameTooLarge, "media payload too large")
                .await;
        }
        let mut bytes = Vec::new();
        if let Some(ts) = media
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<u64>().ok())
        {
            if let Some(next) = feed.next_ts {
                if ts > next.saturating_add(GAP_TOLERANCE_MS) {
                    let gap_ms = (ts - next).min(MAX_GAP_FILL_MS);
                    bytes.resize(
                        (gap_ms * u64::from(TWILIO_RATE) / 1000) as usize,
                        MULAW_SILENCE,
                    );
                    metrics::DROPS
                        .with_label_values(&["twilio_gap_filled"])
                        .inc();
                }
            }
            let dur_ms = payload.len() as u64 * 1000 / u64::from(TWILIO_RATE);
            // Saturating: the timestamp is the client's word and may be near u64::MAX.
            feed.next_ts = Some(ts.max(feed.next_ts.unwrap_or(0)).saturating_add(dur_ms));
        }
        bytes.extend_from_slice(&payload);
        if call
            .addr
            .try_send(Audio {
                source: feed.source,
                bytes: bytes.into(),
            })
            .is_err()
        {
            metrics::DROPS.with_label_values(&["call_mailbox"]).inc();
        }
        Flow::Continue
    }

    async fn detach_all(&mut self) {
        if let Some(call) = &mut self.call {
            for (_, feed) in call.feeds.drain() {
                let _ = call
                    .addr
                    .send(DetachSource {
                        source: feed.source,
                    })
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_twilio_sends() {
        let start = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"agent_id":"a1","lead_id":"l1"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;
        let TwilioMessage::Start { start, .. } = serde_json::from_str(start).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(start.call_sid, "CA1");
        assert_eq!(start.custom_parameters["agent_id"], "a1");
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"2","timestamp":"5","payload":"/w=="},"streamSid":"MZ1"}"#;
        let msg: TwilioMessage = serde_json::from_str(media).unwrap();
        assert_eq!(msg.sequence(), Some(3));
        let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
        assert!(matches!(
            serde_json::from_str(dtmf).unwrap(),
            TwilioMessage::Dtmf { .. }
        ));
        assert_eq!(track_of("inbound"), Some(Track::Customer));
        assert_eq!(track_of("outbound"), Some(Track::Agent));
    }

    #[test]
    fn reorder_restores_sequence_and_tolerates_gaps() {
        let mut r = Reorder::default();
        assert_eq!(r.push(1, 1), vec![1]);
        assert!(r.push(3, 3).is_empty());
        assert_eq!(r.push(2, 2), vec![2, 3]);
        assert!(r.push(2, 2).is_empty(), "late duplicate dropped");
        // 4 never arrives: after the window fills, delivery resumes past the gap.
        let mut out = Vec::new();
        for s in 5..5 + REORDER_WINDOW as u64 + 1 {
            out.extend(r.push(s, s));
        }
        assert_eq!(out.first(), Some(&5));
        assert!(out.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn reorder_survives_the_largest_sequence_numbers() {
        // u64::MAX used to overflow `next + 1` (fuzz target `twilio_reorder` drives this).
        let mut r = Reorder::default();
        assert!(r.push(u64::MAX, 0).is_empty());
        assert_eq!(r.push(u64::MAX - 1, 1), vec![1]);
        assert!(r.push(u64::MAX, 2).is_empty());
        assert!(r.push(u64::MAX - 1, 3).is_empty());
        assert_eq!(r.push(1, 4), Vec::<u64>::new());
    }
}
