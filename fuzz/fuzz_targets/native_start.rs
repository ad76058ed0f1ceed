//! Native softphone `start` message: JSON text → `Start` → `validate_start`, exactly the steps
//! `ws::native` takes on a text frame (JSON value first, then the typed message).
#![no_main]

use callcoach::ws::native::{validate_start, Start};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the `?track=` default the socket was opened with.
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    let default_track = match pick % 5 {
        0 => None,
        1 => Some("agent"),
        2 => Some("customer"),
        3 => Some("mixed"),
        _ => Some("bogus"),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let Ok(start) = serde_json::from_value::<Start>(value) else {
        return;
    };
    if let Ok(format) = validate_start(&start, default_track) {
        // What the binary-frame path relies on: one or two distinct tracks, a rate the
        // resampler accepts and a non-zero frame size (it divides by it).
        assert!(matches!(format.tracks.len(), 1 | 2));
        if format.tracks.len() == 2 {
            assert_ne!(format.tracks[0], format.tracks[1]);
        }
        assert!((8_000..=48_000).contains(&format.sample_rate));
        assert!(format.frame_bytes() > 0);
        assert!(
            callcoach_actors::audio::resample::StreamResampler::new(format.sample_rate).is_ok()
        );
    }
});
