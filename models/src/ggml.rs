//! whisper.cpp's legacy ggml model file: header, mel filters, vocabulary, tensors.
//!
//! The layout is the one `whisper_model_load` in whisper.cpp reads (bundled in `whisper-rs-sys`,
//! `whisper.cpp/src/whisper.cpp`): `u32` magic `"ggml"`; eleven `i32` hyper-parameters
//! (`n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
//! n_text_head, n_text_layer, n_mels, ftype`); `i32 n_mel, i32 n_fft` and the f32 filter bank;
//! `i32` token count and per token `u32` length + bytes; then tensors until end of file, each
//! `i32 n_dims, i32 name_len, i32 ggml_type, n_dims × i32 ne` (innermost first, i.e. the
//! PyTorch/CTranslate2 dims reversed), the name and the data. The loader compares every tensor's
//! type-implied byte size with the one it allocated, so each tensor must carry exactly the type
//! whisper.cpp expects for it (see [`TensorType`]).

use half::f16;
use std::io::{self, Write};

/// `GGML_FILE_MAGIC` ("ggml" as a little-endian u32).
pub const MAGIC: u32 = 0x6767_6d6c;
/// `GGML_QNT_VERSION`: quantized files store `ftype + QNT_VERSION * 1000` (whisper.cpp's
/// `quantize` does; the loader takes the remainder).
pub const QNT_VERSION: i32 = 2;
/// Elements per Q8_0 block (`QK8_0` in ggml-common.h).
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 i8 quants (`block_q8_0`).
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// Element type of a written tensor, with its `ggml_type` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q8_0,
}

impl TensorType {
    /// The `ggml_type` enum value.
    pub fn code(self) -> i32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q8_0 => 8,
        }
    }

    /// Bytes needed for `numel` elements.
    pub fn nbytes(self, numel: usize) -> usize {
        match self {
            TensorType::F32 => numel * 4,
            TensorType::F16 => numel * 2,
            TensorType::Q8_0 => numel / QK8_0 * Q8_0_BLOCK_BYTES,
        }
    }
}

/// Whole-file weight type (`ggml_ftype`): what 2-D weights are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// `GGML_FTYPE_MOSTLY_F16`.
    #[default]
    F16,
    /// `GGML_FTYPE_MOSTLY_Q8_0`.
    Q8_0,
}

impl Quantization {
    /// The header's `ftype` field.
    pub fn header_ftype(self) -> i32 {
        match self {
            Quantization::F16 => 1,
            Quantization::Q8_0 => 7 + QNT_VERSION * 1000,
        }
    }

    /// What whisper.cpp allocates for 2-D weight matrices (`wctx.wtype`).
    pub fn weight_type(self) -> TensorType {
        match self {
            Quantization::F16 => TensorType::F16,
            Quantization::Q8_0 => TensorType::Q8_0,
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(Quantization::F16),
            "q8_0" | "q8" => Ok(Quantization::Q8_0),
            other => Err(format!(
                "unknown quantization {other:?} (expected f16 or q8_0)"
            )),
        }
    }
}

/// The hyper-parameters in the header, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl HParams {
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

fn i32le(w: &mut impl Write, v: i32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

/// Writes magic, hyper-parameters, the `n_mels × n_fft` filter bank and the token bytes.
pub fn write_header(
    w: &mut impl Write,
    hp: &HParams,
    filters: &[f32],
    n_fft: usize,
    tokens: &[Vec<u8>],
) -> io::Result<()> {
    w.write_all(&MAGIC.to_le_bytes())?;
    for v in hp.fields() {
        i32le(w, v)?;
    }
    i32le(w, hp.n_mels)?;
    i32le(w, n_fft as i32)?;
    for f in filters {
        w.write_all(&f.to_le_bytes())?;
    }
    i32le(w, tokens.len() as i32)?;
    for t in tokens {
        w.write_all(&(t.len() as u32).to_le_bytes())?;
        w.write_all(t)?;
    }
    Ok(())
}

/// Writes one tensor. `dims` are in PyTorch/CTranslate2 order (outermost first); they are
/// written reversed. `values` are row-major in that order, so no transpose is needed.
pub fn write_tensor(
    w: &mut impl Write,
    name: &str,
    dims: &[usize],
    ty: TensorType,
    values: &[f32],
) -> io::Result<()> {
    i32le(w, dims.len() as i32)?;
    i32le(w, name.len() as i32)?;
    i32le(w, ty.code())?;
    for &d in dims.iter().rev() {
        i32le(w, d as i32)?;
    }
    w.write_all(name.as_bytes())?;
    match ty {
        TensorType::F32 => {
            for v in values {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        TensorType::F16 => {
            for v in values {
                w.write_all(&f16::from_f32(*v).to_le_bytes())?;
            }
        }
        TensorType::Q8_0 => w.write_all(&quantize_q8_0(values))?,
    }
    Ok(())
}

/// ggml's reference Q8_0 quantization (`quantize_row_q8_0_ref`): per block of 32, `d = amax /
/// 127` stored as f16, quants `round(x / d)`. `values.len()` must be a multiple of 32.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / QK8_0 * Q8_0_BLOCK_BYTES);
    for block in values.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // `as i8` saturates; |x * id| <= 127 by construction (C's roundf rounds half away from
        // zero, as does f32::round).
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// Inverse of [`quantize_q8_0`] (ggml's `dequantize_row_q8_0`), for tests and checks.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q8_0_BLOCK_BYTES * QK8_0);
    for block in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let hp = HParams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_mels: 80,
            ftype: 1,
        };
        let mut buf = Vec::new();
        write_header(
            &mut buf,
            &hp,
            &vec![0.5; 80 * 201],
            201,
            &[b"a".to_vec(), b" the".to_vec()],
        )
        .unwrap();
        let i = |at: usize| i32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
        assert_eq!(&buf[..4], b"lmgg"); // 0x67676d6c little endian
        assert_eq!(i(4), 51864);
        assert_eq!(i(4 + 4 * 9), 80);
        assert_eq!(i(4 + 4 * 10), 1);
        assert_eq!((i(48), i(52)), (80, 201));
        let vocab_at = 56 + 80 * 201 * 4;
        assert_eq!(i(vocab_at), 2);
        assert_eq!(i(vocab_at + 4), 1);
        assert_eq!(buf[vocab_at + 8], b'a');
        assert_eq!(i(vocab_at + 9), 4);
        assert_eq!(&buf[vocab_at + 13..], b" the");
    }

    #[test]
    fn tensor_dims_are_reversed_and_sizes_match_type() {
        let mut buf = Vec::new();
        let vals: Vec<f32> = (0..64).map(|i| i as f32).collect();
        write_tensor(&mut buf, "x.weight", &[2, 32], TensorType::Q8_0, &vals).unwrap();
        let i = |at: usize| i32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
        assert_eq!((i(0), i(4), i(8), i(12), i(16)), (2, 8, 8, 32, 2));
        assert_eq!(&buf[20..28], b"x.weight");
        assert_eq!(buf.len() - 28, TensorType::Q8_0.nbytes(64));
        assert_eq!(TensorType::Q8_0.nbytes(64), 68);
    }

    #[test]
    fn q8_0_blocks_match_ggml_reference() {
        let mut vals = vec![0f32; 64];
        vals[0] = 1.27;
        vals[1] = -0.6351;
        vals[2] = 0.004; // rounds to 0 at d = 0.01
        let q = quantize_q8_0(&vals);
        assert_eq!(q.len(), 2 * Q8_0_BLOCK_BYTES);
        let d = f16::from_le_bytes([q[0], q[1]]).to_f32();
        assert!((d - 0.01).abs() < 1e-5);
        assert_eq!(q[2] as i8, 127);
        assert_eq!(q[3] as i8, -64); // -63.51 rounds to nearest
        assert_eq!(q[4] as i8, 0);
        // an all-zero block has d = 0 and zero quants
        assert!(q[34..].iter().all(|&b| b == 0));
    }

    proptest::proptest! {
        #[test]
        fn q8_0_error_is_within_half_a_step(vals in proptest::collection::vec(-4.0f32..4.0, 32..=32)) {
            let back = dequantize_q8_0(&quantize_q8_0(&vals));
            let amax = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
            // half a quantization step, plus the f16 rounding of the scale
            let tol = amax / 127.0 * 0.5 + amax * 2e-3 + 1e-6;
            for (a, b) in vals.iter().zip(&back) {
                proptest::prop_assert!((a - b).abs() <= tol, "{a} vs {b}");
            }
        }
    }
}
