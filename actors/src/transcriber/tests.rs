//! Pool tests that need no model file. Tests through the real model (speech, silence, noise,
//! Busy, fault injection) are in the root crate's `tests/asr.rs`, which can locate the
//! imported model.

use super::*;

#[test]
fn missing_model_is_a_clear_start_error() {
    let err = TranscriberPool::start(TranscriberConfig::new("/nonexistent/ggml-tiny.en.bin"))
        .err()
        .expect("start must fail");
    let msg = err.to_string();
    assert!(matches!(err, TranscribeError::ModelLoad { .. }), "{msg}");
    assert!(msg.contains("callcoach models fetch"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_model_fails_to_load_without_crashing() {
    let dir = std::env::temp_dir().join(format!("cc-transcriber-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("bogus.bin");
    std::fs::write(&bogus, b"this is not a ggml file at all").unwrap();
    let err = TranscriberPool::start(TranscriberConfig::new(&bogus))
        .err()
        .expect("start must fail");
    assert!(matches!(err, TranscribeError::ModelLoad { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn defaults_are_sane() {
    let cfg = TranscriberConfig::new("m.bin");
    assert_eq!(cfg.queue_capacity.get(), FINAL_QUEUE_CAPACITY);
    assert!(!cfg.allow_fault_injection);
    assert!(!cfg.timestamps);
}
