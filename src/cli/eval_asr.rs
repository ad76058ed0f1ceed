//! `callcoach eval-asr MANIFEST.tsv`: word error rate and real-time factor over a set of clips.
//!
//! The manifest is the format of `../shared/data/speech/manifest.tsv`: a header line, then
//! tab-separated rows whose first column is the audio file (relative to the manifest) and last
//! column the reference text. Every clip is submitted to the pool at once (as finals), so the
//! run also measures throughput: audio seconds transcribed per wall-clock second. WER is
//! computed after [`normalize::normalize`] on both sides and summed over words (not averaged
//! over clips).

pub mod normalize;

use anyhow::{bail, Context};
use callcoach_actors::audio::file::decode_file;
use callcoach_actors::transcriber::{DecodePolicy, JobKind, TranscriberConfig, TranscriberPool};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest: header, then `file<TAB>…<TAB>reference` rows.
    pub manifest: PathBuf,
    /// ggml Whisper model (default: $CALLCOACH_WHISPER_MODEL or the imported tiny.en).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pool workers (default: the measured best split on 2 cores, 2 × 1).
    #[arg(long, default_value = "2")]
    pub workers: NonZeroUsize,
    /// whisper.cpp threads per worker (they spin-wait: keep workers × threads ≤ cores).
    #[arg(long, default_value = "1")]
    pub threads: NonZeroUsize,
    /// Encoder frames added to the clip's own (0 = always the full 30 s window).
    #[arg(long)]
    pub ctx_margin: Option<u32>,
    /// Smallest encoder window.
    #[arg(long)]
    pub min_ctx: Option<u32>,
    /// Submit clips one at a time (latency per clip without queueing) instead of all at once.
    #[arg(long)]
    pub sequential: bool,
    /// Print only the summary line.
    #[arg(long)]
    pub quiet: bool,
}

struct Clip {
    file: String,
    reference: String,
    samples: Arc<[f32]>,
    seconds: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read {}", args.manifest.display()))?;
    let base = args
        .manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut clips = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(file), Some(reference)) = (cols.first(), cols.last()) else {
            continue;
        };
        if cols.len() < 2 {
            bail!(
                "{}:{}: expected file<TAB>…<TAB>reference",
                args.manifest.display(),
                i + 1
            );
        }
        let audio =
            decode_file(base.join(file)).with_context(|| format!("cannot decode {file}"))?;
        clips.push(Clip {
            file: (*file).to_owned(),
            reference: (*reference).to_owned(),
            seconds: audio.samples_16k_mono.len() as f64 / 16_000.0,
            samples: Arc::from(audio.samples_16k_mono),
        });
    }
    if clips.is_empty() {
        bail!("{} lists no clips", args.manifest.display());
    }
    let mut cfg = TranscriberConfig::new(
        args.model
            .unwrap_or_else(callcoach_models::default_model_path),
    );
    cfg.workers = args.workers;
    cfg.threads_per_worker = args.threads;
    let defaults = DecodePolicy::default();
    cfg.policy = DecodePolicy {
        ctx_margin_frames: args.ctx_margin.unwrap_or(defaults.ctx_margin_frames),
        min_ctx_frames: args.min_ctx.unwrap_or(defaults.min_ctx_frames),
        ..defaults
    };
    cfg.queue_capacity = NonZeroUsize::new(clips.len()).unwrap_or(NonZeroUsize::MIN);
    let pool = TranscriberPool::start(cfg).context("cannot start the transcriber")?;
    let t = pool.handle();
    let started = Instant::now();
    let mut results = Vec::with_capacity(clips.len());
    if args.sequential {
        for c in &clips {
            results.push(t.transcribe_blocking(Arc::clone(&c.samples), JobKind::Final));
        }
    } else {
        let pending: Vec<_> = clips
            .iter()
            .map(|c| t.submit(Arc::clone(&c.samples), JobKind::Final))
            .collect::<Result<_, _>>()
            .context("pool refused a clip")?;
        for rx in pending {
            results.push(rx.blocking_recv().unwrap_or(Err(
                callcoach_actors::transcriber::TranscribeError::ShuttingDown,
            )));
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (mut errors, mut words, mut audio_s, mut decode_s, mut retries) =
        (0usize, 0usize, 0f64, 0f64, 0usize);
    for (c, r) in clips.iter().zip(results) {
        let r = r.with_context(|| format!("{} failed", c.file))?;
        let reference = normalize::normalize(&c.reference);
        let hypothesis = normalize::normalize(&r.text);
        let e = normalize::edit_distance(&reference, &hypothesis);
        errors += e;
        words += reference.len();
        audio_s += c.seconds;
        decode_s += r.elapsed.as_secs_f64();
        retries += usize::from(r.retried);
        if !args.quiet {
            println!(
                "{}\t{:.2}s\tWER {:5.1}%\t{:4.0} ms\tRTF {:.3}\tctx {}{}\t{}",
                c.file,
                c.seconds,
                100.0 * e as f64 / reference.len().max(1) as f64,
                r.elapsed.as_secs_f64() * 1000.0,
                r.elapsed.as_secs_f64() / c.seconds,
                r.audio_ctx,
                if r.retried { " (retried)" } else { "" },
                r.text
            );
        }
    }
    println!(
        "TOTAL\tclips {}\twords {}\tWER {:.2}%\taudio {:.1} s\tdecode RTF {:.3}\tthroughput {:.2} audio-s/wall-s\twall {:.1} s\tretries {}\t({} workers x {} threads)",
        clips.len(),
        words,
        100.0 * errors as f64 / words.max(1) as f64,
        audio_s,
        decode_s / audio_s,
        audio_s / wall,
        wall,
        retries,
        args.workers,
        args.threads,
    );
    pool.shutdown();
    Ok(ExitCode::SUCCESS)
}
