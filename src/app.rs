//! The wiring of the whole program: the only place that turns a [`Config`] into an engine,
//! its clients and its snapshot store. `cli` (one-shot commands) and `serve` (the daemon) call
//! it; it calls neither.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, StateBackend};
use crate::engine::{Engine, EngineSettings, Mode, Verify};
use crate::leader::Leadership;
use crate::plan::safety::SafetyPolicy;
use crate::plan::{Policy, Rules};
use crate::sink::QBusinessSink;
use crate::source::okta::{OktaSettings, OktaSource};
use crate::store::postgres::{CommandLease, Elector, PgSettings};
use crate::store::{Backend, PostgresStore, SqliteStore};

/// How the process ends (besides configuration errors, which exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything applied, or nothing to do.
    Success,
    /// 1: some change or group failed, or the pass stopped early.
    Failed,
    /// 3: deletions or removals are held for approval (`approve <plan-id>`).
    Held,
    /// 2: what the command was asked about does not exist (`explain`: an unknown user or
    /// document), or Okta or Q Business refused the credentials; the message names which.
    Usage,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Held => 3,
            Exit::Usage => 2,
        }
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
            large_groups: match config.qbusiness.large_groups {
                crate::config::LargeGroups::Chunks => crate::plan::LargeGroups::Chunks,
                crate::config::LargeGroups::Refuse => crate::plan::LargeGroups::Refuse,
                crate::config::LargeGroups::S3 => crate::plan::LargeGroups::File,
            },
        },
        read_concurrency: config.okta.max_concurrency * 2,
        write_concurrency: config.qbusiness.max_concurrency,
        safety: SafetyPolicy::from_config(&config.safety),
        verify: Verify {
            mode: config.qbusiness.verify,
            sample_percent: config.qbusiness.verify_sample_percent,
            timeout: config.qbusiness.verify_timeout,
            after_shutdown: confirm_within(config.server.shutdown_grace),
            ..Verify::default()
        },
        full_every: config.sync.full_every,
        overlap: chrono::TimeDelta::from_std(config.sync.overlap)
            .map_err(|e| ConfigError(format!("sync.overlap: {e}")))?,
        take_over: crate::plan::ownership::TakeOver::new(&config.groups.take_over),
    })
}

/// How long a shutdown keeps confirming the puts already sent: the grace, less a margin
/// (a quarter of it, at most 2 s) to record them and close the run log before it runs out.
fn confirm_within(grace: std::time::Duration) -> std::time::Duration {
    grace.saturating_sub((grace / 4).min(std::time::Duration::from_secs(2)))
}

/// The production engine: Okta over HTTP, Q Business through the SDK, the configured snapshot.
/// The Okta client is shared (by reference count) with the System Log poller, so both draw on
/// one rate-limit budget.
pub type ProductEngine = Engine<Arc<OktaSource>, QBusinessSink, Backend>;

/// The snapshot store as configured (`state.backend`), and this process's leadership.
pub struct OpenedState {
    pub store: Backend,
    pub leadership: Leadership,
    /// PostgreSQL: what the elector connects with.
    pub postgres: Option<PgSettings>,
}

impl OpenedState {
    /// One-shot commands that write (`sync`, `approve`, `reconcile --adopt`): with PostgreSQL,
    /// takes the leader lock for the command's duration, or fails naming the replica that
    /// leads. `None` with SQLite (the process always leads).
    pub async fn lead_for_command(&self) -> anyhow::Result<Option<CommandLease>> {
        let Some(settings) = &self.postgres else {
            return Ok(None);
        };
        let lease = Elector::new(settings, self.leadership.clone(), None)
            .acquire()
            .await
            .context("taking the leader lock for this command")?;
        Ok(Some(lease))
    }

    /// The token a pass runs under: cancelled on shutdown or when leadership is lost.
    pub fn pass_token(&self, shutdown: &CancellationToken) -> CancellationToken {
        self.leadership
            .current()
            .map_or_else(|| shutdown.clone(), |t| t.cancel)
    }
}

/// Opens the snapshot for `mode` (`plan` opens it read-only and never creates or migrates it).
/// With PostgreSQL the process starts as a standby; see [`OpenedState::lead_for_command`] and
/// [`Elector::run`].
pub async fn open_state(
    config: &Config,
    mode: Mode,
    shutdown: &CancellationToken,
) -> anyhow::Result<OpenedState> {
    let replica = config.state.replica_name();
    match config.state.backend {
        StateBackend::Sqlite => {
            let store = match mode {
                Mode::Plan => SqliteStore::open_read_only(&config.state.path),
                Mode::Apply => SqliteStore::open(&config.state.path),
            }
            .context("opening the snapshot (state.path)")?;
            Ok(OpenedState {
                store: Backend::Sqlite(store),
                leadership: Leadership::always(replica, shutdown),
                postgres: None,
            })
        }
        StateBackend::Postgres => {
            let settings = PgSettings::from_config(&config.state)?;
            let leadership = Leadership::elected("postgres", replica, shutdown);
            let store = match mode {
                Mode::Plan => PostgresStore::open_read_only(&settings, leadership.clone()).await,
                Mode::Apply => PostgresStore::open(&settings, leadership.clone()).await,
            }
            .context("opening the snapshot (state.url)")?;
            Ok(OpenedState {
                store: Backend::Postgres(store),
                leadership,
                postgres: Some(settings),
            })
        }
    }
}

/// How long one Q Business write may take (SDK retries included) before it is abandoned:
/// with PostgreSQL two fifths of `state.leader_takeover`, below the half a leader's lease
/// lasts, so that a replica cut off from the database stops writing before a standby can
/// take over; with SQLite (one replica) two minutes.
pub fn write_timeout(config: &Config) -> std::time::Duration {
    match config.state.backend {
        StateBackend::Postgres => config.state.leader_takeover * 2 / 5,
        StateBackend::Sqlite => std::time::Duration::from_secs(120),
    }
}

/// The sink as a pass uses it: every write bounded by [`write_timeout`] and (PostgreSQL) by
/// the leadership lease, and what the write probe learnt read from the snapshot.
pub fn pass_sink(config: &Config, sink: QBusinessSink, store: &Backend) -> QBusinessSink {
    let loader_store = store.clone();
    let loader: crate::sink::ReadingsLoader = Arc::new(move || {
        let store = loader_store.clone();
        Box::pin(async move {
            use crate::store::SnapshotStore;
            match store.q_readings().await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %crate::error::error_chain(&e),
                        "reading what the write probe learnt failed; assuming nothing is known");
                    None
                }
            }
        })
    });
    sink.guard_writes(write_timeout(config), store.leadership())
        .load_readings_with(loader)
}

/// Records what the write probe learnt in the snapshot, for the passes that follow. Opens the
/// snapshot for writing (with PostgreSQL, under the leader lock for the moment it takes).
pub async fn record_readings(
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
pub async fn record_probe(config: &Config, readings: &crate::sink::Readings) -> String {
    match record_readings(config, readings, &CancellationToken::new()).await {
        Ok(()) => "write probe: findings recorded in the snapshot; passes use them".to_owned(),
        Err(e) => format!(
            "write probe: findings not recorded ({}); passes assume nothing is known",
            crate::error::error_chain(e.as_ref())
        ),
    }
}

/// Builds the engine over an opened snapshot store.
pub fn build_engine(
    config: &Config,
    sink: QBusinessSink,
    store: Backend,
) -> anyhow::Result<ProductEngine> {
    let settings = engine_settings(config)?;
    let sink = pass_sink(config, sink, &store);
    let source = Arc::new(
        OktaSource::new(OktaSettings::from_config(config)?).context("starting the Okta client")?,
    );
    Ok(Engine::new(
        source,
        sink,
        store,
        settings,
        Arc::new(SystemClock),
    ))
}
