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
use crate::sink::{QBusinessSink, SinkError, credentials};
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
    /// Each cause once, in the order found: the final error lists them.
    misconfigured: Vec<String>,
}

impl Findings {
    /// Counts a cause that configuration or setup fixes (exit 2), once however many checks
    /// met it.
    fn misconfigured(&mut self, cause: String) {
        if !self.misconfigured.contains(&cause) {
            self.misconfigured.push(cause);
        }
    }

    /// Prints a failed Okta check with what to do, and counts it.
    fn okta_failed(&mut self, name: &str, e: SourceError) {
        // An OAuth refusal names its fix itself; an outage gets the reachability hint.
        let fix = match (&e, e.fix()) {
            (SourceError::OAuth(_), _) => String::new(),
            (_, Some(fix)) => format!("; {fix}"),
            (_, None) => {
                "; check that okta.org_url is reachable from here; the next run retries".to_owned()
            }
        };
        println!("{name}: FAILED: {}{fix}", crate::error::error_chain(&e));
        if e.fix().is_some() {
            self.misconfigured(e.to_string());
        } else {
            self.failed = true;
        }
    }

    /// Prints a check that configuration or setup fails (`what: FAILED: ...`), and counts it.
    fn config_failed(&mut self, what: &str, e: &ConfigError) {
        println!("{what}: FAILED: {}", e.0);
        self.misconfigured(e.0.clone());
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
    let mut found = Findings::default();
    match engine_settings(config) {
        Ok(_) => println!("config: ok"),
        Err(e) => found.config_failed("config", &e),
    }
    let okta_settings = check_files(config, &mut found);
    check_snapshot(config, &mut found).await;
    match (okta_settings, &config.scim) {
        (Some(Ok(settings)), _) => match OktaSource::new(settings) {
            Ok(source) => {
                if let Ok(okta) = config.okta("check-config") {
                    check_okta(config, okta, &Arc::new(source), &mut found).await;
                }
            }
            Err(e) => {
                println!("okta: FAILED: starting the Okta client: {e}");
                found.misconfigured(format!("starting the Okta client: {e}"));
            }
        },
        (Some(Err(())), _) => {
            println!("okta: not checked (its credentials could not be read; see above)");
        }
        (None, Some(scim)) => check_scim(config, scim, &mut found).await,
        (None, None) => {}
    }
    check_qbusiness(config, args, &mut found).await;
    found.exit()
}

/// Every file the configuration names (secrets, keys, CA certificates), read and checked as
/// the command that uses it would, one line each. Returns the Okta client's settings when
/// `[okta]` is the source (`Err` when they could not be built; the line says why).
fn check_files(config: &Config, found: &mut Findings) -> Option<Result<OktaSettings, ()>> {
    let file_line = |key: &str,
                     path: Option<&std::path::Path>,
                     result: Result<(), &ConfigError>| match (path, result) {
        (Some(path), Ok(())) => println!("{key}: ok ({})", path.display()),
        (_, Err(e)) => println!("{key}: FAILED: {}", e.0),
        (None, Ok(())) => {}
    };
    let mut okta_settings = None;
    match config.source() {
        Ok(Source::Okta(okta)) => {
            // The token file, or the private key file (read and parsed as the client does).
            let (key, path) = match okta.auth {
                OktaAuthMode::Ssws => ("okta.api_token_file", okta.api_token_file.as_deref()),
                OktaAuthMode::OAuth => ("okta.private_key_file", okta.private_key_file.as_deref()),
            };
            let settings = OktaSettings::from_config(config);
            let result = settings.as_ref().map(drop);
            let label = if path.is_some() {
                key
            } else {
                "okta credentials"
            };
            file_line(label, path, result);
            if let Err(e) = &settings {
                found.misconfigured(e.0.clone());
            }
            okta_settings = Some(settings.map_err(drop));
        }
        Ok(Source::Scim(scim)) => {
            let result = scim.token().map(drop);
            let label = if scim.token_file.is_some() {
                "scim.token_file"
            } else {
                "scim.token"
            };
            file_line(
                label,
                scim.token_file.as_deref(),
                result.as_ref().map(|_| ()),
            );
            if let Err(e) = result {
                found.misconfigured(e.0);
            }
        }
        Err(_) => {}
    }
    if config.server.admin_token_file.is_some() {
        let result = config.admin_token().map(drop);
        file_line(
            "server.admin_token_file",
            config.server.admin_token_file.as_deref(),
            result.as_ref().map(|_| ()),
        );
        if let Err(e) = result {
            found.misconfigured(e.0);
        }
    }
    if config.state.backend == StateBackend::Postgres {
        // The URL file and the CA file, as the snapshot's connection reads them.
        let result = PgSettings::from_config(&config.state).map(drop);
        for (key, path) in [
            ("state.url_file", config.state.url_file.as_deref()),
            ("state.tls_ca_file", config.state.tls_ca_file.as_deref()),
        ] {
            if let Some(path) = path {
                match &result {
                    Err(e) if e.0.contains(key) => file_line(key, Some(path), Err(e)),
                    _ => println!("{key}: ok ({})", path.display()),
                }
            }
        }
        if let Err(e) = result {
            if !e.0.contains("state.url_file") && !e.0.contains("state.tls_ca_file") {
                println!("state: FAILED: {}", e.0);
            }
            found.misconfigured(e.0);
        }
    }
    okta_settings
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
async fn check_snapshot(config: &Config, found: &mut Findings) {
    let where_ = match &config.state.backend {
        StateBackend::Sqlite => config.state.path.display().to_string(),
        StateBackend::Postgres => match PgSettings::from_config(&config.state) {
            Ok(settings) => settings.target().to_owned(),
            Err(_) => {
                println!("snapshot: not checked (its connection settings are wrong; see above)");
                return;
            }
        },
    };
    let writable = match config.state.backend {
        StateBackend::Sqlite => crate::store::SqliteStore::check_location(&config.state.path),
        StateBackend::Postgres => Ok(()),
    };
    if let Err(why) = writable {
        println!("snapshot: FAILED: {why}");
        found.misconfigured(format!("state.path: {why}"));
        return;
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
            let message = crate::error::error_chain(&e);
            println!("snapshot: FAILED: {message}");
            if let crate::app::StartError::Snapshot { source, .. } = &e
                && source.is_unopenable()
            {
                found.misconfigured(message);
            } else {
                found.failed = true;
            }
        }
    }
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
    // A refused credential refuses every later check the same way: they are not run.
    let mut refused = false;
    let groups_ok = match source.check().await {
        Ok(_) => {
            println!(
                "okta: ok ({} reachable, {credentials}, filter accepted)",
                okta.org_url
            );
            true
        }
        Err(e) => {
            refused = credentials_refused(&e);
            found.okta_failed("okta", e);
            false
        }
    };
    if groups_ok {
        match source.check_members().await {
            Ok(Some(_)) => println!("okta members: ok (a group's members readable)"),
            Ok(None) => println!(
                "okta members: not checked: okta.group_filter selects no group (check the filter if groups are expected)"
            ),
            Err(e) => found.okta_failed("okta members", e),
        }
    }
    if refused {
        println!("okta users: not checked (the credentials were refused; see the okta line)");
        if okta.events.enabled {
            println!("okta events: not checked (the credentials were refused; see the okta line)");
        }
        return;
    }

    // Every incremental pass lists the users updated since the last one (status and email
    // changes do not show as membership changes).
    match source.check_users(SystemClock.now()).await {
        Ok(_) => println!("okta users: ok (users listing readable)"),
        Err(e) => found.okta_failed("okta users", e),
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
            Err(e) => found.okta_failed("okta events", e),
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
        found.misconfigured(chain.to_owned());
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
    match e.fix() {
        Some(fix) => {
            println!("qbusiness: FAILED: {e}; {fix}");
            found.misconfigured(e.to_string());
        }
        None => {
            println!(
                "qbusiness: FAILED: {e}; check that Q Business is reachable from here; the next run retries"
            );
            found.failed = true;
        }
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
        found.misconfigured(
            "the Q Business write probe was refused (see its lines above)".to_owned(),
        );
    } else {
        found.failed = true;
    }
}

/// Whether Okta refused the credentials themselves (a wrong or revoked token, an OAuth client
/// or key it does not know), so that no later request can succeed; a missing scope or role
/// refuses only some.
fn credentials_refused(e: &SourceError) -> bool {
    use crate::source::oauth::OAuthErrorKind;
    match e.kind() {
        SourceErrorKind::Unauthorized => true,
        SourceErrorKind::OAuth(kind) => !matches!(kind, OAuthErrorKind::Scope),
        _ => false,
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
