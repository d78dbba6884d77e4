//! `q-group-sync-emulator`: runs both emulators as one process ([`q_group_sync_emulator::cli`]).

use std::process::ExitCode;

use clap::Parser;
use q_group_sync_emulator::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("q-group-sync-emulator: {err}");
            ExitCode::FAILURE
        }
    }
}
