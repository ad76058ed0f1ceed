//! The vocabulary every stage of the pipeline speaks: tracks, utterances, transcripts, hints and
//! the events a live call fans out to overlays, dashboards and the store.
//!
//! These types are also the wire format of the server's JSON events (`serde` with a `type` tag),
//! so a change here is a protocol change: keep field names stable.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The sample rate everything downstream of the resampler works at (Whisper's native rate).
pub const PIPELINE_SAMPLE_RATE: u32 = 16_000;

/// One speaker's audio within a call. A mono recording of both parties is `Mixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    Agent,
    Customer,
    Mixed,
}

impl Track {
    pub const fn as_str(self) -> &'static str {
        match self {
            Track::Agent => "agent",
            Track::Customer => "customer",
            Track::Mixed => "mixed",
        }
    }

    /// Whether this track carries the agent's voice (a mixed track counts for both parties).
    pub const fn is_agent(self) -> bool {
        matches!(self, Track::Agent | Track::Mixed)
    }

    /// Whether this track carries the customer's voice.
    pub const fn is_customer(self) -> bool {
        matches!(self, Track::Customer | Track::Mixed)
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Track {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Track::Agent),
            "customer" => Ok(Track::Customer),
            "mixed" => Ok(Track::Mixed),
            other => Err(format!(
                "unknown track `{other}` (expected agent, customer or mixed)"
            )),
        }
    }
}

/// Sequence number of an utterance within its call, shared by all tracks (1, 2, 3, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UtteranceId(pub u32);

impl fmt::Display for UtteranceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{}", self.0)
    }
}

/// A span of speech cut from one track by the endpointer, at [`PIPELINE_SAMPLE_RATE`].
#[derive(Debug, Clone)]
pub struct Utterance {
    pub id: UtteranceId,
    pub track: Track,
    /// Milliseconds since the call started (audio time, not wall time).
    pub start_ms: u64,
    pub end_ms: u64,
    /// Mono f32 samples in [-1, 1] at 16 kHz. Shared so partial re-decodes do not copy.
    pub samples: std::sync::Arc<[f32]>,
}

/// Text for one utterance. A `partial` may be revised (higher `revision`); a `final` never is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub utterance_id: UtteranceId,
    pub track: Track,
    pub revision: u32,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Valence of one utterance, VADER-style: `compound` in [-1, 1], the rest proportions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct SentimentScore {
    pub compound: f32,
    pub positive: f32,
    pub neutral: f32,
    pub negative: f32,
}

/// What kind of coaching a hint carries; the overlay colours and groups by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HintKind {
    Objection,
    BuyingSignal,
    SentimentDrop,
    TalkRatio,
    Monologue,
    Interruption,
    DeadAir,
    Pace,
    QuestionUnanswered,
    Checklist,
    Whisper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// One piece of coaching pushed to the agent's overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hint {
    pub id: Uuid,
    /// Playbook rule that produced it (`whisper` for a supervisor's text).
    pub rule: String,
    pub kind: HintKind,
    pub priority: Priority,
    pub title: String,
    pub body: String,
    /// One line saying why the hint fired ("customer said \"too expensive\"").
    pub reason: String,
    /// Utterances the hint is based on (empty for talk-time and whisper hints).
    pub evidence: Vec<UtteranceId>,
    /// Milliseconds since the call started.
    pub at_ms: u64,
}

/// One named input of the lead score and how much it moved the log-odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    pub value: f64,
    pub weight: f64,
    /// `value * weight`, in log-odds.
    pub contribution: f64,
}

/// One item of the call checklist ("recording disclosure"); ticks when the agent says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Playbook rule id.
    pub id: String,
    pub label: String,
    pub done: bool,
    /// Deadline in milliseconds since the call started, when the item has one.
    pub due_ms: Option<u64>,
}

/// Talk-time figures for a call so far; they need no transcript.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct TalkStats {
    pub agent_ms: u64,
    pub customer_ms: u64,
    /// Agent share of all speech, 0..1 (0.5 when nobody has spoken yet).
    pub agent_share: f32,
    pub overlap_ms: u64,
    pub longest_agent_monologue_ms: u64,
    pub silence_ms: u64,
    /// Agent words per minute over recent final utterances, when known.
    pub agent_wpm: Option<f32>,
}

/// Stable machine-readable codes carried by `error` and `warning` events and by REST errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Code {
    /// A text message that is not valid JSON or not a known message shape.
    BadMessage,
    /// The `start` message is missing or its fields are invalid.
    BadStart,
    UnsupportedEncoding,
    BadSampleRate,
    BadChannels,
    /// Binary audio before `start`.
    NotStarted,
    /// A frame whose length does not fit the encoding (odd byte count for s16, etc.).
    MalformedFrame,
    FrameTooLarge,
    MessageTooLarge,
    RateLimited,
    CallTooLong,
    TooManyCalls,
    /// Audio or events after `stop`.
    AfterStop,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    /// Transcription backlog would break real time; partials are being shed.
    Backlog,
    /// Transcription is unavailable; the call continues on talk-time signals.
    TranscriptionUnavailable,
    /// Transcription is back after `transcription_unavailable`.
    TranscriptionResumed,
    /// The server is shutting down; reconnect to another node.
    ShuttingDown,
    Internal,
    /// A REST request whose body, path or query is malformed or invalid.
    BadRequest,
    /// A dependency (the database) is unreachable right now; retry later.
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadMessage => "bad_message",
            Code::BadStart => "bad_start",
            Code::UnsupportedEncoding => "unsupported_encoding",
            Code::BadSampleRate => "bad_sample_rate",
            Code::BadChannels => "bad_channels",
            Code::NotStarted => "not_started",
            Code::MalformedFrame => "malformed_frame",
            Code::FrameTooLarge => "frame_too_large",
            Code::MessageTooLarge => "message_too_large",
            Code::RateLimited => "rate_limited",
            Code::CallTooLong => "call_too_long",
            Code::TooManyCalls => "too_many_calls",
            Code::AfterStop => "after_stop",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::Backlog => "backlog",
            Code::TranscriptionUnavailable => "transcription_unavailable",
            Code::TranscriptionResumed => "transcription_resumed",
            Code::ShuttingDown => "shutting_down",
            Code::Internal => "internal",
            Code::BadRequest => "bad_request",
            Code::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a live call tells the outside world, in order. Serialised as the server's JSON
/// events (`{"type":"final",...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEvent {
    Ready {
        call_id: String,
        tracks: Vec<Track>,
        sample_rate: u32,
    },
    Partial(Transcript),
    Final(Transcript),
    Sentiment {
        utterance_id: UtteranceId,
        track: Track,
        #[serde(flatten)]
        score: SentimentScore,
        /// Moving average of this speaker's compound score over recent utterances.
        trend: f32,
    },
    Hint(Hint),
    Talk(TalkStats),
    /// The call's checklist (playbook `checklist` rules) whenever an item changes.
    Checklist {
        items: Vec<ChecklistItem>,
    },
    Score {
        lead_id: String,
        score: f64,
        stage: String,
        contributions: Vec<Contribution>,
    },
    Warning {
        code: Code,
        message: String,
    },
    Error {
        code: Code,
        message: String,
    },
    /// The agent's verdict on a hint, from the overlay (dashboards show it next to the hint).
    Feedback {
        hint_id: Uuid,
        useful: bool,
    },
    Ended {
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_event_wire_shape_is_stable() {
        let ev = CallEvent::Final(Transcript {
            utterance_id: UtteranceId(3),
            track: Track::Customer,
            revision: 0,
            text: "too expensive".into(),
            start_ms: 1000,
            end_ms: 2500,
        });
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "final");
        assert_eq!(json["utterance_id"], 3);
        assert_eq!(json["track"], "customer");
        assert_eq!(json["text"], "too expensive");
    }

    #[test]
    fn error_codes_serialise_as_their_stable_names() {
        for code in [
            Code::BadMessage,
            Code::FrameTooLarge,
            Code::TranscriptionUnavailable,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }
}
