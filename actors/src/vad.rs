//! Voice activity detection per 20 ms frame of 16 kHz mono audio, without a network model.
//!
//! Each frame is windowed (Hann, 320 samples zero-padded to a 512-point FFT) and its power is
//! summed into [`BANDS`] mel-spaced bands between 200 Hz and 5 kHz. Per band, a noise estimate
//! follows the signal by **minimum statistics** (Martin 2001): the minimum of the smoothed band
//! power over the last ~1.3 s, scaled by a bias factor. Because speech always has gaps (between
//! syllables, in its harmonics), the minimum follows the noise even while someone talks, and any
//! steady sound — fan, hiss, line hum, a dial tone — becomes "noise" within that window.
//!
//! A frame is voiced when, against that noise, its spectrum rises broadly:
//! * the mean over bands of the band SNR (each clipped to [0, 30] dB, so one loud band cannot
//!   carry the mean) is at least [`SCORE_ON_DB`], and
//! * at least [`MIN_ACTIVE_BANDS`] bands are [`ACTIVE_BAND_DB`] above their noise — a tone or
//!   a hum harmonic lights one or two bands, voiced speech lights its harmonics and formants,
//!   fricatives a wide high band, and
//! * the frame is louder than [`ABS_FLOOR_DBFS`] (dither and codec noise are never speech).
//!
//! While speech is on, lower thresholds ([`SCORE_OFF_DB`]) keep soft word endings. The smoothed
//! [`VadFrame::speech`] flag needs [`ONSET_FRAMES`] voiced frames to turn on and stays on for
//! [`HANGOVER_FRAMES`] after the last one. The endpointer ([`crate::segmenter`]) uses the raw
//! [`VadFrame::voiced`] flag with its own timing.
//!
//! Cost: one 512-point real FFT and ~300 multiply-adds per frame (see `benches/README.md`).

// Several per-band arrays are updated in step; an index loop reads clearer than nested zips.
#![allow(clippy::needless_range_loop)]

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Samples per frame: 20 ms at 16 kHz, the telephony packet size (and Twilio's media chunk).
pub const FRAME_SAMPLES: usize = 320;
/// Frame duration in milliseconds.
pub const FRAME_MS: u64 = 20;
/// FFT length: the next power of two above a frame (31.25 Hz per bin).
const FFT_LEN: usize = 512;
/// Number of analysis bands.
pub const BANDS: usize = 16;
/// Lowest band edge: below it sit mains hum (50/60 Hz and low harmonics) and handling rumble.
const BAND_LO_HZ: f32 = 200.0;
/// Highest band edge: covers formants and most fricative energy that survives a phone line.
const BAND_HI_HZ: f32 = 5_000.0;
/// Smoothing of band power before minimum tracking (per-frame factor; ~100 ms time constant,
/// Martin 2001 uses 0.7–0.96 at 10–30 ms hops).
const SMOOTHING: f32 = 0.8;
/// Minimum-statistics window: SUBWINDOWS × SUBWINDOW_FRAMES frames = 1.28 s. Longer than the
/// longest steady vowel, short enough that a new steady noise is learned in about a second.
const SUBWINDOWS: usize = 8;
const SUBWINDOW_FRAMES: usize = 8;
/// Frames a sound must hold still to be taken for a machine (200 ms: longer than the steady part
/// of any syllable, short enough that a tone is a short blip, not an utterance).
const STEADY_FRAMES: usize = 10;
/// Smoothing for the steadiness test (~200 ms time constant at 50 frames/s).
const SLOW_SMOOTHING: f32 = 0.9;
/// How far (dB) each active band may move in that time and still be "steady". Voices move more:
/// pitch jitter, shimmer and formant glides shift band powers by several dB within 200 ms.
const STEADY_SPREAD_DB: f32 = 1.0;
/// Minimum statistics underestimate the mean noise power (the minimum of a fluctuating value);
/// this factor brings the estimate back to the mean. Calibrated on white and pink noise so that
/// noise-only frames sit at a mean band SNR of about 1 dB (test `noise_alone_scores_low`).
const MIN_BIAS: f32 = 2.0;
/// Per-bin power of white noise at -70 dBFS through the Hann window (σ² · Σw² = 1e-7 · 120):
/// the noise estimate never goes below it, so digital silence does not make dither "speech".
const NOISE_FLOOR_PER_BIN: f32 = 1.2e-5;
/// Band SNRs are clipped to this before averaging, so a single loud band (a tone) cannot carry
/// the mean.
const SNR_CLIP_DB: f32 = 30.0;
/// Mean band SNR that starts voice; tuned on espeak-ng and LJSpeech speech against white/pink
/// noise, tones and hum (tests below, evaluation in `benches/README.md`).
pub const SCORE_ON_DB: f32 = 3.5;
/// Mean band SNR that keeps voice on once it is on (hysteresis for soft endings). On the human
/// speech evaluation (`benches/vad_eval.rs`) 2.5 → 1.5 dB raised frame recall at 10 dB white
/// noise from 88.9 % to 92.1 % and cut word-final clipping (end error -200 → -60 ms) with no
/// false alarms; noise alone sits under it only on average, so `ACTIVE` bands still gate it.
pub const SCORE_OFF_DB: f32 = 1.5;
/// A band counts as active at this SNR.
pub const ACTIVE_BAND_DB: f32 = 6.0;
/// An active band's excess over noise must be within this of the strongest band's: Hann window
/// leakage falls 31 dB by the first side lobe, while speech keeps its formants and fricative
/// bands within ~25 dB of its peak between 200 Hz and 5 kHz.
const PEAK_RANGE_DB: f32 = 30.0;
/// Active bands needed to start voice (one or two for a tone's main lobe).
pub const MIN_ACTIVE_BANDS: usize = 3;
/// Frames quieter than this (RMS, dBFS) are never voiced; soft speech into a headset is
/// -45..-30 dBFS, μ-law's idle channel noise about -65 dBFS.
pub const ABS_FLOOR_DBFS: f32 = -55.0;
/// Voiced frames in a row that turn [`VadFrame::speech`] on (40 ms: one click is not speech).
pub const ONSET_FRAMES: u32 = 2;
/// Frames [`VadFrame::speech`] stays on after the last voiced one (200 ms bridges the stops
/// inside words, as WebRTC's VAD hangover does).
pub const HANGOVER_FRAMES: u32 = 10;

/// What the detector concluded about one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadFrame {
    /// This frame on its own looks like speech (with hysteresis while speech is on).
    pub voiced: bool,
    /// Smoothed decision: on after [`ONSET_FRAMES`] voiced frames, off [`HANGOVER_FRAMES`] after.
    pub speech: bool,
    /// Mean band SNR in dB (each band clipped to [0, 30]).
    pub score_db: f32,
    /// Bands at least [`ACTIVE_BAND_DB`] above their noise estimate.
    pub active_bands: usize,
    /// Frame RMS in dBFS.
    pub energy_dbfs: f32,
}

/// Adaptive voice activity detector for one 16 kHz track (see the module docs).
pub struct Vad {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Bin range `[lo, hi)` of each band.
    bands: [(usize, usize); BANDS],
    /// Floor per band (NOISE_FLOOR_PER_BIN × bins).
    floor: [f32; BANDS],
    smoothed: [f32; BANDS],
    /// Minimum of `smoothed` within the current sub-window.
    current_min: [f32; BANDS],
    /// Minima of the last SUBWINDOWS completed sub-windows (ring).
    past_min: [[f32; BANDS]; SUBWINDOWS],
    past_filled: usize,
    past_next: usize,
    frames_in_subwindow: usize,
    noise: [f32; BANDS],
    /// Band power smoothed with SLOW_SMOOTHING, for the steadiness test.
    slow: [f32; BANDS],
    /// Band powers (dB) of the last STEADY_FRAMES frames (ring), for the steadiness test.
    history_db: [[f32; BANDS]; STEADY_FRAMES],
    frames: u64,
    run: u32,
    since_voiced: u32,
    speech: bool,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad")
            .field("frames", &self.frames)
            .field("speech", &self.speech)
            .finish_non_exhaustive()
    }
}

impl Default for Vad {
    fn default() -> Self {
        Self::new()
    }
}

fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

fn db(power_ratio: f32) -> f32 {
    10.0 * power_ratio.max(1e-20).log10()
}

impl Vad {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_LEN);
        let window = (0..FRAME_SAMPLES)
            .map(|i| {
                let x = std::f32::consts::PI * 2.0 * i as f32 / FRAME_SAMPLES as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        let bin_hz = crate::PIPELINE_SAMPLE_RATE as f32 / FFT_LEN as f32;
        let (m_lo, m_hi) = (hz_to_mel(BAND_LO_HZ), hz_to_mel(BAND_HI_HZ));
        let mut bands = [(0usize, 0usize); BANDS];
        let mut floor = [0.0f32; BANDS];
        let mut prev_hi = (BAND_LO_HZ / bin_hz).round() as usize;
        for (b, band) in bands.iter_mut().enumerate() {
            let edge = mel_to_hz(m_lo + (m_hi - m_lo) * (b + 1) as f32 / BANDS as f32);
            // At least 3 bins per band so each band's power is an average, not one bin's luck.
            let hi = ((edge / bin_hz).round() as usize).max(prev_hi + 3);
            *band = (prev_hi, hi);
            floor[b] = NOISE_FLOOR_PER_BIN * (hi - prev_hi) as f32;
            prev_hi = hi;
        }
        let input = fft.make_input_vec();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            fft,
            window,
            input,
            spectrum,
            scratch,
            bands,
            floor,
            smoothed: [0.0; BANDS],
            current_min: [f32::INFINITY; BANDS],
            past_min: [[f32::INFINITY; BANDS]; SUBWINDOWS],
            past_filled: 0,
            past_next: 0,
            frames_in_subwindow: 0,
            noise: floor,
            slow: [0.0; BANDS],
            history_db: [[0.0; BANDS]; STEADY_FRAMES],
            frames: 0,
            run: 0,
            since_voiced: u32::MAX,
            speech: false,
        }
    }

    /// Whether the smoothed decision is currently "speech".
    pub fn is_speech(&self) -> bool {
        self.speech
    }

    /// Classifies one 20 ms frame. A slice of another length is zero-padded or truncated to
    /// [`FRAME_SAMPLES`] (callers normally pass exactly one frame).
    pub fn process_frame(&mut self, frame: &[f32]) -> VadFrame {
        let n = frame.len().min(FRAME_SAMPLES);
        let mut sum_sq = 0.0f32;
        for (i, x) in self.input.iter_mut().enumerate() {
            *x = if i < n {
                let s = if frame[i].is_finite() { frame[i] } else { 0.0 };
                sum_sq += s * s;
                s * self.window[i]
            } else {
                0.0
            };
        }
        let energy_dbfs = db(sum_sq / FRAME_SAMPLES as f32);
        // The buffers come from this plan, so their lengths always match and this cannot fail;
        // should it ever, treat the frame as silence rather than panic.
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            self.spectrum
                .iter_mut()
                .for_each(|c| *c = Complex::new(0.0, 0.0));
        }

        let mut power = [0.0f32; BANDS];
        for (b, &(lo, hi)) in self.bands.iter().enumerate() {
            power[b] = self.spectrum[lo..hi]
                .iter()
                .map(|c| c.norm_sqr())
                .sum::<f32>();
        }

        // The very first frame seeds the noise estimate, so a stream that starts with steady
        // noise is not taken for speech; after that, decide against the estimate from before
        // this frame.
        if self.frames == 0 {
            for b in 0..BANDS {
                self.noise[b] = power[b].max(self.floor[b]);
            }
        }
        // A band is active when it stands above its noise *and* within PEAK_RANGE_DB of the
        // strongest band's excess: a loud tone's window leakage rises above a quiet noise floor
        // in neighbouring bands, but sits 30+ dB under the tone itself.
        let mut excess = [0.0f32; BANDS];
        let mut peak = 0.0f32;
        for b in 0..BANDS {
            excess[b] = (power[b] - self.noise[b]).max(0.0);
            peak = peak.max(excess[b]);
        }
        let mut score = 0.0f32;
        let mut active = 0usize;
        for b in 0..BANDS {
            let snr = db(power[b] / self.noise[b]).clamp(0.0, SNR_CLIP_DB);
            score += snr;
            if snr >= ACTIVE_BAND_DB && db(peak / excess[b].max(1e-20)) <= PEAK_RANGE_DB {
                active += 1;
            }
        }
        let score = score / BANDS as f32;
        let loud_enough = energy_dbfs >= ABS_FLOOR_DBFS;
        let voiced = loud_enough
            && if self.speech {
                score >= SCORE_OFF_DB && active >= MIN_ACTIVE_BANDS - 1
            } else {
                score >= SCORE_ON_DB && active >= MIN_ACTIVE_BANDS
            };

        self.track_noise(&power);
        self.absorb_steady_sound(&power);

        if voiced {
            self.run = self.run.saturating_add(1);
            self.since_voiced = 0;
            if self.run >= ONSET_FRAMES {
                self.speech = true;
            }
        } else {
            self.run = 0;
            self.since_voiced = self.since_voiced.saturating_add(1);
            if self.since_voiced > HANGOVER_FRAMES {
                self.speech = false;
            }
        }
        self.frames += 1;
        VadFrame {
            voiced,
            speech: self.speech,
            score_db: score,
            active_bands: active,
            energy_dbfs,
        }
    }

    /// A sound whose active bands have not moved by more than [`STEADY_SPREAD_DB`] for
    /// [`STEADY_FRAMES`] frames is a machine (tone, hum, ringback, DTMF), not a voice: raise the
    /// noise minima to it now instead of waiting for the minimum-statistics window to roll.
    /// Once it stops, the minima fall back at once (the current minimum follows the signal down).
    fn absorb_steady_sound(&mut self, power: &[f32; BANDS]) {
        let slot = (self.frames as usize) % STEADY_FRAMES;
        for b in 0..BANDS {
            // Slowly smoothed power: beating tone pairs (ringback 440+480 Hz beats at 40 Hz) and
            // neighbouring hum harmonics swing frame to frame (aliased to ~10 Hz at 50 frames/s)
            // but are steady once smoothed over ~200 ms (residual swing ±0.4 dB).
            self.slow[b] = if self.frames == 0 {
                power[b]
            } else {
                SLOW_SMOOTHING * self.slow[b] + (1.0 - SLOW_SMOOTHING) * power[b]
            };
            self.history_db[slot][b] = db(self.slow[b]);
        }
        if self.frames + 1 < STEADY_FRAMES as u64 {
            return;
        }
        let mut any_active = false;
        for b in 0..BANDS {
            if db(power[b] / self.noise[b]) < ACTIVE_BAND_DB {
                continue;
            }
            any_active = true;
            let (lo, hi) = self
                .history_db
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), h| {
                    (lo.min(h[b]), hi.max(h[b]))
                });
            if hi - lo > STEADY_SPREAD_DB {
                return;
            }
        }
        if !any_active {
            return;
        }
        for b in 0..BANDS {
            let level = self.slow[b];
            self.current_min[b] = self.current_min[b].max(level);
            for w in &mut self.past_min[..self.past_filled] {
                w[b] = w[b].max(level);
            }
            self.noise[b] = (level * MIN_BIAS).max(self.floor[b]);
        }
    }

    /// Minimum statistics: smooth, keep per-sub-window minima, noise = min over the window.
    fn track_noise(&mut self, power: &[f32; BANDS]) {
        let first = self.frames == 0;
        for b in 0..BANDS {
            self.smoothed[b] = if first {
                power[b]
            } else {
                SMOOTHING * self.smoothed[b] + (1.0 - SMOOTHING) * power[b]
            };
            self.current_min[b] = self.current_min[b].min(self.smoothed[b]);
        }
        self.frames_in_subwindow += 1;
        if self.frames_in_subwindow == SUBWINDOW_FRAMES {
            self.past_min[self.past_next] = self.current_min;
            self.past_next = (self.past_next + 1) % SUBWINDOWS;
            self.past_filled = (self.past_filled + 1).min(SUBWINDOWS);
            self.current_min = [f32::INFINITY; BANDS];
            self.frames_in_subwindow = 0;
        }
        for b in 0..BANDS {
            let mut m = self.current_min[b];
            for w in &self.past_min[..self.past_filled] {
                m = m.min(w[b]);
            }
            // Until a sub-window completes, the current minimum is all there is.
            self.noise[b] = if m.is_finite() {
                (m * MIN_BIAS).max(self.floor[b])
            } else {
                self.floor[b]
            };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
