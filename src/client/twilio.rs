//! The messages Twilio Media Streams sends to a `<Stream>` WebSocket, byte-for-byte in shape:
//! `connected`, `start`, `media` (one per track per 20 ms), `stop`.
//!
//! Twilio writes every counter as a JSON *string* (`"sequenceNumber": "3"`, `"chunk": "1"`,
//! `"timestamp": "20"`); `sequenceNumber` counts every message of the stream from 1 (the
//! `connected` message has none), `chunk` counts the media messages of one track from 1 and
//! `timestamp` is milliseconds of that track since the stream started. See Twilio's "Media
//! Streams - WebSocket Messages" reference.

use base64::Engine;
use serde_json::{json, Map, Value};

/// A Twilio media track: `inbound` is the caller's audio (customer), `outbound` what the
/// call sends to the caller (agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwilioTrack {
    Inbound,
    Outbound,
}

impl TwilioTrack {
    pub const fn as_str(self) -> &'static str {
        match self {
            TwilioTrack::Inbound => "inbound",
            TwilioTrack::Outbound => "outbound",
        }
    }
}

/// Twilio's Media Streams audio: μ-law, 8 kHz, mono per track.
pub const TWILIO_SAMPLE_RATE: u32 = 8_000;

/// The identifiers of one stream; Twilio's are 34 characters (`MZ`/`CA`/`AC` + 32 hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    pub stream_sid: String,
    pub call_sid: String,
    pub account_sid: String,
}

impl StreamIds {
    /// Fresh random identifiers in Twilio's format.
    pub fn random() -> Self {
        let hex = || uuid::Uuid::new_v4().simple().to_string();
        StreamIds {
            stream_sid: format!("MZ{}", hex()),
            call_sid: format!("CA{}", hex()),
            account_sid: format!("AC{}", hex()),
        }
    }
}

/// `{"event":"connected","protocol":"Call","version":"1.0.0"}`
pub fn connected() -> String {
    json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()
}

/// The `start` message: stream metadata, the tracks that follow and the `<Parameter>`s of the
/// TwiML `<Stream>` as `customParameters`.
pub fn start(
    ids: &StreamIds,
    sequence_number: u64,
    tracks: &[TwilioTrack],
    custom_parameters: &Map<String, Value>,
) -> String {
    json!({
        "event": "start",
        "sequenceNumber": sequence_number.to_string(),
        "start": {
            "accountSid": ids.account_sid,
            "streamSid": ids.stream_sid,
            "callSid": ids.call_sid,
            "tracks": tracks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "customParameters": custom_parameters,
            "mediaFormat": {
                "encoding": "audio/x-mulaw",
                "sampleRate": TWILIO_SAMPLE_RATE,
                "channels": 1
            }
        },
        "streamSid": ids.stream_sid
    })
    .to_string()
}

/// One `media` message; `payload` is the base64 of raw μ-law bytes (no WAV header).
pub fn media(
    ids: &StreamIds,
    sequence_number: u64,
    track: TwilioTrack,
    chunk: u64,
    timestamp_ms: u64,
    payload_b64: &str,
) -> String {
    json!({
        "event": "media",
        "sequenceNumber": sequence_number.to_string(),
        "media": {
            "track": track.as_str(),
            "chunk": chunk.to_string(),
            "timestamp": timestamp_ms.to_string(),
            "payload": payload_b64
        },
        "streamSid": ids.stream_sid
    })
    .to_string()
}

/// The `stop` message Twilio sends when the stream ends (call hung up or `<Stop>`).
pub fn stop(ids: &StreamIds, sequence_number: u64) -> String {
    json!({
        "event": "stop",
        "sequenceNumber": sequence_number.to_string(),
        "stop": {"accountSid": ids.account_sid, "callSid": ids.call_sid},
        "streamSid": ids.stream_sid
    })
    .to_string()
}

/// Base64 of μ-law-encoded samples, as in a `media` payload.
pub fn encode_payload(samples: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(samples.len());
    crate::actors::audio::mulaw::encode(samples, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> StreamIds {
        StreamIds {
            stream_sid: "MZ00".into(),
            call_sid: "CA00".into(),
            account_sid: "AC00".into(),
        }
    }

    #[test]
    fn messages_have_twilios_shape() {
        let mut params = Map::new();
        params.insert("lead_id".into(), "L1".into());
        let s: Value = serde_json::from_str(&start(
            &ids(),
            1,
            &[TwilioTrack::Inbound, TwilioTrack::Outbound],
            &params,
        ))
        .unwrap();
        assert_eq!(s["event"], "start");
        assert_eq!(s["sequenceNumber"], "1");
        assert_eq!(s["streamSid"], "MZ00");
        assert_eq!(s["start"]["callSid"], "CA00");
        assert_eq!(s["start"]["tracks"], json!(["inbound", "outbound"]));
        assert_eq!(s["start"]["customParameters"]["lead_id"], "L1");
        assert_eq!(
            s["start"]["mediaFormat"],
            json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
        );
        let m: Value =
            serde_json::from_str(&media(&ids(), 7, TwilioTrack::Outbound, 3, 40, "/w==")).unwrap();
        assert_eq!(
            m,
            json!({"event": "media", "sequenceNumber": "7", "streamSid": "MZ00",
                   "media": {"track": "outbound", "chunk": "3", "timestamp": "40", "payload": "/w=="}})
        );
        let st: Value = serde_json::from_str(&stop(&ids(), 9)).unwrap();
        assert_eq!(st["event"], "stop");
        assert_eq!(st["stop"]["callSid"], "CA00");
        let c: Value = serde_json::from_str(&connected()).unwrap();
        assert_eq!(
            c,
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        );
    }

    #[test]
    fn payload_round_trips_through_mulaw() {
        let samples: Vec<f32> = (0..160).map(|i| ((i as f32) * 0.1).sin() * 0.6).collect();
        let b64 = encode_payload(&samples);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes.len(), 160);
        let mut back = Vec::new();
        crate::actors::audio::mulaw::decode(&bytes, &mut back);
        // μ-law keeps ~2 % relative error at these levels.
        for (a, b) in samples.iter().zip(&back) {
            assert!((a - b).abs() < 0.03, "{a} vs {b}");
        }
        // Silence encodes as 0xFF, as Twilio sends during silence.
        let silent = base64::engine::general_purpose::STANDARD
            .decode(encode_payload(&[0.0; 4]))
            .unwrap();
        assert_eq!(silent, vec![0xFF; 4]);
    }

    #[test]
    fn random_ids_look_like_twilios() {
        let ids = StreamIds::random();
        assert_eq!(ids.stream_sid.len(), 34);
        assert!(ids.call_sid.starts_with("CA"));
        assert_ne!(ids, StreamIds::random());
    }
}
