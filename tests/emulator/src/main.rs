//! `q-group-sync-emulator`: runs both emulators as one process for manual runs and the demo.
//!
//! Prints one JSON line with the URLs and ids, then serves until SIGTERM/SIGINT or stdin closes.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use q_group_sync_emulator::generate::{self, OrgSpec};
use q_group_sync_emulator::{OktaEmulator, OktaOptions, QEmulator, QOptions};
use tokio::io::AsyncReadExt;

/// Serve an emulated Okta org and Amazon Q Business index on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Number of Okta groups to generate.
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// Number of Okta users to generate.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Generator seed; the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generate a realistic, messy org (odd statuses, missing emails, odd group names).
    #[arg(long)]
    messy: bool,
    /// Requests per minute in Okta's /api/v1/groups bucket.
    #[arg(long, default_value_t = 10_000)]
    okta_rate_limit: u32,
    /// Okta emulator listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    okta_listen: SocketAddr,
    /// Q Business emulator listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    q_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("q-group-sync-emulator: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::io::Result<()> {
    let org = generate::org(&OrgSpec {
        seed: cli.seed,
        groups: cli.groups,
        users: cli.users,
        messy: cli.messy,
        ..OrgSpec::default()
    });
    let okta_options = OktaOptions {
        rate_limit: cli.okta_rate_limit,
        ..OktaOptions::default()
    };
    let okta = OktaEmulator::start_on(cli.okta_listen, org, okta_options).await?;
    let q = QEmulator::start_on(cli.q_listen, QOptions::default()).await?;
    let line = serde_json::json!({
        "okta_url": okta.url(),
        "okta_token": okta.token(),
        "qbusiness_url": q.url(),
        "application_id": q.application_id(),
        "index_id": q.index_id(),
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    stop_signal().await?;
    okta.shutdown().await;
    q.shutdown().await;
    Ok(())
}

/// Resolves on SIGTERM, SIGINT, or end of stdin (the parent went away).
async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 1024];
        // Any error counts as closed too.
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
    }
    Ok(())
}
