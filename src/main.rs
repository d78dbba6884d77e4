//! `q-group-sync`: parse the command line, start logging, run, map the result to an exit code.
//!
//! Exit codes (`cli::EXIT_CODES`): 0 done, 1 something failed that the next run retries, 2
//! configuration or setup, 3 changes held for approval, 4 `explain`'s unknown user or document,
//! 130 a second interrupt during shutdown.

use std::process::ExitCode;

use clap::Parser;
use q_group_sync::cli::{self, Cli};
use q_group_sync::error::error_chain;
use q_group_sync::{shutdown, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2, as clap does
    // Member data at rest (the snapshot, its -wal/-shm) is the owner's alone.
    q_group_sync::files::restrict_umask();
    if let Err(e) = telemetry::init(
        cli.log_format,
        cli.log_level.as_deref(),
        cli.log_filter.as_deref(),
    ) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let token = shutdown::on_signal();
        match cli::run(cli, token).await {
            Ok(exit) => ExitCode::from(exit.code()),
            Err(err) => {
                let code = cli::exit_code(&err);
                let message = error_chain(err.as_ref());
                // Once, through the log: one JSON line, or one text line.
                tracing::error!(error = %message, "{}", if code == 2 { "configuration error" } else { "failed" });
                ExitCode::from(code)
            }
        }
    })
}
