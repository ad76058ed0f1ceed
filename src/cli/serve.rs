//! `callcoach serve` — start the server. Flags override `CALLCOACH_*` variables, which override
//! the config file. With no model present (and transcription on), the default model is imported
//! first, with a progress bar, exactly as `callcoach models fetch` does.

use crate::config::{Config, ConfigFile};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub addr: Option<String>,
    /// `sqlite://file` (default `sqlite://callcoach.sqlite`) or `postgres://…`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Run without transcription (talk-time coaching only; for ingest capacity tests).
    #[arg(long)]
    pub no_transcription: bool,
    /// Transcription workers.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Threads per transcription worker.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log format: json (default) or pretty.
    #[arg(long)]
    pub log_format: Option<String>,
}

/// Applies flags on top of file < env.
fn layered(args: &Args) -> anyhow::Result<ConfigFile> {
    let mut file = Config::layered_file(args.config.as_deref())?;
    if let Some(addr) = &args.addr {
        file.addr = Some(addr.clone());
    }
    if let Some(url) = &args.database_url {
        file.database_url = Some(url.clone());
    }
    if args.no_transcription {
        file.whisper.enabled = Some(false);
    }
    if let Some(w) = args.workers {
        file.whisper.workers = Some(w);
    }
    if let Some(t) = args.threads {
        file.whisper.threads = Some(t);
    }
    if let Some(f) = &args.log_format {
        file.log_format = Some(f.clone());
    }
    Ok(file)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(layered(&args)?)?;
    crate::telemetry::init(config.log_format);
    if config.uses_dev_secret() {
        tracing::warn!(
            "no JWT secret configured: using the built-in development secret; set CALLCOACH_JWT_SECRET in production"
        );
    }
    if config.whisper.enabled && config.whisper.model.is_none() {
        let path = callcoach_models::default_model_path();
        if !path.exists() {
            eprintln!(
                "no Whisper model at {}: importing the default model",
                path.display()
            );
            callcoach_models::fetch::ensure_default_model()?;
        }
    }
    actix_web::rt::System::new().block_on(crate::server::run(config))?;
    Ok(ExitCode::SUCCESS)
}
