//! `callcoach transcribe FILE [--json]`: decode a recording and print its transcript.
//!
//! Goes through the same [`TranscriberPool`] as live calls. Bad input (missing, unsupported or
//! corrupt file) prints one line on stderr and exits with code 2.

use super::EXIT_BAD_INPUT;
use anyhow::Context;
use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::{JobKind, TranscriberConfig, TranscriberPool};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio file: WAV, FLAC, MP3 or OGG (Vorbis).
    pub file: PathBuf,
    /// Print JSON (text, segments, audio seconds, elapsed ms) instead of plain text.
    #[arg(long)]
    pub json: bool,
    /// Segment timestamps (slower).
    #[arg(long)]
    pub timestamps: bool,
    /// ggml Whisper model (default: $CALLCOACH_WHISPER_MODEL or the imported tiny.en).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// whisper.cpp threads (they spin-wait: more threads than idle cores is much slower).
    #[arg(long, default_value = "1")]
    pub threads: NonZeroUsize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let audio = match decode_file(&args.file) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let model = args
        .model
        .unwrap_or_else(callcoach_models::default_model_path);
    let mut cfg = TranscriberConfig::new(&model);
    cfg.workers = NonZeroUsize::MIN; // one file, one job
    cfg.threads_per_worker = args.threads;
    cfg.timestamps = args.timestamps;
    let pool = TranscriberPool::start(cfg).context("cannot start the transcriber")?;
    let started = Instant::now();
    let t = pool
        .handle()
        .transcribe_blocking(Arc::from(audio.samples_16k_mono), JobKind::Final)
        .context("transcription failed")?;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    if args.json {
        let out = serde_json::json!({
            "file": args.file.display().to_string(),
            "text": t.text,
            "segments": t.segments,
            "no_speech": t.no_speech,
            "audio_s": audio.duration_s,
            "source_rate": audio.source_rate,
            "channels": audio.channels,
            "elapsed_ms": wall_ms,
            "audio_ctx": t.audio_ctx,
            "retried": t.retried,
        });
        println!("{out}");
    } else {
        println!("{}", t.text);
    }
    pool.shutdown();
    Ok(ExitCode::SUCCESS)
}
