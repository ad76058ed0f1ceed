//! One actor per live call.
//!
//! A [`CallActor`] owns the call's tracks. Each attached *source* (a socket: one stereo stream, or
//! one socket per speaker, or Twilio's two tracks on one socket) feeds it raw frames; per track it
//! decodes, resamples to 16 kHz, runs voice activity and endpointing, and sends each utterance to
//! the transcription pool, then sentiment, then the coach. Everything the call says goes out
//! through one [`CallObserver`], in order; the server fans it out to sockets, dashboards and the
//! store.
//!
//! Failure containment: a panic while processing audio or a transcription result is caught at
//! the handler boundary, drops at most the utterance being built on that track, is counted as a
//! restart, and the call goes on. Transcription trouble (pool busy, down, a worker panic) never
//! ends the call: finals are retried, talk-time coaching keeps working, and the call says so with
//! a `warning`.

use crate::audio::pcm::{self, Encoding};
use crate::audio::resample::StreamResampler;
use crate::coach::{Coach, Playbook};
use crate::event::*;
use crate::metrics;
use crate::scorer::EndCall as EndLead;
use crate::scorer::{CallSignals, ScoringActor, UpdateScore};
use crate::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use crate::sentiment::{Analyze, SentimentActor, Trend};
use crate::transcriber::{CancelToken, JobKind, TranscribeError, Transcriber, Transcription};
use pieces::{Pieces, Settle};

mod pieces;
use actix::prelude::*;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Mailbox of one call. Two tracks at 20 ms frames are 100 messages/s; 256 holds ~2.5 s of audio,
/// enough to ride out a scheduling hiccup while bounding memory per call. Audio is `try_send`;
/// what does not fit is dropped and counted (`callcoach_drops_total{queue="call_mailbox"}`).
pub const CALL_MAILBOX_CAPACITY: usize = 256;

/// How often talk-time rules, pending finals and talk statistics are looked at. 250 ms keeps
/// dead-air and monologue hints within a quarter second of their threshold at negligible cost.
const TICK: Duration = Duration::from_millis(250);

/// Talk statistics go to dashboards once a second: the bar moves smoothly, the socket stays quiet.
const TALK_STATS_EVERY: Duration = Duration::from_secs(1);

/// A final refused as Busy is retried on each tick for this long before it is given up (counted,
/// warned). Five seconds is past the point where the transcript is still coaching-relevant.
const FINAL_RETRY_WINDOW: Duration = Duration::from_secs(5);

/// A final whose worker panicked is retried once: the worker rebuilds its state, and a transient
/// fault should not cost the utterance. A second panic on the same audio means the audio itself
/// triggers it, and retrying again would only repeat the fault.
const FINAL_PANIC_RETRIES: u8 = 1;

/// Consecutive transcription failures that open the circuit, and how long it stays open. Three
/// failures in a row rules out a one-off; ten seconds lets a restarting pool come back without
/// each utterance paying a timeout meanwhile.
const CIRCUIT_FAILURES: u32 = 3;
const CIRCUIT_OPEN_FOR: Duration = Duration::from_secs(10);

/// After the last source detaches, in-flight finals get this long to land before the call ends:
/// the same 20 s a server shutdown waits (`server::SHUTDOWN_DRAIN`), so a node going down
/// finishes what its calls were saying.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

static UTTERANCE_END_TO_FINAL: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_utterance_end_to_final_seconds",
        "From the end of speech (audio clock) to the final transcript leaving the call actor",
    )
});
static UTTERANCE_END_TO_HINT: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_utterance_end_to_hint_seconds",
        "From the end of speech to a hint based on that utterance leaving the call actor",
    )
});
static DECODE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_decode_seconds",
        "Decoding and resampling one audio frame",
    )
});
static SEGMENT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_vad_seconds",
        "Voice activity detection and endpointing of one audio frame",
    )
});
static SENTIMENT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_sentiment_seconds",
        "Sentiment of one final utterance, including the actor round trip",
    )
});
static COACH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_pipeline_coach_seconds",
        "Coach rule evaluation for one utterance",
    )
});
static LIVE_CALLS: LazyLock<IntGauge> =
    LazyLock::new(|| metrics::gauge("callcoach_calls_live", "Live calls on this node"));
static PARTIALS_SHED: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_pipeline_partials_shed_total",
        "Partial re-decodes skipped because the transcription backlog was high",
    )
});
static FINALS_LOST: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_pipeline_finals_untranscribed_total",
        "Utterances that could not be transcribed (pool down or busy past the retry window)",
    )
});
static SPECULATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_call_speculative_decodes_total",
        "Pause offers: pieces decoded while the speaker paused (started), not started because \
         finals were queued (skipped), and finals whose text came from such pieces (used)",
        &["outcome"],
    )
});
static HINTS: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter("callcoach_coach_hints_total", "Hints produced by the coach")
});

/// Who the call is: fixed at creation.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub call_id: String,
    pub tenant: String,
    pub agent_id: String,
    pub lead_id: Option<String>,
    pub team: Option<String>,
}

/// Receives everything a call emits, in order. Implementations must not block: they queue and
/// return (the server's fan-out does `try_send` into bounded channels).
pub trait CallObserver: Send + Sync + 'static {
    fn on_event(&self, call: &CallSpec, event: &CallEvent);
}

/// The long-lived services a call uses. Cheap to clone; addresses stay valid across restarts
/// because the supervisor restarts actors behind the same mailbox.
#[derive(Clone)]
pub struct Pipeline {
    /// `None` when transcription is disabled or the model failed to load.
    pub transcriber: Option<Transcriber>,
    pub sentiment: Addr<SentimentActor>,
    pub scoring: Option<Addr<ScoringActor>>,
    pub playbook: Arc<Playbook>,
    pub segmenter: SegmenterConfig,
    pub max_call: Duration,
}

/// Identifies one socket feeding the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    #[error("track {0} is already fed by another connection")]
    TrackTaken(Track),
    #[error("a stream needs one track per channel (got {tracks} tracks for {channels} channels)")]
    TrackMap { tracks: usize, channels: usize },
    #[error("unsupported sample rate {0} Hz (8000..=48000)")]
    SampleRate(u32),
    #[error("the call has ended")]
    Ended,
}

impl CallError {
    pub fn code(&self) -> Code {
        match self {
            CallError::TrackTaken(_) => Code::Conflict,
            CallError::TrackMap { .. } => Code::BadChannels,
            CallError::SampleRate(_) => Code::BadSampleRate,
            CallError::Ended => Code::AfterStop,
        }
    }
}

/// Attach a socket's audio to the call: its encoding, rate, and which track each channel is.
#[derive(Message)]
#[rtype(result = "Result<(), CallError>")]
pub struct AttachSource {
    pub source: SourceId,
    pub encoding: Encoding,
    pub sample_rate: u32,
    /// Channel `i` carries `tracks[i]`.
    pub tracks: Vec<Track>,
}

/// One frame of interleaved audio from a source, already checked for size and framing by the
/// protocol layer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Audio {
    pub source: SourceId,
    pub bytes: bytes::Bytes,
}

/// The source stopped (a `stop` message or a closed socket). Its tracks are flushed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachSource {
    pub source: SourceId,
}

/// The agent's answer to a hint on the overlay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Feedback {
    pub hint_id: uuid::Uuid,
    pub useful: bool,
}

/// A supervisor's text for the agent's overlay.
#[derive(Message)]
#[rtype(result = "Hint")]
pub struct Whisper {
    pub text: String,
}

/// End the call now (server shutdown, call length limit): flush what is in flight, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndCall {
    pub reason: String,
}

struct Source {
    encoding: Encoding,
    tracks: Vec<Track>,
    /// Per-channel scratch for decoding, reused across frames.
    channels: Vec<Vec<f32>>,
}

/// The utterance being built on a track.
struct OpenUtterance {
    id: UtteranceId,
    revision: u32,
    partial_in_flight: bool,
}

struct TrackState {
    resampler: StreamResampler,
    segmenter: Segmenter,
    resampled: Vec<f32>,
    events: Vec<SegmentEvent>,
    open: Option<OpenUtterance>,
    /// Audio clock of this track in ms (16 kHz samples seen / 16).
    samples_16k: u64,
    /// The open utterance's pieces decoded at its pauses.
    pieces: Pieces,
}

/// Whether a transcript reads as a finished sentence: it ends with `.`, `?` or `!` (not an
/// ellipsis, which Whisper writes for speech that trails off).
fn reads_as_finished(text: &str) -> bool {
    let t = text.trim_end();
    t.ends_with(['.', '?', '!']) && !t.ends_with("...")
}

struct PendingFinal {
    utterance: Utterance,
    first_tried: Instant,
    /// Wall instant the speech ended (for latency metrics).
    speech_end: Instant,
    panics: u8,
    /// Text of the utterance's pieces decoded before the endpoint.
    prefix: String,
    /// Where the audio still to decode starts (`utterance.start_ms` without pieces).
    from_ms: u64,
}

/// A closed utterance whose pieces are still decoding.
struct Closing {
    pending: PendingFinal,
    pieces: Pieces,
}

enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
}

pub struct CallActor {
    spec: CallSpec,
    pipeline: Pipeline,
    observer: Arc<dyn CallObserver>,
    sources: BTreeMap<SourceId, Source>,
    tracks: BTreeMap<Track, TrackState>,
    next_utterance: u32,
    coach: Coach,
    trends: HashMap<Track, Trend>,
    signals: CallSignals,
    pending_finals: VecDeque<PendingFinal>,
    /// Finals submitted to the pool or waiting for their speculative decode.
    finals_in_flight: usize,
    /// Closed utterances waiting for their pieces (counted in `finals_in_flight`).
    closing: Vec<Closing>,
    next_piece: u64,
    circuit: Circuit,
    /// Whether a `warning` has been sent for the current transcription outage / backlog.
    warned_unavailable: bool,
    warned_backlog: bool,
    last_talk_stats: Instant,
    sent_talk_stats: Option<TalkStats>,
    draining_since: Option<Instant>,
    ended: bool,
}

impl CallActor {
    pub fn new(spec: CallSpec, pipeline: Pipeline, observer: Arc<dyn CallObserver>) -> Self {
        let coach = Coach::new(pipeline.playbook.clone());
        CallActor {
            spec,
            pipeline,
            observer,
            sources: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_utterance: 1,
            coach,
            trends: HashMap::new(),
            signals: CallSignals::default(),
            pending_finals: VecDeque::new(),
            finals_in_flight: 0,
            closing: Vec::new(),
            next_piece: 0,
            circuit: Circuit::Closed { failures: 0 },
            warned_unavailable: false,
            warned_backlog: false,
            last_talk_stats: Instant::now(),
            sent_talk_stats: None,
            draining_since: None,
            ended: false,
        }
    }

    pub fn spec(&self) -> &CallSpec {
        &self.spec
    }

    fn emit(&self, event: CallEvent) {
        self.observer.on_event(&self.spec, &event);
    }

    fn emit_hints(&mut self, hints: Vec<Hint>, speech_end: Option<Instant>) {
        for hint in hints {
            self.signals.observe_hint(&hint);
            HINTS.inc();
            if let Some(end) = speech_end {
                UTTERANCE_END_TO_HINT.observe(end.elapsed().as_secs_f64());
            }
            self.emit(CallEvent::Hint(hint));
        }
    }

    /// Audio time of the call: the furthest any track has got.
    fn clock_ms(&self) -> u64 {
        self.tracks
            .values()
            .map(|t| t.samples_16k / 16)
            .max()
            .unwrap_or(0)
    }

    fn transcription_available(&mut self) -> Option<Transcriber> {
        let transcriber = self.pipeline.transcriber.clone()?;
        match self.circuit {
            Circuit::Closed { .. } => Some(transcriber),
            Circuit::Open { until } if Instant::now() >= until => {
                // Half-open: let the next job through; its outcome closes or reopens.
                self.circuit = Circuit::Closed {
                    failures: CIRCUIT_FAILURES - 1,
                };
                Some(transcriber)
            }
            Circuit::Open { .. } => None,
        }
    }

    fn note_transcription_ok(&mut self) {
        self.circuit = Circuit::Closed { failures: 0 };
        if self.warned_unavailable {
            self.warned_unavailable = false;
            self.emit(CallEvent::Warning {
                code: Code::TranscriptionResumed,
                message: "transcription resumed".into(),
            });
        }
    }

    fn note_transcription_failure(&mut self) {
        if let Circuit::Closed { failures } = self.circuit {
            let failures = failures + 1;
            self.circuit = if failures >= CIRCUIT_FAILURES {
                Circuit::Open {
                    until: Instant::now() + CIRCUIT_OPEN_FOR,
                }
            } else {
                Circuit::Closed { failures }
            };
        }
    }

    fn warn_unavailable(&mut self) {
        if !self.warned_unavailable {
            self.warned_unavailable = true;
            self.emit(CallEvent::Warning {
                code: Code::TranscriptionUnavailable,
                message: "transcription is unavailable; talk-time coaching continues".into(),
            });
        }
    }

    /// Decodes one frame and runs it through every track of its source.
    fn process_audio(&mut self, msg: Audio, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let Some(source) = self.sources.get_mut(&msg.source) else {
            return;
        };
        for channel in &mut source.channels {
            channel.clear();
        }
        let n = source.channels.len();
        if let Err(e) =
            pcm::decode_interleaved(source.encoding, &msg.bytes, n, &mut source.channels)
        {
            // The protocol layer checks framing first, so this is a bug or a race; count it.
            metrics::ERRORS
                .with_label_values(&[Code::MalformedFrame.as_str()])
                .inc();
            tracing::debug!(error = %e, "undecodable frame dropped");
            return;
        }
        let tracks = source.tracks.clone();
        let channels = std::mem::take(&mut source.channels);
        let mut decode_time = started.elapsed();
        for (track, samples) in tracks.iter().zip(&channels) {
            let Some(state) = self.tracks.get_mut(track) else {
                continue;
            };
            let t0 = Instant::now();
            state.resampled.clear();
            if let Err(e) = state.resampler.process(samples, &mut state.resampled) {
                tracing::warn!(error = %e, %track, "resampler rejected a frame");
                continue;
            }
            decode_time += t0.elapsed();
            let t1 = Instant::now();
            state.samples_16k += state.resampled.len() as u64;
            state.events.clear();
            let resampled = std::mem::take(&mut state.resampled);
            state.segmenter.push(&resampled, &mut state.events);
            state.resampled = resampled;
            SEGMENT_SECONDS.observe(t1.elapsed().as_secs_f64());
            self.handle_segment_events(*track, ctx);
        }
        if let Some(source) = self.sources.get_mut(&msg.source) {
            source.channels = channels;
        }
        DECODE_SECONDS.observe(decode_time.as_secs_f64());

        if Duration::from_millis(self.clock_ms()) > self.pipeline.max_call {
            self.emit(CallEvent::Error {
                code: Code::CallTooLong,
                message: format!(
                    "call exceeded the maximum length of {} s",
                    self.pipeline.max_call.as_secs()
                ),
            });
            self.begin_end(ctx);
        }
    }

    fn handle_segment_events(&mut self, track: Track, ctx: &mut Context<Self>) {
        let Some(state) = self.tracks.get_mut(&track) else {
            return;
        };
        let events = std::mem::take(&mut state.events);
        let clock_ms = state.samples_16k / 16;
        for event in &events {
            match event {
                SegmentEvent::SpeechStart { at_ms } => {
                    let hints = self.coach.on_voice(track, true, *at_ms);
                    self.emit_hints(hints, None);
                }
                SegmentEvent::SpeechEnd { at_ms } => {
                    let hints = self.coach.on_voice(track, false, *at_ms);
                    self.emit_hints(hints, None);
                }
                SegmentEvent::Partial {
                    samples,
                    start_ms,
                    end_ms,
                } => self.start_partial(track, samples.clone(), *start_ms, *end_ms, ctx),
                SegmentEvent::Pause {
                    samples,
                    start_ms,
                    end_ms,
                } => self.speculate(track, samples.clone(), *start_ms, *end_ms, ctx),
                // The pieces decoded so far stay valid: their audio does not change.
                SegmentEvent::Resume { .. } => {}
                SegmentEvent::Final {
                    samples,
                    start_ms,
                    end_ms,
                    ..
                } => {
                    let id = self.take_utterance_id(track);
                    // Speech ended `clock - end` ms of audio ago; in a real-time stream that is
                    // the same span of wall time.
                    let lag = Duration::from_millis(clock_ms.saturating_sub(*end_ms));
                    let speech_end = Instant::now().checked_sub(lag).unwrap_or_else(Instant::now);
                    let utterance = Utterance {
                        id,
                        track,
                        start_ms: *start_ms,
                        end_ms: *end_ms,
                        samples: samples.clone(),
                    };
                    let pending = PendingFinal {
                        from_ms: utterance.start_ms,
                        utterance,
                        first_tried: Instant::now(),
                        speech_end,
                        panics: 0,
                        prefix: String::new(),
                    };
                    self.final_ready(pending, ctx);
                }
            }
        }
        if let Some(state) = self.tracks.get_mut(&track) {
            state.events = events;
        }
        self.submit_pending_finals(ctx);
    }

    /// Decodes the audio of `track`'s pausing utterance that no piece covers yet (see
    /// [`pieces`]), unless finals are queued.
    fn speculate(
        &mut self,
        track: Track,
        samples: Arc<[f32]>,
        start_ms: u64,
        end_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        if !self.pending_finals.is_empty() {
            return;
        }
        let Some(plan) = self
            .tracks
            .get(&track)
            .and_then(|t| t.pieces.plan(start_ms, end_ms))
        else {
            return;
        };
        let Some(transcriber) = self.transcription_available() else {
            return;
        };
        // A piece is audio the final needs anyway, so it may wait for the job in hand; behind
        // queued finals it would only add a decode's fixed cost to a backlog (the final then
        // decodes the whole rest in one go).
        if transcriber.backlog().queued_finals > 0 {
            SPECULATIONS.with_label_values(&["skipped"]).inc();
            return;
        }
        let cancel = CancelToken::new();
        let piece = pieces::slice(&samples, start_ms, plan.from_ms, plan.to_ms);
        let Ok(reply) = transcriber.submit_with(piece, JobKind::Final, cancel.clone()) else {
            SPECULATIONS.with_label_values(&["skipped"]).inc();
            return;
        };
        SPECULATIONS.with_label_values(&["started"]).inc();
        let seq = self.next_piece;
        self.next_piece += 1;
        if let Some(state) = self.tracks.get_mut(&track) {
            state.pieces.push(plan, seq, cancel);
        }
        ctx.spawn(reply.into_actor(self).map(move |result, act, ctx| {
            let result = result.unwrap_or(Err(TranscribeError::ShuttingDown));
            act.guarded(ctx, "final", |act, ctx| {
                act.piece_done(track, seq, result, ctx)
            });
        }));
    }

    /// A piece finished decoding: it belongs to the open utterance or to one that closed
    /// meanwhile.
    fn piece_done(
        &mut self,
        track: Track,
        seq: u64,
        result: Result<Transcription, TranscribeError>,
        ctx: &mut Context<Self>,
    ) {
        let finished_sentence = matches!(&result, Ok(t) if reads_as_finished(&t.text));
        if let Some(i) = self.closing.iter().position(|c| c.pieces.has(seq)) {
            let mut closing = self.closing.swap_remove(i);
            closing.pieces.finish(seq, result);
            self.finals_in_flight -= 1;
            self.settle_final(closing.pending, closing.pieces, ctx);
            return;
        }
        let Some(state) = self.tracks.get_mut(&track) else {
            return;
        };
        if !state.pieces.finish(seq, result) {
            return; // replaced by a longer piece, or its utterance was dropped
        }
        let last_end = state.pieces.last_if(seq).map(|p| p.end_ms);
        if let Some(end_ms) = last_end.filter(|_| finished_sentence) {
            if state.segmenter.config().close_on_sentence_end {
                // Still silent and the words end a sentence: the endpoint's remaining wait
                // would only delay the final. Voice since the pause keeps it open.
                // The segmenter closes it now, or once the pause is long enough to be a
                // sentence end.
                let mut events = std::mem::take(&mut state.events);
                events.clear();
                state.segmenter.close_early(end_ms, &mut events);
                state.events = events;
                self.handle_segment_events(track, ctx);
            }
        }
    }

    /// A closed utterance: its text from the pieces decoded at its pauses, plus whatever audio
    /// they do not cover, queued for the pool.
    fn final_ready(&mut self, pending: PendingFinal, ctx: &mut Context<Self>) {
        let pieces = self
            .tracks
            .get_mut(&pending.utterance.track)
            .map(|t| std::mem::take(&mut t.pieces))
            .unwrap_or_default();
        if pieces.is_empty() {
            self.pending_finals.push_back(pending);
        } else {
            self.settle_final(pending, pieces, ctx);
        }
    }

    fn settle_final(
        &mut self,
        mut pending: PendingFinal,
        mut pieces: Pieces,
        ctx: &mut Context<Self>,
    ) {
        let (start_ms, end_ms) = (pending.utterance.start_ms, pending.utterance.end_ms);
        match pieces.settle(start_ms, end_ms) {
            Settle::Waiting => {
                self.finals_in_flight += 1;
                self.closing.push(Closing { pending, pieces });
            }
            Settle::Done { text, decode_ms } => {
                SPECULATIONS.with_label_values(&["used"]).inc();
                let transcription = Transcription {
                    no_speech: text.is_empty(),
                    text,
                    segments: Vec::new(),
                    elapsed: Duration::from_millis(decode_ms),
                    audio: Duration::from_millis(end_ms - start_ms),
                    audio_ctx: 0,
                    retried: false,
                };
                self.finish_final(pending, Ok(transcription), ctx);
            }
            Settle::Remainder { prefix, from_ms } => {
                if !prefix.is_empty() {
                    SPECULATIONS.with_label_values(&["used"]).inc();
                }
                pending.prefix = prefix;
                pending.from_ms = from_ms;
                self.pending_finals.push_back(pending);
                self.submit_pending_finals(ctx);
            }
        }
    }

    /// The id of the utterance open on `track`, closing it (the next speech gets a new id).
    fn take_utterance_id(&mut self, track: Track) -> UtteranceId {
        let open = self.tracks.get_mut(&track).and_then(|t| t.open.take());
        match open {
            Some(open) => open.id,
            None => self.new_utterance_id(),
        }
    }

    fn new_utterance_id(&mut self) -> UtteranceId {
        let id = UtteranceId(self.next_utterance);
        self.next_utterance += 1;
        id
    }

    fn start_partial(
        &mut self,
        track: Track,
        samples: Arc<[f32]>,
        start_ms: u64,
        end_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        let Some(transcriber) = self.transcription_available() else {
            return;
        };
        let needs_id = self.tracks.get(&track).is_some_and(|t| t.open.is_none());
        if needs_id {
            let id = self.new_utterance_id();
            if let Some(state) = self.tracks.get_mut(&track) {
                state.open = Some(OpenUtterance {
                    id,
                    revision: 0,
                    partial_in_flight: false,
                });
            }
        }
        let Some(state) = self.tracks.get_mut(&track) else {
            return;
        };
        // A pausing utterance is being decoded already; a preview adds nothing.
        if state.pieces.decoding() {
            return;
        }
        // Only the audio after the pieces is decoded; their text leads the preview.
        let (prefix, from_ms) = state
            .pieces
            .decoded_prefix(start_ms)
            .unwrap_or((String::new(), start_ms));
        if from_ms > start_ms && end_ms.saturating_sub(from_ms) < pieces::MIN_PIECE_MS {
            return; // nothing much new since the last piece
        }
        let samples = pieces::slice(&samples, start_ms, from_ms, end_ms);
        let Some(open) = state.open.as_mut() else {
            return;
        };
        // One partial at a time per track, and none while finals wait: finals come first.
        if open.partial_in_flight || !self.pending_finals.is_empty() {
            PARTIALS_SHED.inc();
            return;
        }

        let receiver = match transcriber.submit(samples, JobKind::Partial) {
            Ok(rx) => rx,
            Err(_) => {
                PARTIALS_SHED.inc();
                // No free worker is ordinary load; finals waiting is a backlog worth saying.
                if transcriber.backlog().queued_finals > 0 {
                    self.warn_backlog();
                }
                return;
            }
        };
        open.partial_in_flight = true;
        let id = open.id;
        ctx.spawn(receiver.into_actor(self).map(move |result, act, _ctx| {
            let Some(open) = act.tracks.get_mut(&track).and_then(|t| t.open.as_mut()) else {
                return; // the final overtook this partial: finals are immutable
            };
            if open.id != id {
                return;
            }
            open.partial_in_flight = false;
            let Ok(Ok(t)) = result else { return };
            if t.text.is_empty() {
                return;
            }
            open.revision += 1;
            let text = pieces::join([prefix.as_str(), t.text.as_str()]);
            let transcript = Transcript {
                utterance_id: id,
                track,
                revision: open.revision,
                text: crate::redact::redact(&text).into_owned(),
                start_ms,
                end_ms,
            };
            let at = act.clock_ms();
            let hints = act.coach.on_partial(&transcript, at);
            act.emit(CallEvent::Partial(transcript));
            act.emit_hints(hints, None);
        }));
    }

    fn warn_backlog(&mut self) {
        if !self.warned_backlog {
            self.warned_backlog = true;
            self.emit(CallEvent::Warning {
                code: Code::Backlog,
                message: "transcription is behind real time; live partials are paused".into(),
            });
        }
    }

    /// Sends waiting finals to the pool, oldest first; gives up on those past the retry window.
    fn submit_pending_finals(&mut self, ctx: &mut Context<Self>) {
        while let Some(pending) = self.pending_finals.pop_front() {
            let Some(transcriber) = self.transcription_available() else {
                // Down: keep the utterance for the retry window, then count it as lost.
                self.warn_unavailable();
                if pending.first_tried.elapsed() > FINAL_RETRY_WINDOW
                    || self.pipeline.transcriber.is_none()
                {
                    FINALS_LOST.inc();
                    continue;
                }
                self.pending_finals.push_front(pending);
                return;
            };
            let u = &pending.utterance;
            let samples = pieces::slice(&u.samples, u.start_ms, pending.from_ms, u.end_ms);
            match transcriber.submit(samples, JobKind::Final) {
                Ok(receiver) => {
                    self.finals_in_flight += 1;
                    ctx.spawn(receiver.into_actor(self).map(move |result, act, ctx| {
                        act.finals_in_flight -= 1;
                        act.note_backlog_cleared();
                        let result = result.unwrap_or(Err(TranscribeError::ShuttingDown));
                        act.guarded(ctx, "final", |act, ctx| {
                            act.finish_final(pending, result, ctx)
                        });
                    }));
                }
                Err(_busy) => {
                    self.warn_backlog();
                    if pending.first_tried.elapsed() > FINAL_RETRY_WINDOW {
                        FINALS_LOST.inc();
                        self.emit(CallEvent::Warning {
                            code: Code::Backlog,
                            message: format!(
                                "utterance {} could not be transcribed in time",
                                pending.utterance.id
                            ),
                        });
                        continue;
                    }
                    self.pending_finals.push_front(pending);
                    return;
                }
            }
        }
    }

    /// A backlog episode is over once nothing waits and nothing is in flight; the next one gets
    /// a new warning (one per episode, not one per shed partial).
    fn note_backlog_cleared(&mut self) {
        if self.pending_finals.is_empty() && self.finals_in_flight == 0 {
            self.warned_backlog = false;
        }
    }

    fn finish_final(
        &mut self,
        mut pending: PendingFinal,
        result: Result<Transcription, TranscribeError>,
        ctx: &mut Context<Self>,
    ) {
        let transcription = match result {
            Ok(t) => {
                self.note_transcription_ok();
                t
            }
            Err(TranscribeError::WorkerPanicked) if pending.panics < FINAL_PANIC_RETRIES => {
                pending.panics += 1;
                self.pending_finals.push_front(pending);
                self.submit_pending_finals(ctx);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, utterance = %pending.utterance.id, "transcription failed");
                self.note_transcription_failure();
                FINALS_LOST.inc();
                return;
            }
        };
        let text = if transcription.no_speech {
            pieces::join([pending.prefix.as_str()])
        } else {
            pieces::join([pending.prefix.as_str(), transcription.text.as_str()])
        };
        if text.is_empty() {
            return;
        }
        let u = &pending.utterance;
        let transcript = Transcript {
            utterance_id: u.id,
            track: u.track,
            revision: 0,
            // PII never leaves the pipeline unredacted: not to sockets, not to the store.
            text: crate::redact::redact(&text).into_owned(),
            start_ms: u.start_ms,
            end_ms: u.end_ms,
        };
        UTTERANCE_END_TO_FINAL.observe(pending.speech_end.elapsed().as_secs_f64());
        tracing::debug!(
            utterance = %u.id,
            audio_ms = u.end_ms - u.start_ms,
            since_speech_end_ms = pending.speech_end.elapsed().as_millis() as u64,
            decode_ms = transcription.elapsed.as_millis() as u64,
            audio_ctx = transcription.audio_ctx,
            "final"
        );
        self.emit(CallEvent::Final(transcript.clone()));

        let speech_end = pending.speech_end;
        let analyze = self.pipeline.sentiment.send(Analyze {
            text: transcript.text.clone(),
        });
        let asked = Instant::now();
        ctx.spawn(analyze.into_actor(self).map(move |score, act, _ctx| {
            SENTIMENT_SECONDS.observe(asked.elapsed().as_secs_f64());
            // A failed sentiment actor (restarting) costs the sentiment, not the hint.
            let score = score.ok();
            if let Some(score) = score {
                let trend = act
                    .trends
                    .entry(transcript.track)
                    .or_default()
                    .push(score.compound);
                act.emit(CallEvent::Sentiment {
                    utterance_id: transcript.utterance_id,
                    track: transcript.track,
                    score,
                    trend,
                });
            }
            let t0 = Instant::now();
            let at = act.clock_ms();
            let hints = act.coach.on_final(&transcript, score, at);
            COACH_SECONDS.observe(t0.elapsed().as_secs_f64());
            act.emit_hints(hints, Some(speech_end));
            if let Some(items) = act.coach.take_checklist_update() {
                act.emit(CallEvent::Checklist { items });
            }
            act.signals.observe_final(&transcript, score);
            act.request_score();
        }));
    }

    fn request_score(&mut self) {
        let (Some(scoring), Some(lead_id)) = (&self.pipeline.scoring, &self.spec.lead_id) else {
            return;
        };
        self.signals.talk = self.coach.talk_stats();
        self.signals.set_elapsed_ms(self.clock_ms());
        let ask = scoring.send(UpdateScore {
            tenant: self.spec.tenant.clone(),
            lead_id: lead_id.clone(),
            call_id: self.spec.call_id.clone(),
            signals: self.signals.clone(),
        });
        let lead_id = lead_id.clone();
        let observer = self.observer.clone();
        let spec = self.spec.clone();
        actix::spawn(async move {
            if let Ok(Some(update)) = ask.await {
                observer.on_event(
                    &spec,
                    &CallEvent::Score {
                        lead_id,
                        score: update.score,
                        stage: update.stage.as_str().to_owned(),
                        contributions: update.contributions,
                    },
                );
            }
        });
    }

    /// Runs `f`, turning a panic into a dropped utterance on this call instead of a dead thread.
    fn guarded(
        &mut self,
        ctx: &mut Context<Self>,
        stage: &'static str,
        f: impl FnOnce(&mut Self, &mut Context<Self>),
    ) {
        let outcome = catch_unwind(AssertUnwindSafe(|| f(self, ctx)));
        if outcome.is_err() {
            metrics::ACTOR_RESTARTS.with_label_values(&["call"]).inc();
            tracing::error!(call_id = %self.spec.call_id, stage, "panic in call processing; current utterances dropped");
            for state in self.tracks.values_mut() {
                state.segmenter.reset();
                state.open = None;
                state.pieces.cancel_all();
            }
            self.emit(CallEvent::Warning {
                code: Code::Internal,
                message: "an internal error dropped the current utterance; the call continues"
                    .into(),
            });
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now_ms = self.clock_ms();
        let hints = self.coach.tick(now_ms);
        self.emit_hints(hints, None);
        if let Some(items) = self.coach.take_checklist_update() {
            self.emit(CallEvent::Checklist { items });
        }
        self.submit_pending_finals(ctx);
        if self.last_talk_stats.elapsed() >= TALK_STATS_EVERY && !self.tracks.is_empty() {
            self.last_talk_stats = Instant::now();
            // Unchanged figures (a call on hold: no audio, no clock) are not resent.
            let stats = self.coach.talk_stats();
            if self.sent_talk_stats != Some(stats) {
                self.sent_talk_stats = Some(stats);
                self.emit(CallEvent::Talk(stats));
            }
        }
        if let Some(since) = self.draining_since {
            let drained = self.pending_finals.is_empty() && self.finals_in_flight == 0;
            if drained || since.elapsed() > DRAIN_DEADLINE {
                self.finish(ctx, "stopped");
            }
        }
    }

    fn begin_end(&mut self, ctx: &mut Context<Self>) {
        if self.draining_since.is_some() {
            return;
        }
        let sources: Vec<SourceId> = self.sources.keys().copied().collect();
        for source in sources {
            self.detach(source, ctx);
        }
        self.draining_since = Some(Instant::now());
    }

    fn detach(&mut self, source: SourceId, ctx: &mut Context<Self>) {
        let Some(src) = self.sources.remove(&source) else {
            return;
        };
        for track in src.tracks {
            if let Some(state) = self.tracks.get_mut(&track) {
                state.resampled.clear();
                if let Err(e) = state.resampler.flush(&mut state.resampled) {
                    tracing::warn!(error = %e, %track, "resampler flush failed");
                }
                state.samples_16k += state.resampled.len() as u64;
                state.events.clear();
                let resampled = std::mem::take(&mut state.resampled);
                state.segmenter.push(&resampled, &mut state.events);
                state.segmenter.finish(&mut state.events);
                state.resampled = resampled;
                self.handle_segment_events(track, ctx);
            }
        }
        if self.sources.is_empty() && self.draining_since.is_none() {
            self.draining_since = Some(Instant::now());
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>, reason: &str) {
        if self.ended {
            return;
        }
        self.ended = true;
        let hints = self.coach.tick(self.clock_ms());
        self.emit_hints(hints, None);
        self.emit(CallEvent::Talk(self.coach.talk_stats()));
        // The final score and the nurture rule run when the lead's call ends.
        self.request_score();
        if let (Some(scoring), Some(lead_id)) = (&self.pipeline.scoring, &self.spec.lead_id) {
            let _ = scoring.try_send(EndLead {
                tenant: self.spec.tenant.clone(),
                lead_id: lead_id.clone(),
                call_id: self.spec.call_id.clone(),
            });
        }
        self.emit(CallEvent::Ended {
            reason: reason.to_owned(),
        });
        ctx.stop();
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(CALL_MAILBOX_CAPACITY);
        LIVE_CALLS.inc();
        ctx.run_interval(TICK, |act, ctx| {
            act.guarded(ctx, "tick", |act, ctx| act.on_tick(ctx));
        });
        tracing::info!(
            call_id = %self.spec.call_id,
            agent_id = %self.spec.agent_id,
            lead_id = self.spec.lead_id.as_deref().unwrap_or(""),
            "call started"
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        LIVE_CALLS.dec();
        for state in self.tracks.values_mut() {
            state.pieces.cancel_all();
        }
        for closing in &mut self.closing {
            closing.pieces.cancel_all();
        }
        if !self.ended {
            // Stopped from outside (all addresses dropped): still tell the world.
            self.ended = true;
            self.emit(CallEvent::Ended {
                reason: "closed".into(),
            });
        }
        tracing::info!(call_id = %self.spec.call_id, "call ended");
    }
}

impl Handler<AttachSource> for CallActor {
    type Result = Result<(), CallError>;

    fn handle(&mut self, msg: AttachSource, _ctx: &mut Self::Context) -> Self::Result {
        if self.ended || self.draining_since.is_some() {
            return Err(CallError::Ended);
        }
        if msg.tracks.is_empty() || msg.tracks.len() > 2 {
            return Err(CallError::TrackMap {
                tracks: msg.tracks.len(),
                channels: msg.tracks.len(),
            });
        }
        for track in &msg.tracks {
            if self.tracks.contains_key(track) {
                return Err(CallError::TrackTaken(*track));
            }
        }
        let mut new_tracks = Vec::new();
        for track in &msg.tracks {
            let resampler = StreamResampler::new(msg.sample_rate)
                .map_err(|_| CallError::SampleRate(msg.sample_rate))?;
            new_tracks.push((
                *track,
                TrackState {
                    resampler,
                    segmenter: Segmenter::new(self.pipeline.segmenter.clone()),
                    resampled: Vec::new(),
                    events: Vec::new(),
                    open: None,
                    samples_16k: 0,
                    pieces: Pieces::default(),
                },
            ));
        }
        self.tracks.extend(new_tracks);
        self.sources.insert(
            msg.source,
            Source {
                encoding: msg.encoding,
                channels: vec![Vec::new(); msg.tracks.len()],
                tracks: msg.tracks,
            },
        );
        let tracks: Vec<Track> = self.tracks.keys().copied().collect();
        self.coach.set_tracks(&tracks);
        self.emit(CallEvent::Ready {
            call_id: self.spec.call_id.clone(),
            tracks,
            sample_rate: PIPELINE_SAMPLE_RATE,
        });
        if let Some(items) = self.coach.take_checklist_update() {
            self.emit(CallEvent::Checklist { items });
        }
        Ok(())
    }
}

impl Handler<Audio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Audio, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        self.guarded(ctx, "audio", |act, ctx| act.process_audio(msg, ctx));
    }
}

impl Handler<DetachSource> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: DetachSource, ctx: &mut Self::Context) {
        self.guarded(ctx, "detach", |act, ctx| act.detach(msg.source, ctx));
    }
}

impl Handler<Feedback> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Feedback, _ctx: &mut Self::Context) {
        self.coach.feedback(msg.hint_id, msg.useful);
        self.emit(CallEvent::Feedback {
            hint_id: msg.hint_id,
            useful: msg.useful,
        });
    }
}

impl Handler<Whisper> for CallActor {
    type Result = MessageResult<Whisper>;

    fn handle(&mut self, msg: Whisper, _ctx: &mut Self::Context) -> Self::Result {
        let hint = crate::coach::whisper_hint(&msg.text, self.clock_ms());
        self.emit(CallEvent::Hint(hint.clone()));
        MessageResult(hint)
    }
}

impl Handler<EndCall> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: EndCall, ctx: &mut Self::Context) {
        tracing::info!(call_id = %self.spec.call_id, reason = %msg.reason, "ending call");
        self.begin_end(ctx);
    }
}
