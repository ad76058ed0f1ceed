//! Interleaved wire frames (s16le, f32le, μ-law) split into per-channel f32 samples.
//!
//! A frame must hold a whole number of interleaved sample groups; anything else is a
//! [`AudioError::MalformedFrame`] and nothing is appended, so the channels stay aligned.
//!
//! Non-finite f32 samples (NaN, ±inf) are **rejected** (the whole frame, [`AudioError::NonFiniteSample`]),
//! not clamped: a NaN has no meaningful value to clamp to, and one that slipped through would
//! poison the resampler's filter memory and the VAD's noise estimate for the rest of the call.
//! A rejected frame is a recoverable error the call actor drops and counts. Finite f32 samples
//! outside [-1, 1] are clamped, since slight overshoot is common in float pipelines.

use super::{mulaw, AudioError, MAX_CHANNELS};
use serde::{Deserialize, Serialize};

/// Sample encodings the native protocol accepts in its `start` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// Signed 16-bit little-endian PCM.
    #[serde(rename = "pcm_s16le")]
    PcmS16le,
    /// 32-bit IEEE float little-endian PCM, nominally in [-1, 1].
    #[serde(rename = "f32le")]
    F32le,
    /// G.711 μ-law, one byte per sample.
    #[serde(rename = "mulaw")]
    Mulaw,
}

impl Encoding {
    /// Bytes one sample of one channel takes on the wire.
    pub const fn sample_bytes(self) -> usize {
        match self {
            Encoding::PcmS16le => 2,
            Encoding::F32le => 4,
            Encoding::Mulaw => 1,
        }
    }

    /// The protocol name (`pcm_s16le`, `f32le`, `mulaw`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::PcmS16le => "pcm_s16le",
            Encoding::F32le => "f32le",
            Encoding::Mulaw => "mulaw",
        }
    }
}

/// Decodes one interleaved frame, appending channel `c`'s samples to `out[c]`.
///
/// `out.len()` must equal `channels` (1 or 2). On error nothing is appended to any channel.
pub fn decode_interleaved(
    enc: Encoding,
    bytes: &[u8],
    channels: usize,
    out: &mut [Vec<f32>],
) -> Result<(), AudioError> {
    if channels == 0 || channels > MAX_CHANNELS || out.len() != channels {
        return Err(AudioError::UnsupportedChannels(if out.len() != channels {
            out.len()
        } else {
            channels
        }));
    }
    let frame_bytes = enc.sample_bytes() * channels;
    if bytes.len() % frame_bytes != 0 {
        return Err(AudioError::MalformedFrame {
            len: bytes.len(),
            frame_bytes,
        });
    }
    let frames = bytes.len() / frame_bytes;
    if enc == Encoding::F32le {
        // Validate before appending anything so a rejected frame leaves every channel untouched.
        if let Some(index) = bytes
            .chunks_exact(4)
            .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
        {
            return Err(AudioError::NonFiniteSample { index });
        }
    }
    for ch in out.iter_mut() {
        ch.reserve(frames);
    }
    match enc {
        Encoding::PcmS16le => {
            for (i, b) in bytes.chunks_exact(2).enumerate() {
                out[i % channels].push(i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0);
            }
        }
        Encoding::F32le => {
            for (i, b) in bytes.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                out[i % channels].push(v.clamp(-1.0, 1.0));
            }
        }
        Encoding::Mulaw => {
            if channels == 1 {
                mulaw::decode(bytes, &mut out[0]);
            } else {
                for (i, &b) in bytes.iter().enumerate() {
                    out[i % channels].push(mulaw::DECODE_TABLE[b as usize]);
                }
            }
        }
    }
    Ok(())
}

/// Encodes per-channel samples as one interleaved frame (for tests and `replay`).
///
/// Channels must have equal lengths; the shortest length is used otherwise.
pub fn encode_interleaved(enc: Encoding, channels: &[&[f32]], out: &mut Vec<u8>) {
    let frames = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    out.reserve(frames * channels.len() * enc.sample_bytes());
    for i in 0..frames {
        for ch in channels {
            let v = ch[i];
            match enc {
                Encoding::PcmS16le => {
                    let s = (v.clamp(-1.0, 1.0) * 32_767.0).round() as i16;
                    out.extend_from_slice(&s.to_le_bytes());
                }
                Encoding::F32le => out.extend_from_slice(&v.to_le_bytes()),
                Encoding::Mulaw => out.push(mulaw::encode_sample(v)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn serde_names_match_the_protocol() {
        for (e, name) in [
            (Encoding::PcmS16le, "\"pcm_s16le\""),
            (Encoding::F32le, "\"f32le\""),
            (Encoding::Mulaw, "\"mulaw\""),
        ] {
            assert_eq!(serde_json::to_string(&e).unwrap(), name);
            assert_eq!(serde_json::from_str::<Encoding>(name).unwrap(), e);
        }
        assert!(serde_json::from_str::<Encoding>("\"opus\"").is_err());
    }

    #[test]
    fn s16le_stereo_splits_channels() {
        let bytes: Vec<u8> = [0i16, 16_384, -32_768, 32_767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut out = vec![Vec::new(), Vec::new()];
        decode_interleaved(Encoding::PcmS16le, &bytes, 2, &mut out).unwrap();
        assert_eq!(out[0], vec![0.0, -1.0]);
        assert_eq!(out[1], vec![0.5, 32_767.0 / 32_768.0]);
    }

    #[test]
    fn partial_frames_are_malformed_and_append_nothing() {
        let mut out = vec![vec![0.25], Vec::new()];
        let err = decode_interleaved(Encoding::PcmS16le, &[0, 0, 0], 1, &mut out[..1]).unwrap_err();
        assert!(matches!(
            err,
            AudioError::MalformedFrame {
                len: 3,
                frame_bytes: 2
            }
        ));
        // 6 bytes of stereo s16 is one and a half frames.
        let err = decode_interleaved(Encoding::PcmS16le, &[0; 6], 2, &mut out).unwrap_err();
        assert!(matches!(
            err,
            AudioError::MalformedFrame {
                len: 6,
                frame_bytes: 4
            }
        ));
        let err = decode_interleaved(Encoding::F32le, &[0; 6], 1, &mut out[..1]).unwrap_err();
        assert!(matches!(err, AudioError::MalformedFrame { .. }));
        let err = decode_interleaved(Encoding::Mulaw, &[0; 3], 2, &mut out).unwrap_err();
        assert!(matches!(err, AudioError::MalformedFrame { .. }));
        assert_eq!(out, vec![vec![0.25], Vec::new()]);
    }

    #[test]
    fn bad_channel_counts_are_refused() {
        let mut out = vec![Vec::new(); 3];
        assert!(matches!(
            decode_interleaved(Encoding::Mulaw, &[0; 6], 3, &mut out),
            Err(AudioError::UnsupportedChannels(3))
        ));
        assert!(matches!(
            decode_interleaved(Encoding::Mulaw, &[0; 6], 0, &mut out[..0]),
            Err(AudioError::UnsupportedChannels(0))
        ));
        assert!(matches!(
            decode_interleaved(Encoding::Mulaw, &[0; 6], 2, &mut out),
            Err(AudioError::UnsupportedChannels(3))
        ));
    }

    #[test]
    fn non_finite_f32_rejects_the_frame_and_overshoot_clamps() {
        let mut out = vec![Vec::new()];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let bytes: Vec<u8> = [0.1f32, bad].iter().flat_map(|s| s.to_le_bytes()).collect();
            let err = decode_interleaved(Encoding::F32le, &bytes, 1, &mut out).unwrap_err();
            assert!(matches!(err, AudioError::NonFiniteSample { index: 1 }));
            assert!(out[0].is_empty());
        }
        let bytes: Vec<u8> = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        decode_interleaved(Encoding::F32le, &bytes, 1, &mut out).unwrap();
        assert_eq!(out[0], vec![1.0, -1.0, 0.25]);
    }

    #[test]
    fn mulaw_stereo_matches_mono_decoder() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let mut stereo = vec![Vec::new(), Vec::new()];
        decode_interleaved(Encoding::Mulaw, &bytes, 2, &mut stereo).unwrap();
        let mut mono = Vec::new();
        mulaw::decode(&bytes, &mut mono);
        let left: Vec<f32> = mono.iter().step_by(2).copied().collect();
        let right: Vec<f32> = mono.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(stereo, vec![left, right]);
    }

    fn encodings() -> impl Strategy<Value = Encoding> {
        prop_oneof![
            Just(Encoding::PcmS16le),
            Just(Encoding::F32le),
            Just(Encoding::Mulaw)
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_either_decode_whole_frames_or_error(
            enc in encodings(),
            channels in 1usize..=2,
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut out = vec![Vec::new(); channels];
            match decode_interleaved(enc, &bytes, channels, &mut out) {
                Ok(()) => {
                    let frames = bytes.len() / (enc.sample_bytes() * channels);
                    prop_assert_eq!(bytes.len() % (enc.sample_bytes() * channels), 0);
                    for ch in &out {
                        prop_assert_eq!(ch.len(), frames);
                        prop_assert!(ch.iter().all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
                    }
                }
                Err(AudioError::MalformedFrame { .. }) => {
                    prop_assert!(bytes.len() % (enc.sample_bytes() * channels) != 0);
                    prop_assert!(out.iter().all(|c| c.is_empty()));
                }
                Err(AudioError::NonFiniteSample { .. }) => {
                    prop_assert_eq!(enc, Encoding::F32le);
                    prop_assert!(out.iter().all(|c| c.is_empty()));
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        #[test]
        fn encode_then_decode_round_trips(
            enc in encodings(),
            left in proptest::collection::vec(-1.0f32..=1.0, 0..100),
            seed in any::<u32>(),
        ) {
            let right: Vec<f32> = left.iter().enumerate()
                .map(|(i, v)| (v * 0.5 + ((i as u32 ^ seed) % 7) as f32 * 0.01).clamp(-1.0, 1.0))
                .collect();
            let mut bytes = Vec::new();
            encode_interleaved(enc, &[&left, &right], &mut bytes);
            let mut out = vec![Vec::new(), Vec::new()];
            decode_interleaved(enc, &bytes, 2, &mut out).unwrap();
            let tol = match enc { Encoding::PcmS16le => 1.0 / 32_000.0, Encoding::F32le => 0.0, Encoding::Mulaw => 0.032 };
            for (orig, got) in [(&left, &out[0]), (&right, &out[1])] {
                prop_assert_eq!(orig.len(), got.len());
                for (a, b) in orig.iter().zip(got) {
                    prop_assert!((a - b).abs() <= tol * a.abs().max(1.0 / 32.0) + 1e-4, "{a} vs {b}");
                }
            }
        }
    }
}
