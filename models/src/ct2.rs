//! Reader for CTranslate2's `model.bin` (binary format version 6 and earlier 5).
//!
//! Layout (little endian): `u32` version, spec name and `u32` spec revision (version >= 2),
//! `u32` variable count, then per variable: name, `u8` rank, `rank × u32` dims, `u8` dtype
//! (version >= 4), `u32` byte count, the bytes; then `u32` alias count and (alias, target) name
//! pairs. Strings are a `u16` length that includes a trailing NUL, then the bytes. Every length
//! is checked against what is left in the file so a truncated or hostile file is an error, not
//! a panic or a huge allocation.

use crate::ModelError;
use half::{bf16, f16};
use std::collections::BTreeMap;

/// Element type of a CTranslate2 variable (the `u8` code in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(code: u8) -> Result<Self, ModelError> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            other => return Err(ModelError::Ct2Format(format!("unknown dtype code {other}"))),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One named array of the checkpoint.
#[derive(Debug, Clone)]
pub struct Variable {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Variable {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The values widened to f32 (floats exactly; integers by value).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::Bf16 => d
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 => d.iter().map(|&b| f32::from(b as i8)).collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }

    /// A scalar integer variable (head counts, flags).
    pub fn scalar_i64(&self) -> Option<i64> {
        if self.numel() != 1 {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(d[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            DType::F32 | DType::F16 | DType::Bf16 => self.to_f32()[0] as i64,
        })
    }
}

/// A parsed checkpoint: spec name, revision, variables by name (aliases resolved to copies of
/// their target's name in [`Ct2Model::aliases`]).
#[derive(Debug)]
pub struct Ct2Model {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable>,
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Looks a variable up by name, following an alias.
    pub fn get(&self, name: &str) -> Result<&Variable, ModelError> {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables
            .get(target)
            .ok_or_else(|| ModelError::MissingVariable(name.to_owned()))
    }

    /// A float variable as f32, dequantizing CTranslate2 int8/int16 weights with their
    /// `<name>_scale` (CTranslate2 stores `round(w * scale)`).
    pub fn get_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let v = self.get(name)?;
        let mut values = v.to_f32();
        if matches!(v.dtype, DType::I8 | DType::I16) {
            let scale = self.get(&format!("{name}_scale"))?.to_f32();
            let rows = v.dims.first().copied().unwrap_or(1);
            if scale.len() != rows && scale.len() != 1 {
                return Err(ModelError::Ct2Format(format!(
                    "{name}_scale has {} values for {rows} rows",
                    scale.len()
                )));
            }
            let cols = values.len() / rows.max(1);
            for (r, row) in values.chunks_mut(cols.max(1)).enumerate() {
                let s = scale[if scale.len() == 1 { 0 } else { r }];
                row.iter_mut().for_each(|x| *x /= s);
            }
        }
        Ok((v.dims.clone(), values))
    }

    /// Parses a whole `model.bin` held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.u32()?;
        if !(2..=6).contains(&version) {
            return Err(ModelError::Ct2Format(format!(
                "unsupported model.bin version {version} (expected 2..=6)"
            )));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let n = r.u32()? as usize;
        let mut variables = BTreeMap::new();
        for _ in 0..n {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(r.u32()? as usize);
            }
            let dtype = if version >= 4 {
                DType::from_code(r.u8()?)?
            } else {
                DType::F32
            };
            let nbytes = r.u32()? as usize;
            let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.and_then(|n| n.checked_mul(dtype.size())) != Some(nbytes) {
                return Err(ModelError::Ct2Format(format!(
                    "variable {name}: {nbytes} bytes for dims {dims:?} of {dtype:?}"
                )));
            }
            let data = r.take(nbytes)?.to_vec();
            variables.insert(name, Variable { dims, dtype, data });
        }
        let mut aliases = BTreeMap::new();
        if r.remaining() > 0 {
            let n = r.u32()? as usize;
            for _ in 0..n {
                let alias = r.string()?;
                let target = r.string()?;
                aliases.insert(alias, target);
            }
        }
        if r.remaining() != 0 {
            return Err(ModelError::Ct2Format(format!(
                "{} trailing bytes after the aliases",
                r.remaining()
            )));
        }
        Ok(Ct2Model {
            version,
            spec,
            revision,
            variables,
            aliases,
        })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        if n > self.remaining() {
            return Err(ModelError::Ct2Format(format!(
                "truncated: wanted {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ModelError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ModelError::Ct2Format(format!("non-utf8 name at offset {}", self.pos)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a version-6 `model.bin` from (name, dims, dtype code, bytes) and aliases.
    pub(crate) fn build(
        vars: &[(&str, Vec<u32>, u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&((v.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        s(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, dims, code, data) in vars {
            s(&mut out, name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(*code);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            s(&mut out, a);
            s(&mut out, t);
        }
        out
    }

    fn f16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect()
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let bin = build(
            &[
                ("enc/num_heads", vec![], 2, 6i16.to_le_bytes().to_vec()),
                ("w", vec![2, 2], 4, f16_bytes(&[1.0, -2.0, 0.5, 3.0])),
            ],
            &[("proj", "w")],
        );
        let m = Ct2Model::parse(&bin).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.get("enc/num_heads").unwrap().scalar_i64(), Some(6));
        let (dims, vals) = m.get_f32("proj").unwrap();
        assert_eq!(dims, vec![2, 2]);
        assert_eq!(vals, vec![1.0, -2.0, 0.5, 3.0]);
    }

    #[test]
    fn int8_weights_are_dequantized_with_their_scale() {
        let bin = build(
            &[
                ("w", vec![2, 2], 1, vec![10u8, 246u8 /* -10 */, 4, 8]),
                (
                    "w_scale",
                    vec![2],
                    0,
                    [10f32, 4f32].iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
            ],
            &[],
        );
        let m = Ct2Model::parse(&bin).unwrap();
        assert_eq!(m.get_f32("w").unwrap().1, vec![1.0, -1.0, 1.0, 2.0]);
    }

    #[test]
    fn truncation_and_bad_sizes_are_errors() {
        let bin = build(
            &[("w", vec![2, 2], 4, f16_bytes(&[1.0, 2.0, 3.0, 4.0]))],
            &[],
        );
        for cut in [0, 3, 10, bin.len() - 9] {
            assert!(Ct2Model::parse(&bin[..cut]).is_err(), "cut at {cut}");
        }
        let bad = build(&[("w", vec![2, 2], 4, vec![0; 6])], &[]);
        assert!(matches!(
            Ct2Model::parse(&bad),
            Err(ModelError::Ct2Format(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Ct2Model::parse(&bytes);
        }
    }
}
