//! The command line: `sync`, `plan`, `check-config`, `serve`, `approve`, `reconcile` and
//! `explain`, one file each (`sync` and `plan` share one), and the report they print
//! ([`render`]). clap's `///` comments are `--help`; the wiring the commands share is in
//! [`crate::app`]. The only place besides `main.rs` that uses `anyhow`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::app::{Exit, StartError};
use crate::config::{Config, ConfigError};
use crate::report::Mode;
use crate::serve::ServeError;
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::source::okta::OktaBuildError;
use crate::store::StoreError;
use crate::telemetry::LogFormat;

mod approve;
mod check_config;
mod explain;
mod reconcile;
pub mod render;
mod serve;
mod sync;

/// Keeps Amazon Q Business group membership equal to Okta's.
#[derive(Debug, Parser)]
#[command(name = "q-group-sync", version, about, long_about = None, after_help = EXIT_CODES)]
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

    /// Log level of q-group-sync's own events (error, warn, info, debug, trace). Default:
    /// info. Dependencies stay at info whatever the level (at debug they log query parameters
    /// and headers); only --log-filter or RUST_LOG raises them.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Explicit EnvFilter directives applied after --log-level, e.g. `tokio_postgres=debug`
    /// (may log member lists). Default: RUST_LOG.
    #[arg(long, global = true, value_name = "DIRECTIVES")]
    pub log_filter: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, as docs/operations.md's table lists them: one meaning per code, in every command.
pub const EXIT_CODES: &str = "\
Exit codes (every command):
  0    done: every change applied or nothing to do (plan: no issues; check-config: every check passed)
  1    something failed that the next run retries: a write refused, a group unread, Okta or AWS unreachable, shutdown
  2    configuration or setup: a bad key, value or usage, a file the configuration names that cannot be read (the snapshot included), credentials or permissions refused by Okta or AWS, no AWS credentials
  3    held: the circuit breaker held deletions or removals for `approve <plan-id>`
  4    explain: an unknown user or document
  130  a second SIGINT/SIGTERM during shutdown";

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one pass: read Okta, diff against the snapshot, apply the changes to Q Business.
    Sync(sync::OutputArgs),
    /// Show what `sync` would change. Writes nothing: not to Q Business, not to the snapshot.
    Plan(sync::OutputArgs),
    /// Validate the configuration, the snapshot location, and Okta's and Q Business's answers
    /// and permissions (read-only unless --write-probe).
    CheckConfig(check_config::CheckArgs),
    /// Run as a service: passes on the schedule and on demand, HTTP for metrics, health,
    /// status and the admin trigger. Stops on SIGTERM/SIGINT after writes in flight finish.
    Serve,
    /// Apply a plan held by the deletion circuit breaker, if Okta still agrees with it.
    Approve(approve::ApproveArgs),
    /// Compare Q Business with the snapshot: report groups that look managed but are not
    /// recorded (e.g. after a lost snapshot). Deletes nothing by itself. Exits 1 when it
    /// finds such groups (or recorded groups Q Business does not list), unless `--adopt`
    /// recorded them all.
    Reconcile(reconcile::ReconcileArgs),
    /// Why can (or can't) a user see a document? Puts Okta (the user, status, groups), the
    /// snapshot (last writes) and Q Business (CheckDocumentAccess) side by side. Reads only.
    /// Exit 0 when Okta and Q agree, 1 when not (or a service could not be read), 4 for an
    /// unknown user or document.
    Explain(explain::ExplainArgs),
}

/// Result format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Runs the command. `shutdown` is cancelled on SIGINT/SIGTERM.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<Exit> {
    let config = Config::load(cli.config.as_deref())?;
    crate::files::warn_readable_secrets(&config);
    match cli.command {
        Command::Sync(args) => sync::run_pass(&config, Mode::Apply, &args, shutdown).await,
        Command::Plan(args) => sync::run_pass(&config, Mode::Plan, &args, shutdown).await,
        Command::CheckConfig(args) => check_config::check_config(&config, &args).await,
        Command::Serve => serve::serve(config, shutdown).await,
        Command::Approve(args) => approve::approve(&config, &args, shutdown).await,
        Command::Reconcile(args) => reconcile::reconcile(&config, &args, shutdown).await,
        Command::Explain(args) => explain::explain(&config, &args, shutdown).await,
    }
}

/// The exit code of a command that ended with `err`: 2 ([`Exit::Setup`]) when configuration
/// or setup fixes it, 1 ([`Exit::Failed`]) when the next run may succeed as it is.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if is_setup_error(err) {
        Exit::Setup.code()
    } else {
        Exit::Failed.code()
    }
}

/// Whether `err` is bad configuration or setup (exit 2, as clap's usage errors): a
/// [`ConfigError`], also as the start-up error of the wiring or the daemon; or, anywhere in
/// its chain, credentials or permissions Okta or AWS refused, a snapshot that cannot be
/// opened where `state.path` says, an Okta client the configuration cannot build.
pub fn is_setup_error(err: &anyhow::Error) -> bool {
    is_config_error(err)
        || err.chain().any(|cause| {
            cause
                .downcast_ref::<SourceError>()
                .is_some_and(|e| e.fix().is_some())
                || cause
                    .downcast_ref::<SinkError>()
                    .is_some_and(|e| e.fix().is_some())
                || cause
                    .downcast_ref::<StoreError>()
                    .is_some_and(StoreError::is_unopenable)
                || cause.downcast_ref::<OktaBuildError>().is_some_and(|e| {
                    matches!(e, OktaBuildError::InvalidToken | OktaBuildError::OrgUrl)
                })
        })
}

/// Whether `err` is bad configuration: a [`ConfigError`], also as the start-up error of the
/// wiring or the daemon.
pub fn is_config_error(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ConfigError>().is_some()
        || err
            .downcast_ref::<StartError>()
            .is_some_and(|e| e.config().is_some())
        || err
            .downcast_ref::<ServeError>()
            .is_some_and(|e| e.config().is_some())
}
