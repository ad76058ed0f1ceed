//! The audio front end: decoding wire encodings and files to f32, resampling to 16 kHz.
//!
//! * [`mulaw`] — G.711 μ-law (Twilio, SIP).
//! * [`pcm`] — interleaved s16le / f32le frames split into channels.
//! * [`resample`] — streaming and one-shot resampling to [`crate::PIPELINE_SAMPLE_RATE`] (rubato).
//! * [`file`] — whole-file decoding (WAV/FLAC/MP3/OGG via symphonia) to mono 16 kHz.
//!
//! Every part answers bad input with an [`AudioError`]; none panics on it.

pub mod file;
pub mod mulaw;
pub mod pcm;
pub mod resample;

/// Lowest input sample rate the front end accepts (narrow-band telephony, G.711).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest input sample rate the front end accepts (studio / WebRTC Opus decode rate).
pub const MAX_SAMPLE_RATE: u32 = 48_000;
/// Most interleaved channels a live stream may carry: one per party (agent, customer).
pub const MAX_CHANNELS: usize = 2;

/// Why audio could not be decoded or resampled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// A frame whose byte length is not a whole number of interleaved samples.
    #[error(
        "malformed frame: {len} bytes is not a multiple of {frame_bytes} (sample size x channels)"
    )]
    MalformedFrame { len: usize, frame_bytes: usize },
    /// A sample rate outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
    #[error("unsupported sample rate {0} hz (expected 8000..=48000)")]
    UnsupportedRate(u32),
    /// A channel count outside 1..=[`MAX_CHANNELS`], or an output slice of the wrong length.
    #[error("unsupported channel count {0} (expected 1 or 2)")]
    UnsupportedChannels(usize),
    /// A non-finite (NaN or infinite) f32 sample in an `f32le` frame.
    #[error("non-finite f32 sample at index {index}")]
    NonFiniteSample { index: usize },
    /// The resampler could not be built or refused its input (a bug, not bad input).
    #[error("resampler failed: {0}")]
    Resampler(String),
    /// The audio container or codec could not be read.
    #[error("failed to decode audio: {0}")]
    Decode(String),
    /// Reading the audio file failed.
    #[error("failed to read audio file: {0}")]
    Io(#[from] std::io::Error),
    /// The input is larger or longer than the configured limit allows.
    #[error("audio limit exceeded: {0}")]
    Limit(String),
}

/// Checks that `rate` is one the front end accepts.
pub fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::UnsupportedRate(rate))
    }
}
