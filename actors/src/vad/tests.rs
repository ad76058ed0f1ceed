//! VAD tests on generated audio: silence, white and pink noise at several levels, tones, line
//! hum, and speech (espeak-ng clips committed under `assets/audio/`, see its README).
//!
//! The signal generators are shared with the segmenter's tests.

use super::*;
use crate::audio::{mulaw, resample::resample_to_16k};

pub(crate) const SR: f32 = 16_000.0;

/// Deterministic xorshift noise so every run sees the same signal.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Uniform in [-1, 1).
    pub(crate) fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Approximately standard normal (sum of 4 uniforms, scaled).
    pub(crate) fn normal(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() + self.uniform()) * 0.866
    }
}

pub(crate) fn dbfs_to_amp(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0)
}

pub(crate) fn rms_dbfs(x: &[f32]) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    10.0 * ms.max(1e-20).log10()
}

/// White noise with RMS `dbfs`.
pub(crate) fn white(n: usize, dbfs: f32, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let a = dbfs_to_amp(dbfs);
    (0..n).map(|_| a * r.normal()).collect()
}

/// Pink (1/f) noise with RMS `dbfs` (Paul Kellet's refined filter on white noise).
pub(crate) fn pink(n: usize, dbfs: f32, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let mut b = [0.0f32; 7];
    let mut x: Vec<f32> = (0..n)
        .map(|_| {
            let w = r.normal();
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.153_852;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let y = b.iter().sum::<f32>() + w * 0.5362;
            b[6] = w * 0.115926;
            y
        })
        .collect();
    let g = dbfs_to_amp(dbfs) / dbfs_to_amp(rms_dbfs(&x));
    x.iter_mut().for_each(|v| *v *= g);
    x
}

/// Sum of sines (Hz, peak amplitude).
pub(crate) fn tones(n: usize, parts: &[(f32, f32)]) -> Vec<f32> {
    (0..n)
        .map(|i| {
            parts
                .iter()
                .map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * i as f32 / SR).sin())
                .sum()
        })
        .collect()
}

/// Mains hum: 60 Hz and its first ten harmonics falling off as 1/k, peak `amp`.
pub(crate) fn hum(n: usize, amp: f32) -> Vec<f32> {
    let parts: Vec<(f32, f32)> = (1..=10)
        .map(|k| (60.0 * k as f32, amp / k as f32))
        .collect();
    tones(n, &parts)
}

/// A committed espeak-ng clip (8 kHz μ-law WAV) decoded and resampled to 16 kHz, i.e. exactly
/// what a Twilio stream of it turns into.
pub(crate) fn speech_clip(name: &str) -> Vec<f32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/audio")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (rate, data) = mulaw_wav_payload(&bytes);
    let mut pcm = Vec::new();
    mulaw::decode(data, &mut pcm);
    resample_to_16k(&pcm, rate).unwrap()
}

/// The sample rate and `data` chunk of a mono μ-law WAV (format tag 7).
fn mulaw_wav_payload(bytes: &[u8]) -> (u32, &[u8]) {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut pos = 12;
    let mut rate = 0;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), 7, "not μ-law");
            assert_eq!(u16::from_le_bytes([body[2], body[3]]), 1, "not mono");
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            return (rate, body);
        }
        pos += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}

/// Adds `src` into `dst` starting at `at_s` seconds.
pub(crate) fn mix_at(dst: &mut [f32], src: &[f32], at_s: f32) {
    let start = ((at_s * SR) as usize).min(dst.len());
    for (d, s) in dst[start..].iter_mut().zip(src) {
        *d += s;
    }
}

/// Per-frame VAD output for a whole signal.
pub(crate) fn run_vad(x: &[f32]) -> Vec<VadFrame> {
    let mut vad = Vad::new();
    x.chunks_exact(FRAME_SAMPLES)
        .map(|f| vad.process_frame(f))
        .collect()
}

fn voiced_count(frames: &[VadFrame]) -> usize {
    frames.iter().filter(|f| f.voiced).count()
}

fn speech_count(frames: &[VadFrame]) -> usize {
    frames.iter().filter(|f| f.speech).count()
}

/// Frame indices where the clean reference is clearly speech (RMS above -40 dBFS).
fn reference_speech_frames(clean: &[f32], offset_frames: usize) -> Vec<usize> {
    frames_louder_than(clean, -40.0, offset_frames)
}

/// Frame indices where the clean signal's RMS exceeds `dbfs`.
fn frames_louder_than(clean: &[f32], dbfs: f32, offset_frames: usize) -> Vec<usize> {
    clean
        .chunks_exact(FRAME_SAMPLES)
        .enumerate()
        .filter(|(_, f)| rms_dbfs(f) > dbfs)
        .map(|(i, _)| i + offset_frames)
        .collect()
}

const TEN_S: usize = 160_000;

#[test]
fn digital_silence_and_dither_are_never_speech() {
    assert_eq!(voiced_count(&run_vad(&vec![0.0; TEN_S])), 0);
    assert_eq!(voiced_count(&run_vad(&white(TEN_S, -72.0, 1))), 0);
    // A burst of dither after digital silence is still below the absolute floor.
    let mut x = vec![0.0; TEN_S];
    mix_at(&mut x, &white(16_000, -60.0, 2), 5.0);
    assert_eq!(voiced_count(&run_vad(&x)), 0);
}

#[test]
fn steady_noise_is_never_speech() {
    for level in [-50.0, -40.0, -30.0, -20.0, -10.0] {
        for (kind, x) in [
            ("white", white(TEN_S, level, 3)),
            ("pink", pink(TEN_S, level, 4)),
        ] {
            let frames = run_vad(&x);
            assert_eq!(speech_count(&frames), 0, "{kind} noise at {level} dBFS");
            assert!(
                voiced_count(&frames) <= 2,
                "{kind} at {level}: {}",
                voiced_count(&frames)
            );
        }
    }
}

#[test]
fn noise_alone_scores_low() {
    // The bias factor puts noise-only frames near 0-2 dB mean SNR, well under SCORE_ON_DB.
    for x in [white(TEN_S, -30.0, 5), pink(TEN_S, -30.0, 6)] {
        let frames = run_vad(&x);
        let mean =
            frames[100..].iter().map(|f| f.score_db).sum::<f32>() / (frames.len() - 100) as f32;
        assert!(mean < 2.0, "mean score {mean}");
    }
}

#[test]
fn tones_and_hum_are_not_speech_even_when_they_start_mid_stream() {
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("440 Hz", tones(TEN_S / 2, &[(440.0, 0.3)])),
        ("1 kHz", tones(TEN_S / 2, &[(1_000.0, 0.3)])),
        ("3 kHz", tones(TEN_S / 2, &[(3_000.0, 0.3)])),
        (
            "dial tone 350+440",
            tones(TEN_S / 2, &[(350.0, 0.2), (440.0, 0.2)]),
        ),
        (
            "DTMF 5 (770+1336)",
            tones(TEN_S / 2, &[(770.0, 0.2), (1_336.0, 0.2)]),
        ),
        (
            "ringback 440+480",
            tones(TEN_S / 2, &[(440.0, 0.2), (480.0, 0.2)]),
        ),
        ("60 Hz hum", hum(TEN_S / 2, 0.3)),
    ];
    let mut failures = Vec::new();
    for (name, sig) in cases {
        // From the start...
        let from_start = voiced_count(&run_vad(&sig));
        // ...and switched on after two seconds of quiet noise (a short fade, as a real source).
        let mut x = white(TEN_S, -60.0, 7);
        let mut s = sig.clone();
        for (i, v) in s.iter_mut().take(160).enumerate() {
            *v *= i as f32 / 160.0;
        }
        mix_at(&mut x, &s, 2.0);
        // A machine sound that appears mid-stream may read as speech until it is learned
        // (steadiness shows after ~0.6 s, plus hangover), never for longer than a second.
        let frames = run_vad(&x);
        let blip = speech_count(&frames[..100 + 50]);
        let after = speech_count(&frames[100 + 50..]);
        if from_start > 0 || blip > 45 || after > 0 {
            failures.push(format!(
                "{name}: {from_start} voiced from start, mid-stream {blip} speech in the first 1 s, {after} after"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn noise_that_starts_mid_stream_is_learned_within_the_window() {
    let mut x = white(TEN_S, -65.0, 8);
    mix_at(&mut x, &pink(TEN_S, -30.0, 9), 3.0);
    let frames = run_vad(&x);
    let onset = 150; // frame index at 3 s
    let late = speech_count(&frames[onset + 90..]); // from 1.8 s after the noise began
    assert_eq!(late, 0, "noise still taken for speech after the window");
}

#[test]
fn speech_is_detected_in_clean_audio() {
    for clip in ["speech_a_8k_mulaw.wav", "speech_b_8k_mulaw.wav"] {
        let s = speech_clip(clip);
        let mut x = white(TEN_S, -65.0, 10);
        mix_at(&mut x, &s, 2.0);
        let frames = run_vad(&x);
        let reference = reference_speech_frames(&s, 100);
        assert!(reference.len() > 50, "{clip}: reference too short");
        let hit = reference.iter().filter(|&&i| frames[i].speech).count();
        assert!(
            hit as f32 >= 0.95 * reference.len() as f32,
            "{clip}: {hit}/{} speech frames detected",
            reference.len()
        );
        // Nothing before the clip starts.
        assert_eq!(
            speech_count(&frames[..100]),
            0,
            "{clip}: speech before the clip"
        );
    }
}

#[test]
fn speech_is_detected_in_noise_and_hum() {
    let s = speech_clip("speech_a_8k_mulaw.wav");
    let speech_db = rms_dbfs(&s);
    for (name, snr) in [
        ("white", 10.0),
        ("white", 5.0),
        ("pink", 10.0),
        ("pink", 5.0),
        ("hum", 10.0),
    ] {
        let noise_db = speech_db - snr;
        let mut x = match name {
            "white" => white(TEN_S, noise_db, 11),
            "pink" => pink(TEN_S, noise_db, 12),
            _ => {
                let mut h = hum(TEN_S, dbfs_to_amp(noise_db) * 1.414);
                mix_at(&mut h, &white(TEN_S, noise_db - 20.0, 13), 0.0);
                h
            }
        };
        mix_at(&mut x, &s, 3.0);
        let frames = run_vad(&x);
        // Speech frames at least as loud as the noise (a frame under the noise is lost to any
        // detector; at 5 dB SNR that is a quarter of the syllable tails).
        let reference = frames_louder_than(&s, noise_db.max(-40.0), 150);
        // A frame is caught when it is voiced or inside the smoothed speech span (the first
        // voiced frame of an onset is voiced but not yet `speech`).
        let hit = reference
            .iter()
            .filter(|&&i| frames[i].speech || frames[i].voiced)
            .count();
        let need = if snr >= 10.0 { 0.9 } else { 0.75 };
        assert!(
            hit as f32 >= need * reference.len() as f32,
            "{name} at {snr} dB SNR: {hit}/{} detected",
            reference.len()
        );
        let false_before = speech_count(&frames[..150]);
        assert_eq!(
            false_before, 0,
            "{name} at {snr} dB: speech before the clip"
        );
    }
}

#[test]
fn soft_speech_onset_is_caught_quickly() {
    let s = speech_clip("speech_b_8k_mulaw.wav");
    // The clip scaled to -45 dBFS RMS: a soft talker on a quiet headset line.
    let g = dbfs_to_amp(-45.0 - rms_dbfs(&s));
    let soft: Vec<f32> = s.iter().map(|v| v * g).collect();
    let mut x = white(TEN_S, -70.0, 14);
    mix_at(&mut x, &soft, 2.0);
    let frames = run_vad(&x);
    // First frame of the clean clip that carries speech energy (20 dB under its loudest frame).
    let loudest = s
        .chunks_exact(FRAME_SAMPLES)
        .map(rms_dbfs)
        .fold(f32::MIN, f32::max);
    let first = s
        .chunks_exact(FRAME_SAMPLES)
        .position(|f| rms_dbfs(f) > loudest - 20.0)
        .unwrap()
        + 100;
    let detected = frames
        .iter()
        .position(|f| f.speech)
        .expect("soft speech missed");
    assert!(
        detected >= 100,
        "triggered before the clip at frame {detected}"
    );
    assert!(
        detected <= first + 3,
        "onset at frame {first}, detected at {detected}"
    );
    let reference = reference_speech_frames(&soft.iter().map(|v| v / g).collect::<Vec<_>>(), 100);
    let hit = reference.iter().filter(|&&i| frames[i].speech).count();
    assert!(
        hit as f32 >= 0.9 * reference.len() as f32,
        "{hit}/{}",
        reference.len()
    );
}

#[test]
fn odd_frame_lengths_and_non_finite_samples_do_not_panic() {
    let mut vad = Vad::new();
    vad.process_frame(&[]);
    vad.process_frame(&[0.5; 17]);
    vad.process_frame(&[0.1; 1000]);
    let f = vad.process_frame(&[f32::NAN; FRAME_SAMPLES]);
    assert!(f.energy_dbfs.is_finite() && f.score_db.is_finite());
}
