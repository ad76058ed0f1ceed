//! Endpointing: cuts one track's 16 kHz audio into utterances for the transcriber.
//!
//! [`Segmenter::push`] takes samples in any chunk size, runs the [`Vad`] on whole 20 ms frames
//! and emits [`SegmentEvent`]s. All timing is on the audio clock — milliseconds of audio since
//! the track started (`frames × 20`) — never wall time, so the result does not depend on how the
//! audio was chunked or how fast it arrived, and tests replay faster than real time.
//!
//! Life of an utterance:
//! 1. [`ONSET_FRAMES`] voiced frames in a row open it. Its audio starts `pre_roll_ms` before the
//!    first voiced frame (soft onsets the VAD scored too low), but never before the previous
//!    utterance's end.
//! 2. Once it holds `min_utterance_ms` of voice (first to last voiced frame), it is confirmed and
//!    [`SegmentEvent::SpeechStart`] is sent with the first voiced frame's time. Shorter blips
//!    (a cough, a click, a mid-stream tone the VAD has not learned yet) vanish without events.
//! 3. While it is open, a [`SegmentEvent::Partial`] snapshot goes out every `partial_interval_ms`
//!    (at the first voiced frame past the interval: never in a pause).
//! 4. After `speculate_after_ms` without a voiced frame, a [`SegmentEvent::Pause`] offers the
//!    utterance as it would close now, so the caller can start decoding it before the endpoint
//!    is certain; voice coming back sends [`SegmentEvent::Resume`] and the offer is void.
//! 5. After `endpoint_silence_ms` without a voiced frame it closes: [`SegmentEvent::SpeechEnd`]
//!    and [`SegmentEvent::Final`], both ending at the end of the last voiced frame. A `Final`
//!    with the same `start_ms` and `end_ms` as the last `Pause` carries the same samples.
//! 6. At `max_utterance_ms` it is force-cut (`forced: true`) at the quietest frame of the last
//!    second of voice, and the rest continues as a new utterance — voice did not stop, so no
//!    `SpeechEnd`/`SpeechStart` pair is sent for the cut.

use crate::metrics;
use crate::vad::{Vad, VadFrame, FRAME_MS, FRAME_SAMPLES, ONSET_FRAMES};
use prometheus::IntCounterVec;
use std::sync::{Arc, LazyLock};

/// Utterances by how they ended: `final` (endpoint or end of stream), `forced` (max length),
/// `dropped` (voice shorter than `min_utterance_ms`), `reset` (dropped by [`Segmenter::reset`]).
static UTTERANCES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_segmenter_utterances_total",
        "Utterances cut by the endpointer, by outcome (final, forced, dropped, reset; early: \
         finals closed before the endpoint on a finished sentence, also counted as final)",
        &["outcome"],
    )
});

/// Samples per millisecond at the pipeline rate.
const SAMPLES_PER_MS: u64 = crate::PIPELINE_SAMPLE_RATE as u64 / 1000;
/// How far back from the forced-cut point to look for the quietest frame: one second holds a
/// few syllable gaps at any speaking rate (4–6 syllables/s), so the cut rarely splits a word.
const FORCE_CUT_SEARCH_MS: u64 = 1_000;

/// Endpointing policy. Defaults follow DESIGN.md: endpoint after 300–500 ms of silence,
/// force-cut at 15 s, partials about every second.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmenterConfig {
    /// Silence after the last voiced frame that ends an utterance. 360 ms: longer than the
    /// pauses inside a sentence (~100–300 ms), short enough for a final within 400 ms.
    pub endpoint_silence_ms: u64,
    /// Silence after which the utterance is offered for speculative decoding
    /// ([`SegmentEvent::Pause`]); 0, or not below `endpoint_silence_ms`, turns offers off.
    pub speculate_after_ms: u64,
    /// Let the caller end an utterance before the endpoint ([`Segmenter::close_early`]) when
    /// the decode of its pause offer reads as a finished sentence (see `call`).
    pub close_on_sentence_end: bool,
    /// Silence an early close still waits for: a pause this short is a comma more often than
    /// a full stop, whatever the decode's punctuation says.
    pub early_close_silence_ms: u64,
    /// After this much audio since the last offer (or the utterance start) without one, a
    /// pause of `quick_pause_ms` is offered too, so the audio left to decode at the endpoint
    /// stays short even for a speaker who never pauses for long.
    pub long_stretch_ms: u64,
    pub quick_pause_ms: u64,
    /// Longest utterance before a forced cut (Whisper's window is 30 s; 15 s keeps a final's
    /// decode well under a second on tiny.en and bounds the buffer per track).
    pub max_utterance_ms: u64,
    /// Shortest voiced span worth transcribing; shorter ones are dropped without events.
    pub min_utterance_ms: u64,
    /// Interval between partial snapshots of an open utterance.
    pub partial_interval_ms: u64,
    /// Audio kept before the first voiced frame.
    pub pre_roll_ms: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            endpoint_silence_ms: 360,
            speculate_after_ms: 100,
            close_on_sentence_end: true,
            early_close_silence_ms: 240,
            long_stretch_ms: 3_000,
            quick_pause_ms: 60,
            max_utterance_ms: 15_000,
            min_utterance_ms: 250,
            partial_interval_ms: 1_000,
            pre_roll_ms: 200,
        }
    }
}

/// What the segmenter reports. Times are milliseconds of audio since the track started.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentEvent {
    /// Voice started (first voiced frame of a confirmed utterance). Sent `min_utterance_ms`
    /// of voice after `at_ms`, once the utterance is confirmed.
    SpeechStart { at_ms: u64 },
    /// Voice ended (end of the last voiced frame). Sent `endpoint_silence_ms` after `at_ms`.
    SpeechEnd { at_ms: u64 },
    /// `speculate_after_ms` of silence in a confirmed utterance: if the endpoint follows, the
    /// `Final` will be exactly `samples` over `[start_ms, end_ms)`. At most one per pause.
    Pause {
        samples: Arc<[f32]>,
        start_ms: u64,
        end_ms: u64,
    },
    /// Voice came back after a `Pause` (at `at_ms`): the offered utterance goes on.
    Resume { at_ms: u64 },
    /// Snapshot of the open utterance, `samples` covering `[start_ms, end_ms)`.
    Partial {
        samples: Arc<[f32]>,
        start_ms: u64,
        end_ms: u64,
    },
    /// A closed utterance, `samples` covering `[start_ms, end_ms)`: `start_ms` includes the
    /// pre-roll, `end_ms` is the end of speech. `forced` when cut at `max_utterance_ms`.
    Final {
        samples: Arc<[f32]>,
        start_ms: u64,
        end_ms: u64,
        forced: bool,
    },
}

#[derive(Debug)]
struct Open {
    /// Start of the utterance's audio (pre-roll included).
    start_ms: u64,
    /// First voiced frame.
    voice_start_ms: u64,
    /// End of the last voiced frame.
    last_voiced_end_ms: u64,
    /// SpeechStart has been sent.
    confirmed: bool,
    last_partial_ms: u64,
    /// A `Pause` was sent for the current silence.
    paused: bool,
    /// End of the span of the last `Pause` (the utterance start before the first).
    offered_to_ms: u64,
    /// The caller asked for an early close of the span ending here ([`Segmenter::close_early`]),
    /// to happen once the silence reaches `early_close_silence_ms`.
    close_at_end_ms: Option<u64>,
}

/// Endpointer for one track (see the module docs).
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    vad: Vad,
    /// Samples of an incomplete frame, carried to the next `push`.
    pending: Vec<f32>,
    /// Audio from `audio_start_ms` to now (whole frames).
    audio: Vec<f32>,
    /// RMS dBFS of each frame in `audio`, for choosing forced-cut points.
    frame_energy: Vec<f32>,
    audio_start_ms: u64,
    /// Frames processed so far; `now_ms = frames × 20`.
    frames: u64,
    /// Consecutive voiced frames while idle.
    run: u32,
    /// End of the previous utterance; the next one's pre-roll never reaches before it.
    last_end_ms: u64,
    open: Option<Open>,
}

/// Index into a buffer starting at `buf_start_ms` of the sample at `ms`.
fn idx(buf_start_ms: u64, ms: u64) -> usize {
    (ms.saturating_sub(buf_start_ms) * SAMPLES_PER_MS) as usize
}

fn round_to_frames(ms: u64) -> u64 {
    ms.div_ceil(FRAME_MS) * FRAME_MS
}

impl Segmenter {
    /// A segmenter with `cfg`, its times rounded up to whole 20 ms frames and made consistent
    /// (at least one frame each; `max_utterance_ms` above `min_utterance_ms`).
    pub fn new(cfg: SegmenterConfig) -> Self {
        let min_utterance_ms = round_to_frames(cfg.min_utterance_ms.max(FRAME_MS));
        let endpoint_silence_ms = round_to_frames(cfg.endpoint_silence_ms.max(FRAME_MS));
        let speculate_after_ms = match round_to_frames(cfg.speculate_after_ms) {
            ms if ms < endpoint_silence_ms => ms,
            _ => 0,
        };
        let quick_pause_ms =
            round_to_frames(cfg.quick_pause_ms.max(FRAME_MS)).min(speculate_after_ms);
        let cfg = SegmenterConfig {
            endpoint_silence_ms,
            speculate_after_ms,
            close_on_sentence_end: cfg.close_on_sentence_end && speculate_after_ms > 0,
            early_close_silence_ms: round_to_frames(cfg.early_close_silence_ms)
                .clamp(speculate_after_ms, endpoint_silence_ms),
            long_stretch_ms: round_to_frames(cfg.long_stretch_ms),
            quick_pause_ms,
            max_utterance_ms: round_to_frames(
                cfg.max_utterance_ms
                    .max(min_utterance_ms + FORCE_CUT_SEARCH_MS),
            ),
            min_utterance_ms,
            partial_interval_ms: round_to_frames(cfg.partial_interval_ms.max(FRAME_MS)),
            pre_roll_ms: round_to_frames(cfg.pre_roll_ms),
        };
        Self {
            cfg,
            vad: Vad::new(),
            pending: Vec::with_capacity(FRAME_SAMPLES),
            audio: Vec::new(),
            frame_energy: Vec::new(),
            audio_start_ms: 0,
            frames: 0,
            run: 0,
            last_end_ms: 0,
            open: None,
        }
    }

    /// The effective configuration (after rounding to frames).
    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// Milliseconds of audio consumed (whole frames).
    pub fn now_ms(&self) -> u64 {
        self.frames * FRAME_MS
    }

    /// Whether an utterance is open (confirmed or not).
    pub fn in_utterance(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds 16 kHz mono samples (any length) and appends the resulting events to `out`.
    pub fn push(&mut self, samples_16k: &[f32], out: &mut Vec<SegmentEvent>) {
        let mut rest = samples_16k;
        if !self.pending.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < FRAME_SAMPLES {
                return;
            }
            let frame = std::mem::take(&mut self.pending);
            self.frame(&frame, out);
            self.pending = frame;
            self.pending.clear();
        }
        let mut chunks = rest.chunks_exact(FRAME_SAMPLES);
        for frame in &mut chunks {
            self.frame(frame, out);
        }
        self.pending.extend_from_slice(chunks.remainder());
    }

    /// Ends the stream: a trailing partial frame is zero-padded and processed, and an open
    /// utterance with enough voice is closed (`SpeechEnd` + `Final`, not forced).
    pub fn finish(&mut self, out: &mut Vec<SegmentEvent>) {
        if !self.pending.is_empty() {
            let mut frame = std::mem::take(&mut self.pending);
            frame.resize(FRAME_SAMPLES, 0.0);
            self.frame(&frame, out);
        }
        if let Some(open) = self.open.take() {
            self.close(open, out);
        }
        self.run = 0;
    }

    /// Ends the open utterance early, as the endpoint would (`SpeechEnd` + `Final` ending at the
    /// last voiced frame), if it is confirmed and silent since `end_ms` (the end its pause offer
    /// had): now if the silence has lasted `early_close_silence_ms`, otherwise when it has
    /// (voice before then keeps it open). Returns whether it closed now.
    pub fn close_early(&mut self, end_ms: u64, out: &mut Vec<SegmentEvent>) -> bool {
        let now = self.now_ms();
        let wait = self.cfg.early_close_silence_ms;
        let Some(open) = self
            .open
            .as_mut()
            .filter(|o| o.confirmed && o.paused && o.last_voiced_end_ms == end_ms)
        else {
            return false;
        };
        if now - end_ms < wait {
            open.close_at_end_ms = Some(end_ms);
            return false;
        }
        self.close_open_early(out);
        true
    }

    fn close_open_early(&mut self, out: &mut Vec<SegmentEvent>) {
        if let Some(open) = self.open.take() {
            UTTERANCES.with_label_values(&["early"]).inc();
            self.close(open, out);
        }
        let keep = self.cfg.pre_roll_ms + ONSET_FRAMES as u64 * FRAME_MS;
        self.trim_to(self.now_ms().saturating_sub(keep));
    }

    /// Drops the open utterance and all buffered audio and starts voice detection afresh, keeping
    /// the audio clock. For recovery after a panic elsewhere in the call: no `SpeechEnd` or
    /// `Final` is sent for the dropped utterance, so the caller closes what it had opened.
    pub fn reset(&mut self) {
        let now = self.now_ms();
        self.vad = Vad::new();
        if self.open.take().is_some() {
            UTTERANCES.with_label_values(&["reset"]).inc();
        }
        self.run = 0;
        self.audio.clear();
        self.frame_energy.clear();
        self.audio_start_ms = now;
        self.last_end_ms = now;
    }

    /// Drops buffered audio before `ms`.
    fn trim_to(&mut self, ms: u64) {
        if ms <= self.audio_start_ms {
            return;
        }
        let n = idx(self.audio_start_ms, ms).min(self.audio.len());
        self.audio.drain(..n);
        self.frame_energy
            .drain(..(n / FRAME_SAMPLES).min(self.frame_energy.len()));
        self.audio_start_ms = ms;
    }

    fn frame(&mut self, frame: &[f32], out: &mut Vec<SegmentEvent>) {
        let v: VadFrame = self.vad.process_frame(frame);
        self.audio.extend_from_slice(frame);
        self.frame_energy.push(v.energy_dbfs);
        self.frames += 1;
        let now = self.now_ms();

        let Some(open) = self.open.as_mut() else {
            self.run = if v.voiced { self.run + 1 } else { 0 };
            if self.run >= ONSET_FRAMES {
                let voice_start_ms = now - self.run as u64 * FRAME_MS;
                let start_ms = voice_start_ms
                    .saturating_sub(self.cfg.pre_roll_ms)
                    .max(self.last_end_ms)
                    .max(self.audio_start_ms);
                self.trim_to(start_ms);
                self.open = Some(Open {
                    start_ms,
                    voice_start_ms,
                    last_voiced_end_ms: now,
                    confirmed: false,
                    last_partial_ms: voice_start_ms,
                    paused: false,
                    offered_to_ms: start_ms,
                    close_at_end_ms: None,
                });
                self.run = 0;
                self.after_voice(out);
            } else {
                // Idle: keep only what a pre-roll could need.
                let keep = self.cfg.pre_roll_ms + ONSET_FRAMES as u64 * FRAME_MS;
                self.trim_to(now.saturating_sub(keep));
            }
            return;
        };

        if v.voiced {
            open.last_voiced_end_ms = now;
            open.close_at_end_ms = None;
            if open.paused {
                open.paused = false;
                out.push(SegmentEvent::Resume {
                    at_ms: now - FRAME_MS,
                });
            }
        }
        let silence_ms = now - open.last_voiced_end_ms;
        if silence_ms >= self.cfg.endpoint_silence_ms {
            if let Some(open) = self.open.take() {
                self.close(open, out);
            }
            let keep = self.cfg.pre_roll_ms + ONSET_FRAMES as u64 * FRAME_MS;
            self.trim_to(now.saturating_sub(keep));
            return;
        }
        if open.close_at_end_ms.is_some() && silence_ms >= self.cfg.early_close_silence_ms {
            self.close_open_early(out);
            return;
        }
        if now - open.start_ms >= self.cfg.max_utterance_ms {
            self.force_cut(out);
            return;
        }
        let speculate = if open.last_voiced_end_ms - open.offered_to_ms >= self.cfg.long_stretch_ms
        {
            self.cfg.quick_pause_ms
        } else {
            self.cfg.speculate_after_ms
        };
        if speculate > 0 && open.confirmed && !open.paused && silence_ms >= speculate {
            open.paused = true;
            open.offered_to_ms = open.last_voiced_end_ms;
            let (a, b) = (
                idx(self.audio_start_ms, open.start_ms),
                idx(self.audio_start_ms, open.last_voiced_end_ms).min(self.audio.len()),
            );
            out.push(SegmentEvent::Pause {
                samples: Arc::from(&self.audio[a.min(b)..b]),
                start_ms: open.start_ms,
                end_ms: open.last_voiced_end_ms,
            });
        }
        self.after_voice(out);
    }

    /// Confirmation and partials for the open utterance at the current frame.
    fn after_voice(&mut self, out: &mut Vec<SegmentEvent>) {
        let now = self.now_ms();
        let min = self.cfg.min_utterance_ms;
        let interval = self.cfg.partial_interval_ms;
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if !open.confirmed && open.last_voiced_end_ms - open.voice_start_ms >= min {
            open.confirmed = true;
            out.push(SegmentEvent::SpeechStart {
                at_ms: open.voice_start_ms,
            });
        }
        // Not during a pause: a pause offer may follow within 100 ms, and a partial that is
        // still encoding then delays it (the pool stops a partial only between its encoder and
        // its decoder). The partial comes with the next voiced frame instead.
        let voiced_now = open.last_voiced_end_ms == now;
        if open.confirmed && voiced_now && now - open.last_partial_ms >= interval {
            open.last_partial_ms = now;
            let (start_ms, a) = (open.start_ms, idx(self.audio_start_ms, open.start_ms));
            out.push(SegmentEvent::Partial {
                samples: Arc::from(&self.audio[a.min(self.audio.len())..]),
                start_ms,
                end_ms: now,
            });
        }
    }

    /// Emits the end of a (possibly unconfirmed) utterance and returns to idle.
    fn close(&mut self, open: Open, out: &mut Vec<SegmentEvent>) {
        let end_ms = open.last_voiced_end_ms;
        if open.confirmed || end_ms - open.voice_start_ms >= self.cfg.min_utterance_ms {
            if !open.confirmed {
                out.push(SegmentEvent::SpeechStart {
                    at_ms: open.voice_start_ms,
                });
            }
            let (a, b) = (
                idx(self.audio_start_ms, open.start_ms),
                idx(self.audio_start_ms, end_ms).min(self.audio.len()),
            );
            out.push(SegmentEvent::SpeechEnd { at_ms: end_ms });
            out.push(SegmentEvent::Final {
                samples: Arc::from(&self.audio[a.min(b)..b]),
                start_ms: open.start_ms,
                end_ms,
                forced: false,
            });
            self.last_end_ms = end_ms;
            UTTERANCES.with_label_values(&["final"]).inc();
        } else {
            UTTERANCES.with_label_values(&["dropped"]).inc();
        }
    }

    /// Cuts the open utterance at the quietest frame of its last second of voice and continues
    /// the rest as a new, already confirmed utterance.
    fn force_cut(&mut self, out: &mut Vec<SegmentEvent>) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        // Candidate cut points: frame ends within the last second, not after the last voice
        // (the remainder must hold voice) and leaving at least a frame on each side.
        let hi = open.last_voiced_end_ms.max(open.start_ms + FRAME_MS);
        let lo = hi
            .saturating_sub(FORCE_CUT_SEARCH_MS)
            .max(open.start_ms + FRAME_MS);
        let mut cut_ms = hi;
        let mut quietest = f32::INFINITY;
        let mut t = lo;
        while t <= hi {
            // The frame ending at `t`.
            let i = ((t - self.audio_start_ms) / FRAME_MS) as usize;
            if let Some(&e) = i.checked_sub(1).and_then(|i| self.frame_energy.get(i)) {
                if e < quietest {
                    quietest = e;
                    cut_ms = t;
                }
            }
            t += FRAME_MS;
        }
        let (a, b) = (
            idx(self.audio_start_ms, open.start_ms),
            idx(self.audio_start_ms, cut_ms).min(self.audio.len()),
        );
        if !open.confirmed {
            open.confirmed = true;
            out.push(SegmentEvent::SpeechStart {
                at_ms: open.voice_start_ms,
            });
        }
        out.push(SegmentEvent::Final {
            samples: Arc::from(&self.audio[a.min(b)..b]),
            start_ms: open.start_ms,
            end_ms: cut_ms,
            forced: true,
        });
        UTTERANCES.with_label_values(&["forced"]).inc();
        open.start_ms = cut_ms;
        open.voice_start_ms = cut_ms;
        open.last_voiced_end_ms = open.last_voiced_end_ms.max(cut_ms);
        open.last_partial_ms = cut_ms;
        open.offered_to_ms = cut_ms;
        open.close_at_end_ms = None;
        // Any offer made before the cut is void (its start moved); offer the rest afresh.
        open.paused = false;
        self.last_end_ms = cut_ms;
        self.trim_to(cut_ms);
    }
}

#[cfg(test)]
mod tests;
