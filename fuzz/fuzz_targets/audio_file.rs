//! Uploaded recordings: arbitrary bytes through symphonia's probe and decoders
//! (`audio::file::decode_bytes`), with each extension hint an upload may carry.
#![no_main]

use callcoach_actors::audio::file::decode_bytes;
use libfuzzer_sys::fuzz_target;

const HINTS: [Option<&str>; 6] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("flac"),
    Some("ogg"),
    Some("bin"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let hint = HINTS[usize::from(pick) % HINTS.len()];
    if let Ok(decoded) = decode_bytes(bytes.to_vec(), hint) {
        assert!(decoded.source_rate > 0 && decoded.channels > 0);
        assert!(decoded.duration_s.is_finite() && decoded.duration_s >= 0.0);
        assert!(decoded.samples_16k_mono.iter().all(|s| s.is_finite()));
    }
});
