//! `check-config`: the configuration, the snapshot location, and Okta's and Q Business's answers
//! and permissions, one line each. Reads only, unless `--write-probe` (the engine's canary).
//! Exit 0 when every check passed, 1 when a service failed, 2 (a [`ConfigError`]) when
//! configuration or permissions are refused.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{Exit, engine_settings, open_state};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    Config, ConfigError, OktaAuthMode, OktaConfig, ScimConfig, Source, StateBackend,
};
use crate::report::Mode;
use crate::sink::probe;
use crate::sink::{QBusinessSink, SinkError, SinkErrorKind, credentials};
use crate::source::okta::events::{ChangeFeed, FeedSettings, OktaChangeFeed};
use crate::source::okta::{OktaSettings, OktaSource};
use crate::source::{DirectorySource, SourceError, SourceErrorKind};
use crate::store::SnapshotStore;
use crate::store::postgres::PgSettings;

/// Arguments of `check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Also prove the Q Business write permissions: put a canary group
    /// (q-group-sync-write-probe-<host>-<pid>-<time>, one .invalid member), confirm it with
    /// GetGroup, and delete it.
    #[arg(long)]
    pub write_probe: bool,
}

/// What the checks found so far: whether each passed, and the refusals that configuration or
/// permissions fix (exit 2) rather than waiting for a service (exit 1).
#[derive(Debug, Default)]
struct Findings {
    failed: bool,
    misconfigured: Vec<String>,
}

impl Findings {
    /// Prints a failed Okta check with what to do, and counts it.
    fn okta_failed(&mut self, name: &str, what: &str, e: SourceError) {
        println!(
            "{name}: FAILED: {}; {}",
            crate::error::error_chain(&e),
            okta_fix(&e, what)
        );
        if misconfigured_source(&e) {
            self.misconfigured.push(e.to_string());
        } else {
            self.failed = true;
        }
    }

    fn exit(self) -> anyhow::Result<Exit> {
        if !self.misconfigured.is_empty() {
            return Err(ConfigError(self.misconfigured.join("; ")).into());
        }
        Ok(if self.failed {
            Exit::Failed
        } else {
            Exit::Success
        })
    }
}

pub(super) async fn check_config(config: &Config, args: &CheckArgs) -> anyhow::Result<Exit> {
    engine_settings(config)?;
    let okta_settings = match config.source()? {
        Source::Okta(_) => Some(OktaSettings::from_config(config)?),
        Source::Scim(scim) => {
            scim.token()?;
            None
        }
    };
    println!("config: ok");
    let mut found = Findings::default();
    check_snapshot(config, &mut found).await?;
    match (okta_settings, &config.scim) {
        (Some(settings), _) => {
            let okta = config.okta("check-config")?;
            let source = Arc::new(OktaSource::new(settings).context("starting the Okta client")?);
            check_okta(config, okta, &source, &mut found).await;
        }
        (None, Some(scim)) => check_scim(config, scim, &mut found).await,
        (None, None) => {}
    }
    check_qbusiness(config, args, &mut found).await;
    found.exit()
}

/// The SCIM source's lines: the listener's address can be bound (unless a running `serve`
/// holds it) and the stored record is readable.
async fn check_scim(config: &Config, scim: &ScimConfig, found: &mut Findings) {
    match std::net::TcpListener::bind(scim.listen) {
        Ok(_) => println!(
            "scim: ok (token set, {} can be bound; IdPs send https://<host>/scim/v2 through your TLS ingress)",
            scim.listen
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => println!(
            "scim: ok (token set; {} is in use, by a running serve or another process)",
            scim.listen
        ),
        Err(e) => {
            found.failed = true;
            println!(
                "scim: FAILED: cannot bind scim.listen {}: {e}; choose a free port this user may bind",
                scim.listen
            );
        }
    }
    let state = match open_state(config, Mode::Plan, &CancellationToken::new()).await {
        Ok(state) => state,
        Err(e) => {
            println!("scim record: not checked ({e:#})");
            return;
        }
    };
    let listed = match crate::app::directory(config, &state.store) {
        Ok(d) => d
            .list_groups()
            .await
            .map_err(|e| crate::error::error_chain(&e)),
        Err(e) => Err(format!("{e:#}")),
    };
    match listed {
        Ok(groups) => println!("scim record: ok ({} group(s) pushed so far)", groups.len()),
        Err(e) => {
            found.failed = true;
            println!("scim record: FAILED: {e}");
        }
    }
}

/// Whether the snapshot can be created or opened, and read.
async fn check_snapshot(config: &Config, found: &mut Findings) -> anyhow::Result<()> {
    let where_ = match &config.state.backend {
        StateBackend::Sqlite => config.state.path.display().to_string(),
        StateBackend::Postgres => PgSettings::from_config(&config.state)?.target().to_owned(),
    };
    let writable = match config.state.backend {
        StateBackend::Sqlite => snapshot_writable(&config.state.path),
        StateBackend::Postgres => Ok(()),
    };
    if let Err(why) = writable {
        found.failed = true;
        println!("snapshot: FAILED: {why}");
        return Ok(());
    }
    match open_state(config, Mode::Plan, &CancellationToken::new()).await {
        Ok(state) => match state.store.load().await {
            Ok(s) => println!("snapshot: ok ({where_}, {} groups)", s.groups.len()),
            Err(e) => {
                found.failed = true;
                println!(
                    "snapshot: FAILED: {}; restore it from a backup or move it away (the next sync starts a new one, see `reconcile`)",
                    crate::error::error_chain(&e)
                );
            }
        },
        Err(e) => {
            found.failed = true;
            println!("snapshot: FAILED: {e:#}");
        }
    }
    Ok(())
}

/// Okta: credentials and the group filter, a group's members, the users listing and (when
/// enabled) the System Log.
async fn check_okta(
    config: &Config,
    okta: &OktaConfig,
    source: &Arc<OktaSource>,
    found: &mut Findings,
) {
    // With OAuth this first gets a token (client assertion, scopes, DPoP), then lists groups.
    let credentials = match okta.auth {
        OktaAuthMode::Ssws => "token accepted",
        OktaAuthMode::OAuth if okta.dpop => "OAuth token issued (DPoP) and accepted",
        OktaAuthMode::OAuth => "OAuth token issued and accepted",
    };
    let groups_ok = match source.check().await {
        Ok(_) => {
            println!(
                "okta: ok ({} reachable, {credentials}, filter accepted)",
                okta.org_url
            );
            true
        }
        Err(e) => {
            found.okta_failed("okta", "groups", e);
            false
        }
    };
    if groups_ok {
        match source.check_members().await {
            Ok(Some(_)) => println!("okta members: ok (a group's members readable)"),
            Ok(None) => println!(
                "okta members: not checked: okta.group_filter selects no group (check the filter if groups are expected)"
            ),
            Err(e) => found.okta_failed("okta members", "groups", e),
        }
    }

    // Every incremental pass lists the users updated since the last one (status and email
    // changes do not show as membership changes).
    match source.check_users(SystemClock.now()).await {
        Ok(_) => println!("okta users: ok (users listing readable)"),
        Err(e) => found.okta_failed("okta users", "users", e),
    }

    if okta.events.enabled {
        let feed = OktaChangeFeed::new(
            Arc::clone(source),
            FeedSettings::from_config(config),
            Arc::new(SystemClock),
        );
        // One read-only poll: the System Log answers, with the scopes and role it needs.
        match feed.poll(None).await {
            Ok(page) => println!(
                "okta events: ok (System Log readable, {} relevant event(s) in the last {})",
                page.events.len(),
                humantime::format_duration(okta.events.lookback)
            ),
            Err(e) => found.okta_failed("okta events", "events", e),
        }
    }
}

/// Q Business: the AWS credential chain, the application and index (one ListGroups), and with
/// `--write-probe` PutGroup, GetGroup and DeleteGroup on a canary.
async fn check_qbusiness(config: &Config, args: &CheckArgs, found: &mut Findings) {
    let q = &config.qbusiness;
    if let Err(chain) = credentials::find_credentials(&q.region).await {
        println!("aws credentials: FAILED: {chain}");
        println!("qbusiness: not checked (no AWS credentials)");
        found.misconfigured.push(chain.to_owned());
        return;
    }
    println!("aws credentials: ok (found by the default chain)");
    let sink = QBusinessSink::from_config(q).await;
    let reachable = match sink.check(SystemClock.now()).await {
        Ok(_) => {
            println!(
                "qbusiness: ok (application {}, index {} reachable, ListGroups allowed)",
                q.application_id, q.index_id
            );
            true
        }
        Err(e) => {
            qbusiness_failed(&e, found);
            false
        }
    };
    if args.write_probe {
        if reachable {
            write_probe(config, &sink, found).await;
        } else {
            println!("write probe: not run (Q Business is not reachable)");
        }
    }
}

/// Prints a refused or failed ListGroups with what to do, and counts it.
fn qbusiness_failed(e: &SinkError, found: &mut Findings) {
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
        SinkErrorKind::AccessDenied | SinkErrorKind::NotFound | SinkErrorKind::Validation
    ) {
        found.misconfigured.push(e.to_string());
    } else {
        found.failed = true;
    }
}

/// `--write-probe`: the engine's canary put, confirmed and deleted, one line per step.
async fn write_probe(config: &Config, sink: &QBusinessSink, found: &mut Findings) {
    let q = &config.qbusiness;
    let canary = probe::canary_name(
        config.groups.name_prefix.as_deref(),
        &config.state.replica_name(),
        std::process::id(),
        SystemClock.now().timestamp(),
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
    let probe = probe::write_probe(sink, &canary, q.verify_timeout, &hint).await;
    for (_, line) in &probe.lines {
        println!("{line}");
    }
    if probe.readings.any_known() {
        println!("{}", record_probe(config, &probe.readings).await);
    }
    if probe.passed() {
        println!("write probe: ok (PutGroup, GetGroup and DeleteGroup allowed)");
    } else if probe.misconfigured {
        found
            .misconfigured
            .push("the Q Business write probe was refused (see its lines above)".to_owned());
    } else {
        found.failed = true;
    }
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

/// Records what the write probe learnt in the snapshot, for the passes that follow. Opens the
/// snapshot for writing (with PostgreSQL, under the leader lock for the moment it takes).
async fn record_readings(
    config: &Config,
    readings: &crate::sink::Readings,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use crate::store::SnapshotStore;
    let state = open_state(config, Mode::Apply, shutdown).await?;
    let lease = state.lead_for_command().await?;
    let written = state
        .store
        .set_q_readings(&readings.to_json())
        .await
        .context("recording the probe's findings in the snapshot");
    if let Some(lease) = lease {
        lease.release().await;
    }
    written
}

/// Records the write probe's findings ([`record_readings`]) and says so in one line.
async fn record_probe(config: &Config, readings: &crate::sink::Readings) -> String {
    match record_readings(config, readings, &CancellationToken::new()).await {
        Ok(()) => "write probe: findings recorded in the snapshot; passes use them".to_owned(),
        Err(e) => format!(
            "write probe: findings not recorded ({}); passes assume nothing is known",
            crate::error::error_chain(e.as_ref())
        ),
    }
}
