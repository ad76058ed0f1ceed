//! The audio front end: decoding wire encodings and files to f32, resampling to 16 kHz.
//!
//! * [`mulaw`] — G.711 μ-law (Twilio, SIP).
//! * [`pcm`] — interleaved s16le / f32le frames split into channels.
//! * [`resample`] — streaming and one-shot resampling to [`crate::PIPELINE_SAMPLE_RATE`] (rubato).
//! * [`file`] — whole-file decoding (WAV/FLAC/MP3/OGG via symphonia) to mono 16 kHz.

pub mod file;
pub mod mulaw;
pub mod pcm;
pub mod resample;
