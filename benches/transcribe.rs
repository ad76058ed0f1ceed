//! Per-utterance transcription latency over real speech clips of ~2 s, 5 s and 10 s
//! (../shared/data/speech), through the real pool and model.
//!
//! Groups: `1x2/tuned` (the default decode policy: encoder window sized to the clip, guarded),
//! `1x2/full_window` (whisper.cpp's default 30 s window), both 1 worker × 2 threads (the
//! issue's bar), `1x2/tuned_flash_attn` (whisper.cpp's flash-attention kernels), and `1x1/tuned` (one thread: whisper.cpp threads spin-wait, so on a busy
//! machine one thread is the robust choice), measured in one run so ratios are meaningful. Model: `callcoach_models::
//! default_model_path()` (run `callcoach models fetch` first). Figures: benches/README.md.

use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::{DecodePolicy, JobKind, TranscriberConfig, TranscriberPool};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The clips closest to 2, 5 and 10 s in the evaluation set.
const CLIPS: [(&str, &str); 3] = [
    ("2s", "LJ001-0002.wav"),
    ("5s", "LJ001-0004.wav"),
    ("10s", "LJ001-0001.wav"),
];

fn speech_dir() -> PathBuf {
    std::env::var_os("CALLCOACH_SPEECH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/data/speech"
            ))
        })
}

fn pool(policy: DecodePolicy, threads: usize, flash_attn: bool) -> TranscriberPool {
    let model = callcoach_models::default_model_path();
    assert!(
        model.is_file(),
        "no model at {} — run `callcoach models fetch` first",
        model.display()
    );
    let mut cfg = TranscriberConfig::new(model);
    cfg.workers = NonZeroUsize::MIN;
    cfg.threads_per_worker = NonZeroUsize::new(threads).unwrap();
    cfg.policy = policy;
    cfg.flash_attn = flash_attn;
    TranscriberPool::start(cfg).expect("pool starts")
}

fn bench(c: &mut Criterion) {
    let clips: Vec<(&str, Arc<[f32]>)> = CLIPS
        .iter()
        .map(|(label, file)| {
            let audio = decode_file(speech_dir().join(file)).expect("evaluation clip decodes");
            (*label, Arc::from(audio.samples_16k_mono))
        })
        .collect();
    let full = DecodePolicy {
        ctx_margin_frames: 0,
        ..DecodePolicy::default()
    };
    let runs = [
        ("1x2/tuned", DecodePolicy::default(), 2, false),
        ("1x2/tuned_flash_attn", DecodePolicy::default(), 2, true),
        ("1x2/full_window", full, 2, false),
        ("1x1/tuned", DecodePolicy::default(), 1, false),
    ];
    for (name, policy, threads, flash_attn) in runs {
        let pool = pool(policy, threads, flash_attn);
        let t = pool.handle();
        let mut group = c.benchmark_group(format!("transcribe_{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(6))
            .warm_up_time(Duration::from_secs(1));
        for (label, samples) in &clips {
            group.bench_with_input(BenchmarkId::from_parameter(label), samples, |b, s| {
                b.iter(|| {
                    t.transcribe_blocking(Arc::clone(s), JobKind::Final)
                        .expect("transcribes")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
