//! Whole-file decoding: WAV/FLAC/MP3/OGG (Vorbis) → mono f32 at 16 kHz, for uploads, the
//! `transcribe` command and evaluations.
//!
//! Symphonia probes the container (by content, helped by the file extension), the default
//! track is decoded packet by packet, channels are averaged to mono as they arrive, and the
//! result goes through [`super::resample::resample_to_16k`]. Untrusted bytes: every failure is an
//! [`AudioError`] (`Decode` for unknown/corrupt data, `Limit` for over-long audio), never a
//! panic; a few corrupt packets inside an otherwise good stream are skipped and counted.

use super::resample::resample_to_16k;
use super::AudioError;
use crate::PIPELINE_SAMPLE_RATE;
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Longest audio a file may hold: 4 h covers the longest recorded sales/support calls; past it
/// the decoded f32 buffer alone (~900 MB at 16 kHz) would threaten the server.
pub const MAX_FILE_SECONDS: f64 = 4.0 * 3600.0;
/// Corrupt packets tolerated before the file is declared corrupt. A handful of bad MP3 frames
/// is normal in the wild; hundreds mean the stream is garbage.
const MAX_BAD_PACKETS: usize = 64;

/// A decoded file, ready for the transcriber.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    pub samples_16k_mono: Vec<f32>,
    pub source_rate: u32,
    pub channels: usize,
    pub duration_s: f64,
}

/// Decodes the file at `path` (format from its content; the extension is a hint).
pub fn decode_file(path: impl AsRef<Path>) -> Result<DecodedAudio, AudioError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    decode_source(Box::new(file), ext.as_deref())
}

/// Decodes an in-memory file (an upload); `hint_ext` is e.g. `Some("mp3")`.
pub fn decode_bytes(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<DecodedAudio, AudioError> {
    decode_source(Box::new(std::io::Cursor::new(bytes)), hint_ext)
}

fn decode_source(
    source: Box<dyn MediaSource>,
    hint_ext: Option<&str>,
) -> Result<DecodedAudio, AudioError> {
    // symphonia 0.5 panics on some malformed headers (a WAV `fmt ` chunk with a zero sample rate
    // reaches `TimeBase::new(1, 0)`; found by fuzz/fuzz_targets/audio_file.rs). Untrusted bytes
    // must never panic, so a decoder panic becomes a `Decode` error. Nothing outlives the call,
    // so no state can be observed half-updated after an unwind.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(source, hint_ext)
    }))
    .unwrap_or_else(|_| {
        Err(AudioError::Decode(
            "malformed file (decoder panicked)".into(),
        ))
    })
}

fn decode_unguarded(
    source: Box<dyn MediaSource>,
    hint_ext: Option<&str>,
) -> Result<DecodedAudio, AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = hint_ext {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| AudioError::Decode(format!("unrecognised or unsupported format ({e})")))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Decode(format!("unsupported codec ({e})")))?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(0);
    let mut mono: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => {
                if mono.is_empty() {
                    return Err(AudioError::Decode(format!("corrupt stream ({e})")));
                }
                // A truncated tail: keep what decoded.
                tracing::warn!(error = %e, "audio stream ended early");
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymphoniaError::DecodeError(e)) => {
                bad_packets += 1;
                if bad_packets > MAX_BAD_PACKETS {
                    return Err(AudioError::Decode(format!(
                        "too many corrupt packets ({e})"
                    )));
                }
                continue;
            }
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        channels = spec.channels.count();
        if channels == 0 || rate == 0 {
            return Err(AudioError::Decode(
                "stream has no channels or no sample rate".into(),
            ));
        }
        let needed = decoded.capacity() as u64;
        let b = match &mut buf {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            _ => buf.insert(SampleBuffer::new(needed, spec)),
        };
        b.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(
            b.samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        if mono.len() as f64 / f64::from(rate) > MAX_FILE_SECONDS {
            return Err(AudioError::Limit(format!(
                "audio longer than {} s",
                MAX_FILE_SECONDS
            )));
        }
    }
    if bad_packets > 0 {
        tracing::warn!(bad_packets, "skipped corrupt audio packets");
    }
    if mono.is_empty() || rate == 0 {
        return Err(AudioError::Decode("no audio samples decoded".into()));
    }
    // Clip decoder overshoot (MP3 can exceed ±1 slightly) and drop non-finite samples' effect.
    for s in &mut mono {
        *s = if s.is_finite() {
            s.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
    let duration_s = mono.len() as f64 / f64::from(rate);
    let samples_16k_mono = if rate == PIPELINE_SAMPLE_RATE {
        mono
    } else {
        resample_to_16k(&mono, rate)?
    };
    Ok(DecodedAudio {
        samples_16k_mono,
        source_rate: rate,
        channels,
        duration_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit PCM WAV file of interleaved samples.
    fn wav(rate: u32, channels: u16, interleaved: &[f32]) -> Vec<u8> {
        let data: Vec<u8> = interleaved
            .iter()
            .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn zero_sample_rate_header_is_an_error_not_a_panic() {
        // symphonia panics on this header; decode_bytes must answer with an error.
        let err = decode_bytes(wav(0, 2, &[0.1; 64]), None).unwrap_err();
        assert!(matches!(err, AudioError::Decode(_)), "{err}");
    }

    #[test]
    fn stereo_wav_is_mixed_to_mono() {
        // left +0.5, right -0.25 -> mono 0.125
        let frames: Vec<f32> = (0..16000).flat_map(|_| [0.5, -0.25]).collect();
        let d = decode_bytes(wav(16000, 2, &frames), Some("wav")).unwrap();
        assert_eq!((d.source_rate, d.channels), (16000, 2));
        assert_eq!(d.samples_16k_mono.len(), 16000);
        assert!((d.duration_s - 1.0).abs() < 1e-9);
        assert!(d.samples_16k_mono.iter().all(|s| (s - 0.125).abs() < 1e-3));
    }

    #[test]
    fn other_rates_are_resampled_to_16k() {
        let n = 22050 * 2;
        let tone: Vec<f32> = (0..n)
            .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 22050.0).sin())
            .collect();
        let d = decode_bytes(wav(22050, 1, &tone), None).unwrap();
        assert_eq!(d.source_rate, 22050);
        assert_eq!(d.samples_16k_mono.len(), 32000);
    }

    #[test]
    fn garbage_and_empty_input_are_decode_errors() {
        assert!(matches!(
            decode_bytes(b"definitely not audio".to_vec(), Some("mp3")),
            Err(AudioError::Decode(_))
        ));
        assert!(matches!(
            decode_bytes(Vec::new(), None),
            Err(AudioError::Decode(_))
        ));
        // a valid header with no samples
        assert!(matches!(
            decode_bytes(wav(16000, 1, &[]), Some("wav")),
            Err(AudioError::Decode(_))
        ));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        assert!(matches!(
            decode_file("/nonexistent/clip.wav"),
            Err(AudioError::Io(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn truncated_or_mangled_wav_never_panics(cut in 0usize..200, flip in 0usize..200, byte in proptest::num::u8::ANY) {
            let mut w = wav(8000, 1, &[0.1; 100]);
            if flip < w.len() { w[flip] = byte; }
            w.truncate(cut.min(w.len()));
            let _ = decode_bytes(w, Some("wav"));
        }
    }
}
