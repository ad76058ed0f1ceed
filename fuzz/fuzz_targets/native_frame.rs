//! Native binary frames: interleaved PCM s16le / f32le / μ-law → per-channel f32
//! (`audio::pcm::decode_interleaved`, `audio::mulaw::decode`), then the streaming resampler the
//! call actor runs each channel through.
#![no_main]

use callcoach_actors::audio::pcm::{decode_interleaved, Encoding};
use callcoach_actors::audio::{mulaw, resample::StreamResampler};
use libfuzzer_sys::fuzz_target;

/// Rates a softphone may announce (validate_start admits 8000..=48000; these are the common ones
/// plus odd ones that make the resampler's ratio awkward).
const RATES: [u32; 8] = [
    8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 47_999,
];

fuzz_target!(|data: &[u8]| {
    let Some((&header, bytes)) = data.split_first() else {
        return;
    };
    let enc = match header % 3 {
        0 => Encoding::PcmS16le,
        1 => Encoding::F32le,
        _ => Encoding::Mulaw,
    };
    // 0..=3 channels: 0 and 3 must be refused, not panic.
    let channels = usize::from((header >> 2) % 4);
    let rate = RATES[usize::from(header >> 5)];

    let mut out = vec![Vec::new(); channels];
    match decode_interleaved(enc, bytes, channels, &mut out) {
        Ok(()) => {
            let frames = bytes.len() / (enc.sample_bytes() * channels);
            for ch in &out {
                assert_eq!(ch.len(), frames);
                assert!(ch.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
            }
            let mut resampler = StreamResampler::new(rate).expect("rate is in range");
            let mut resampled = Vec::new();
            resampler.process(&out[0], &mut resampled).ok();
            resampler.flush(&mut resampled).ok();
            assert!(resampled.iter().all(|s| s.is_finite()));
        }
        // A refused frame leaves every channel untouched.
        Err(_) => assert!(out.iter().all(Vec::is_empty)),
    }

    let mut mono = Vec::new();
    mulaw::decode(bytes, &mut mono);
    assert_eq!(mono.len(), bytes.len());
    assert!(mono
        .iter()
        .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
});
