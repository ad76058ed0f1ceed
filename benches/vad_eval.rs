//! Evaluates the VAD and the endpointer on real human speech (`../shared/data/speech`: LJ Speech,
//! LibriSpeech and other read clips), clean and in added noise.
//!
//! Each clip is resampled to 16 kHz and placed between 1.5 s of background; the reference is the
//! clean clip's frames above -40 dBFS (and above the added noise). Reported per condition:
//! * VAD recall — reference frames the VAD marks (voiced or inside smoothed speech);
//! * VAD false alarms — background frames (farther than 300 ms from the clip) marked speech;
//! * coverage — reference frames inside some `Final`; finals per clip; onset/end error of the
//!   first/last final against the reference (negative = early).
//!
//! `cargo bench --bench vad_eval` — data from `$CALLCOACH_SPEECH_DATA`, else
//! `../shared/data/speech` beside the repo.

use callcoach_actors::audio::resample::resample_to_16k;
use callcoach_actors::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use callcoach_actors::vad::{Vad, FRAME_SAMPLES};
use std::path::PathBuf;
use std::time::Instant;

const LEAD_S: f32 = 1.5;

fn rms_dbfs(x: &[f32]) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    10.0 * ms.max(1e-20).log10()
}

/// Mono f32 samples and rate of a 16-bit PCM WAV (channels averaged), or why not.
fn read_wav(bytes: &[u8]) -> Result<(Vec<f32>, u32), String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let (mut pos, mut fmt) = (12, None);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 16 {
            let tag = u16::from_le_bytes([body[0], body[1]]);
            let ch = u16::from_le_bytes([body[2], body[3]]) as usize;
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if !(tag == 1 || tag == 0xfffe) || bits != 16 || ch == 0 {
                return Err(format!(
                    "unsupported format tag {tag}, {bits} bits, {ch} channels"
                ));
            }
            fmt = Some((ch, rate));
        } else if id == b"data" {
            let (ch, rate) = fmt.ok_or("data before fmt")?;
            let samples: Vec<f32> = body
                .chunks_exact(2 * ch)
                .map(|f| {
                    f.chunks_exact(2)
                        .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32_768.0)
                        .sum::<f32>()
                        / ch as f32
                })
                .collect();
            return Ok((samples, rate));
        }
        pos += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

struct Rng(u64);
impl Rng {
    fn normal(&mut self) -> f32 {
        let mut u = || {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        (u() + u() + u() + u()) * 0.866
    }
}

/// White (`pink = false`) or pink noise with RMS `dbfs`.
fn noise(n: usize, dbfs: f32, pink: bool, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed | 1);
    let mut b = [0.0f32; 7];
    let mut x: Vec<f32> = (0..n)
        .map(|_| {
            let w = r.normal();
            if !pink {
                return w;
            }
            b[0] = 0.99886 * b[0] + w * 0.055_517_9;
            b[1] = 0.99332 * b[1] + w * 0.075_075_9;
            b[2] = 0.96900 * b[2] + w * 0.153_852;
            b[3] = 0.86650 * b[3] + w * 0.310_485_6;
            b[4] = 0.55000 * b[4] + w * 0.532_952_2;
            b[5] = -0.7616 * b[5] - w * 0.016_898;
            let y = b.iter().sum::<f32>() + w * 0.5362;
            b[6] = w * 0.115_926;
            y
        })
        .collect();
    let g = 10f32.powf((dbfs - rms_dbfs(&x)) / 20.0);
    x.iter_mut().for_each(|v| *v *= g);
    x
}

#[derive(Default)]
struct Tally {
    clips: usize,
    ref_frames: usize,
    vad_hits: usize,
    bg_frames: usize,
    bg_alarms: usize,
    covered: usize,
    finals: usize,
    onset_err_ms: Vec<i64>,
    end_err_ms: Vec<i64>,
    /// Speech end (reference) to the last final's emission, on the audio clock.
    final_delay_ms: Vec<i64>,
    missed_clips: usize,
}

fn percentile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let dir = std::env::var_os("CALLCOACH_SPEECH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/data/speech"
            ))
        });
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect(),
        Err(e) => {
            eprintln!("no speech data at {}: {e}", dir.display());
            return;
        }
    };
    files.sort();
    let conditions: &[(&str, Option<(f32, bool)>)] = &[
        ("clean (-70 dBFS white floor)", None),
        ("pink noise, 10 dB SNR", Some((10.0, true))),
        ("white noise, 10 dB SNR", Some((10.0, false))),
        ("white noise, 5 dB SNR", Some((5.0, false))),
    ];
    let started = Instant::now();
    let mut audio_s = 0.0f64;
    println!("{} clips from {}", files.len(), dir.display());
    println!("| condition | clips | VAD recall | VAD false alarms | final coverage | finals/clip | onset err p50 | end err p50 | speech end → final p50 / max | clips missed |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (ci, (name, cond)) in conditions.iter().enumerate() {
        let mut t = Tally::default();
        for (fi, path) in files.iter().enumerate() {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let (pcm, rate) = match read_wav(&bytes) {
                Ok(x) => x,
                Err(e) => {
                    if ci == 0 {
                        eprintln!("skip {}: {e}", path.display());
                    }
                    continue;
                }
            };
            let Ok(clip) = resample_to_16k(&pcm, rate) else {
                continue;
            };
            let speech_db = rms_dbfs(&clip);
            let lead = (LEAD_S * 16_000.0) as usize;
            let n = lead * 2 + clip.len();
            let (noise_db, mut x) = match cond {
                None => (-70.0, noise(n, -70.0, false, fi as u64 + 1)),
                Some((snr, pink)) => (
                    speech_db - snr,
                    noise(n, speech_db - snr, *pink, fi as u64 + 7),
                ),
            };
            for (d, s) in x[lead..].iter_mut().zip(&clip) {
                *d += s;
            }
            audio_s += n as f64 / 16_000.0;
            // Reference frames (on the mixed clock).
            let lead_frames = lead / FRAME_SAMPLES;
            let reference: Vec<usize> = clip
                .chunks_exact(FRAME_SAMPLES)
                .enumerate()
                .filter(|(_, f)| rms_dbfs(f) > noise_db.max(-40.0))
                .map(|(i, _)| i + lead_frames)
                .collect();
            if reference.is_empty() {
                continue;
            }
            t.clips += 1;
            let mut vad = Vad::new();
            let frames: Vec<_> = x
                .chunks_exact(FRAME_SAMPLES)
                .map(|f| vad.process_frame(f))
                .collect();
            t.ref_frames += reference.len();
            t.vad_hits += reference
                .iter()
                .filter(|&&i| frames[i].voiced || frames[i].speech)
                .count();
            let guard = 15; // 300 ms
            let clip_frames = clip.len() / FRAME_SAMPLES;
            for (i, f) in frames.iter().enumerate() {
                if i + guard < lead_frames || i > lead_frames + clip_frames + guard {
                    t.bg_frames += 1;
                    t.bg_alarms += f.speech as usize;
                }
            }
            // Frame by frame, noting when (audio clock) each final comes out.
            let mut seg = Segmenter::new(SegmenterConfig::default());
            let (mut events, mut finals, mut emitted_at) = (Vec::new(), Vec::new(), Vec::new());
            for f in x.chunks(FRAME_SAMPLES) {
                seg.push(f, &mut events);
                for e in events.drain(..) {
                    if let SegmentEvent::Final {
                        start_ms, end_ms, ..
                    } = e
                    {
                        finals.push((start_ms, end_ms));
                        emitted_at.push(seg.now_ms());
                    }
                }
            }
            seg.finish(&mut events);
            for e in events.drain(..) {
                if let SegmentEvent::Final {
                    start_ms, end_ms, ..
                } = e
                {
                    finals.push((start_ms, end_ms));
                    emitted_at.push(u64::MAX); // only at end of stream: endpoint never fired
                }
            }
            t.finals += finals.len();
            t.covered += reference
                .iter()
                .filter(|&&i| {
                    let ms = i as u64 * 20;
                    finals.iter().any(|(s, e)| ms >= *s && ms < *e)
                })
                .count();
            if let (Some(first), Some(last)) = (finals.first(), finals.last()) {
                let ref_start = reference[0] as i64 * 20;
                let ref_end = (*reference.last().unwrap_or(&0) as i64 + 1) * 20;
                t.onset_err_ms.push(first.0 as i64 + 200 - ref_start); // voice start = start + pre-roll
                t.end_err_ms.push(last.1 as i64 - ref_end);
                let at = *emitted_at.last().unwrap_or(&u64::MAX);
                t.final_delay_ms.push(if at == u64::MAX {
                    i64::MAX
                } else {
                    at as i64 - ref_end
                });
            } else {
                t.missed_clips += 1;
            }
        }
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        println!(
            "| {name} | {} | {:.1} % | {:.2} % | {:.1} % | {:.2} | {} ms | {} ms | {} / {} ms | {} |",
            t.clips,
            pct(t.vad_hits, t.ref_frames),
            pct(t.bg_alarms, t.bg_frames),
            pct(t.covered, t.ref_frames),
            t.finals as f64 / t.clips.max(1) as f64,
            percentile(&mut t.onset_err_ms, 0.5),
            percentile(&mut t.end_err_ms, 0.5),
            percentile(&mut t.final_delay_ms, 0.5),
            percentile(&mut t.final_delay_ms, 1.0),
            t.missed_clips,
        );
    }
    let el = started.elapsed().as_secs_f64();
    println!("\n{audio_s:.0} s of audio through resample+VAD+segmenter (twice) in {el:.1} s");
}
