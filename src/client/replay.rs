//! One softphone: stream a recording to the server in 20 ms frames over the native or the
//! Twilio protocol and record every event the server sends back with its arrival time.
//!
//! Frames are prepared once ([`Prepared`], shareable between many simultaneous calls) and then
//! streamed by [`replay`]. With `realtime`, frame `i` (audio `[20 i, 20 i + 20)` ms) is due at
//! `t0 + (i + 1) × 20 ms / speed`: when a live softphone would have captured its last sample,
//! so measured latencies include the 20 ms packetisation a real call has. The deadline comes
//! from the index, not from the previous send, so a late frame is followed by back-to-back
//! frames until the stream is on schedule again and no drift accumulates.
//!
//! Arrival times (`t_ms`) count from `t0`, which in real time is audio time 0: an event that
//! arrives at `t_ms` about an utterance that ended at audio time `end_ms` came `t_ms - end_ms`
//! after the speech ended.

use super::audio::SourceAudio;
use super::twilio::{self, StreamIds, TwilioTrack, TWILIO_SAMPLE_RATE};
use super::ClientError;
use crate::actors::audio::pcm::{self, Encoding};
use crate::actors::event::{CallEvent, Track};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Audio per frame: what Twilio sends and what softphones commonly packetise (RTP ptime 20).
pub const FRAME_MS: u64 = 20;

/// Rates the native protocol accepts (CONTRACTS.md); other files are resampled to 16 kHz.
const NATIVE_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Which wire protocol the softphone speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `/v1/calls/{call_id}/stream`: JSON `start`, binary pcm_s16le frames, `stop`.
    Native,
    /// `/v1/twilio/stream`: Twilio Media Streams JSON, μ-law 8 kHz, one message per track.
    Twilio,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Native => "native",
            Protocol::Twilio => "twilio",
        })
    }
}

/// Which channel of the recording is which speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackLayout {
    /// In a stereo recording, the agent's channel (the other is the customer).
    pub agent_channel: usize,
    /// What a mono recording carries (`mixed` unless told otherwise).
    pub mono_track: Track,
}

impl Default for TrackLayout {
    fn default() -> Self {
        TrackLayout {
            agent_channel: 0,
            mono_track: Track::Mixed,
        }
    }
}

/// Every frame of one recording, encoded for one protocol, ready to stream any number of times.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub protocol: Protocol,
    /// Audio length in milliseconds.
    pub audio_ms: u64,
    frames: Frames,
}

#[derive(Debug, Clone)]
enum Frames {
    Native {
        sample_rate: u32,
        /// Track of each interleaved channel, in channel order.
        tracks: Vec<Track>,
        frames: Vec<Vec<u8>>,
    },
    Twilio {
        /// Base64 μ-law payload per 20 ms, per Twilio track (same length for every track).
        tracks: Vec<(TwilioTrack, Vec<String>)>,
    },
}

impl Prepared {
    /// Encodes `audio` into 20 ms frames for `protocol`.
    pub fn new(
        audio: &SourceAudio,
        protocol: Protocol,
        layout: TrackLayout,
    ) -> Result<Self, ClientError> {
        let n_ch = audio.channels.len();
        if n_ch == 2 && layout.agent_channel > 1 {
            return Err(ClientError::NoSuchChannel {
                channel: layout.agent_channel,
                channels: n_ch,
            });
        }
        let audio_ms = audio.duration_ms();
        let frames = match protocol {
            Protocol::Native => {
                let audio = if NATIVE_RATES.contains(&audio.rate) {
                    std::borrow::Cow::Borrowed(audio)
                } else {
                    std::borrow::Cow::Owned(audio.resampled(16_000)?)
                };
                let per_frame = (u64::from(audio.rate) * FRAME_MS / 1000) as usize;
                let tracks = if n_ch == 1 {
                    vec![layout.mono_track]
                } else if layout.agent_channel == 0 {
                    vec![Track::Agent, Track::Customer]
                } else {
                    vec![Track::Customer, Track::Agent]
                };
                let mut frames = Vec::with_capacity(audio.len().div_ceil(per_frame));
                let mut start = 0;
                while start < audio.len() {
                    let end = (start + per_frame).min(audio.len());
                    let chans: Vec<&[f32]> =
                        audio.channels.iter().map(|c| &c[start..end]).collect();
                    let mut bytes = Vec::with_capacity((end - start) * n_ch * 2);
                    pcm::encode_interleaved(Encoding::PcmS16le, &chans, &mut bytes);
                    frames.push(bytes);
                    start = end;
                }
                Frames::Native {
                    sample_rate: audio.rate,
                    tracks,
                    frames,
                }
            }
            Protocol::Twilio => {
                let audio = audio.resampled(TWILIO_SAMPLE_RATE)?;
                let per_frame = (TWILIO_SAMPLE_RATE as u64 * FRAME_MS / 1000) as usize;
                let twilio_track = |t: Track| match t {
                    Track::Agent => TwilioTrack::Outbound,
                    Track::Customer | Track::Mixed => TwilioTrack::Inbound,
                };
                let mapping: Vec<(usize, TwilioTrack)> = if n_ch == 1 {
                    vec![(0, twilio_track(layout.mono_track))]
                } else {
                    // Twilio lists inbound first in `tracks` and in each 20 ms pair of messages.
                    vec![
                        (1 - layout.agent_channel, TwilioTrack::Inbound),
                        (layout.agent_channel, TwilioTrack::Outbound),
                    ]
                };
                let tracks = mapping
                    .into_iter()
                    .map(|(ch, track)| {
                        let payloads = audio.channels[ch]
                            .chunks(per_frame)
                            .map(|chunk| {
                                // Twilio's frames are always 160 bytes: pad the last with silence.
                                let mut frame = chunk.to_vec();
                                frame.resize(per_frame, 0.0);
                                twilio::encode_payload(&frame)
                            })
                            .collect();
                        (track, payloads)
                    })
                    .collect();
                Frames::Twilio { tracks }
            }
        };
        Ok(Prepared {
            protocol,
            audio_ms,
            frames,
        })
    }

    /// Loads a recording and prepares it.
    pub fn from_file(
        path: &std::path::Path,
        protocol: Protocol,
        layout: TrackLayout,
    ) -> Result<Self, ClientError> {
        Prepared::new(&super::audio::load(path)?, protocol, layout)
    }

    /// Number of 20 ms steps the stream takes.
    pub fn frame_count(&self) -> usize {
        match &self.frames {
            Frames::Native { frames, .. } => frames.len(),
            Frames::Twilio { tracks } => tracks.first().map_or(0, |(_, p)| p.len()),
        }
    }
}

/// How to reach the server and how to pace the stream.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// `ws://host:port` (the protocol's path is added) or a full `ws://host:port/path` URL.
    pub url: String,
    /// Native protocol: the `{call_id}` of the stream path.
    pub call_id: String,
    /// JWT: sent as `Authorization: Bearer`, as `?token=` on native and overlay URLs, and as
    /// the `token` custom parameter on Twilio (whose `<Stream>` URLs cannot carry a query).
    pub token: Option<String>,
    pub lead_id: Option<String>,
    pub agent_id: Option<String>,
    /// Pace frames in real time (× `speed`); otherwise send as fast as the socket takes them.
    pub realtime: bool,
    pub speed: f64,
    /// Also watch the agent overlay (`/v1/agents/{agent_id}/hints`) and record its messages.
    pub overlay: bool,
    pub connect_timeout: Duration,
    /// Native: how long to wait for `ready` after `start`.
    pub ready_timeout: Duration,
    /// After `stop`: how long to wait for `ended` or the server closing the socket.
    pub drain_timeout: Duration,
    /// Keep the call connected this long before the first frame, sending nothing: an idle
    /// call (on hold, ringing) as the server sees it.
    pub hold: Duration,
}

impl ReplayOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ReplayOptions {
            url: url.into(),
            call_id: format!("replay-{}", uuid::Uuid::new_v4().simple()),
            token: None,
            lead_id: None,
            agent_id: None,
            realtime: true,
            speed: 1.0,
            overlay: false,
            // Local servers answer in milliseconds; 10 s covers a loaded box accepting hundreds.
            connect_timeout: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(10),
            // The last utterance's final needs one transcription after `stop`: seconds at most
            // with tiny.en, more when a load test has queued work; 30 s bounds a wedged server.
            drain_timeout: Duration::from_secs(30),
            hold: Duration::ZERO,
        }
    }
}

/// Which socket an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Stream,
    Overlay,
}

/// One message from the server, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// Milliseconds since audio time 0 of the stream (20 ms before the first frame is sent in
    /// real time; negative: before the stream started, e.g. `ready`).
    pub t_ms: i64,
    pub source: Source,
    /// The message as JSON (a non-JSON text is kept as `{"type":"_text","text":…}`).
    pub json: Value,
}

impl TimedEvent {
    /// The message's `type` (native, overlay) or `event` (Twilio-style) field.
    pub fn kind(&self) -> &str {
        self.json
            .get("type")
            .or_else(|| self.json.get("event"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The message as a [`CallEvent`], when it is one.
    pub fn call_event(&self) -> Option<CallEvent> {
        serde_json::from_value(self.json.clone()).ok()
    }

    /// One JSON line: the message with `t_ms` (and `source` for overlay messages) added first.
    pub fn to_line(&self) -> String {
        let body = self.json.to_string();
        let prefix = match self.source {
            Source::Stream => format!("{{\"t_ms\":{}", self.t_ms),
            Source::Overlay => format!("{{\"t_ms\":{},\"source\":\"overlay\"", self.t_ms),
        };
        match body.strip_prefix('{') {
            Some("}") => format!("{prefix}}}"),
            Some(rest) => format!("{prefix},{rest}"),
            None => format!("{prefix},\"message\":{body}}}"),
        }
    }
}

/// How the stream ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// The server sent `ended`.
    Ended { reason: String },
    /// The server closed the socket (with its close code, if any).
    Closed { code: Option<u16>, reason: String },
    /// The socket failed.
    Failed { error: String },
    /// Neither `ended` nor a close within the drain timeout after `stop`.
    DrainTimeout,
    /// Native: the server answered `start` with an `error` instead of `ready`.
    Refused { code: String, message: String },
}

/// What one replay saw.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub events: Vec<TimedEvent>,
    /// 20 ms steps sent (a Twilio step is one message per track).
    pub frames_sent: usize,
    pub stopped: bool,
    pub end: End,
    /// Real-time pacing: steps sent more than one frame late, and the worst lateness — the
    /// client's own health (a client too loaded to keep time makes latencies meaningless).
    pub late_frames: usize,
    pub max_lateness_ms: u64,
    /// From the connect call to the socket being open.
    pub connect_ms: u64,
    /// From audio time 0 to the end.
    pub elapsed_ms: u64,
}

impl ReplayOutcome {
    pub fn call_events(&self) -> impl Iterator<Item = (i64, CallEvent)> + '_ {
        self.events
            .iter()
            .filter(|e| e.source == Source::Stream)
            .filter_map(|e| e.call_event().map(|c| (e.t_ms, c)))
    }
}

/// Streams `prepared` to the server and records what comes back; `on_event` sees each
/// message as it arrives (the CLI prints it). Socket trouble after the connection is open is
/// not an `Err`: it ends the replay with [`End::Failed`]/[`End::Closed`] and keeps the events.
pub async fn replay<F>(
    prepared: &Prepared,
    opts: &ReplayOptions,
    mut on_event: F,
) -> Result<ReplayOutcome, ClientError>
where
    F: FnMut(&TimedEvent),
{
    let connect_started = Instant::now();
    let mut ws = connect(&stream_url(prepared.protocol, opts)?, opts).await?;
    let mut overlay = match (opts.overlay, &opts.agent_id) {
        (true, Some(agent)) => Some(connect(&overlay_url(agent, opts)?, opts).await?),
        (true, None) => {
            return Err(ClientError::BadUrl {
                url: opts.url.clone(),
                reason: "watching the overlay needs an agent id".into(),
            })
        }
        (false, _) => None,
    };
    let connect_ms = connect_started.elapsed().as_millis() as u64;

    let mut rec = Recorder {
        t0: None,
        pending: Vec::new(),
        events: Vec::new(),
    };
    let mut out = ReplayOutcome {
        events: Vec::new(),
        frames_sent: 0,
        stopped: false,
        end: End::DrainTimeout,
        late_frames: 0,
        max_lateness_ms: 0,
        connect_ms,
        elapsed_ms: 0,
    };
    let ids = StreamIds::random();
    let mut seq = 0u64; // Twilio sequenceNumber of the last message sent

    // Opening messages.
    let opened: Result<(), ClientError> = async {
        match &prepared.frames {
            Frames::Native {
                sample_rate,
                tracks,
                ..
            } => {
                let mut start = Map::new();
                start.insert("type".into(), "start".into());
                start.insert("encoding".into(), Encoding::PcmS16le.as_str().into());
                start.insert("sample_rate".into(), (*sample_rate).into());
                start.insert("channels".into(), tracks.len().into());
                start.insert(
                    "tracks".into(),
                    tracks.iter().map(|t| Value::from(t.as_str())).collect(),
                );
                if let Some(l) = &opts.lead_id {
                    start.insert("lead_id".into(), l.clone().into());
                }
                if let Some(a) = &opts.agent_id {
                    start.insert("agent_id".into(), a.clone().into());
                }
                ws.send(Message::Text(Value::Object(start).to_string()))
                    .await?;
            }
            Frames::Twilio { tracks } => {
                let mut params = Map::new();
                for (k, v) in [
                    ("lead_id", &opts.lead_id),
                    ("agent_id", &opts.agent_id),
                    ("token", &opts.token),
                ] {
                    if let Some(v) = v {
                        params.insert(k.into(), v.clone().into());
                    }
                }
                params.insert("call_id".into(), opts.call_id.clone().into());
                ws.send(Message::Text(twilio::connected())).await?;
                seq += 1;
                let names: Vec<TwilioTrack> = tracks.iter().map(|(t, _)| *t).collect();
                ws.send(Message::Text(twilio::start(&ids, seq, &names, &params)))
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = opened {
        out.end = End::Failed {
            error: e.to_string(),
        };
        return Ok(rec.finish(out, &mut on_event));
    }

    // Native: the server answers `start` with `ready` (or an error and a close).
    if let Frames::Native { .. } = prepared.frames {
        let deadline = tokio::time::Instant::now() + opts.ready_timeout;
        loop {
            tokio::select! {
                msg = ws.next() => match rec.take(msg, Source::Stream, &mut on_event) {
                    Step::Event(kind) if kind == "ready" => break,
                    // Refused at the door (too_many_calls, forbidden, ...): no audio follows.
                    Step::Event(kind) if kind == "error" => {
                        let json = rec.pending.last().map(|p| &p.2);
                        let field = |k: &str| json.and_then(|j| j.get(k)).and_then(Value::as_str).unwrap_or_default().to_owned();
                        out.end = End::Refused { code: field("code"), message: field("message") };
                        let _ = ws.close(None).await;
                        return Ok(rec.finish(out, &mut on_event));
                    }
                    Step::Event(_) | Step::Nothing => {}
                    Step::End(end) => { out.end = end; return Ok(rec.finish(out, &mut on_event)); }
                },
                msg = next_overlay(&mut overlay) => { rec.take_overlay(msg, &mut overlay, &mut on_event); }
                _ = tokio::time::sleep_until(deadline) => return Err(ClientError::NoReady(opts.ready_timeout)),
            }
        }
    }

    // Idle: connected, started, silent on the wire.
    if !opts.hold.is_zero() {
        let until = tokio::time::Instant::now() + opts.hold;
        loop {
            tokio::select! {
                msg = ws.next() => if let Step::End(end) = rec.take(msg, Source::Stream, &mut on_event) {
                    out.end = end;
                    return Ok(rec.finish(out, &mut on_event));
                },
                msg = next_overlay(&mut overlay) => { rec.take_overlay(msg, &mut overlay, &mut on_event); }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }

    // Stream the frames.
    let t0 = Instant::now();
    rec.start(t0, &mut on_event);
    let period = Duration::from_secs_f64(FRAME_MS as f64 / 1000.0 / opts.speed.max(0.01));
    let total = prepared.frame_count();
    let mut i = 0usize;
    let mut ended: Option<End> = None;
    while i < total {
        let due = tokio::time::Instant::from_std(t0 + period.mul_f64((i + 1) as f64));
        tokio::select! {
            biased;
            msg = ws.next() => match rec.take(msg, Source::Stream, &mut on_event) {
                Step::End(end) => { ended = Some(end); break; }
                Step::Event(kind) if kind == "ended" => {
                    ended = Some(End::Ended { reason: ended_reason(&rec) });
                    break;
                }
                _ => {}
            },
            msg = next_overlay(&mut overlay) => { rec.take_overlay(msg, &mut overlay, &mut on_event); }
            _ = tokio::time::sleep_until(due), if opts.realtime => {
                let late = Instant::now().saturating_duration_since(due.into_std());
                if late > Duration::from_millis(FRAME_MS) {
                    out.late_frames += 1;
                }
                out.max_lateness_ms = out.max_lateness_ms.max(late.as_millis() as u64);
                if let Err(e) = send_step(&mut ws, prepared, i, &ids, &mut seq).await {
                    ended = Some(End::Failed { error: e.to_string() });
                    break;
                }
                i += 1;
                out.frames_sent = i;
            }
            _ = std::future::ready(()), if !opts.realtime => {
                if let Err(e) = send_step(&mut ws, prepared, i, &ids, &mut seq).await {
                    ended = Some(End::Failed { error: e.to_string() });
                    break;
                }
                i += 1;
                out.frames_sent = i;
            }
        }
    }

    // Stop, then wait for `ended` or the close.
    if ended.is_none() {
        let stop = match prepared.frames {
            Frames::Native { .. } => r#"{"type":"stop"}"#.to_string(),
            Frames::Twilio { .. } => {
                seq += 1;
                twilio::stop(&ids, seq)
            }
        };
        match ws.send(Message::Text(stop)).await {
            Ok(()) => out.stopped = true,
            Err(e) => {
                ended = Some(End::Failed {
                    error: e.to_string(),
                })
            }
        }
        let deadline = tokio::time::Instant::now() + opts.drain_timeout;
        while ended.is_none() {
            tokio::select! {
                msg = ws.next() => match rec.take(msg, Source::Stream, &mut on_event) {
                    Step::End(end) => ended = Some(end),
                    Step::Event(kind) if kind == "ended" => ended = Some(End::Ended { reason: ended_reason(&rec) }),
                    _ => {}
                },
                msg = next_overlay(&mut overlay) => { rec.take_overlay(msg, &mut overlay, &mut on_event); }
                _ = tokio::time::sleep_until(deadline) => ended = Some(End::DrainTimeout),
            }
        }
    }
    out.elapsed_ms = t0.elapsed().as_millis() as u64;
    out.end = ended.unwrap_or(End::DrainTimeout);
    // A polite close; the server may already be gone, which is fine.
    let _ = ws.close(None).await;
    if let Some(o) = overlay.as_mut() {
        let _ = o.close(None).await;
    }
    Ok(rec.finish(out, &mut on_event))
}

/// Sends the 20 ms step `i`: one binary frame (native) or one `media` per track (Twilio).
async fn send_step(
    ws: &mut Ws,
    prepared: &Prepared,
    i: usize,
    ids: &StreamIds,
    seq: &mut u64,
) -> Result<(), ClientError> {
    match &prepared.frames {
        Frames::Native { frames, .. } => ws.send(Message::Binary(frames[i].clone())).await?,
        Frames::Twilio { tracks } => {
            for (track, payloads) in tracks {
                *seq += 1;
                let chunk = i as u64 + 1;
                let msg =
                    twilio::media(ids, *seq, *track, chunk, i as u64 * FRAME_MS, &payloads[i]);
                ws.feed(Message::Text(msg)).await?;
            }
            ws.flush().await?;
        }
    }
    Ok(())
}

enum Step {
    Event(String),
    Nothing,
    End(End),
}

struct Recorder {
    t0: Option<Instant>,
    /// Messages that arrived before `t0` (e.g. `ready`), emitted once `t0` is known.
    pending: Vec<(Instant, Source, Value)>,
    events: Vec<TimedEvent>,
}

impl Recorder {
    fn take<F: FnMut(&TimedEvent)>(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        source: Source,
        on_event: &mut F,
    ) -> Step {
        let now = Instant::now();
        let json = match msg {
            None => {
                return Step::End(End::Closed {
                    code: None,
                    reason: "connection closed".into(),
                })
            }
            Some(Err(e)) => {
                return Step::End(End::Failed {
                    error: e.to_string(),
                })
            }
            Some(Ok(Message::Close(frame))) => {
                return Step::End(End::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.into_owned()).unwrap_or_default(),
                })
            }
            Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|_| serde_json::json!({"type": "_text", "text": text})),
            Some(Ok(_)) => return Step::Nothing, // pings are answered by tungstenite; binary is not ours
        };
        let kind = json
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match self.t0 {
            None => self.pending.push((now, source, json)),
            Some(t0) => {
                let ev = TimedEvent {
                    t_ms: signed_ms(now, t0),
                    source,
                    json,
                };
                on_event(&ev);
                self.events.push(ev);
            }
        }
        Step::Event(kind)
    }

    /// An overlay message; a closed overlay is simply no longer watched.
    fn take_overlay<F: FnMut(&TimedEvent)>(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        overlay: &mut Option<Ws>,
        on_event: &mut F,
    ) {
        if let Step::End(_) = self.take(msg, Source::Overlay, on_event) {
            *overlay = None;
        }
    }

    fn start<F: FnMut(&TimedEvent)>(&mut self, t0: Instant, on_event: &mut F) {
        self.t0 = Some(t0);
        for (at, source, json) in std::mem::take(&mut self.pending) {
            let ev = TimedEvent {
                t_ms: signed_ms(at, t0),
                source,
                json,
            };
            on_event(&ev);
            self.events.push(ev);
        }
    }

    fn finish<F: FnMut(&TimedEvent)>(
        mut self,
        mut out: ReplayOutcome,
        on_event: &mut F,
    ) -> ReplayOutcome {
        if self.t0.is_none() {
            // Never started streaming: time the early messages from the last one received.
            let t0 = self.pending.last().map_or_else(Instant::now, |p| p.0);
            self.start(t0, on_event);
        }
        out.events = self.events;
        out
    }
}

fn ended_reason(rec: &Recorder) -> String {
    rec.events
        .last()
        .and_then(|e| e.json.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn signed_ms(at: Instant, t0: Instant) -> i64 {
    if at >= t0 {
        at.duration_since(t0).as_millis() as i64
    } else {
        -(t0.duration_since(at).as_millis() as i64)
    }
}

async fn next_overlay(
    overlay: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match overlay {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn connect(url: &str, opts: &ReplayOptions) -> Result<Ws, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let mut request = url.into_client_request().map_err(|e| bad(e.to_string()))?;
    if let Some(token) = &opts.token {
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| bad(e.to_string()))?;
        request.headers_mut().insert("authorization", value);
    }
    // Nagle off: 20 ms frames must leave when written, not when the next one joins them.
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    match tokio::time::timeout(opts.connect_timeout, connecting).await {
        Err(_) => Err(ClientError::ConnectTimeout {
            url: url.to_owned(),
        }),
        Ok(Err(source)) => Err(ClientError::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        }),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

/// The ingest URL: the protocol's path under a bare `ws://host:port`, or the URL as given when
/// it already has a path; the native protocol gets `track` (mono) and `token` query parameters.
pub fn stream_url(protocol: Protocol, opts: &ReplayOptions) -> Result<String, ClientError> {
    let (base, has_path) = split_base(&opts.url)?;
    let mut url = if has_path {
        opts.url.clone()
    } else {
        match protocol {
            Protocol::Native => {
                format!("{base}/v1/calls/{}/stream", encode_component(&opts.call_id))
            }
            Protocol::Twilio => format!("{base}/v1/twilio/stream"),
        }
    };
    if protocol == Protocol::Native {
        if let Some(token) = &opts.token {
            url = with_query(&url, "token", token);
        }
    }
    Ok(url)
}

/// The agent overlay URL on the same server.
pub fn overlay_url(agent_id: &str, opts: &ReplayOptions) -> Result<String, ClientError> {
    let (base, _) = split_base(&opts.url)?;
    let url = format!("{base}/v1/agents/{}/hints", encode_component(agent_id));
    Ok(match &opts.token {
        Some(token) => with_query(&url, "token", token),
        None => url,
    })
}

/// `ws://host:port` of a URL, and whether the URL has a path beyond `/`.
fn split_base(url: &str) -> Result<(String, bool), ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| bad("expected ws:// or wss://"))?;
    let scheme_len = url.len() - rest.len();
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if host_end == 0 {
        return Err(bad("no host"));
    }
    let path = &rest[host_end..];
    let has_path = !(path.is_empty() || path == "/" || path.starts_with('?'));
    Ok((url[..scheme_len + host_end].to_owned(), has_path))
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_component(value))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
