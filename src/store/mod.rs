//! The snapshot edge: what q-group-sync has applied to Q Business, behind [`SnapshotStore`].
//!
//! A group's record changes only after its write to Q Business succeeded, in its own
//! transaction, so a crash loses at most the writes in flight and the next pass redoes them.
//! Two backends with the same semantics: [`SqliteStore`] (one replica) and [`PostgresStore`]
//! (shared by replicas, writes fenced by leadership); [`Backend`] is the configured one.

pub mod codec;
pub mod postgres;
mod scim;
pub mod sqlite;

use std::collections::BTreeMap;
use std::future::Future;

use arcstr::ArcStr;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{GroupName, Members, OktaGroupId, UserId};
use crate::plan::reads::KnownUser;
use crate::plan::safety::Held;
use crate::plan::{Layout, ReadMark, Snapshot, WriteOp};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Identifies one recorded pass.
pub type RunId = i64;

/// Why the snapshot could not be used. Never answered by treating the snapshot as empty.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open snapshot {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("snapshot {path} is not a q-group-sync snapshot or is corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    /// The file cannot be opened or created where `state.path` says (a missing, unreachable
    /// or read-only directory, a file where a directory should be, no permission); `detail`
    /// says which and what to do.
    #[error("cannot open snapshot {path}: {detail}")]
    Location { path: String, detail: String },
    #[error(
        "snapshot {path} has schema version {found}, newer than this q-group-sync supports ({supported}); upgrade q-group-sync"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("snapshot {path}: {op} failed")]
    Sqlite {
        path: String,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("snapshot store task failed: {0}")]
    Task(String),
    #[error("snapshot database {target}: {op} failed")]
    Database {
        target: String,
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot connect to the snapshot database {target}: {detail}")]
    Connect { target: String, detail: String },
    /// This replica does not (or no longer) lead: it must not write.
    #[error("{op} refused: {reason}")]
    Fenced { op: &'static str, reason: String },
}

impl StoreError {
    /// Whether the snapshot could not be opened where the configuration says (exit 2): its
    /// location, permissions, or SQLite refusing to open the file.
    pub fn is_unopenable(&self) -> bool {
        matches!(self, StoreError::Location { .. } | StoreError::Open { .. })
    }

    /// Bounded label for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Open { .. } | StoreError::Location { .. } => "open",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::TooNew { .. } => "too_new",
            StoreError::Sqlite { .. } => "sqlite",
            StoreError::Task(_) => "task",
            StoreError::Database { .. } | StoreError::Connect { .. } => "database",
            StoreError::Fenced { .. } => "fenced",
        }
    }
}

/// The summary of a finished pass, as recorded in the run log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub outcome: String,
    pub groups_in_scope: usize,
    pub puts: usize,
    pub deletes: usize,
    pub failed: usize,
    pub unchanged: usize,
    pub users_added: usize,
    pub users_removed: usize,
    /// A short error message when the pass failed as a whole.
    pub error: Option<String>,
}

/// What q-group-sync has applied to Q Business and read from Okta: the groups it owns, write
/// intents, read marks, users' identities and the System Log position.
pub trait SnapshotStore: Send + Sync {
    /// Everything applied so far. An unreadable or corrupt snapshot is an error, never empty.
    fn load(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// Records a successful PutGroup: the group's full member list, plus an audit entry.
    fn record_put(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        put: &AppliedPut<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a successful (or already done) DeleteGroup, plus an audit entry.
    fn record_delete(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that a write to `group` is about to start. Cleared when the write is recorded;
    /// left behind by a crash or an unconfirmed write, it marks the group as unconfirmed (and
    /// owned) for the next pass.
    fn record_intent(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
        op: IntentOp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records new reads of groups whose members did not change (no write needed).
    fn record_reads(
        &self,
        marks: &[(GroupName, ReadMark)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// When the last full member read (every group) completed, if ever.
    fn full_read_at(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Records a completed full member read.
    fn set_full_read_at(
        &self,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The recorded effective identity ([`KnownUser`]) of each of these Okta users that the
    /// snapshot knows; users it never saw in a group are absent.
    fn known_users(
        &self,
        okta_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, KnownUser>, StoreError>> + Send;

    /// Records users' effective identities, clears the read marks of groups that must be read
    /// again, and (with `checked_at`) the time up to which user changes are reflected, all in
    /// one transaction.
    fn record_users(
        &self,
        write: UsersWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to when user changes (status, id attribute) are reflected in the snapshot: the next
    /// incremental pass asks Okta for the users updated since (less the overlap).
    fn users_checked_at(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// The System Log position (`next` link) polling resumes from, if any.
    fn events_cursor(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records the System Log position after the changes before it were synced.
    fn set_events_cursor(
        &self,
        cursor: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What the write probe learnt of Q Business's behaviour ([`crate::sink::Readings`], as
    /// JSON), if it was recorded. A store that keeps none answers `None`.
    fn q_readings(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// Records what the write probe learnt (JSON of [`crate::sink::Readings`]).
    fn set_q_readings(
        &self,
        readings: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = readings;
        async { Ok(()) }
    }
}

/// The run log: one entry per pass that may write.
pub trait RunLog: Send + Sync {
    /// Starts the run log entry of a pass that may write.
    fn begin_run(
        &self,
        started_at: DateTime<Utc>,
        start: &RunStart,
    ) -> impl Future<Output = Result<RunId, StoreError>> + Send;

    /// When the last successful full pass finished (restores freshness across restarts).
    fn last_success(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Closes the run log entry.
    fn finish_run(
        &self,
        run: RunId,
        finished_at: DateTime<Utc>,
        record: &RunRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Destructive changes the circuit breaker holds for approval.
pub trait HeldPlans: Send + Sync {
    /// Stores a held plan (or refreshes it when the same plan is held again) and supersedes any
    /// other open one.
    fn hold(
        &self,
        at: DateTime<Utc>,
        held: &Held,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Closes open held plans (all, or the one with `id`) with `status` (applied or
    /// superseded), noting who or what closed them.
    fn resolve_holds(
        &self,
        at: DateTime<Utc>,
        id: Option<&str>,
        status: HoldStatus,
        by: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A held plan by id, or the open one when `id` is `None`.
    fn held_plan(
        &self,
        id: Option<&str>,
    ) -> impl Future<Output = Result<Option<HeldRecord>, StoreError>> + Send;
}

/// How [`SnapshotStore::record_users`] treats the users it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersMode {
    /// Adds users not known yet; known ones keep their record (what the groups not read this
    /// pass were written with).
    InsertNew,
    /// Adds or updates every user given.
    Upsert,
    /// The users given are all there are (a complete full read): others are dropped.
    Replace,
}

/// An Okta user id and its effective Q id (`None`: left out by the `users.*` rules). Both are
/// the shared strings the pass already holds (the mapper's Okta id, the member lists' Q id), so
/// a batch of every user of a large org costs two pointers a user.
pub type UserRecord = (ArcStr, Option<UserId>);

/// A batch for [`SnapshotStore::record_users`].
#[derive(Debug, Clone)]
pub struct UsersWrite<'a> {
    pub mode: UsersMode,
    pub users: Vec<UserRecord>,
    /// Groups whose read marks are cleared: the next pass reads them again whatever Okta's
    /// `lastMembershipUpdated` says.
    pub invalidate: &'a [GroupName],
    /// User changes up to this time are reflected.
    pub checked_at: Option<DateTime<Utc>>,
}

impl UsersWrite<'_> {
    /// Only clears the read marks of `groups`.
    pub fn invalidate(groups: &[GroupName]) -> UsersWrite<'_> {
        UsersWrite {
            mode: UsersMode::InsertNew,
            users: Vec::new(),
            invalidate: groups,
            checked_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.invalidate.is_empty()
            && self.checked_at.is_none()
            && self.mode != UsersMode::Replace
    }
}

/// Everything a pass needs of a store: its snapshot, run log and held plans. A fake for a part
/// of the product implements only the traits that part uses.
pub trait Store: SnapshotStore + RunLog + HeldPlans {}

impl<T: SnapshotStore + RunLog + HeldPlans> Store for T {}

/// How a pass came about, for the run log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunStart {
    /// The id logs and the admin API use for this pass.
    pub pass_id: String,
    /// `cli`, `schedule`, `startup`, `admin`.
    pub trigger: String,
    /// The one group the pass was limited to, if any.
    pub group: Option<String>,
}

/// The write a recorded intent announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentOp {
    Put,
    Delete,
    /// `reconcile --adopt` takes over an existing Q group.
    Adopt,
}

impl IntentOp {
    /// As stored in `pending.op`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentOp::Put => "put",
            IntentOp::Delete => "delete",
            IntentOp::Adopt => "adopt",
        }
    }
}

impl From<WriteOp> for IntentOp {
    fn from(op: WriteOp) -> IntentOp {
        match op {
            WriteOp::Put => IntentOp::Put,
            WriteOp::Delete => IntentOp::Delete,
        }
    }
}

/// Where a held plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Waiting for approval.
    Held,
    /// Approved and applied.
    Applied,
    /// A later pass needed something else (or nothing) approved.
    Superseded,
}

impl HoldStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Applied => "applied",
            HoldStatus::Superseded => "superseded",
        }
    }

    /// The stored form back; `None` for a value this build does not know.
    pub fn parse(s: &str) -> Option<HoldStatus> {
        match s {
            "held" => Some(HoldStatus::Held),
            "applied" => Some(HoldStatus::Applied),
            "superseded" => Some(HoldStatus::Superseded),
            _ => None,
        }
    }
}

impl std::fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A held plan as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldRecord {
    pub status: HoldStatus,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub held: Held,
}

/// A put that Q Business accepted, as handed to [`SnapshotStore::record_put`].
#[derive(Debug, Clone, Copy)]
pub struct AppliedPut<'a> {
    pub group: &'a GroupName,
    pub okta_id: &'a OktaGroupId,
    pub members: &'a Members,
    pub added: &'a Members,
    pub removed: &'a Members,
    /// The read the members come from (none when the group's read is unknown).
    pub read: Option<ReadMark>,
    /// How the members are carried in Q Business.
    pub layout: Layout,
    /// Chunk sub-groups written by this put (their write intents are cleared with it).
    pub chunks_written: &'a [GroupName],
    /// Chunk sub-groups the group no longer references: recorded as pending deletions in the
    /// same transaction, so they are deleted even if the process stops before it gets to them.
    pub chunks_stale: &'a [GroupName],
}

/// The configured snapshot store (`state.backend`).
#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever store is configured.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Sqlite($store) => $call.await,
            Backend::Postgres($store) => $call.await,
        }
    };
}

impl SnapshotStore for Backend {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        delegate!(self, s => s.load())
    }

    async fn record_put(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        put: &AppliedPut<'_>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.record_put(run, at, put))
    }

    async fn record_delete(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.record_delete(run, at, group, okta_id))
    }

    async fn record_intent(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
        op: IntentOp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.record_intent(run, at, group, okta_id, op))
    }

    async fn record_reads(&self, marks: &[(GroupName, ReadMark)]) -> Result<(), StoreError> {
        delegate!(self, s => s.record_reads(marks))
    }

    async fn full_read_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        delegate!(self, s => s.full_read_at())
    }

    async fn set_full_read_at(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        delegate!(self, s => s.set_full_read_at(at))
    }

    async fn known_users(
        &self,
        okta_ids: &[String],
    ) -> Result<BTreeMap<String, KnownUser>, StoreError> {
        delegate!(self, s => s.known_users(okta_ids))
    }

    async fn record_users(&self, write: UsersWrite<'_>) -> Result<(), StoreError> {
        delegate!(self, s => s.record_users(write))
    }

    async fn users_checked_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        delegate!(self, s => s.users_checked_at())
    }

    async fn events_cursor(&self) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.events_cursor())
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.set_events_cursor(cursor))
    }

    async fn q_readings(&self) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.q_readings())
    }

    async fn set_q_readings(&self, readings: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.set_q_readings(readings))
    }
}

impl Backend {
    /// The leadership the store's writes are fenced by (PostgreSQL); `None` with SQLite, whose
    /// process always leads.
    pub fn leadership(&self) -> Option<crate::leader::Leadership> {
        match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(s) => Some(s.leadership().clone()),
        }
    }
}

impl RunLog for Backend {
    async fn begin_run(
        &self,
        started_at: DateTime<Utc>,
        start: &RunStart,
    ) -> Result<RunId, StoreError> {
        delegate!(self, s => s.begin_run(started_at, start))
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        delegate!(self, s => s.last_success())
    }

    async fn finish_run(
        &self,
        run: RunId,
        finished_at: DateTime<Utc>,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.finish_run(run, finished_at, record))
    }
}

impl HeldPlans for Backend {
    async fn hold(&self, at: DateTime<Utc>, held: &Held) -> Result<(), StoreError> {
        delegate!(self, s => s.hold(at, held))
    }

    async fn resolve_holds(
        &self,
        at: DateTime<Utc>,
        id: Option<&str>,
        status: HoldStatus,
        by: &str,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.resolve_holds(at, id, status, by))
    }

    async fn held_plan(&self, id: Option<&str>) -> Result<Option<HeldRecord>, StoreError> {
        delegate!(self, s => s.held_plan(id))
    }
}
