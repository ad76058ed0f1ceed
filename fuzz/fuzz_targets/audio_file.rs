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

fuzz_target!(
    init: {
        // libfuzzer-sys installs a panic hook that aborts before unwinding, which would turn the
        // panics `decode_bytes` deliberately catches (symphonia's, see audio/file.rs) into
        // crashes. Restore the default hook: a panic that escapes the code under test still
        // aborts (libfuzzer-sys catches the unwind at the target boundary and aborts).
        drop(std::panic::take_hook());
    },
    |data: &[u8]| {
        let Some((&pick, bytes)) = data.split_first() else {
            return;
        };
        let hint = HINTS[usize::from(pick) % HINTS.len()];
        if let Ok(decoded) = decode_bytes(bytes.to_vec(), hint) {
            assert!(decoded.source_rate > 0 && decoded.channels > 0);
            assert!(decoded.duration_s.is_finite() && decoded.duration_s >= 0.0);
            assert!(decoded.samples_16k_mono.iter().all(|s| s.is_finite()));
        }
    }
);
