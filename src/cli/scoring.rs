//! `callcoach scoring` (being written).

#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub fn run(cmd: Command) -> anyhow::Result<std::process::ExitCode> {
    match cmd {}
}
