//! CTranslate2 Whisper checkpoint → whisper.cpp ggml file.
//!
//! Name mapping (CTranslate2 `WhisperSpec` → OpenAI checkpoint names that whisper.cpp expects):
//!
//! | CTranslate2                                  | ggml                                      |
//! |----------------------------------------------|-------------------------------------------|
//! | `encoder/conv{1,2}/{weight,bias}`            | `encoder.conv{1,2}.{weight,bias}`         |
//! | `{enc,dec}oder/position_encodings/encodings` | `{enc,dec}oder.positional_embedding`      |
//! | `encoder/layer_norm`                         | `encoder.ln_post`                         |
//! | `decoder/layer_norm`                         | `decoder.ln`                              |
//! | `decoder/embeddings/weight`                  | `decoder.token_embedding.weight`          |
//! | `…/layer_N/self_attention/linear_0` [q;k;v]  | `….blocks.N.attn.{query,key,value}`       |
//! | `…/layer_N/self_attention/linear_1`          | `….blocks.N.attn.out`                     |
//! | `…/layer_N/self_attention/layer_norm`        | `….blocks.N.attn_ln`                      |
//! | `decoder/layer_N/attention/linear_0`         | `decoder.blocks.N.cross_attn.query`       |
//! | `decoder/layer_N/attention/linear_1` [k;v]   | `decoder.blocks.N.cross_attn.{key,value}` |
//! | `decoder/layer_N/attention/linear_2`         | `decoder.blocks.N.cross_attn.out`         |
//! | `decoder/layer_N/attention/layer_norm`       | `decoder.blocks.N.cross_attn_ln`          |
//! | `…/layer_N/ffn/linear_{0,1}`                 | `….blocks.N.mlp.{0,2}`                    |
//! | `…/layer_N/ffn/layer_norm`                   | `….blocks.N.mlp_ln`                       |
//! | `gamma` / `beta`                             | `weight` / `bias`                         |
//!
//! Whisper has no key bias; CTranslate2 fuses one (all zeros) into the fused projections. It is
//! dropped: whisper.cpp rejects a `*.key.bias`, and even a non-zero key bias would only add a
//! per-query constant to every attention logit, which softmax cancels.

use crate::ct2::Ct2Model;
use crate::ggml::{self, HParams, Quantization, TensorType, QK8_0};
use crate::{mel, vocab, ModelError};
use regex::Regex;
use std::io::Write;

/// whisper.cpp's STFT: 16 kHz audio, 400-sample window (`WHISPER_N_FFT`).
const SAMPLE_RATE: u32 = 16_000;
const N_FFT: usize = 400;
/// Text tokens in the GPT-2 vocabulary Whisper uses; ids from here on are special tokens that
/// whisper.cpp numbers itself (`<|endoftext|>` = 50256 for English-only models).
pub const N_TEXT_TOKENS: usize = 50_256;

/// One tensor ready to write.
pub struct Tensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub ty: TensorType,
    pub values: Vec<f32>,
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub hparams: HParams,
    pub tensors: usize,
    pub bytes: u64,
}

/// Reads the hyper-parameters from the checkpoint's shapes and scalar variables.
pub fn hparams(m: &Ct2Model, q: Quantization) -> Result<HParams, ModelError> {
    let dims = |name: &str| m.get(name).map(|v| v.dims.clone());
    let scalar = |name: &str| {
        m.get(name)?
            .scalar_i64()
            .ok_or_else(|| ModelError::Ct2Format(format!("{name} is not a scalar")))
    };
    let layer_re = Regex::new(r"^(encoder|decoder)/layer_(\d+)/")
        .map_err(|e| ModelError::Ct2Format(e.to_string()))?;
    let mut n_layers = [0usize; 2];
    for name in m.variables.keys() {
        // `layer_norm` also starts with `layer_`; the regex wants digits then a slash.
        if let Some(c) = layer_re.captures(name) {
            let which = usize::from(&c[1] == "decoder");
            let n: usize = c[2].parse().unwrap_or(0);
            n_layers[which] = n_layers[which].max(n + 1);
        }
    }
    let emb = dims("decoder/embeddings/weight")?;
    let enc_pos = dims("encoder/position_encodings/encodings")?;
    let dec_pos = dims("decoder/position_encodings/encodings")?;
    let conv1 = dims("encoder/conv1/weight")?;
    let (Some(&n_vocab), Some(&n_audio_ctx), Some(&n_text_ctx), Some(&n_mels)) =
        (emb.first(), enc_pos.first(), dec_pos.first(), conv1.get(1))
    else {
        return Err(ModelError::Ct2Format(
            "embedding or convolution shapes have too few dims".into(),
        ));
    };
    let n_state = enc_pos.get(1).copied().unwrap_or(0);
    let hp = HParams {
        n_vocab: n_vocab as i32,
        n_audio_ctx: n_audio_ctx as i32,
        n_audio_state: n_state as i32,
        n_audio_head: scalar("encoder/num_heads")? as i32,
        n_audio_layer: n_layers[0] as i32,
        n_text_ctx: n_text_ctx as i32,
        n_text_state: emb.get(1).copied().unwrap_or(0) as i32,
        n_text_head: scalar("decoder/num_heads")? as i32,
        n_text_layer: n_layers[1] as i32,
        n_mels: n_mels as i32,
        ftype: q.header_ftype(),
    };
    if hp.n_audio_layer == 0 || hp.n_text_layer == 0 || hp.n_text_state != hp.n_audio_state {
        return Err(ModelError::Ct2Format(format!(
            "inconsistent whisper shapes: {hp:?}"
        )));
    }
    Ok(hp)
}

/// Maps every checkpoint variable to the ggml tensors whisper.cpp allocates, typed as it
/// allocates them (2-D weights: the quantization's type; convolution kernels: f16; 1-D tensors,
/// positional embeddings and convolution biases: f32).
pub fn tensors(m: &Ct2Model, hp: &HParams, q: Quantization) -> Result<Vec<Tensor>, ModelError> {
    let mut out = Vec::new();
    let wtype = q.weight_type();
    let mut push = |name: String,
                    dims: Vec<usize>,
                    values: Vec<f32>,
                    ty: TensorType|
     -> Result<(), ModelError> {
        let numel: usize = dims.iter().product();
        if numel != values.len() {
            return Err(ModelError::Ct2Format(format!(
                "{name}: {} values for dims {dims:?}",
                values.len()
            )));
        }
        // Q8_0 needs whole blocks along the innermost dimension; otherwise keep f16.
        let ty = if ty == TensorType::Q8_0 && dims.last().is_none_or(|d| d % QK8_0 != 0) {
            TensorType::F16
        } else {
            ty
        };
        out.push(Tensor {
            name,
            dims,
            ty,
            values,
        });
        Ok(())
    };
    let weight_ty = |dims: &[usize]| {
        if dims.len() >= 2 {
            wtype
        } else {
            TensorType::F32
        }
    };

    // Top level.
    for (conv, name) in [
        ("encoder/conv1", "encoder.conv1"),
        ("encoder/conv2", "encoder.conv2"),
    ] {
        let (d, v) = m.get_f32(&format!("{conv}/weight"))?;
        push(format!("{name}.weight"), d, v, TensorType::F16)?;
        let (d, v) = m.get_f32(&format!("{conv}/bias"))?;
        // whisper.cpp allocates conv biases as 2-D [1, n] (ne0 = 1): written dims [n, 1].
        push(format!("{name}.bias"), vec![d[0], 1], v, TensorType::F32)?;
    }
    for side in ["encoder", "decoder"] {
        let (d, v) = m.get_f32(&format!("{side}/position_encodings/encodings"))?;
        push(
            format!("{side}.positional_embedding"),
            d,
            v,
            TensorType::F32,
        )?;
    }
    for (src, dst) in [
        ("encoder/layer_norm", "encoder.ln_post"),
        ("decoder/layer_norm", "decoder.ln"),
    ] {
        norm(m, src, dst, &mut push)?;
    }
    let (d, v) = m.get_f32("decoder/embeddings/weight")?;
    push(
        "decoder.token_embedding.weight".into(),
        d.clone(),
        v,
        weight_ty(&d),
    )?;

    let n_state = hp.n_text_state as usize;
    for (side, n_layers) in [("encoder", hp.n_audio_layer), ("decoder", hp.n_text_layer)] {
        for i in 0..n_layers as usize {
            let src = format!("{side}/layer_{i}");
            let dst = format!("{side}.blocks.{i}");
            norm(
                m,
                &format!("{src}/self_attention/layer_norm"),
                &format!("{dst}.attn_ln"),
                &mut push,
            )?;
            split(
                m,
                &format!("{src}/self_attention/linear_0"),
                &[
                    &format!("{dst}.attn.query"),
                    &format!("{dst}.attn.key"),
                    &format!("{dst}.attn.value"),
                ],
                n_state,
                wtype,
                &mut push,
            )?;
            linear(
                m,
                &format!("{src}/self_attention/linear_1"),
                &format!("{dst}.attn.out"),
                wtype,
                &mut push,
            )?;
            norm(
                m,
                &format!("{src}/ffn/layer_norm"),
                &format!("{dst}.mlp_ln"),
                &mut push,
            )?;
            linear(
                m,
                &format!("{src}/ffn/linear_0"),
                &format!("{dst}.mlp.0"),
                wtype,
                &mut push,
            )?;
            linear(
                m,
                &format!("{src}/ffn/linear_1"),
                &format!("{dst}.mlp.2"),
                wtype,
                &mut push,
            )?;
            if side == "decoder" {
                norm(
                    m,
                    &format!("{src}/attention/layer_norm"),
                    &format!("{dst}.cross_attn_ln"),
                    &mut push,
                )?;
                linear(
                    m,
                    &format!("{src}/attention/linear_0"),
                    &format!("{dst}.cross_attn.query"),
                    wtype,
                    &mut push,
                )?;
                split(
                    m,
                    &format!("{src}/attention/linear_1"),
                    &[
                        &format!("{dst}.cross_attn.key"),
                        &format!("{dst}.cross_attn.value"),
                    ],
                    n_state,
                    wtype,
                    &mut push,
                )?;
                linear(
                    m,
                    &format!("{src}/attention/linear_2"),
                    &format!("{dst}.cross_attn.out"),
                    wtype,
                    &mut push,
                )?;
            }
        }
    }
    Ok(out)
}

type Push<'a> = dyn FnMut(String, Vec<usize>, Vec<f32>, TensorType) -> Result<(), ModelError> + 'a;

fn norm(m: &Ct2Model, src: &str, dst: &str, push: &mut Push<'_>) -> Result<(), ModelError> {
    let (d, v) = m.get_f32(&format!("{src}/gamma"))?;
    push(format!("{dst}.weight"), d, v, TensorType::F32)?;
    let (d, v) = m.get_f32(&format!("{src}/beta"))?;
    push(format!("{dst}.bias"), d, v, TensorType::F32)
}

fn linear(
    m: &Ct2Model,
    src: &str,
    dst: &str,
    wtype: TensorType,
    push: &mut Push<'_>,
) -> Result<(), ModelError> {
    let (d, v) = m.get_f32(&format!("{src}/weight"))?;
    push(format!("{dst}.weight"), d, v, wtype)?;
    let (d, v) = m.get_f32(&format!("{src}/bias"))?;
    push(format!("{dst}.bias"), d, v, TensorType::F32)
}

/// Splits a fused projection (rows stacked `[a; b; …]`, each `n_state` rows) into named parts.
/// Every part keeps its weight; biases are kept except for `*.key` (see the module doc).
fn split(
    m: &Ct2Model,
    src: &str,
    parts: &[&str],
    n_state: usize,
    wtype: TensorType,
    push: &mut Push<'_>,
) -> Result<(), ModelError> {
    let (wd, w) = m.get_f32(&format!("{src}/weight"))?;
    let (_, b) = m.get_f32(&format!("{src}/bias"))?;
    let cols = wd.get(1).copied().unwrap_or(0);
    if wd.first() != Some(&(n_state * parts.len())) || b.len() != n_state * parts.len() {
        return Err(ModelError::Ct2Format(format!(
            "{src}: fused shape {wd:?} is not {} × {n_state} rows",
            parts.len()
        )));
    }
    for (p, name) in parts.iter().enumerate() {
        let rows = p * n_state..(p + 1) * n_state;
        push(
            format!("{name}.weight"),
            vec![n_state, cols],
            w[rows.start * cols..rows.end * cols].to_vec(),
            wtype,
        )?;
        if !name.ends_with(".key") {
            push(
                format!("{name}.bias"),
                vec![n_state],
                b[rows].to_vec(),
                TensorType::F32,
            )?;
        }
    }
    Ok(())
}

/// Writes the whole ggml file for a parsed checkpoint and its `vocabulary.txt` contents.
/// `progress(done, total)` is called after each tensor.
pub fn write_ggml(
    m: &Ct2Model,
    vocabulary_txt: &str,
    q: Quantization,
    w: &mut impl Write,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ConvertSummary, ModelError> {
    if m.spec != "WhisperSpec" {
        return Err(ModelError::Ct2Format(format!(
            "spec is {:?}, not WhisperSpec",
            m.spec
        )));
    }
    let hp = hparams(m, q)?;
    let filters = mel::slaney_filters(SAMPLE_RATE, N_FFT, hp.n_mels as usize);
    let tokens = vocab::read_text_tokens(vocabulary_txt, N_TEXT_TOKENS)?;
    let mut counted = CountingWriter { inner: w, bytes: 0 };
    ggml::write_header(&mut counted, &hp, &filters, N_FFT / 2 + 1, &tokens)?;
    let tensors = tensors(m, &hp, q)?;
    let total = tensors.len();
    for (i, t) in tensors.iter().enumerate() {
        ggml::write_tensor(&mut counted, &t.name, &t.dims, t.ty, &t.values)?;
        progress(i + 1, total);
    }
    counted.flush()?;
    Ok(ConvertSummary {
        hparams: hp,
        tensors: total,
        bytes: counted.bytes,
    })
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
