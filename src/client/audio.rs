//! A recording as the softphone sends it: per-channel f32 samples at the file's own rate.
//!
//! The server's whole-file decoder (`actors::audio::file`) mixes down to 16 kHz mono, which is
//! right for transcription but loses the channel split a stereo call recording carries, so the
//! client decodes with symphonia itself. Resampling is offline (whole buffer, rubato's FFT
//! resampler) because the client prepares every frame before it starts streaming.

use super::ClientError;
use rubato::{FftFixedIn, Resampler};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The most channels a softphone stream carries (agent + customer), as in the native protocol.
pub const MAX_CHANNELS: usize = 2;

/// Input chunk of the offline resampler: rubato's FFT resampler works in fixed chunks; 1024
/// frames keeps its FFTs small and its output delay (a fraction of a chunk) short.
const RESAMPLE_CHUNK: usize = 1024;

/// Decoded audio, one `Vec` per channel, all the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceAudio {
    pub rate: u32,
    pub channels: Vec<Vec<f32>>,
}

impl SourceAudio {
    /// Builds from channels of equal length (1 or 2 of them).
    pub fn new(rate: u32, channels: Vec<Vec<f32>>) -> Result<Self, ClientError> {
        if channels.is_empty() || channels.len() > MAX_CHANNELS {
            return Err(ClientError::UnsupportedChannels(channels.len()));
        }
        if rate == 0 {
            return Err(ClientError::NoSampleRate);
        }
        let len = channels[0].len();
        if len == 0 {
            return Err(ClientError::EmptyAudio);
        }
        if channels.iter().any(|c| c.len() != len) {
            return Err(ClientError::Resample("channels differ in length".into()));
        }
        Ok(SourceAudio { rate, channels })
    }

    /// Frames (samples per channel).
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn duration_ms(&self) -> u64 {
        self.len() as u64 * 1000 / u64::from(self.rate)
    }

    /// Keeps only the first `ms` milliseconds.
    pub fn truncate_ms(&mut self, ms: u64) {
        let keep = (ms * u64::from(self.rate) / 1000) as usize;
        for c in &mut self.channels {
            c.truncate(keep);
        }
    }

    /// The same audio at `rate`, every channel resampled; a copy when the rate already matches.
    pub fn resampled(&self, rate: u32) -> Result<SourceAudio, ClientError> {
        if rate == self.rate {
            return Ok(self.clone());
        }
        if rate == 0 {
            return Err(ClientError::NoSampleRate);
        }
        let channels = resample(&self.channels, self.rate, rate)?;
        Ok(SourceAudio { rate, channels })
    }
}

/// Decodes a WAV/FLAC/MP3/OGG file into per-channel samples at its own rate.
pub fn load(path: &Path) -> Result<SourceAudio, ClientError> {
    let file = std::fs::File::open(path).map_err(|source| ClientError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe().format(
        &hint,
        mss,
        &FormatOptions::default(),
        &MetadataOptions::default(),
    )?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or(SymphoniaError::Unsupported("no audio track"))?;
    let track_id = track.id;
    let rate = track
        .codec_params
        .sample_rate
        .ok_or(ClientError::NoSampleRate)?;
    let mut decoder =
        symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default())?;
    let mut channels: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // Symphonia reports the end of the stream as an unexpected EOF.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => return Err(e.into()),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A corrupt packet is skipped, as players do; the rest of the file still plays.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let spec = *decoded.spec();
        let n = spec.channels.count();
        if n == 0 || n > MAX_CHANNELS {
            return Err(ClientError::UnsupportedChannels(n));
        }
        if channels.is_empty() {
            channels = vec![Vec::new(); n];
        } else if channels.len() != n {
            return Err(ClientError::UnsupportedChannels(n));
        }
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        for frame in buf.samples().chunks_exact(n) {
            for (c, s) in channels.iter_mut().zip(frame) {
                c.push(*s);
            }
        }
    }
    SourceAudio::new(rate, channels)
}

/// Resamples equal-length channels from `from` Hz to `to` Hz, compensating the resampler's
/// delay so sample `i` of the output lines up with time `i / to` of the input.
fn resample(channels: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>, ClientError> {
    let err = |e: &dyn std::fmt::Display| ClientError::Resample(e.to_string());
    let n_ch = channels.len();
    let len = channels.first().map_or(0, Vec::len);
    let expected = (len as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, RESAMPLE_CHUNK, 2, n_ch)
        .map_err(|e| err(&e))?;
    let delay = r.output_delay();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(expected + delay); n_ch];
    let append = |chunk: Vec<Vec<f32>>, out: &mut Vec<Vec<f32>>| {
        for (o, c) in out.iter_mut().zip(chunk) {
            o.extend(c);
        }
    };
    let mut pos = 0;
    while pos + r.input_frames_next() <= len {
        let n = r.input_frames_next();
        let slices: Vec<&[f32]> = channels.iter().map(|c| &c[pos..pos + n]).collect();
        append(r.process(&slices, None).map_err(|e| err(&e))?, &mut out);
        pos += n;
    }
    if pos < len {
        let slices: Vec<&[f32]> = channels.iter().map(|c| &c[pos..]).collect();
        append(
            r.process_partial(Some(&slices), None)
                .map_err(|e| err(&e))?,
            &mut out,
        );
    }
    // Push silence through until the delayed tail has come out.
    while out[0].len() < expected + delay {
        let chunk = r
            .process_partial(None::<&[&[f32]]>, None)
            .map_err(|e| err(&e))?;
        if chunk.first().is_none_or(Vec::is_empty) {
            break;
        }
        append(chunk, &mut out);
    }
    for o in &mut out {
        o.drain(..delay.min(o.len()));
        o.resize(expected, 0.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn resampling_keeps_length_and_timing() {
        // 440 Hz on the left, silence then a click on the right: after 16k -> 8k the tone's
        // zero crossings and the click must stay where they were in time.
        let left = tone(16_000, 440.0, 1.0);
        let mut right = vec![0.0; 16_000];
        right[8_000] = 1.0;
        let src = SourceAudio::new(16_000, vec![left, right]).unwrap();
        let out = src.resampled(8_000).unwrap();
        assert_eq!(out.len(), 8_000);
        let peak = out.channels[1]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((3_998..=4_002).contains(&peak), "click moved to {peak}");
        // Compare the tone with the ideal 8 kHz tone away from the edges.
        let ideal = tone(8_000, 440.0, 1.0);
        let err: f32 = (500..7_500)
            .map(|i| (out.channels[0][i] - ideal[i]).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max deviation {err}");
    }

    #[test]
    fn resampling_removes_content_above_the_new_nyquist() {
        // 6 kHz is above 8 kHz audio's 4 kHz Nyquist: it must not alias back in.
        let src = SourceAudio::new(16_000, vec![tone(16_000, 6_000.0, 0.5)]).unwrap();
        let out = src.resampled(8_000).unwrap();
        let rms = (out.channels[0][200..3_800]
            .iter()
            .map(|s| s * s)
            .sum::<f32>()
            / 3_600.0)
            .sqrt();
        assert!(rms < 0.01, "aliased energy {rms}");
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(matches!(
            SourceAudio::new(16_000, vec![]),
            Err(ClientError::UnsupportedChannels(0))
        ));
        assert!(matches!(
            SourceAudio::new(16_000, vec![vec![0.0]; 3]),
            Err(ClientError::UnsupportedChannels(3))
        ));
        assert!(matches!(
            SourceAudio::new(16_000, vec![vec![]]),
            Err(ClientError::EmptyAudio)
        ));
        assert!(SourceAudio::new(16_000, vec![vec![0.0; 2], vec![0.0; 3]]).is_err());
    }

    #[test]
    fn loads_a_stereo_wav_with_its_channels_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        // A minimal 16-bit stereo WAV: left +0.5, right -0.25.
        let frames = 160u32;
        let mut bytes = Vec::new();
        bytes.extend(b"RIFF");
        bytes.extend((36 + frames * 4).to_le_bytes());
        bytes.extend(b"WAVEfmt ");
        bytes.extend(16u32.to_le_bytes());
        bytes.extend(1u16.to_le_bytes());
        bytes.extend(2u16.to_le_bytes());
        bytes.extend(16_000u32.to_le_bytes());
        bytes.extend((16_000u32 * 4).to_le_bytes());
        bytes.extend(4u16.to_le_bytes());
        bytes.extend(16u16.to_le_bytes());
        bytes.extend(b"data");
        bytes.extend((frames * 4).to_le_bytes());
        for _ in 0..frames {
            bytes.extend(16_384i16.to_le_bytes());
            bytes.extend((-8_192i16).to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let a = load(&path).unwrap();
        assert_eq!((a.rate, a.channels.len(), a.len()), (16_000, 2, 160));
        assert!(a.channels[0].iter().all(|&s| (s - 0.5).abs() < 1e-4));
        assert!(a.channels[1].iter().all(|&s| (s + 0.25).abs() < 1e-4));
    }

    #[test]
    fn garbage_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        std::fs::write(&path, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
        assert!(load(&path).is_err());
        assert!(load(&dir.path().join("missing.wav")).is_err());
    }
}
