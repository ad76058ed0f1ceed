//! Converter tests over a small synthetic Whisper checkpoint with whisper.cpp's real layout.

use super::*;
use crate::ct2::tests::build;
use std::collections::BTreeMap;

const D: usize = 64; // n_state: a multiple of QK8_0 so q8_0 applies
const MELS: usize = 80;
const VOCAB: usize = N_TEXT_TOKENS + 8;

fn f32b(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect()
}

/// Values that identify their variable and position, so slices can be checked after splitting.
fn ramp(n: usize, tag: f32) -> Vec<f32> {
    (0..n).map(|i| tag + (i % 97) as f32 / 128.0).collect()
}

fn checkpoint() -> Vec<u8> {
    let mut vars: Vec<(String, Vec<u32>, u8, Vec<u8>)> = Vec::new();
    let add = |vars: &mut Vec<(String, Vec<u32>, u8, Vec<u8>)>,
               name: &str,
               dims: Vec<usize>,
               tag: f32| {
        let n = dims.iter().product();
        vars.push((
            name.to_owned(),
            dims.iter().map(|&d| d as u32).collect(),
            4,
            f32b(&ramp(n, tag)),
        ));
    };
    add(&mut vars, "encoder/conv1/weight", vec![D, MELS, 3], 0.0);
    add(&mut vars, "encoder/conv1/bias", vec![D], 0.0);
    add(&mut vars, "encoder/conv2/weight", vec![D, D, 3], 0.0);
    add(&mut vars, "encoder/conv2/bias", vec![D], 0.0);
    add(
        &mut vars,
        "encoder/position_encodings/encodings",
        vec![1500, D],
        0.0,
    );
    add(
        &mut vars,
        "decoder/position_encodings/encodings",
        vec![448, D],
        0.0,
    );
    add(&mut vars, "decoder/embeddings/weight", vec![VOCAB, D], 0.0);
    for side in ["encoder", "decoder"] {
        add(&mut vars, &format!("{side}/layer_norm/gamma"), vec![D], 1.0);
        add(&mut vars, &format!("{side}/layer_norm/beta"), vec![D], 0.0);
        let l = format!("{side}/layer_0");
        for ln in ["self_attention", "ffn"] {
            add(
                &mut vars,
                &format!("{l}/{ln}/layer_norm/gamma"),
                vec![D],
                1.0,
            );
            add(
                &mut vars,
                &format!("{l}/{ln}/layer_norm/beta"),
                vec![D],
                0.0,
            );
        }
        // fused q;k;v with distinguishable blocks: q ~ 1.x, k ~ 2.x, v ~ 3.x
        let mut qkv = ramp(D * D, 1.0);
        qkv.extend(ramp(D * D, 2.0));
        qkv.extend(ramp(D * D, 3.0));
        vars.push((
            format!("{l}/self_attention/linear_0/weight"),
            vec![3 * D as u32, D as u32],
            4,
            f32b(&qkv),
        ));
        let mut bias = vec![1.0f32; D];
        bias.extend(vec![0.0; D]);
        bias.extend(vec![3.0; D]);
        vars.push((
            format!("{l}/self_attention/linear_0/bias"),
            vec![3 * D as u32],
            4,
            f32b(&bias),
        ));
        add(
            &mut vars,
            &format!("{l}/self_attention/linear_1/weight"),
            vec![D, D],
            0.0,
        );
        add(
            &mut vars,
            &format!("{l}/self_attention/linear_1/bias"),
            vec![D],
            0.0,
        );
        add(
            &mut vars,
            &format!("{l}/ffn/linear_0/weight"),
            vec![4 * D, D],
            0.0,
        );
        add(
            &mut vars,
            &format!("{l}/ffn/linear_0/bias"),
            vec![4 * D],
            0.0,
        );
        add(
            &mut vars,
            &format!("{l}/ffn/linear_1/weight"),
            vec![D, 4 * D],
            0.0,
        );
        add(&mut vars, &format!("{l}/ffn/linear_1/bias"), vec![D], 0.0);
    }
    let l = "decoder/layer_0/attention";
    add(&mut vars, &format!("{l}/layer_norm/gamma"), vec![D], 1.0);
    add(&mut vars, &format!("{l}/layer_norm/beta"), vec![D], 0.0);
    add(&mut vars, &format!("{l}/linear_0/weight"), vec![D, D], 0.0);
    add(&mut vars, &format!("{l}/linear_0/bias"), vec![D], 0.0);
    add(
        &mut vars,
        &format!("{l}/linear_1/weight"),
        vec![2 * D, D],
        0.0,
    );
    add(&mut vars, &format!("{l}/linear_1/bias"), vec![2 * D], 0.0);
    add(&mut vars, &format!("{l}/linear_2/weight"), vec![D, D], 0.0);
    add(&mut vars, &format!("{l}/linear_2/bias"), vec![D], 0.0);
    vars.push((
        "encoder/num_heads".into(),
        vec![],
        2,
        2i16.to_le_bytes().to_vec(),
    ));
    vars.push((
        "decoder/num_heads".into(),
        vec![],
        2,
        2i16.to_le_bytes().to_vec(),
    ));
    let refs: Vec<(&str, Vec<u32>, u8, Vec<u8>)> = vars
        .iter()
        .map(|(n, d, c, b)| (n.as_str(), d.clone(), *c, b.clone()))
        .collect();
    build(
        &refs,
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
}

fn vocabulary() -> String {
    let mut v: Vec<String> = (0..N_TEXT_TOKENS).map(|i| format!("t{i}")).collect();
    v[0] = "Ġthe".into();
    v.push("<|endoftext|>".into());
    v.join("\n")
}

/// The tensors whisper.cpp's loader allocates for a 1+1 layer model: name → (ne, type), with
/// `ne` innermost first as in `ggml_new_tensor_*d` calls of `whisper_model_load`.
fn expected(q: Quantization) -> BTreeMap<String, (Vec<usize>, TensorType)> {
    let w = q.weight_type();
    let (f32t, f16t) = (TensorType::F32, TensorType::F16);
    let mut e = BTreeMap::new();
    let mut put = |n: &str, ne: Vec<usize>, t| {
        e.insert(n.to_owned(), (ne, t));
    };
    put("encoder.positional_embedding", vec![D, 1500], f32t);
    put("encoder.conv1.weight", vec![3, MELS, D], f16t);
    put("encoder.conv1.bias", vec![1, D], f32t);
    put("encoder.conv2.weight", vec![3, D, D], f16t);
    put("encoder.conv2.bias", vec![1, D], f32t);
    put("encoder.ln_post.weight", vec![D], f32t);
    put("encoder.ln_post.bias", vec![D], f32t);
    put("decoder.positional_embedding", vec![D, 448], f32t);
    put("decoder.token_embedding.weight", vec![D, VOCAB], w);
    put("decoder.ln.weight", vec![D], f32t);
    put("decoder.ln.bias", vec![D], f32t);
    for side in ["encoder", "decoder"] {
        let b = format!("{side}.blocks.0");
        let mut attn = vec![format!("{b}.attn")];
        if side == "decoder" {
            attn.push(format!("{b}.cross_attn"));
        }
        put(&format!("{b}.mlp_ln.weight"), vec![D], f32t);
        put(&format!("{b}.mlp_ln.bias"), vec![D], f32t);
        put(&format!("{b}.mlp.0.weight"), vec![D, 4 * D], w);
        put(&format!("{b}.mlp.0.bias"), vec![4 * D], f32t);
        put(&format!("{b}.mlp.2.weight"), vec![4 * D, D], w);
        put(&format!("{b}.mlp.2.bias"), vec![D], f32t);
        for a in attn {
            put(&format!("{a}_ln.weight"), vec![D], f32t);
            put(&format!("{a}_ln.bias"), vec![D], f32t);
            for p in ["query", "key", "value", "out"] {
                put(&format!("{a}.{p}.weight"), vec![D, D], w);
                if p != "key" {
                    put(&format!("{a}.{p}.bias"), vec![D], f32t);
                }
            }
        }
    }
    e
}

/// Reads back a written ggml file: hparams, filters, tokens, tensors (name → (ne, type, bytes)).
#[allow(clippy::type_complexity)]
fn read_back(
    b: &[u8],
) -> (
    [i32; 11],
    Vec<f32>,
    Vec<Vec<u8>>,
    BTreeMap<String, (Vec<usize>, i32, Vec<u8>)>,
) {
    let mut p = 0;
    let i32at = |p: &mut usize| {
        let v = i32::from_le_bytes(b[*p..*p + 4].try_into().unwrap());
        *p += 4;
        v
    };
    assert_eq!(i32at(&mut p) as u32, ggml::MAGIC);
    let mut hp = [0; 11];
    for h in hp.iter_mut() {
        *h = i32at(&mut p);
    }
    let (nm, nf) = (i32at(&mut p) as usize, i32at(&mut p) as usize);
    let filters = (0..nm * nf)
        .map(|_| f32::from_bits(i32at(&mut p) as u32))
        .collect();
    let n = i32at(&mut p) as usize;
    let mut toks = Vec::new();
    for _ in 0..n {
        let l = i32at(&mut p) as usize;
        toks.push(b[p..p + l].to_vec());
        p += l;
    }
    let mut tensors = BTreeMap::new();
    while p < b.len() {
        let (nd, nl, ty) = (i32at(&mut p), i32at(&mut p) as usize, i32at(&mut p));
        let ne: Vec<usize> = (0..nd).map(|_| i32at(&mut p) as usize).collect();
        let name = String::from_utf8(b[p..p + nl].to_vec()).unwrap();
        p += nl;
        let numel: usize = ne.iter().product();
        let size = match ty {
            0 => numel * 4,
            1 => numel * 2,
            8 => numel / 32 * 34,
            t => panic!("unexpected type {t}"),
        };
        tensors.insert(name, (ne, ty, b[p..p + size].to_vec()));
        p += size;
    }
    (hp, filters, toks, tensors)
}

fn convert(q: Quantization) -> Vec<u8> {
    let m = Ct2Model::parse(&checkpoint()).unwrap();
    let mut out = Vec::new();
    let mut calls = 0;
    let s = write_ggml(&m, &vocabulary(), q, &mut out, &mut |_, _| calls += 1).unwrap();
    assert_eq!(calls, s.tensors);
    assert_eq!(s.bytes as usize, out.len());
    out
}

#[test]
fn header_carries_whisper_hparams() {
    let (hp, filters, toks, _) = read_back(&convert(Quantization::F16));
    assert_eq!(
        hp,
        [
            VOCAB as i32,
            1500,
            D as i32,
            2,
            1,
            448,
            D as i32,
            2,
            1,
            MELS as i32,
            1
        ]
    );
    assert_eq!(filters, mel::slaney_filters(16000, 400, 80));
    assert_eq!(toks.len(), N_TEXT_TOKENS);
    assert_eq!(toks[0], b" the");
    let (hp, ..) = read_back(&convert(Quantization::Q8_0));
    assert_eq!(hp[10], 2007, "q8_0 ftype with quantization version 2");
}

#[test]
fn tensor_names_shapes_and_types_match_the_loader() {
    for q in [Quantization::F16, Quantization::Q8_0] {
        let (_, _, _, tensors) = read_back(&convert(q));
        let got: BTreeMap<String, (Vec<usize>, TensorType)> = tensors
            .iter()
            .map(|(n, (ne, ty, _))| {
                let t = match ty {
                    0 => TensorType::F32,
                    1 => TensorType::F16,
                    _ => TensorType::Q8_0,
                };
                (n.clone(), (ne.clone(), t))
            })
            .collect();
        assert_eq!(got, expected(q), "{q:?}");
        // whisper.cpp's count: 10 + 15 per encoder layer + 24 per decoder layer... for 1+1:
        assert_eq!(got.len(), 7 + 15 + 4 + 24);
    }
}

#[test]
fn fused_projections_split_into_the_right_rows() {
    let (_, _, _, t) = read_back(&convert(Quantization::F16));
    let first = |name: &str| {
        let b = &t[name].2;
        half::f16::from_le_bytes([b[0], b[1]]).to_f32()
    };
    assert_eq!(first("encoder.blocks.0.attn.query.weight"), 1.0);
    assert_eq!(first("encoder.blocks.0.attn.key.weight"), 2.0);
    assert_eq!(first("encoder.blocks.0.attn.value.weight"), 3.0);
    let bias = |name: &str| f32::from_le_bytes(t[name].2[..4].try_into().unwrap());
    assert_eq!(bias("decoder.blocks.0.attn.query.bias"), 1.0);
    assert_eq!(bias("decoder.blocks.0.attn.value.bias"), 3.0);
    assert!(!t.contains_key("decoder.blocks.0.attn.key.bias"));
    assert!(!t.contains_key("decoder.blocks.0.cross_attn.key.bias"));
}

#[test]
fn missing_variable_is_a_named_error() {
    let m = Ct2Model::parse(&build(&[("encoder/num_heads", vec![], 2, vec![2, 0])], &[])).unwrap();
    let err = write_ggml(
        &m,
        &vocabulary(),
        Quantization::F16,
        &mut Vec::new(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::MissingVariable(_)), "{err}");
}
