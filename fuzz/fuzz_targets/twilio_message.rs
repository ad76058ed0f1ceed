//! Twilio Media Streams messages: JSON text → `TwilioMessage` (serde), sequence number, track
//! name, then a `media` payload's base64 → μ-law → f32, as `ws::twilio` does.
#![no_main]

use base64::Engine;
use callcoach::ws::twilio::{track_of, TwilioMessage};
use callcoach_actors::audio::mulaw;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = serde_json::from_str::<TwilioMessage>(text) else {
        return;
    };
    let _ = message.sequence();
    match message {
        TwilioMessage::Start { start, .. } => {
            for t in &start.tracks {
                let _ = track_of(t);
            }
            let _ = start.custom_parameters.get("agent_id");
        }
        TwilioMessage::Media { media, .. } => {
            let _ = track_of(&media.track);
            let _ = media
                .timestamp
                .as_deref()
                .and_then(|t| t.parse::<u64>().ok());
            if let Ok(payload) =
                base64::engine::general_purpose::STANDARD.decode(media.payload.as_bytes())
            {
                let mut samples = Vec::new();
                mulaw::decode(&payload, &mut samples);
                assert_eq!(samples.len(), payload.len());
            }
        }
        _ => {}
    }
});
