//! Speech in, words out, through the real imported model and the real pool.
//!
//! Speech is generated at test time with espeak-ng (so the test knows the words), decoded from
//! WAV by `audio::file` (22.05 kHz → 16 kHz) and transcribed. The model is located with
//! `callcoach_models::default_model_path()`; run `callcoach models fetch` first (CI does).

use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::{
    CancelToken, JobKind, TranscribeError, Transcriber, TranscriberConfig, TranscriberPool,
};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

fn model() -> PathBuf {
    let path = callcoach_models::default_model_path();
    assert!(
        path.is_file(),
        "no Whisper model at {}: run `callcoach models fetch` first (or set CALLCOACH_WHISPER_MODEL)",
        path.display()
    );
    path
}

fn pool(workers: usize, queue: usize, faults: bool) -> TranscriberPool {
    let mut cfg = TranscriberConfig::new(model());
    cfg.workers = NonZeroUsize::new(workers).unwrap();
    // One thread per worker: tests run in parallel and whisper.cpp threads spin-wait.
    cfg.threads_per_worker = NonZeroUsize::MIN;
    cfg.queue_capacity = NonZeroUsize::new(queue).unwrap();
    cfg.allow_fault_injection = faults;
    TranscriberPool::start(cfg).expect("pool starts with the imported model")
}

/// Speaks `text` with espeak-ng into a temporary WAV and decodes it to 16 kHz mono.
fn speak(text: &str) -> Arc<[f32]> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (apt install espeak-ng)");
    assert!(status.success());
    Arc::from(
        decode_file(&wav)
            .expect("espeak output decodes")
            .samples_16k_mono,
    )
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Share of the reference words found in the hypothesis (order-free; espeak's voice is robotic
/// and tiny.en may miss a word, which a strict equality would make flaky).
fn recall(reference: &str, hypothesis: &str) -> f64 {
    let hyp = words(hypothesis);
    let reference = words(reference);
    let hit = reference.iter().filter(|w| hyp.contains(w)).count();
    hit as f64 / reference.len() as f64
}

fn transcribe(
    t: &Transcriber,
    samples: Arc<[f32]>,
) -> callcoach_actors::transcriber::Transcription {
    t.transcribe_blocking(samples, JobKind::Final)
        .expect("transcribes")
}

#[test]
fn generated_speech_comes_back_as_its_words() {
    let p = pool(1, 8, false);
    let t = p.handle();
    for sentence in [
        "Please send me the pricing information by Friday.",
        "We are already working with another vendor for this project.",
        "My manager needs to approve this before we sign.",
    ] {
        let got = transcribe(&t, speak(sentence));
        assert!(!got.no_speech, "{sentence:?} was taken for silence");
        let r = recall(sentence, &got.text);
        assert!(r >= 0.8, "{sentence:?} -> {:?} (recall {r:.2})", got.text);
        assert!(
            got.audio_ctx > 0 && got.audio_ctx < 1500,
            "short clip uses a short window: {}",
            got.audio_ctx
        );
    }
}

#[test]
fn silence_and_noise_yield_no_text() {
    let p = pool(1, 8, false);
    let t = p.handle();
    let silence: Arc<[f32]> = Arc::from(vec![0.0f32; 16_000 * 3]);
    let got = transcribe(&t, silence);
    assert!(
        got.no_speech && got.text.is_empty(),
        "silence -> {:?}",
        got.text
    );
    // Quiet hiss, above the energy gate so the model itself has to call it no-speech.
    let mut x: u32 = 12345;
    let noise: Vec<f32> = (0..16_000 * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 0.05
        })
        .collect();
    let got = transcribe(&t, Arc::from(noise));
    assert!(got.text.is_empty(), "noise -> {:?}", got.text);
    assert!(!got.text.to_lowercase().contains("thank you"));
}

#[test]
fn full_queues_answer_busy_and_partials_yield_to_finals() {
    let p = pool(1, 1, false);
    let t = p.handle();
    let clip = speak("This sentence keeps the only worker busy for a little while, long enough to queue behind it.");
    let first = t
        .submit(Arc::clone(&clip), JobKind::Final)
        .expect("first final accepted");
    // Wait until the worker has taken it, so the queue is empty again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while t.backlog().busy_workers == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let second = t
        .submit(Arc::clone(&clip), JobKind::Final)
        .expect("second final queued");
    let b = t.backlog();
    assert_eq!((b.queued_finals, b.busy_workers, b.workers), (1, 1, 1));
    assert!(matches!(
        t.submit(Arc::clone(&clip), JobKind::Final),
        Err(TranscribeError::Busy)
    ));
    assert!(
        matches!(
            t.submit(Arc::clone(&clip), JobKind::Partial),
            Err(TranscribeError::Busy)
        ),
        "a partial must be refused while a final waits"
    );
    for rx in [first, second] {
        let r = rx
            .blocking_recv()
            .unwrap()
            .expect("accepted finals are answered");
        assert!(
            recall("this sentence keeps the only worker busy", &r.text) >= 0.8,
            "{:?}",
            r.text
        );
    }
    // Idle again: partials are accepted.
    let partial = t
        .submit(clip, JobKind::Partial)
        .expect("partial accepted when idle");
    assert!(partial.blocking_recv().unwrap().is_ok());
}

/// Waits (up to 5 s) until every worker of `t` is decoding.
fn wait_all_busy(t: &Transcriber) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while t.backlog().busy_workers < t.backlog().workers {
        assert!(std::time::Instant::now() < deadline, "worker never started");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn finals_preempt_running_partials_and_cancelled_jobs_stop() {
    let p = pool(1, 4, false);
    let t = p.handle();
    let long = speak(
        "This is a long preview of an utterance that is still going on, with many words in it, \
         so that its decode takes a good while on a single thread and can be interrupted.",
    );
    let short = speak("Can you send me a quote for the premium plan?");
    let before = transcribe(&t, Arc::clone(&long)).text;

    // A final queued while the only worker decodes a partial takes that worker.
    let partial = t.submit(Arc::clone(&long), JobKind::Partial).unwrap();
    wait_all_busy(&t);
    let fin = t.submit(Arc::clone(&short), JobKind::Final).unwrap();
    assert!(matches!(
        partial.blocking_recv().unwrap(),
        Err(TranscribeError::Cancelled)
    ));
    let r = fin.blocking_recv().unwrap().expect("the final is decoded");
    assert!(
        recall("can you send me a quote", &r.text) >= 0.8,
        "{:?}",
        r.text
    );

    // A job cancelled while it waits in the queue is answered without being decoded.
    let busy = t.submit(Arc::clone(&long), JobKind::Final).unwrap();
    wait_all_busy(&t);
    let token = CancelToken::new();
    let queued = t
        .submit_with(Arc::clone(&short), JobKind::Final, token.clone())
        .unwrap();
    token.cancel();
    assert!(busy.blocking_recv().unwrap().is_ok());
    assert!(matches!(
        queued.blocking_recv().unwrap(),
        Err(TranscribeError::Cancelled)
    ));

    // A running final stops early when cancelled: it had started (the worker was busy), so a
    // `Cancelled` answer means whisper.cpp aborted it (a finished decode answers `Ok`).
    let token = CancelToken::new();
    let running = t
        .submit_with(Arc::clone(&long), JobKind::Final, token.clone())
        .unwrap();
    wait_all_busy(&t);
    token.cancel();
    assert!(matches!(
        running.blocking_recv().unwrap(),
        Err(TranscribeError::Cancelled)
    ));
    // The aborted decodes left the worker's state sound: greedy decoding of the same clip
    // gives the same text as before any abort.
    assert_eq!(transcribe(&t, Arc::clone(&long)).text, before);
}

#[test]
fn a_panicking_worker_answers_recovers_and_is_counted() {
    let restarts = || {
        callcoach_actors::metrics::ACTOR_RESTARTS
            .with_label_values(&["transcriber_worker"])
            .get()
    };
    let p = pool(1, 8, true);
    let t = p.handle();
    let clip = speak("Can you send me a quote for the premium plan?");
    let before = restarts();
    t.inject_panics(1).unwrap();
    assert!(matches!(
        t.transcribe_blocking(Arc::clone(&clip), JobKind::Final),
        Err(TranscribeError::WorkerPanicked)
    ));
    assert_eq!(restarts(), before + 1);
    let r = transcribe(&t, clip);
    assert!(
        recall("can you send me a quote for the premium plan", &r.text) >= 0.8,
        "{:?}",
        r.text
    );
    // Pools without the switch refuse it.
    let strict = pool(1, 8, false);
    assert!(matches!(
        strict.handle().inject_panics(1),
        Err(TranscribeError::FaultInjectionDisabled)
    ));
}

#[test]
fn shutdown_refuses_new_work() {
    let p = pool(1, 8, false);
    let t = p.handle();
    p.shutdown();
    assert!(matches!(
        t.submit(Arc::from(vec![0.0f32; 1600]), JobKind::Final),
        Err(TranscribeError::ShuttingDown)
    ));
}
