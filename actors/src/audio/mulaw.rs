//! G.711 μ-law, the 8-bit logarithmic telephone encoding Twilio Media Streams and SIP trunks
//! carry (ITU-T G.711, North American / Japanese variant).
//!
//! Decoding is a 256-entry table built at compile time from the G.711 segment formula, so it is
//! exact and costs one load per byte. Encoding exists for tests and for `replay`, which plays a
//! recording into the server as a Twilio softphone would.

/// Bias added before segment search (G.711: 0x84 = 132, i.e. 33 in 14-bit units, scaled by 4).
const BIAS: i32 = 0x84;
/// Largest magnitude the encoder represents before clipping (32767 - BIAS, rounded to G.711's
/// top segment as in the ITU reference implementation).
const CLIP: i32 = 32_635;
/// Full scale of the 16-bit linear domain that G.711 decodes to; f32 samples are this fraction.
const FULL_SCALE: f32 = 32_768.0;

/// The linear value (16-bit scale) of one μ-law byte.
const fn decode_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn build_table() -> [f32; 256] {
    let mut table = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_linear(i as u8) as f32 / FULL_SCALE;
        i += 1;
    }
    table
}

/// Every μ-law byte's value as f32 in [-1, 1] (±32124 / 32768 at the extremes).
pub static DECODE_TABLE: [f32; 256] = build_table();

/// Decodes μ-law bytes, appending one f32 sample per byte to `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<f32>) {
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| DECODE_TABLE[b as usize]));
}

/// Encodes one f32 sample (clamped to [-1, 1]; NaN encodes as silence) to μ-law.
pub fn encode_sample(sample: f32) -> u8 {
    let sample = if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    };
    let linear = (sample * FULL_SCALE).round() as i32;
    let sign: u8 = if linear < 0 { 0x80 } else { 0 };
    let biased = linear.abs().min(CLIP) + BIAS;
    // The segment is the position of the highest set bit among bits 7..=14 of the biased value.
    let exponent = (31 - biased.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = ((biased >> (exponent + 3)) & 0x0f) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Encodes a slice of f32 samples to μ-law bytes, appending to `out`.
pub fn encode(samples: &[f32], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| encode_sample(s)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values_match_g711() {
        // Reference points from the ITU-T G.711 tables (16-bit linear scale).
        assert_eq!(decode_linear(0xff), 0);
        assert_eq!(decode_linear(0x7f), 0);
        assert_eq!(decode_linear(0x00), -32_124);
        assert_eq!(decode_linear(0x80), 32_124);
        assert_eq!(decode_linear(0xfe), 8);
        assert_eq!(decode_linear(0x7e), -8);
        assert_eq!(decode_linear(0xf0), 120);
        assert_eq!(encode_sample(0.0), 0xff);
        assert_eq!(encode_sample(1.0), 0x80);
        assert_eq!(encode_sample(-1.0), 0x00);
        assert_eq!(encode_sample(f32::NAN), 0xff);
    }

    #[test]
    fn every_byte_decodes_finite_in_range_and_reencodes_to_itself() {
        for b in 0..=255u8 {
            let v = DECODE_TABLE[b as usize];
            assert!(
                v.is_finite() && (-1.0..=1.0).contains(&v),
                "byte {b:#04x} -> {v}"
            );
            // 0x7f is negative zero; it re-encodes to positive zero (0xff), which decodes the same.
            let re = encode_sample(v);
            assert_eq!(DECODE_TABLE[re as usize], v, "byte {b:#04x}");
            if b != 0x7f {
                assert_eq!(re, b, "byte {b:#04x}");
            }
        }
    }

    #[test]
    fn decode_appends() {
        let mut out = vec![0.5];
        decode(&[0xff, 0x80, 0x00], &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], 0.5);
        assert_eq!(out[1], 0.0);
        assert!(out[2] > 0.98 && out[3] < -0.98);
    }

    proptest! {
        #[test]
        fn round_trip_within_quantisation_error(x in -1.0f32..=1.0) {
            let y = DECODE_TABLE[encode_sample(x) as usize];
            let s = (x * FULL_SCALE).round().abs();
            let err = (y - x).abs() * FULL_SCALE;
            if s <= CLIP as f32 {
                // Segment step is at most (|s| + BIAS) / 16 and decode returns its midpoint;
                // one more unit covers rounding to the 16-bit grid.
                prop_assert!(err <= (s + BIAS as f32) / 32.0 + 1.0, "x={x} y={y} err={err}");
            } else {
                prop_assert!(err <= FULL_SCALE - 32_124.0, "x={x} y={y} err={err}");
            }
            prop_assert!(y * x >= 0.0, "sign flipped: x={x} y={y}");
        }

        #[test]
        fn any_bytes_decode_to_finite_unit_range(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            decode(&bytes, &mut out);
            prop_assert_eq!(out.len(), bytes.len());
            prop_assert!(out.iter().all(|v| v.is_finite() && (-1.0..=1.0).contains(v)));
        }
    }
}
