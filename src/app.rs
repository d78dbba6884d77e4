//! The wiring of the whole program: the only place that turns a [`Config`] into an engine,
//! its clients and its snapshot store. `cli` (one-shot commands) and `serve` (the daemon) call
//! it; it calls neither.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, ScimUserId, Source, StateBackend};
use crate::directory::Directory;
use crate::engine::{Engine, EngineSettings, Verify};
use crate::leader::Leadership;
use crate::plan::safety::SafetyPolicy;
use crate::plan::{Policy, Rules};
use crate::report::Mode;
use crate::scim::{ScimDirectory, UserIdSource};
use crate::sink::QBusinessSink;
use crate::source::okta::events::{FeedSettings, OktaChangeFeed};
use crate::source::okta::{OktaBuildError, OktaSettings, OktaSource};
use crate::store::postgres::{CommandLease, Elector, PgSettings};
use crate::store::{Backend, PostgresStore, SqliteStore, StoreError};

/// Why the program could not be wired from its configuration: the step that failed, with the
/// cause in the chain.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `key` is the setting that names it: `state.path` or `state.url`.
    #[error("opening the snapshot ({key})")]
    Snapshot {
        key: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("taking the leader lock for this command")]
    Leader(#[source] StoreError),
    #[error("starting the Okta client")]
    Okta(#[source] OktaBuildError),
}

impl StartError {
    /// The configuration error this is, if it is one (exit 2).
    pub fn config(&self) -> Option<&ConfigError> {
        match self {
            StartError::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// How the process ends: one meaning per code, in every command (docs/operations.md, "Exit codes",
/// and `--help` list them). Errors returned instead of an `Exit` map to 1 or 2 by
/// `cli::exit_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything applied, or nothing to do.
    Success,
    /// 1: something failed that the next run retries: a write refused, a group unread, Okta
    /// or AWS unreachable, shutdown.
    Failed,
    /// 2: configuration or setup: a bad key or value, a file the configuration names that
    /// cannot be read, credentials or permissions Okta or AWS refused, no AWS credentials.
    Setup,
    /// 3: deletions or removals are held for approval (`approve <plan-id>`).
    Held,
    /// 4: what the command was asked about does not exist (`explain`: an unknown user or
    /// document).
    Unknown,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Setup => 2,
            Exit::Held => 3,
            Exit::Unknown => 4,
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
        // SCIM reads are local (the snapshot store): the Okta default's concurrency is plenty.
        read_concurrency: config.okta.as_ref().map_or(8, |o| o.max_concurrency * 2),
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

/// The production engine: the configured source (Okta over HTTP, or the stored SCIM pushes),
/// Q Business through the SDK, the configured snapshot.
pub type ProductEngine = Engine<Directory<Backend>, QBusinessSink, Backend>;

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
    pub async fn lead_for_command(&self) -> Result<Option<CommandLease>, StartError> {
        let Some(settings) = &self.postgres else {
            return Ok(None);
        };
        let lease = Elector::new(settings, self.leadership.clone(), None)
            .acquire()
            .await
            .map_err(StartError::Leader)?;
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
) -> Result<OpenedState, StartError> {
    let replica = config.state.replica_name();
    match config.state.backend {
        StateBackend::Sqlite => {
            let store = match mode {
                Mode::Plan => SqliteStore::open_read_only(&config.state.path),
                Mode::Apply => SqliteStore::open(&config.state.path),
            }
            .map_err(|source| StartError::Snapshot {
                key: "state.path",
                source,
            })?;
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
            .map_err(|source| StartError::Snapshot {
                key: "state.url",
                source,
            })?;
            Ok(OpenedState {
                store: Backend::Postgres(store),
                leadership,
                postgres: Some(settings),
            })
        }
    }
}

/// The production engine, and with `okta.events.enabled` the System Log feed over the same
/// Okta client (one rate-limit budget for both).
pub struct Built {
    pub engine: ProductEngine,
    pub feed: Option<OktaChangeFeed>,
}

/// Builds the engine over an opened snapshot store, and the System Log feed if enabled.
pub fn build(config: &Config, sink: QBusinessSink, store: Backend) -> Result<Built, StartError> {
    let settings = engine_settings(config)?;
    let source = directory(config, &store)?;
    let events = config.okta.as_ref().is_some_and(|o| o.events.enabled);
    let feed = source.okta().filter(|_| events).map(|okta| {
        OktaChangeFeed::new(
            Arc::clone(okta),
            FeedSettings::from_config(config),
            Arc::new(SystemClock),
        )
    });
    let sink = pass_sink(config, sink, &store);
    let engine = Engine::new(source, sink, store, settings, Arc::new(SystemClock));
    Ok(Built { engine, feed })
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

/// Builds the engine over an opened snapshot store.
pub fn build_engine(
    config: &Config,
    sink: QBusinessSink,
    store: Backend,
) -> Result<ProductEngine, StartError> {
    Ok(build(config, sink, store)?.engine)
}

/// The configured source over `store` (where SCIM pushes are kept).
pub fn directory(config: &Config, store: &Backend) -> Result<Directory<Backend>, StartError> {
    Ok(match config.source()? {
        Source::Okta(_) => Directory::Okta(Arc::new(
            OktaSource::new(OktaSettings::from_config(config)?).map_err(StartError::Okta)?,
        )),
        Source::Scim(scim) => Directory::Scim(ScimDirectory::new(
            store.clone(),
            match scim.user_id {
                ScimUserId::Email => UserIdSource::Email,
                ScimUserId::UserName => UserIdSource::UserName,
            },
        )),
    })
}
