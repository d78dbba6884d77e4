//! The command line: `sync`, `plan` and `check-config`. clap's `///` comments are `--help`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, OktaAuthMode};
use crate::engine::{
    Engine, EngineSettings, Mode, NoProgress, Outcome, PassRequest, Progress, RunReport, Verify,
};
use crate::plan::safety::SafetyPolicy;
use crate::plan::{Policy, Rules};
use crate::progress::TerminalProgress;
use crate::sink::{QBusinessSink, SinkErrorKind};
use crate::source::SourceError;
use crate::source::okta::{OktaSettings, OktaSource, OktaStats};
use crate::store::{SnapshotStore, SqliteStore};
use crate::telemetry::LogFormat;

/// Keeps Amazon Q Business group membership equal to Okta's.
#[derive(Debug, Parser)]
#[command(name = "q-group-sync", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables Q_GROUP_SYNC_<SECTION>__<KEY> override it.
    #[arg(
        short,
        long,
        global = true,
        env = "Q_GROUP_SYNC_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// Log format on stderr: auto is text on a terminal and JSON lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Log level or filter (error, warn, info, debug, trace, or an EnvFilter directive).
    /// Default: RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one pass: read Okta, diff against the snapshot, apply the changes to Q Business.
    Sync(OutputArgs),
    /// Show what `sync` would change. Writes nothing: not to Q Business, not to the snapshot.
    Plan(OutputArgs),
    /// Validate the configuration and reach Okta and Q Business read-only.
    CheckConfig,
    /// Run as a service: passes on the schedule and on demand, HTTP for metrics, health,
    /// status and the admin trigger. Stops on SIGTERM/SIGINT after writes in flight finish.
    Serve,
}

/// Output options of `sync` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Result format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// How the process ends (besides configuration errors, which exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything applied, or nothing to do.
    Success,
    /// 1: some change or group failed, or the pass stopped early.
    Failed,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
        }
    }
}

/// Runs the command. `shutdown` is cancelled on SIGINT/SIGTERM.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<Exit> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Sync(args) => run_pass(&config, Mode::Apply, args.output, shutdown).await,
        Command::Plan(args) => run_pass(&config, Mode::Plan, args.output, shutdown).await,
        Command::CheckConfig => check_config(&config).await,
        Command::Serve => crate::daemon::serve(config, shutdown).await,
    }
}

/// Builds the pass settings from the configuration.
pub fn engine_settings(config: &Config) -> Result<EngineSettings, ConfigError> {
    let rules = Rules::from_config(config)
        .map_err(|e| ConfigError(format!("groups.include/exclude: {e}")))?;
    Ok(EngineSettings {
        rules,
        policy: Policy {
            inline_member_limit: config.qbusiness.inline_member_limit,
        },
        read_concurrency: config.okta.max_concurrency * 2,
        write_concurrency: config.qbusiness.max_concurrency,
        safety: SafetyPolicy::from_config(&config.safety),
        verify: Verify {
            mode: config.qbusiness.verify,
            sample_percent: config.qbusiness.verify_sample_percent,
            timeout: config.qbusiness.verify_timeout,
            ..Verify::default()
        },
    })
}

/// The production engine: Okta over HTTP, Q Business through the SDK, the SQLite snapshot.
pub type ProductEngine = Engine<OktaSource, QBusinessSink, SqliteStore>;

/// Builds the engine for `mode` (`plan` opens the snapshot read-only).
pub fn build_engine(
    config: &Config,
    sink: QBusinessSink,
    mode: Mode,
) -> anyhow::Result<ProductEngine> {
    let settings = engine_settings(config)?;
    let source =
        OktaSource::new(OktaSettings::from_config(config)?).context("starting the Okta client")?;
    let store = match mode {
        Mode::Plan => SqliteStore::open_read_only(&config.state.path),
        Mode::Apply => SqliteStore::open(&config.state.path),
    }
    .context("opening the snapshot (state.path)")?;
    Ok(Engine::new(
        source,
        sink,
        store,
        settings,
        Arc::new(SystemClock),
    ))
}

async fn run_pass(
    config: &Config,
    mode: Mode,
    output: Output,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let engine = build_engine(
        config,
        QBusinessSink::from_config(&config.qbusiness).await,
        mode,
    )?;
    let progress = TerminalProgress::new(output == Output::Text);
    let report = engine
        .run_once(
            &PassRequest::cli(mode),
            progress
                .as_ref()
                .map_or(&NoProgress as &dyn Progress, |p| p),
            &shutdown,
        )
        .await;
    if let Some(p) = &progress {
        p.finish();
    }
    let okta = engine.source().stats();
    match output {
        Output::Json => {
            let value = match mode {
                Mode::Plan => serde_json::to_value(&report.plan)?,
                Mode::Apply => {
                    let mut v = serde_json::to_value(&report)?;
                    v["okta"] = serde_json::to_value(okta)?;
                    v
                }
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Text => print!("{}", render_report(&report, &okta)),
    }
    Ok(if report.outcome == Outcome::Success {
        Exit::Success
    } else {
        Exit::Failed
    })
}

/// The text summary printed by `sync` and `plan`.
pub fn render_report(report: &RunReport, okta: &OktaStats) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if report.outcome == Outcome::Failed && report.groups_listed == 0 {
        let _ = writeln!(
            out,
            "Pass failed: {}",
            report.error.as_deref().unwrap_or("unknown error")
        );
        return out;
    }
    let _ = write!(out, "{}", report.plan);
    let secs = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    match report.mode {
        Mode::Plan => {
            let _ = writeln!(out, "Dry run: nothing was written.");
        }
        Mode::Apply => {
            let failed: Vec<_> = report
                .failures
                .iter()
                .filter(|f| f.op == "put" || f.op == "delete")
                .collect();
            let _ = writeln!(
                out,
                "Result: {} - {} put, {} deleted, {} failed (+{} -{} memberships) in {secs:.1}s",
                report.outcome.as_str(),
                report.puts_applied,
                report.deletes_applied,
                failed.len(),
                report.users_added,
                report.users_removed
            );
            for f in failed {
                let _ = writeln!(out, "  ! {} ({}, {}): {}", f.group, f.op, f.kind, f.message);
            }
        }
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "Stopped early: {e}");
    }
    let _ = writeln!(
        out,
        "Okta: {} requests, {} rate-limited, {} retries, {:.1}s waiting for rate limits",
        okta.requests, okta.rate_limited, okta.retries, okta.rate_limit_wait_secs
    );
    out
}

async fn check_config(config: &Config) -> anyhow::Result<Exit> {
    engine_settings(config)?;
    let okta_settings = OktaSettings::from_config(config)?;
    println!("config: ok");
    let mut ok = true;

    match SqliteStore::open_read_only(&config.state.path) {
        Ok(store) => match store.load().await {
            Ok(s) => println!(
                "snapshot: ok ({}, {} groups)",
                config.state.path.display(),
                s.groups.len()
            ),
            Err(e) => {
                ok = false;
                println!("snapshot: FAILED: {}", crate::engine::error_chain(&e));
            }
        },
        Err(e) => {
            ok = false;
            println!("snapshot: FAILED: {}", crate::engine::error_chain(&e));
        }
    }

    let source = OktaSource::new(okta_settings).context("starting the Okta client")?;
    let mut misconfigured = Vec::new();
    // With OAuth this first gets a token (client assertion, scopes, DPoP), then lists groups.
    let credentials = match config.okta.auth {
        OktaAuthMode::Ssws => "token accepted",
        OktaAuthMode::OAuth if config.okta.dpop => "OAuth token issued (DPoP) and accepted",
        OktaAuthMode::OAuth => "OAuth token issued and accepted",
    };
    match source.check().await {
        Ok(_) => println!(
            "okta: ok ({} reachable, {credentials}, filter accepted)",
            config.okta.org_url
        ),
        Err(e) => {
            println!("okta: FAILED: {}", crate::engine::error_chain(&e));
            if matches!(e, SourceError::OAuth(_))
                || matches!(
                    e.kind(),
                    "unauthorized" | "forbidden" | "bad_request" | "foreign_link"
                )
            {
                misconfigured.push(e.to_string());
            } else {
                ok = false;
            }
        }
    }

    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    match sink.check().await {
        Ok(_) => println!(
            "qbusiness: ok (application {}, index {} reachable)",
            config.qbusiness.application_id, config.qbusiness.index_id
        ),
        Err(e) => {
            println!("qbusiness: FAILED: {e}");
            if matches!(
                e.kind,
                SinkErrorKind::AccessDenied | SinkErrorKind::NotFound | SinkErrorKind::Validation
            ) {
                misconfigured.push(e.to_string());
            } else {
                ok = false;
            }
        }
    }
    if !misconfigured.is_empty() {
        return Err(ConfigError(misconfigured.join("; ")).into());
    }
    Ok(if ok { Exit::Success } else { Exit::Failed })
}
