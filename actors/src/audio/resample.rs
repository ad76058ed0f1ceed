//! Streaming resampling of one mono track to [`PIPELINE_SAMPLE_RATE`] (16 kHz), with rubato.
//!
//! Live frames arrive in whatever sizes the client sends, so [`StreamResampler`] buffers input
//! and feeds rubato fixed blocks of about 10 ms. Two engines, chosen per input rate:
//!
//! * **FFT** ([`rubato::FftFixedIn`]) when the rate's rational period with 16 kHz fits in one
//!   10 ms block (8, 12, 24, 32, 44.1, 48 kHz): synchronous, exact ratio, the cheapest per
//!   sample, anti-aliasing filter as long as one block.
//! * **Sinc** ([`rubato::SincFixedIn`]) for any other rate in 8000..=48000 (11.025, 22.05 kHz,
//!   or a device that reports 44056 Hz), where an FFT block would have to be 20 ms to a second.
//!
//! Latency: one 10 ms block waits for input, plus the filter's look-ahead (5 ms for FFT,
//! 32 input samples for sinc: 0.7–4 ms), so ≤ 15 ms at the common rates and ≤ 20 ms at any.
//! The FFT engine's delay is trimmed from the front of the output (rubato's sinc engine already
//! indexes its output without delay), so output sample `n` corresponds to input time
//! `n / 16000` s and segment timestamps need no correction. [`StreamResampler::flush`] pushes
//! out the tail; after it the total output length is exactly
//! `round(total_input × 16000 / input_rate)`, whatever the chunking.
//!
//! Rubato 0.16 is the version the workspace pins; the 1.x line (audioadapter buffers) would work
//! as well but brings nothing this single-channel path needs.

use super::{check_rate, AudioError};
use crate::PIPELINE_SAMPLE_RATE;
use rubato::{
    FftFixedIn, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

/// Target block length: 10 ms of input, the usual telephony packet half-size. Shorter blocks
/// shorten the FFT filter (worse anti-aliasing); longer ones add latency before an utterance end
/// can be seen.
const BLOCK_MS: u32 = 10;
/// Sinc filter length in input samples: 64 taps keep the group delay at 32 input samples
/// (4 ms at 8 kHz, under 1 ms at 48 kHz) with > 60 dB stop band (BlackmanHarris2), enough for
/// speech that goes on to a 16 kHz ASR front end.
const SINC_LEN: usize = 64;
/// Sinc table oversampling; rubato's recommended starting point.
const SINC_OVERSAMPLING: usize = 128;

enum Engine {
    Fft(Box<FftFixedIn<f32>>),
    Sinc(Box<SincFixedIn<f32>>),
}

impl Engine {
    fn input_frames_next(&self) -> usize {
        match self {
            Engine::Fft(r) => r.input_frames_next(),
            Engine::Sinc(r) => r.input_frames_next(),
        }
    }

    fn output_delay(&self) -> usize {
        match self {
            Engine::Fft(r) => r.output_delay(),
            Engine::Sinc(r) => r.output_delay(),
        }
    }

    fn output_frames_max(&self) -> usize {
        match self {
            Engine::Fft(r) => r.output_frames_max(),
            Engine::Sinc(r) => r.output_frames_max(),
        }
    }

    fn process(&mut self, input: &[f32], out: &mut [f32]) -> Result<(usize, usize), AudioError> {
        let wave_in = [input];
        let mut wave_out = [out];
        match self {
            Engine::Fft(r) => r.process_into_buffer(&wave_in, &mut wave_out, None),
            Engine::Sinc(r) => r.process_into_buffer(&wave_in, &mut wave_out, None),
        }
        .map_err(|e| AudioError::Resampler(e.to_string()))
    }
}

/// Resamples one mono stream to 16 kHz, accepting any chunk sizes (see the module docs).
pub struct StreamResampler {
    input_rate: u32,
    /// `None` when the input already is 16 kHz (identity).
    engine: Option<Engine>,
    /// Input not yet handed to the engine (less than one block after each `process`).
    pending: Vec<f32>,
    /// Engine output scratch, sized once to the engine's largest block.
    scratch: Vec<f32>,
    /// Output samples still to drop to compensate the FFT filter delay.
    skip: usize,
    /// Input samples accepted since creation.
    consumed: u64,
    /// Output samples emitted since creation.
    emitted: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("input_rate", &self.input_rate)
            .field("pending", &self.pending.len())
            .field("consumed", &self.consumed)
            .field("emitted", &self.emitted)
            .finish()
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl StreamResampler {
    /// A resampler from `input_rate` (8000..=48000) to 16 kHz.
    pub fn new(input_rate: u32) -> Result<Self, AudioError> {
        check_rate(input_rate)?;
        let out_rate = PIPELINE_SAMPLE_RATE;
        let engine = if input_rate == out_rate {
            None
        } else {
            let period_in = input_rate / gcd(input_rate, out_rate);
            let block = (input_rate * BLOCK_MS / 1000) as usize;
            let engine = if period_in * 1000 <= input_rate * BLOCK_MS {
                let period_in = period_in as usize;
                let chunk = block.div_ceil(period_in) * period_in;
                let r = FftFixedIn::new(input_rate as usize, out_rate as usize, chunk, 1, 1)
                    .map_err(|e| AudioError::Resampler(e.to_string()))?;
                Engine::Fft(Box::new(r))
            } else {
                let params = SincInterpolationParameters {
                    sinc_len: SINC_LEN,
                    f_cutoff: rubato::calculate_cutoff(SINC_LEN, WindowFunction::BlackmanHarris2),
                    oversampling_factor: SINC_OVERSAMPLING,
                    interpolation: SincInterpolationType::Linear,
                    window: WindowFunction::BlackmanHarris2,
                };
                let ratio = out_rate as f64 / input_rate as f64;
                let r = SincFixedIn::new(ratio, 1.0, params, block, 1)
                    .map_err(|e| AudioError::Resampler(e.to_string()))?;
                Engine::Sinc(Box::new(r))
            };
            Some(engine)
        };
        let (scratch, skip, pending_cap) = match &engine {
            // Measured with an impulse: FftFixedIn's output lags by exactly `output_delay`
            // samples, SincFixedIn's is already aligned (its look-ahead is held back inside).
            Some(e @ Engine::Fft(_)) => (
                vec![0.0; e.output_frames_max()],
                e.output_delay(),
                e.input_frames_next(),
            ),
            Some(e) => (vec![0.0; e.output_frames_max()], 0, e.input_frames_next()),
            None => (Vec::new(), 0, 0),
        };
        Ok(Self {
            input_rate,
            engine,
            pending: Vec::with_capacity(pending_cap * 2),
            scratch,
            skip,
            consumed: 0,
            emitted: 0,
        })
    }

    /// The input rate this resampler was built for.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Output samples the input so far should yield in total (what `flush` will bring it to).
    fn expected_total(&self) -> u64 {
        let num = self.consumed * PIPELINE_SAMPLE_RATE as u64;
        let den = self.input_rate as u64;
        (num + den / 2) / den
    }

    /// Latency the resampler adds, in 16 kHz output samples: one block of buffering plus the
    /// filter's look-ahead (trimming the delay shifts timestamps, not when audio comes out).
    pub fn latency_samples(&self) -> usize {
        match &self.engine {
            None => 0,
            Some(e) => {
                let block = (e.input_frames_next() as u64 * PIPELINE_SAMPLE_RATE as u64)
                    .div_ceil(self.input_rate as u64);
                let look_ahead = match e {
                    Engine::Fft(_) => e.output_delay() as u64,
                    Engine::Sinc(_) => (SINC_LEN as u64 / 2 * PIPELINE_SAMPLE_RATE as u64)
                        .div_ceil(self.input_rate as u64),
                };
                (block + look_ahead) as usize
            }
        }
    }

    /// Feeds `input` (any length, including 0) and appends the 16 kHz samples now ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.consumed += input.len() as u64;
        let Some(engine) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            self.emitted += input.len() as u64;
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut pos = 0;
        loop {
            let need = engine.input_frames_next();
            if self.pending.len() - pos < need {
                break;
            }
            let (used, produced) =
                engine.process(&self.pending[pos..pos + need], &mut self.scratch)?;
            pos += used;
            let drop = self.skip.min(produced);
            self.skip -= drop;
            out.extend_from_slice(&self.scratch[drop..produced]);
            self.emitted += (produced - drop) as u64;
        }
        self.pending.drain(..pos);
        Ok(())
    }

    /// Ends the stream: pushes out everything still buffered, so that the total output is
    /// `round(total_input × 16000 / input_rate)` samples. The resampler should not be fed after.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let target = self.expected_total();
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        // Zero-pad whole blocks until the tail (pending input plus filter delay) has come out.
        // Each block yields at least one output sample, and the tail is at most one block plus
        // the filter delay, so this terminates within a few rounds; the bound guards a bug.
        let mut rounds = 0;
        while self.emitted < target && rounds < 64 {
            rounds += 1;
            let need = engine.input_frames_next();
            self.pending.resize(need.max(self.pending.len()), 0.0);
            let (used, produced) = engine.process(&self.pending[..need], &mut self.scratch)?;
            self.pending.drain(..used);
            let drop = self.skip.min(produced);
            self.skip -= drop;
            let take = ((target - self.emitted) as usize).min(produced - drop);
            out.extend_from_slice(&self.scratch[drop..drop + take]);
            self.emitted += take as u64;
        }
        self.pending.clear();
        if self.emitted < target {
            return Err(AudioError::Resampler(format!(
                "flush produced {} of {target} samples",
                self.emitted
            )));
        }
        Ok(())
    }
}

/// Resamples a whole mono signal at `rate` to 16 kHz (`round(len × 16000 / rate)` samples).
pub fn resample_to_16k(samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = StreamResampler::new(rate)?;
    let mut out =
        Vec::with_capacity(samples.len() * PIPELINE_SAMPLE_RATE as usize / rate as usize + 16);
    r.process(samples, &mut out)?;
    r.flush(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f32::consts::PI;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Amplitude of `freq` in `x` (16 kHz) and its lag in samples behind a zero-phase sine.
    fn amplitude_and_lag(x: &[f32], offset: usize, freq: f32) -> (f32, f32) {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (i, v) in x.iter().enumerate() {
            let w = 2.0 * std::f64::consts::PI * freq as f64 / 16_000.0;
            let ph = w * (i + offset) as f64;
            s += *v as f64 * ph.sin();
            c += *v as f64 * ph.cos();
        }
        let amp = 2.0 * (s * s + c * c).sqrt() / x.len() as f64;
        let lag = -c.atan2(s) / (2.0 * std::f64::consts::PI * freq as f64 / 16_000.0);
        (amp as f32, lag as f32)
    }

    const RATES: [u32; 9] = [
        8_000, 11_025, 12_000, 16_000, 22_050, 32_000, 44_100, 44_056, 48_000,
    ];

    #[test]
    fn rates_outside_the_range_are_refused() {
        for r in [0, 7_999, 48_001, 96_000] {
            assert!(
                matches!(StreamResampler::new(r), Err(AudioError::UnsupportedRate(x)) if x == r)
            );
        }
        assert!(resample_to_16k(&[0.0; 10], 4_000).is_err());
    }

    #[test]
    fn identity_at_16k() {
        let x = sine(440.0, 16_000, 1_000);
        let mut r = StreamResampler::new(16_000).unwrap();
        let mut out = Vec::new();
        r.process(&x[..7], &mut out).unwrap();
        r.process(&x[7..], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out, x);
        assert_eq!(r.latency_samples(), 0);
    }

    #[test]
    fn latency_is_within_budget() {
        for rate in RATES {
            let r = StreamResampler::new(rate).unwrap();
            let ms = r.latency_samples() as f32 / 16.0;
            assert!(ms <= 20.0, "{rate} Hz: {ms} ms");
        }
        // The common telephony and WebRTC rates stay at ~15 ms.
        for rate in [8_000, 48_000, 44_100] {
            let ms = StreamResampler::new(rate).unwrap().latency_samples() as f32 / 16.0;
            assert!(ms <= 16.0, "{rate} Hz: {ms} ms");
        }
    }

    #[test]
    fn sine_keeps_frequency_amplitude_and_phase() {
        for rate in RATES {
            let x = sine(1_000.0, rate, rate as usize); // one second
            let y = resample_to_16k(&x, rate).unwrap();
            assert_eq!(y.len(), 16_000, "{rate} Hz");
            // Away from the edges (filter start-up and zero padding): the same frequency and
            // amplitude, nothing at a neighbouring frequency, and no time shift beyond a fraction
            // of a sample (the sinc engine's fractional phase, measured at most 0.98 samples).
            let mid = 800..15_200;
            let (amp, lag) = amplitude_and_lag(&y[mid.clone()], mid.start, 1_000.0);
            assert!((amp - 0.5).abs() < 0.01, "{rate} Hz: amplitude {amp}");
            assert!(lag.abs() < 1.0, "{rate} Hz: lag {lag} samples");
            let (off, _) = amplitude_and_lag(&y[mid.clone()], mid.start, 1_100.0);
            assert!(off < 0.01, "{rate} Hz: {off} at 1.1 kHz");
            // Sample for sample the ideal sine (delayed by that fraction): no distortion.
            let w = 2.0 * PI * 1_000.0 / 16_000.0;
            let err = mid
                .map(|i| (y[i] - 0.5 * (w * (i as f32 - lag)).sin()).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 0.01, "{rate} Hz: max error {err}");
        }
    }

    #[test]
    fn content_above_8k_is_filtered_out_when_downsampling() {
        for rate in [32_000, 44_100, 48_000] {
            let x = sine(11_000.0, rate, rate as usize);
            let y = resample_to_16k(&x, rate).unwrap();
            let rms = (y[800..15_200].iter().map(|v| v * v).sum::<f32>() / 14_400.0).sqrt();
            // 0.5 amplitude sine has RMS 0.354; the alias at 5 kHz must be at least 40 dB down.
            assert!(rms < 0.0035, "{rate} Hz: alias rms {rms}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn chunking_changes_nothing_and_length_is_exact(
            rate_idx in 0usize..RATES.len(),
            len in 0usize..6_000,
            chunks in proptest::collection::vec(1usize..700, 1..40),
        ) {
            let rate = RATES[rate_idx];
            let x: Vec<f32> = (0..len).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
            let whole = resample_to_16k(&x, rate).unwrap();
            let expected = ((len as u64 * 16_000 + rate as u64 / 2) / rate as u64) as usize;
            prop_assert_eq!(whole.len(), expected);

            let mut r = StreamResampler::new(rate).unwrap();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < len {
                let n = chunks[i % chunks.len()].min(len - pos);
                let before = out.len();
                r.process(&x[pos..pos + n], &mut out).unwrap();
                pos += n;
                i += 1;
                // Streaming output never runs ahead of the input and lags it by at most the
                // stated latency.
                let due = (pos as u64 * 16_000 / rate as u64) as usize;
                prop_assert!(out.len() <= due + 1);
                prop_assert!(out.len() + r.latency_samples() + 1 >= due, "lag {} > {}", due - out.len(), r.latency_samples());
                prop_assert!(out.len() >= before);
            }
            r.flush(&mut out).unwrap();
            prop_assert_eq!(out.len(), expected);
            for (a, b) in out.iter().zip(&whole) {
                prop_assert!((a - b).abs() < 1e-5, "{} vs {}", a, b);
            }
        }
    }
}
