//! A transcription worker rebuilt after a panic leaks nothing: heap in use (glibc's
//! `mallinfo2`) stays flat across repeated panics and decodes. Its own test binary, so no other
//! test allocates in the process while it measures.

use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::{JobKind, TranscribeError, TranscriberConfig, TranscriberPool};
use std::process::Command;
use std::sync::Arc;

#[path = "common/heap.rs"]
mod heap;

use heap::heap_in_use_mb;

/// A worker state is tens of MB of buffers; one leaked per rebuild would show at once.
const TOLERANCE_MB: f64 = 8.0;
const ROUNDS: usize = 10;

#[test]
fn rebuilt_worker_states_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg("Can you send me a quote for the premium plan before Friday?")
        .status()
        .expect("espeak-ng must be installed (apt install espeak-ng)");
    assert!(status.success());
    let clip: Arc<[f32]> = Arc::from(decode_file(&wav).unwrap().samples_16k_mono);

    let mut cfg = TranscriberConfig::new(callcoach_models::default_model_path());
    cfg.allow_fault_injection = true;
    let pool = TranscriberPool::start(cfg).expect("pool starts with the imported model");
    let t = pool.handle();
    let panic_then_decode = || {
        t.inject_panics(1).unwrap();
        assert!(matches!(
            t.transcribe_blocking(Arc::clone(&clip), JobKind::Final),
            Err(TranscribeError::WorkerPanicked)
        ));
        let r = t
            .transcribe_blocking(Arc::clone(&clip), JobKind::Final)
            .expect("the rebuilt worker decodes");
        assert!(r.text.to_lowercase().contains("quote"), "{:?}", r.text);
    };
    // The first panic of a process may fill one-time caches (Rust's symbolization cache when
    // RUST_BACKTRACE is set: ~60 MB with debug info); the baseline comes after it.
    panic_then_decode();
    let Some(baseline) = heap_in_use_mb() else {
        eprintln!("skipped: no heap statistics off glibc");
        return;
    };
    let mut seen = Vec::new();
    for _ in 0..ROUNDS {
        panic_then_decode();
        seen.push(heap_in_use_mb().expect("glibc") - baseline);
    }
    eprintln!("heap in use after each rebuild, MB above the {baseline:.0} MB baseline: {seen:.1?}");
    let grown = seen.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        grown <= TOLERANCE_MB,
        "heap grew {grown:.1} MB over {ROUNDS} worker rebuilds: {seen:.1?}"
    );
}
