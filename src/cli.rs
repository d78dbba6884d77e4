//! The command line: `sync`, `plan`, `check-config`, `serve`, `approve` and `reconcile`. clap's `///`
//! comments are `--help`; the wiring the commands share is in [`crate::app`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::app::{Exit, ProductEngine, build_engine, engine_settings, open_state};
use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, OktaAuthMode, StateBackend};
use crate::engine::{Mode, NoProgress, Outcome, PassRequest, Progress, RunReport};
use crate::plan::reconcile::LooksManaged;
use crate::progress::TerminalProgress;
use crate::report::FailedStep;
use crate::sink::{QBusinessSink, SinkErrorKind};
use crate::source::DirectorySource;
use crate::source::okta::{OktaSettings, OktaSource, OktaStats};
use crate::source::{SourceError, SourceErrorKind};
use crate::store::postgres::PgSettings;
use crate::store::{RunLog, SnapshotStore};
use crate::telemetry::LogFormat;

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

/// The exit codes, as the README's table lists them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    done: every change applied or nothing to do (plan: no issues; check-config: every check passed)
  1    something failed: a write, a read or a check; what succeeded was applied and recorded
  2    bad configuration or usage (check-config: credentials or permissions refused)
  3    held: the circuit breaker held deletions or removals for `approve <plan-id>`
  130  a second SIGINT/SIGTERM during shutdown";

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one pass: read Okta, diff against the snapshot, apply the changes to Q Business.
    Sync(OutputArgs),
    /// Show what `sync` would change. Writes nothing: not to Q Business, not to the snapshot.
    Plan(OutputArgs),
    /// Validate the configuration, the snapshot location, and Okta's and Q Business's answers
    /// and permissions (read-only unless --write-probe).
    CheckConfig(CheckArgs),
    /// Run as a service: passes on the schedule and on demand, HTTP for metrics, health,
    /// status and the admin trigger. Stops on SIGTERM/SIGINT after writes in flight finish.
    Serve,
    /// Apply a plan held by the deletion circuit breaker, if Okta still agrees with it.
    Approve(ApproveArgs),
    /// Compare Q Business with the snapshot: report groups that look managed but are not
    /// recorded (e.g. after a lost snapshot). Deletes nothing by itself.
    Reconcile(ReconcileArgs),
    /// Why can (or can't) a user see a document? Puts Okta (the user, status, groups), the
    /// snapshot (last writes) and Q Business (CheckDocumentAccess) side by side. Reads only.
    /// Exit 0 when Okta and Q agree, 1 when not, 2 for an unknown user or document.
    Explain(ExplainArgs),
}

/// Arguments of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The user: an Okta user id, an Okta login or an email.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The Q Business document id.
    #[arg(long, value_name = "ID")]
    pub document: String,
    /// The document's data source (default: qbusiness.data_source_id); `none` for a
    /// document added with BatchPutDocument (asked without a data source).
    #[arg(long, value_name = "ID")]
    pub data_source: Option<String>,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `approve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApproveArgs {
    /// The held plan's id (printed by `sync` and `plan`, shown in GET /status).
    pub plan_id: String,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Also prove the Q Business write permissions: put a canary group
    /// (q-group-sync-write-probe-<host>-<pid>-<time>, one .invalid member), confirm it with
    /// GetGroup, and delete it.
    #[arg(long)]
    pub write_probe: bool,
}

/// Arguments of `reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Record the groups found as owned (and unconfirmed), so the next `sync` rewrites them,
    /// or deletes them when Okta no longer has them. Groups that only match
    /// `groups.name_prefix` are adopted only with `groups.adopt_prefixed = true`.
    #[arg(long)]
    pub adopt: bool,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output options of `sync` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Read every group's members, not only those Okta reports changed (as every
    /// `sync.full_every` does).
    #[arg(long)]
    pub full: bool,
    /// Only this group: an Okta group id, Okta group name or Q group name. Its members are
    /// always read; other groups are not touched.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
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
        Command::Sync(args) => run_pass(&config, Mode::Apply, &args, shutdown).await,
        Command::Plan(args) => run_pass(&config, Mode::Plan, &args, shutdown).await,
        Command::CheckConfig(args) => check_config(&config, &args).await,
        Command::Serve => crate::serve::serve(config, shutdown).await,
        Command::Approve(args) => approve(&config, &args, shutdown).await,
        Command::Reconcile(args) => reconcile(&config, &args, shutdown).await,
        Command::Explain(args) => explain(&config, &args, shutdown).await,
    }
}

async fn run_pass(
    config: &Config,
    mode: Mode,
    args: &OutputArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let request = PassRequest {
        full: args.full,
        group: args.group.clone(),
        ..PassRequest::cli(mode)
    };
    run_request(config, &request, args.output, shutdown).await
}

async fn approve(
    config: &Config,
    args: &ApproveArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    run_request(
        config,
        &PassRequest::approve(args.plan_id.trim(), crate::report::Trigger::Cli),
        args.output,
        shutdown,
    )
    .await
}

async fn run_request(
    config: &Config,
    request: &PassRequest,
    output: Output,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let mode = request.mode;
    let state = open_state(config, mode, &shutdown).await?;
    let lease = match mode {
        Mode::Apply => state.lead_for_command().await?,
        Mode::Plan => None,
    };
    let cancel = state.pass_token(&shutdown);
    let engine = build_engine(
        config,
        QBusinessSink::from_config(&config.qbusiness).await,
        state.store,
    )?;
    let progress = TerminalProgress::new(output == Output::Text);
    let report = engine
        .run_once(
            request,
            progress
                .as_ref()
                .map_or(&NoProgress as &dyn Progress, |p| p),
            &cancel,
        )
        .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    if let Some(p) = &progress {
        p.finish();
    }
    let okta = engine.source().stats();
    match output {
        Output::Json => {
            // Streamed: the report of a first sync lists every membership added.
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match mode {
                Mode::Plan => serde_json::to_writer_pretty(&mut out, &report.plan)?,
                Mode::Apply => serde_json::to_writer_pretty(
                    &mut out,
                    &JsonReport {
                        report: &report,
                        okta,
                    },
                )?,
            }
            std::io::Write::write_all(&mut out, b"\n")?;
            std::io::Write::flush(&mut out)?;
        }
        Output::Text => print!("{}", render_report(&report, &okta)),
    }
    Ok(match report.outcome {
        Outcome::Success => Exit::Success,
        Outcome::Held => Exit::Held,
        Outcome::Partial | Outcome::Failed => Exit::Failed,
    })
}

/// `reconcile`: Q Business groups that look managed but are not in the snapshot, and snapshot
/// groups Q Business does not list.
async fn reconcile(
    config: &Config,
    args: &ReconcileArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let mode = if args.adopt { Mode::Apply } else { Mode::Plan };
    let state = open_state(config, mode, &shutdown).await?;
    let lease = match mode {
        Mode::Apply => state.lead_for_command().await?,
        Mode::Plan => None,
    };
    let engine = build_engine(config, sink.clone(), state.store)?;
    let exit = reconcile_with(config, args, &engine, &sink).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    exit
}

async fn reconcile_with(
    config: &Config,
    args: &ReconcileArgs,
    engine: &ProductEngine,
    sink: &QBusinessSink,
) -> anyhow::Result<Exit> {
    let snapshot = engine
        .store()
        .load()
        .await
        .context("reading the snapshot")?;
    let in_q = sink
        .list_group_names()
        .await
        .context("listing Q Business groups (ListGroups)")?;
    let groups = engine
        .source()
        .list_groups()
        .await
        .context("listing Okta groups")?;
    let rules = &engine_settings(config)?.rules;
    let found = crate::plan::reconcile::reconcile(
        &in_q,
        &snapshot,
        &groups,
        rules,
        config.groups.name_prefix.as_deref(),
    );
    let mut adopted = Vec::new();
    if args.adopt && !found.look_managed_but_unrecorded.is_empty() {
        let store = engine.store();
        let now = crate::clock::Clock::now(&SystemClock);
        let start = crate::store::RunStart {
            pass_id: "reconcile".into(),
            trigger: crate::report::Trigger::Reconcile.as_str().into(),
            group: None,
        };
        let run = store.begin_run(now, &start).await?;
        for u in &found.look_managed_but_unrecorded {
            if u.why == LooksManaged::NamePrefix && !config.groups.adopt_prefixed {
                continue;
            }
            let okta_id = crate::model::OktaGroupId::new(u.okta_id.clone().unwrap_or_default());
            store
                .record_intent(run, now, &u.group, &okta_id, crate::store::IntentOp::Adopt)
                .await?;
            adopted.push(u.group.to_string());
        }
        let record = crate::store::RunRecord {
            outcome: "success".into(),
            ..Default::default()
        };
        store
            .finish_run(run, crate::clock::Clock::now(&SystemClock), &record)
            .await?;
    }
    match args.output {
        Output::Json => {
            #[derive(serde::Serialize)]
            struct Json<'a> {
                #[serde(flatten)]
                found: &'a crate::plan::reconcile::Reconciliation,
                adopted: &'a [String],
            }
            let v = Json {
                found: &found,
                adopted: &adopted,
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Text => {
            println!(
                "Q Business lists {} groups; the snapshot records {} as managed.",
                found.q_groups, found.managed
            );
            if found.look_managed_but_unrecorded.is_empty() {
                println!("No unrecorded group looks managed.");
            }
            for u in &found.look_managed_but_unrecorded {
                let (name, why) = (&u.group, u.why.describe());
                let mark = if adopted.iter().any(|a| a == name.as_str()) {
                    " (adopted)"
                } else {
                    ""
                };
                println!("? {name}: not in the snapshot, {why}{mark}");
            }
            for name in &found.recorded_but_missing_in_q {
                println!(
                    "! {name}: recorded as managed but Q Business does not list it; the next sync writes it again only if its members change"
                );
            }
            if !found.look_managed_but_unrecorded.is_empty() && !args.adopt {
                println!(
                    "Run `q-group-sync reconcile --adopt` to record them as managed; the next sync then rewrites or deletes them."
                );
            }
        }
    }
    Ok(
        if found.look_managed_but_unrecorded.len() == adopted.len()
            && found.recorded_but_missing_in_q.is_empty()
        {
            Exit::Success
        } else {
            Exit::Failed
        },
    )
}

/// `explain`: reads Okta, the snapshot (read-only) and CheckDocumentAccess; writes nothing.
async fn explain(
    config: &Config,
    args: &ExplainArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let settings = engine_settings(config)?;
    let state = open_state(config, Mode::Plan, &shutdown).await?;
    let source =
        OktaSource::new(OktaSettings::from_config(config)?).context("starting the Okta client")?;
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let question = crate::explain::Question {
        user: args.user.trim(),
        document: &args.document,
        data_source: args.data_source.as_deref(),
    };
    let settings = crate::explain::Settings {
        rules: &settings.rules,
        id_attribute: &config.users.id_attribute,
    };
    match crate::explain::explain(&source, &sink, &state.store, settings, &question).await {
        Ok(e) => {
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&e)?),
                Output::Text => print!("{}", crate::explain::render_text(&e)),
            }
            Ok(if e.consistent {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
        Err(e) if e.is_caller_error() => {
            let message = crate::error::error_chain(&e);
            if args.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({ "error": message, "kind": e.kind() })
                );
            }
            tracing::error!(error = %message, kind = e.kind(), "explain");
            eprintln!("error: {message}");
            Ok(Exit::Usage)
        }
        Err(e) => Err(e.into()),
    }
}

/// `sync --output json`: the run report plus the Okta request counters.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    okta: OktaStats,
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
    if let (Some(trace), Some(group)) = (&report.trace, &report.group) {
        let _ = writeln!(out, "Trace of {group:?}:");
        let _ = write!(out, "{trace}");
    }
    let secs = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    match report.mode {
        Mode::Plan => {
            let _ = writeln!(out, "Dry run: nothing was written.");
        }
        Mode::Apply => {
            let failed: Vec<_> = report
                .failures
                .iter()
                .filter(|f| matches!(f.op, FailedStep::Put | FailedStep::Delete))
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
                let _ = writeln!(
                    out,
                    "  ! {} ({}, {}): {}",
                    f.group,
                    f.op.as_str(),
                    f.kind,
                    f.message
                );
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

/// Whether SQLite can create or write `state.path`: the directory exists and takes a new file,
/// or the file opens for writing. `Err` is the line to print, with what to do.
fn snapshot_writable(path: &std::path::Path) -> Result<(), String> {
    let fix = "create it, writable by the user q-group-sync runs as, or set state.path";
    if path.exists() {
        return std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| {
                format!(
                    "{} cannot be opened for writing: {e}; make it writable by the user q-group-sync runs as",
                    path.display()
                )
            });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "directory {} does not exist (state.path = {}); {fix}",
            dir.display(),
            path.display()
        ));
    }
    let probe = dir.join(format!(".q-group-sync-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "directory {} does not take new files ({e}), so {} cannot be created; {fix}",
            dir.display(),
            path.display()
        )),
    }
}

/// Whether a check's failure is fixed by configuration or permissions (exit 2) rather than by
/// waiting for a service (exit 1).
fn misconfigured_source(e: &SourceError) -> bool {
    matches!(e, SourceError::OAuth(_))
        || matches!(
            e.kind(),
            SourceErrorKind::Unauthorized
                | SourceErrorKind::Forbidden
                | SourceErrorKind::BadRequest
                | SourceErrorKind::ForeignLink
        )
}

/// What an Okta refusal asks the admin to do.
fn okta_fix(e: &SourceError, what: &str) -> &'static str {
    match e.kind() {
        SourceErrorKind::Unauthorized => {
            "check the token (okta.api_token_file) or the service app (okta.client_id, key), and that it is active"
        }
        SourceErrorKind::Forbidden => match what {
            "events" => {
                "give the token's admin a role that reads the System Log (Read-only Administrator), or grant okta.logs.read to the service app"
            }
            "users" => {
                "give the token's admin a role that reads users (Read-only Administrator), or grant okta.users.read to the service app"
            }
            _ => {
                "give the token's admin a role that reads groups and members (Read-only Administrator), or grant okta.groups.read to the service app"
            }
        },
        SourceErrorKind::BadRequest => "check okta.group_filter and the other [okta] settings",
        _ => "check that okta.org_url is reachable from here; the next run retries",
    }
}

async fn check_config(config: &Config, args: &CheckArgs) -> anyhow::Result<Exit> {
    engine_settings(config)?;
    let okta_settings = OktaSettings::from_config(config)?;
    println!("config: ok");
    let mut ok = true;

    let where_ = match &config.state.backend {
        StateBackend::Sqlite => config.state.path.display().to_string(),
        StateBackend::Postgres => PgSettings::from_config(&config.state)?.target().to_owned(),
    };
    let writable = match config.state.backend {
        StateBackend::Sqlite => snapshot_writable(&config.state.path),
        StateBackend::Postgres => Ok(()),
    };
    match writable {
        Err(why) => {
            ok = false;
            println!("snapshot: FAILED: {why}");
        }
        Ok(()) => match open_state(config, Mode::Plan, &CancellationToken::new()).await {
            Ok(state) => match state.store.load().await {
                Ok(s) => println!("snapshot: ok ({where_}, {} groups)", s.groups.len()),
                Err(e) => {
                    ok = false;
                    println!(
                        "snapshot: FAILED: {}; restore it from a backup or move it away (the next sync starts a new one, see `reconcile`)",
                        crate::error::error_chain(&e)
                    );
                }
            },
            Err(e) => {
                ok = false;
                println!("snapshot: FAILED: {e:#}");
            }
        },
    }

    let source = Arc::new(OktaSource::new(okta_settings).context("starting the Okta client")?);
    let mut misconfigured = Vec::new();
    let mut okta_failed = |name: &str, what: &str, e: SourceError, ok: &mut bool| {
        println!(
            "{name}: FAILED: {}; {}",
            crate::error::error_chain(&e),
            okta_fix(&e, what)
        );
        if misconfigured_source(&e) {
            misconfigured.push(e.to_string());
        } else {
            *ok = false;
        }
    };
    // With OAuth this first gets a token (client assertion, scopes, DPoP), then lists groups.
    let credentials = match config.okta.auth {
        OktaAuthMode::Ssws => "token accepted",
        OktaAuthMode::OAuth if config.okta.dpop => "OAuth token issued (DPoP) and accepted",
        OktaAuthMode::OAuth => "OAuth token issued and accepted",
    };
    let groups_ok = match source.check().await {
        Ok(_) => {
            println!(
                "okta: ok ({} reachable, {credentials}, filter accepted)",
                config.okta.org_url
            );
            true
        }
        Err(e) => {
            okta_failed("okta", "groups", e, &mut ok);
            false
        }
    };
    if groups_ok {
        match source.check_members().await {
            Ok(Some(_)) => println!("okta members: ok (a group's members readable)"),
            Ok(None) => println!(
                "okta members: not checked: okta.group_filter selects no group (check the filter if groups are expected)"
            ),
            Err(e) => okta_failed("okta members", "groups", e, &mut ok),
        }
    }

    // Every incremental pass lists the users updated since the last one (status and email
    // changes do not show as membership changes).
    match source.check_users().await {
        Ok(_) => println!("okta users: ok (users listing readable)"),
        Err(e) => okta_failed("okta users", "users", e, &mut ok),
    }

    if config.okta.events.enabled {
        use crate::source::events::{ChangeFeed, FeedSettings, OktaChangeFeed};
        let feed = OktaChangeFeed::new(
            Arc::clone(&source),
            FeedSettings::from_config(config),
            Arc::new(SystemClock),
        );
        // One read-only poll: the System Log answers, with the scopes and role it needs.
        match feed.poll(None).await {
            Ok(page) => println!(
                "okta events: ok (System Log readable, {} relevant event(s) in the last {})",
                page.events.len(),
                humantime::format_duration(config.okta.events.lookback)
            ),
            Err(e) => okta_failed("okta events", "events", e, &mut ok),
        }
    }

    let q = &config.qbusiness;
    if let Err(chain) = crate::sink::probe::find_credentials(&q.region).await {
        println!("aws credentials: FAILED: {chain}");
        println!("qbusiness: not checked (no AWS credentials)");
        misconfigured.push(chain.to_owned());
    } else {
        println!("aws credentials: ok (found by the default chain)");
        let sink = QBusinessSink::from_config(q).await;
        let reachable = match sink.check().await {
            Ok(_) => {
                println!(
                    "qbusiness: ok (application {}, index {} reachable, ListGroups allowed)",
                    q.application_id, q.index_id
                );
                true
            }
            Err(e) => {
                let fix = match e.kind {
                    SinkErrorKind::AccessDenied => {
                        "allow qbusiness:ListGroups, GetGroup, PutGroup and DeleteGroup on the application in the IAM policy of the role q-group-sync runs with"
                    }
                    SinkErrorKind::NotFound => {
                        "check qbusiness.application_id, index_id and region (aws qbusiness list-applications, list-indices)"
                    }
                    SinkErrorKind::Validation => "check the [qbusiness] ids and data_source_id",
                    _ => "check that Q Business is reachable from here; the next run retries",
                };
                println!("qbusiness: FAILED: {e}; {fix}");
                if matches!(
                    e.kind,
                    SinkErrorKind::AccessDenied
                        | SinkErrorKind::NotFound
                        | SinkErrorKind::Validation
                ) {
                    misconfigured.push(e.to_string());
                } else {
                    ok = false;
                }
                false
            }
        };
        if args.write_probe {
            if reachable {
                let canary = crate::sink::probe::canary_name(
                    config.groups.name_prefix.as_deref(),
                    &config.state.replica_name(),
                    std::process::id(),
                    crate::clock::Clock::now(&SystemClock).timestamp(),
                );
                let hint = format!(
                    "aws qbusiness delete-group --region {} --application-id {} --index-id {} --group-name '{canary}'{}",
                    q.region,
                    q.application_id,
                    q.index_id,
                    q.data_source_id
                        .as_ref()
                        .map(|d| format!(" --data-source-id {d}"))
                        .unwrap_or_default()
                );
                let probe =
                    crate::sink::probe::write_probe(&sink, &canary, q.verify_timeout, &hint).await;
                for (_, line) in &probe.lines {
                    println!("{line}");
                }
                if probe.readings.any_known() {
                    println!(
                        "{}",
                        crate::app::record_probe(config, &probe.readings).await
                    );
                }
                if probe.passed() {
                    println!("write probe: ok (PutGroup, GetGroup and DeleteGroup allowed)");
                } else if probe.misconfigured {
                    misconfigured.push(
                        "the Q Business write probe was refused (see its lines above)".to_owned(),
                    );
                } else {
                    ok = false;
                }
            } else {
                println!("write probe: not run (Q Business is not reachable)");
            }
        }
    }
    if !misconfigured.is_empty() {
        return Err(ConfigError(misconfigured.join("; ")).into());
    }
    Ok(if ok { Exit::Success } else { Exit::Failed })
}
