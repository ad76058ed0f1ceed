//! The `callcoach` command line. Each subcommand lives in its own module under `cli/`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod eval_asr;
pub mod loadgen;
pub mod models;
pub mod replay;
pub mod scoring;
pub mod serve;
pub mod token;
pub mod transcribe;

#[derive(Debug, Parser)]
#[command(name = "callcoach", version, about = "Real-time voice coaching server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (imports the Whisper model first if none is present).
    Serve(serve::Args),
    /// Fetch and convert Whisper models.
    #[command(subcommand)]
    Models(models::Command),
    /// Transcribe an audio file (WAV/FLAC/MP3/OGG).
    Transcribe(transcribe::Args),
    /// Word error rate and real-time factor over a manifest of clips.
    EvalAsr(eval_asr::Args),
    /// Act as a softphone: stream a recording to a server and print its events.
    Replay(replay::Args),
    /// Mint a development JWT from the configured secret.
    Token(token::Args),
    /// Train and evaluate the lead-scoring model.
    #[command(subcommand)]
    Scoring(scoring::Command),
    /// Drive N simultaneous real-time softphones against a server and report latencies.
    Loadgen(loadgen::Args),
}

/// Exit code for bad input (unsupported file, bad arguments that clap did not catch).
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Models(cmd) => models::run(cmd),
        Command::Transcribe(args) => transcribe::run(args),
        Command::EvalAsr(args) => eval_asr::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Token(args) => token::run(args),
        Command::Scoring(cmd) => scoring::run(cmd),
        Command::Loadgen(args) => loadgen::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
