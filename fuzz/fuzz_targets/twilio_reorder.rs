//! The Twilio re-order window (`ws::twilio::Reorder`) driven by hostile sequence numbers.
//!
//! Input: a series of operations. Tag byte `t`: `t % 8 == 7` drains (as at `stop`); `t % 8 == 6`
//! pushes a full 8-byte little-endian sequence number (anything up to u64::MAX); otherwise the
//! next sequence number is a small step (`t as i8 / 8`, i.e. -16..=15) from the previous one,
//! which is how real reordering, gaps and duplicates look.
#![no_main]

use callcoach::ws::twilio::Reorder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reorder: Reorder<u64> = Reorder::default();
    let mut last_seq: u64 = 1;
    // Highest sequence number delivered by `push`; deliveries must strictly increase.
    let mut delivered_max: Option<u64> = None;
    let mut pushed = 0usize;
    let mut delivered = 0usize;
    let mut i = 0;
    while i < data.len() {
        let tag = data[i];
        i += 1;
        let seq = match tag % 8 {
            7 => {
                let held = reorder.drain();
                assert!(held.windows(2).all(|w| w[0] < w[1]), "drain out of order");
                delivered += held.len();
                continue;
            }
            6 => {
                let Some(b) = data.get(i..i + 8) else { return };
                i += 8;
                u64::from_le_bytes(b.try_into().expect("8 bytes"))
            }
            _ => last_seq.wrapping_add_signed(i64::from(tag as i8 / 8)),
        };
        last_seq = seq;
        pushed += 1;
        let out = reorder.push(seq, seq);
        for s in out {
            if let Some(m) = delivered_max {
                assert!(s > m, "delivered {s} after {m}");
            }
            delivered_max = Some(s);
            delivered += 1;
        }
        assert!(delivered <= pushed, "more delivered than pushed");
    }
});
