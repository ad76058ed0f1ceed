//! Cost of the audio front end per 20 ms frame of one track: μ-law decode, resampling
//! 8 kHz → 16 kHz and 48 kHz → 16 kHz (rubato FFT engine) and 22.05 kHz → 16 kHz (sinc
//! engine), the VAD, the endpointer (VAD included), and the whole chain a Twilio frame takes.
//! `cargo bench --bench audio`.
//!
//! Streaming stages keep their state across iterations, so each figure is the steady-state cost
//! of one more frame of a long call, on real (espeak-ng) speech with pauses.

use callcoach_actors::audio::mulaw;
use callcoach_actors::audio::resample::{resample_to_16k, StreamResampler};
use callcoach_actors::segmenter::{Segmenter, SegmenterConfig};
use callcoach_actors::vad::{Vad, FRAME_SAMPLES};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// The committed 8 kHz μ-law clip's payload (the `data` chunk of its WAV).
fn mulaw_clip() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/audio/speech_a_8k_mulaw.wav"
    );
    let bytes = std::fs::read(path).expect("committed test clip");
    let at = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk")
        + 8;
    bytes[at..].to_vec()
}

/// Ten seconds of 8 kHz μ-law: the clip, a second of line silence, the clip again, silence.
fn call_8k_mulaw() -> Vec<u8> {
    let clip = mulaw_clip();
    let mut out = Vec::new();
    while out.len() < 80_000 {
        out.extend_from_slice(&clip);
        out.extend(std::iter::repeat_n(0xffu8, 8_000));
    }
    out.truncate(80_000);
    out
}

/// Cycles through `data` in `n`-element frames.
struct Frames<'a, T> {
    data: &'a [T],
    n: usize,
    pos: usize,
}

impl<'a, T> Frames<'a, T> {
    fn new(data: &'a [T], n: usize) -> Self {
        Self { data, n, pos: 0 }
    }
    fn next_frame(&mut self) -> &'a [T] {
        if self.pos + self.n > self.data.len() {
            self.pos = 0;
        }
        let f = &self.data[self.pos..self.pos + self.n];
        self.pos += self.n;
        f
    }
}

fn bench(c: &mut Criterion) {
    let call = call_8k_mulaw();
    let mut pcm_8k = Vec::new();
    mulaw::decode(&call, &mut pcm_8k);
    let pcm_16k = resample_to_16k(&pcm_8k, 8_000).expect("valid rate");
    let pcm_48k: Vec<f32> = pcm_16k.iter().flat_map(|&s| [s, s, s]).collect();
    let pcm_22k: Vec<f32> = (0..pcm_16k.len() * 22_050 / 16_000)
        .map(|i| pcm_16k[i * 16_000 / 22_050])
        .collect();

    let mut g = c.benchmark_group("audio_per_20ms_frame");

    let mut frames = Frames::new(&call, 160);
    let mut out = Vec::with_capacity(160);
    g.bench_function("mulaw_decode_160_bytes", |b| {
        b.iter(|| {
            out.clear();
            mulaw::decode(black_box(frames.next_frame()), &mut out);
            black_box(out.len())
        })
    });

    for (name, rate, data) in [
        ("resample_8k_to_16k", 8_000u32, &pcm_8k),
        ("resample_48k_to_16k", 48_000, &pcm_48k),
        ("resample_22k05_to_16k_sinc", 22_050, &pcm_22k),
    ] {
        let mut r = StreamResampler::new(rate).expect("valid rate");
        let mut frames = Frames::new(data, rate as usize / 50);
        let mut out = Vec::with_capacity(640);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(frames.next_frame()), &mut out)
                    .expect("resample");
                black_box(out.len())
            })
        });
    }

    let mut vad = Vad::new();
    let mut frames = Frames::new(&pcm_16k, FRAME_SAMPLES);
    g.bench_function("vad", |b| {
        b.iter(|| black_box(vad.process_frame(frames.next_frame())))
    });

    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut frames = Frames::new(&pcm_16k, FRAME_SAMPLES);
    let mut events = Vec::new();
    g.bench_function("segmenter_push", |b| {
        b.iter(|| {
            events.clear();
            seg.push(black_box(frames.next_frame()), &mut events);
            black_box(events.len())
        })
    });

    // What one Twilio media message costs the call actor: decode, resample, endpoint.
    let mut r = StreamResampler::new(8_000).expect("valid rate");
    let mut seg = Segmenter::new(SegmenterConfig::default());
    let mut frames = Frames::new(&call, 160);
    let (mut pcm, mut up, mut events) = (Vec::new(), Vec::new(), Vec::new());
    g.bench_function("twilio_frame_decode_resample_segment", |b| {
        b.iter(|| {
            pcm.clear();
            up.clear();
            events.clear();
            mulaw::decode(frames.next_frame(), &mut pcm);
            r.process(&pcm, &mut up).expect("resample");
            seg.push(&up, &mut events);
            black_box(events.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
