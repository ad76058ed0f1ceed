//! `callcoach` — parse the command line and run the chosen subcommand.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = callcoach::cli::Cli::parse();
    callcoach::cli::run(cli)
}
