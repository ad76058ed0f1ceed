//! The live call pipeline, free of HTTP and SQL.
//!
//! Data flows one way (see `DESIGN.md`):
//!
//! ```text
//! frames -> call (CallActor) -> audio (decode, resample) -> vad -> segmenter
//!        -> transcriber (pool) -> sentiment -> coach -> scorer -> CallObserver (server fan-out, store)
//! ```
//!
//! * [`event`] — the shared vocabulary and wire events.
//! * [`audio`] — μ-law/PCM decoding, resampling to 16 kHz, whole-file decoding.
//! * [`vad`], [`segmenter`] — voice activity per frame and utterance endpointing.
//! * [`transcriber`] — the pooled Whisper workers.
//! * [`sentiment`] — lexicon-and-rules sentiment with a fingerprint cache.
//! * [`coach`] — the playbook rules that turn signals into hints.
//! * [`scorer`] — the explainable lead score and lead state machine.
//! * [`redact`] — PII redaction applied before anything is stored or fanned out.
//! * [`call`] — one actor per live call.
//! * [`supervisor`] — starts and restarts the long-lived actors.
//! * [`metrics`] — the Prometheus registry every stage records into.

pub mod audio;
pub mod call;
pub mod coach;
pub mod event;
pub mod metrics;
pub mod redact;
pub mod scorer;
pub mod segmenter;
pub mod sentiment;
pub mod supervisor;
pub mod transcriber;
pub mod vad;

pub use event::*;
