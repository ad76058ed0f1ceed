//! The client side of the wire protocols: a softphone that streams a recording to a callcoach
//! server over a real WebSocket and records what the server says back, with arrival times.
//!
//! `callcoach replay`, `callcoach loadgen` and the integration tests all drive the server
//! through this module, so what they measure is what a real softphone sees.
//!
//! * [`audio`] — decode a recording into per-channel samples, resample it (8 kHz for Twilio).
//! * [`call`] — the generated two-speaker sales call and its ground-truth timeline.
//! * [`twilio`] — the exact JSON messages Twilio Media Streams sends.
//! * [`replay`] — one softphone: prepare 20 ms frames, stream them (paced or not), collect events.

pub mod audio;
pub mod call;
pub mod replay;
pub mod twilio;

/// Everything that can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decode audio: {0}")]
    Decode(#[from] symphonia::core::errors::Error),
    #[error("audio has {0} channels; replay sends 1 or 2")]
    UnsupportedChannels(usize),
    #[error("audio has no samples")]
    EmptyAudio,
    #[error("audio has no sample rate")]
    NoSampleRate,
    #[error("cannot resample: {0}")]
    Resample(String),
    #[error("agent channel {channel} does not exist in {channels}-channel audio")]
    NoSuchChannel { channel: usize, channels: usize },
    #[error("bad url `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("connecting to {url} timed out")]
    ConnectTimeout { url: String },
    #[error("websocket error: {0}")]
    Socket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("server sent no `ready` within {0:?}")]
    NoReady(std::time::Duration),
    #[error("bad call timeline {path}: {reason}")]
    Timeline {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot generate the call: {0}")]
    Generate(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::Socket(Box::new(e))
    }
}
