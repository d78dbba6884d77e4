//! One pass: load the snapshot, read Okta, plan, apply with bounded concurrency, commit per group.
//!
//! `plan` and `sync` run exactly this code; only [`Mode`] differs, and [`Mode::Plan`] writes
//! nothing anywhere, not even the run log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::clock::Clock;
use crate::config::VerifyMode;
use crate::metrics;
use crate::model::{GroupName, OktaGroupId};
use crate::plan::safety::{self, Managed, SafetyPolicy};
use crate::plan::select::{GroupRead, Mapper, Scope};
use crate::plan::{self, Change, Plan, Policy, ReadMark, Rules, Snapshot};
use crate::sink::{DeleteOutcome, GroupSink, GroupState, SinkError};
use crate::source::MemberRead;
use crate::source::{DirectorySource, OktaGroup, SourceError};
use crate::store::{
    AppliedPut, RunId, RunRecord, RunStart, SnapshotStore, StoreError, UsersMode, UsersWrite,
};
use crate::trace::{self, Trace, Tracer};
use sha2::{Digest, Sha256};

/// Whether a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read Okta and the snapshot, compute the plan, write nothing.
    Plan,
    /// Apply the plan to Q Business and record what succeeded.
    Apply,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every change applied (or there was nothing to do) and every in-scope group was synced.
    Success,
    /// Some groups could not be read or written; everything else was applied and recorded.
    Partial,
    /// Additions were applied; deletions and removals wait for approval of a held plan.
    Held,
    /// The pass stopped early (Okta unreachable, credentials, snapshot, cancelled).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Held => "held",
            Outcome::Failed => "failed",
        }
    }
}

/// A pass that could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading groups from Okta")]
    Okta(#[from] SourceError),
    #[error("snapshot")]
    Store(#[from] StoreError),
    #[error("writing to Q Business stopped: {0}")]
    QBusiness(SinkError),
    #[error(
        "stopped by shutdown with {not_applied} change(s) not applied; the next pass applies them"
    )]
    Cancelled { not_applied: usize },
    #[error("stopped by shutdown while reading Okta; nothing was written")]
    Interrupted,
    #[error(
        "no Okta group or managed Q group is named {group:?} (give an Okta group id, Okta name or Q name)"
    )]
    UnknownGroup { group: String },
    #[error(
        "no held plan has the id {id:?}; `q-group-sync plan` or GET /status shows the open one"
    )]
    UnknownPlan { id: String },
    #[error(
        "held plan {id} is {status}, not waiting for approval; run `q-group-sync sync` for a new plan"
    )]
    PlanClosed { id: String, status: String },
    #[error(
        "held plan {id} cannot be checked against Okta now ({reason}); it stays held, try again"
    )]
    ApprovalIncomplete { id: String, reason: String },
    #[error("Okta no longer agrees with held plan {id}: {} not in it; run `q-group-sync sync` for a new plan", .changes.join(", "))]
    PlanDisagrees { id: String, changes: Vec<String> },
}

impl Error {
    /// Bounded label for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Okta(_) => "okta",
            Error::Store(e) if e.kind() == "fenced" => "fenced",
            Error::Store(_) => "snapshot",
            Error::QBusiness(_) => "qbusiness",
            Error::Cancelled { .. } | Error::Interrupted => "cancelled",
            Error::UnknownGroup { .. } => "unknown_group",
            Error::UnknownPlan { .. }
            | Error::PlanClosed { .. }
            | Error::PlanDisagrees { .. }
            | Error::ApprovalIncomplete { .. } => "approval",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRequest {
    pub mode: Mode,
    /// Limit the pass to one group: an Okta group id, Okta name or Q name.
    pub group: Option<String>,
    /// The id for logs and the run log; default: the run id (or `plan`).
    pub pass_id: Option<String>,
    /// `cli`, `schedule`, `startup` or `admin`.
    pub trigger: &'static str,
    /// Apply the destructive changes of this held plan (with [`Mode::Apply`]), if Okta still
    /// agrees with them.
    pub approve: Option<String>,
    /// Read every group's members, not only those Okta reports changed.
    pub full: bool,
    /// Limit the pass to these Okta group ids (event-driven passes); ids Okta and the snapshot
    /// no longer know are nothing to do, not an error.
    pub groups: Vec<String>,
}

impl PassRequest {
    /// Whether the pass covers some groups only.
    pub fn limited(&self) -> bool {
        self.group.is_some() || !self.groups.is_empty()
    }

    /// A full pass started from the command line.
    pub fn cli(mode: Mode) -> PassRequest {
        PassRequest {
            mode,
            group: None,
            pass_id: None,
            trigger: "cli",
            approve: None,
            full: false,
            groups: Vec::new(),
        }
    }

    /// The approval of held plan `plan_id`.
    pub fn approve(plan_id: &str, trigger: &'static str) -> PassRequest {
        PassRequest {
            mode: Mode::Apply,
            group: None,
            pass_id: None,
            trigger,
            approve: Some(plan_id.to_owned()),
            full: false,
            groups: Vec::new(),
        }
    }
}

/// One change that failed, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub group: String,
    /// `put`, `delete`, `read`, or a plan issue kind.
    pub op: String,
    /// Bounded label.
    pub kind: String,
    pub message: String,
}

/// What a pass did. Printed by `sync`, served by `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub mode: Mode,
    /// The pass id used in logs (the run id when none was given).
    pub pass_id: Option<String>,
    pub run_id: Option<RunId>,
    /// The one group the pass was limited to, if any.
    pub group: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// Why the pass stopped early, when it did.
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub groups_listed: usize,
    pub groups_in_scope: usize,
    pub groups_unread: usize,
    /// In-scope groups whose members were read this pass (the rest were unchanged in Okta).
    pub groups_read: usize,
    pub puts_applied: usize,
    pub deletes_applied: usize,
    pub users_added: usize,
    pub users_removed: usize,
    pub failures: Vec<Failure>,
    pub plan: Plan,
    /// How this pass checked users' status and id changes.
    pub users: UserCheck,
    /// When the next full member read is due (incremental passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_full_read_at: Option<DateTime<Utc>>,
    /// Step by step, for a one-group pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

/// How a pass found users whose status or id attribute changed (which Okta does not report
/// as a membership change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserCheckHow {
    /// Every group's members were read.
    FullRead,
    /// Okta's users listing, for the users updated since the last pass.
    Listing,
    /// Not checked (the pass stopped before, or was limited to some groups).
    #[default]
    NotChecked,
}

/// What a pass learnt of users' status and id changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserCheck {
    pub how: UserCheckHow,
    /// Users Okta listed as updated since the last pass.
    pub users_listed: usize,
    /// Of those, users whose effective Q identity changed (status, id attribute).
    pub users_changed: usize,
    /// Groups read again because of them.
    pub groups_affected: usize,
    /// What could not be checked, when something could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl UserCheck {
    fn full_read() -> UserCheck {
        UserCheck {
            how: UserCheckHow::FullRead,
            ..UserCheck::default()
        }
    }

    fn not_checked(why: &str) -> UserCheck {
        UserCheck {
            error: Some(why.to_owned()),
            ..UserCheck::default()
        }
    }

    fn failed(error: String) -> UserCheck {
        UserCheck {
            how: UserCheckHow::Listing,
            error: Some(error),
            ..UserCheck::default()
        }
    }
}

impl RunReport {
    fn new(mode: Mode, started_at: DateTime<Utc>) -> RunReport {
        RunReport {
            mode,
            pass_id: None,
            run_id: None,
            group: None,
            started_at,
            finished_at: started_at,
            outcome: Outcome::Success,
            error: None,
            error_kind: None,
            groups_listed: 0,
            groups_in_scope: 0,
            groups_unread: 0,
            groups_read: 0,
            puts_applied: 0,
            deletes_applied: 0,
            users_added: 0,
            users_removed: 0,
            failures: Vec::new(),
            plan: Plan::default(),
            users: UserCheck::default(),
            next_full_read_at: None,
            trace: None,
        }
    }

    /// The run-log summary of this report.
    pub fn record(&self) -> RunRecord {
        RunRecord {
            outcome: self.outcome.as_str().to_owned(),
            groups_in_scope: self.groups_in_scope,
            puts: self.puts_applied,
            deletes: self.deletes_applied,
            failed: self.failures.len(),
            unchanged: self.plan.unchanged,
            users_added: self.users_added,
            users_removed: self.users_removed,
            error: self.error.clone(),
        }
    }
}

/// Hooks for a progress display. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// Okta listed the groups; `in_scope` member reads follow.
    fn listed(&self, _in_scope: usize) {}
    /// One group's members were read (or failed).
    fn group_read(&self) {}
    /// The plan is ready with `changes` writes.
    fn planned(&self, _changes: usize) {}
    /// One write finished (applied or failed).
    fn applied(&self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Knobs of a pass.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub rules: Rules,
    pub policy: Policy,
    /// Member reads started at once (the Okta client bounds requests in flight on its own).
    pub read_concurrency: usize,
    /// Group writes in flight at most.
    pub write_concurrency: usize,
    /// The deletion circuit breaker.
    pub safety: SafetyPolicy,
    /// How puts are confirmed before they are recorded.
    pub verify: Verify,
    /// A full member read (every group) at least this often; incremental reads in between.
    pub full_every: Duration,
    /// How long after a group's lastMembershipUpdated a read must start to count as current.
    pub overlap: chrono::TimeDelta,
}

/// How puts are confirmed (PutGroup is asynchronous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    pub mode: VerifyMode,
    /// With [`VerifyMode::Sample`]: percent of groups (by name) confirmed.
    pub sample_percent: u8,
    /// Longest wait for a terminal status.
    pub timeout: Duration,
    /// First poll delay; doubles up to 5 s.
    pub first_poll: Duration,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            mode: VerifyMode::Always,
            sample_percent: 10,
            timeout: Duration::from_secs(300),
            first_poll: Duration::from_millis(200),
        }
    }
}

impl Verify {
    fn wanted(&self, group: &GroupName) -> bool {
        match self.mode {
            VerifyMode::Always => true,
            VerifyMode::Never => false,
            VerifyMode::Sample => {
                let digest = Sha256::digest(group.as_str().as_bytes());
                u16::from(digest[0]) * 100 / 256 < u16::from(self.sample_percent)
            }
        }
    }
}

/// Runs passes over a source, a sink and a store.
pub struct Engine<S, K, T> {
    source: S,
    sink: K,
    store: T,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
}

impl<S: DirectorySource, K: GroupSink, T: SnapshotStore> Engine<S, K, T> {
    pub fn new(
        source: S,
        sink: K,
        store: T,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Engine {
            source,
            sink,
            store,
            settings,
            clock,
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn store(&self) -> &T {
        &self.store
    }

    /// One pass. `cancel` stops it between writes: what succeeded so far stays recorded.
    pub async fn run_once(
        &self,
        request: &PassRequest,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> RunReport {
        let mode = request.mode;
        let started = self.clock.now();
        let timer = Instant::now();
        let mut report = RunReport::new(mode, started);
        report.pass_id = request.pass_id.clone();
        report.group = request.group.clone().or_else(|| {
            (!request.groups.is_empty()).then(|| changed_groups_label(&request.groups))
        });
        metrics::pass_in_progress(true);
        let snapshot = match self.store.load().await {
            Ok(s) => Some(s),
            Err(e) => {
                report = self.fail(report, Error::Store(e));
                None
            }
        };
        if let Some(snapshot) = snapshot {
            if mode == Mode::Apply {
                let start = RunStart {
                    pass_id: request.pass_id.clone().unwrap_or_default(),
                    trigger: request.trigger.to_owned(),
                    group: report.group.clone(),
                };
                match self.store.begin_run(started, &start).await {
                    Ok(id) => report.run_id = Some(id),
                    Err(e) => report = self.fail(report, Error::Store(e)),
                }
            }
            if report.error.is_none() {
                report = self
                    .run_pass(request, snapshot, report, progress, cancel)
                    .await;
            }
        }
        metrics::pass_in_progress(false);
        metrics::pass_finished(&report, timer.elapsed());
        report
    }

    async fn run_pass(
        &self,
        request: &PassRequest,
        snapshot: Snapshot,
        mut report: RunReport,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> RunReport {
        if report.pass_id.is_none() {
            report.pass_id = Some(
                report
                    .run_id
                    .map_or_else(|| "plan".to_owned(), |id| id.to_string()),
            );
        }
        let pass_id = report.pass_id.clone().unwrap_or_default();
        let span =
            info_span!("pass", pass_id = %pass_id, mode = ?request.mode, trigger = request.trigger);
        let tracer = request.group.is_some().then(Tracer::default);
        let result = self
            .pass(
                request,
                snapshot,
                &mut report,
                progress,
                cancel,
                tracer.as_ref(),
            )
            .instrument(span.clone())
            .await;
        if let Err(e) = result {
            trace::step(tracer.as_ref(), "error", || {
                format!("pass stopped: {}", error_chain(&e))
            });
            report = span.in_scope(|| self.fail(report, e));
        } else {
            report.finished_at = self.clock.now();
        }
        report.trace = tracer.map(|t| t.finish());
        if let Some(run) = report.run_id
            && let Err(e) = self
                .store
                .finish_run(run, report.finished_at, &report.record())
                .await
        {
            warn!(parent: &span, error = %e, "could not close the run log entry");
        }
        span.in_scope(|| {
            info!(
                outcome = report.outcome.as_str(),
                puts = report.puts_applied,
                deletes = report.deletes_applied,
                failed = report.failures.len(),
                unchanged = report.plan.unchanged,
                "pass finished"
            )
        });
        report
    }

    fn fail(&self, mut report: RunReport, err: Error) -> RunReport {
        report.outcome = Outcome::Failed;
        report.error_kind = Some(err.kind());
        report.error = Some(error_chain(&err));
        report.finished_at = self.clock.now();
        warn!(kind = err.kind(), error = %report.error.as_deref().unwrap_or_default(), "pass failed");
        report
    }

    async fn pass(
        &self,
        request: &PassRequest,
        snapshot: Snapshot,
        report: &mut RunReport,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> Result<(), Error> {
        let mode = request.mode;
        let read_timer = Instant::now();
        let mut groups = tokio::select! {
            groups = self.source.list_groups() => groups?,
            _ = cancel.cancelled() => return Err(Error::Interrupted),
        };
        let managed = Managed::of(&snapshot);
        let snapshot = match &request.group {
            None if request.groups.is_empty() => snapshot,
            None => {
                let wanted: BTreeSet<&str> = request.groups.iter().map(String::as_str).collect();
                let (subset, snap) = self.some_groups(&wanted, groups, snapshot);
                groups = subset;
                snap
            }
            Some(wanted) => {
                let listed = groups.len();
                let (subset, snap) =
                    self.some_groups(&BTreeSet::from([wanted.as_str()]), groups, snapshot);
                if subset.is_empty() && snap.groups.is_empty() {
                    return Err(Error::UnknownGroup {
                        group: wanted.clone(),
                    });
                }
                trace::step(tracer, "list", || {
                    let found: Vec<String> = subset
                        .iter()
                        .map(|g| {
                            format!(
                                "{} {:?} (lastMembershipUpdated {})",
                                g.id,
                                g.name,
                                g.last_membership_updated
                                    .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339())
                            )
                        })
                        .collect();
                    let known: Vec<String> = snap.groups.keys().map(|n| format!("{n:?}")).collect();
                    format!(
                        "{wanted:?}: Okta lists {} of {} groups [{}]; the snapshot has [{}]",
                        subset.len(),
                        listed,
                        found.join(", "),
                        known.join(", ")
                    )
                });
                for g in &subset {
                    trace::step(tracer, "scope", || match self.settings.rules.scope(g) {
                        Scope::In(name) => format!("{:?} is in scope as Q group {name:?}", g.name),
                        Scope::Out(why) => format!(
                            "{:?} is out of scope ({why:?}): its Q group, if any, is deleted",
                            g.name
                        ),
                        Scope::Invalid(problem) => format!(
                            "{:?} is in scope but its Q name is unusable ({problem})",
                            g.name
                        ),
                    });
                }
                groups = subset;
                snap
            }
        };
        // Incremental reads: a group whose lastMembershipUpdated has not moved since the read
        // its snapshot members come from keeps them, unless a member's status or id attribute
        // changed since (Okta does not move lastMembershipUpdated for those); a full read runs
        // every `full_every`, and whenever the snapshot has no record of user changes yet.
        let users_checked_at = self.store.users_checked_at().await?;
        let full_read_at = self.store.full_read_at().await?;
        let full_read_due = full_read_at.is_none_or(|at| {
            (report.started_at - at).to_std().unwrap_or_default() >= self.settings.full_every
        });
        let full = request.full || request.limited() || users_checked_at.is_none() || full_read_due;
        if !full {
            report.next_full_read_at = full_read_at.and_then(|at| {
                chrono::TimeDelta::from_std(self.settings.full_every)
                    .ok()
                    .and_then(|every| at.checked_add_signed(every))
            });
        }
        let mut stale = BTreeSet::new();
        report.users = if request.limited() {
            UserCheck::not_checked("a pass limited to some groups reads them in full")
        } else if full {
            UserCheck::full_read()
        } else {
            let since = users_checked_at.unwrap_or(report.started_at);
            let check = tokio::select! {
                check = self.user_changes(&groups, &snapshot, since, mode, report.started_at, tracer) => check?,
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            };
            stale = check.1;
            check.0
        };
        let choice = plan::reads::choose(
            &groups,
            &self.settings.rules,
            &snapshot,
            full,
            self.settings.overlap,
            &stale,
        );
        let to_read = choice.read;
        let mut reused: BTreeMap<String, GroupRead> = choice
            .unchanged
            .into_iter()
            .map(|(id, members)| (id, GroupRead::Unchanged(members)))
            .collect();
        info!(
            listed = groups.len(),
            to_read = to_read.len(),
            unchanged = reused.len(),
            full,
            users_changed = report.users.users_changed,
            "listed Okta groups"
        );
        report.groups_read = to_read.len();
        progress.listed(to_read.len());
        let mut mapper = Mapper::new(&self.settings.rules);
        if !to_read.is_empty() {
            mapper.share_ids(snapshot.groups.values().map(|g| &g.members));
        }
        // Reading can take minutes on a large org; a shutdown does not wait for it.
        let mut reads = tokio::select! {
            reads = self.read_members(&to_read, progress, &mut mapper, tracer) => reads?,
            _ = cancel.cancelled() => return Err(Error::Interrupted),
        };
        if tracer.is_some() {
            let skipped = mapper.skipped();
            trace::step(tracer, "mapping", || {
                format!(
                    "{} Okta user(s) skipped by users.* rules (by status {:?}, without the id attribute {}, unusable id {})",
                    skipped.total(),
                    skipped.by_status,
                    skipped.missing_attribute,
                    skipped.invalid_id
                )
            });
        }
        // What this pass's reads are worth for the next one.
        let marks: BTreeMap<GroupName, ReadMark> = to_read
            .iter()
            .filter(|g| matches!(reads.get(&g.id), Some(GroupRead::Mapped { .. })))
            .filter_map(|g| {
                let Scope::In(name) = self.settings.rules.scope(g) else {
                    return None;
                };
                let lmu = g.last_membership_updated?;
                Some((
                    name,
                    ReadMark {
                        source_updated: lmu,
                        read_at: report.started_at,
                    },
                ))
            })
            .collect();
        reads.append(&mut reused);
        metrics::phase("okta_read", read_timer.elapsed());
        let unread = reads
            .values()
            .filter(|r| matches!(r, GroupRead::Failed { .. }))
            .count();
        if mode == Mode::Apply {
            let complete = full && !request.limited() && unread == 0;
            self.record_seen_users(&mapper, complete, report.started_at)
                .await?;
        }
        let plan_timer = Instant::now();
        let desired = plan::select::desired_with(&groups, &self.settings.rules, reads, mapper);
        let plan = plan::plan(&desired, &snapshot, &self.settings.policy);
        let plan = match &request.approve {
            Some(id) => self.approved(id, plan).await?,
            None => safety::guard(
                plan,
                managed,
                !request.limited(),
                &self.settings.safety,
                &snapshot,
                &self.settings.policy,
            ),
        };
        metrics::phase("plan", plan_timer.elapsed());
        report.groups_listed = plan.listed;
        report.groups_in_scope = plan.in_scope;
        report.groups_unread = desired.unread;
        for issue in &plan.issues {
            report.failures.push(Failure {
                group: issue.group.clone(),
                op: if issue.kind == "unread" {
                    "read".into()
                } else {
                    "plan".into()
                },
                kind: issue.kind.to_owned(),
                message: issue.detail.clone(),
            });
        }
        if !plan.collisions.is_empty() {
            warn!(
                collisions = plan.collisions.len(),
                "Okta users that Q Business sees as one user"
            );
        }
        info!(
            puts = plan.puts().count(),
            deletes = plan.deletes().count(),
            unchanged = plan.unchanged,
            issues = plan.issues.len(),
            withheld_deletes = plan.withheld_deletes.len(),
            "planned"
        );
        if let Some(held) = &plan.held {
            warn!(
                plan_id = %held.id,
                deletes = held.deletes.len(),
                removals = held.removal_count(),
                reasons = %held.reasons.join("; "),
                "destructive changes held for approval"
            );
        }
        progress.planned(plan.changes.len());
        if tracer.is_some() {
            trace_plan(tracer, &plan);
        }
        let mut plan = plan;
        plan.unchecked = if request.limited() {
            Some(format!(
                "groups other than {} (this pass was limited to them)",
                report.group.as_deref().unwrap_or("the named ones")
            ))
        } else {
            report
                .users
                .error
                .as_ref()
                .map(|what| match report.next_full_read_at {
                    Some(at) => format!("{what}; the next full read is due at {}", at.to_rfc3339()),
                    None => what.clone(),
                })
        };
        report.plan = plan;
        if mode == Mode::Plan {
            report.outcome = self.outcome_of(report);
            return Ok(());
        }
        let now = self.clock.now();
        match (&report.plan.held, &request.approve) {
            (Some(held), _) => self.store.hold(now, held).await?,
            (None, None) if !request.limited() => {
                self.store
                    .resolve_holds(now, None, "superseded", "a later pass needed no approval")
                    .await?
            }
            _ => {}
        }
        // A group whose removals are held is not in its read state after this pass: its next
        // pass must read it again, so its read is not recorded.
        let mut marks = marks;
        if let Some(held) = &report.plan.held {
            marks.retain(|name, _| !held.removals.contains_key(name));
        }
        // Until its write is recorded, a group with a change is read again by every pass: a
        // failed, unconfirmed, interrupted or held write must not leave it looking current
        // (a change from a user's status or id does not move its lastMembershipUpdated).
        let pending: Vec<GroupName> = report
            .plan
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Put { .. }))
            .map(|c| c.group().clone())
            .chain(
                report
                    .plan
                    .held
                    .iter()
                    .flat_map(|h| h.removals.keys().cloned()),
            )
            .chain(report.plan.issues.iter().map(|i| GroupName::new(&i.group)))
            .filter(|name| snapshot.groups.get(name).is_some_and(|g| g.read.is_some()))
            .collect();
        self.store
            .record_users(&UsersWrite::invalidate(&pending))
            .await?;
        let apply_timer = Instant::now();
        let stopped = self.apply(report, progress, cancel, &marks, tracer).await;
        metrics::phase("apply", apply_timer.elapsed());
        // Groups read and found unchanged keep their members but get the new read mark.
        let put: BTreeSet<&GroupName> = report.plan.changes.iter().map(Change::group).collect();
        let unchanged: Vec<(GroupName, ReadMark)> = marks
            .iter()
            .filter(|(name, _)| {
                !put.contains(name)
                    && snapshot.groups.get(*name).is_some_and(|have| {
                        !have.unconfirmed
                            && desired
                                .groups
                                .get(*name)
                                .is_some_and(|want| want.members == have.members)
                    })
            })
            .map(|(name, mark)| (name.clone(), *mark))
            .collect();
        self.store.record_reads(&unchanged).await?;
        if full && !request.limited() && report.groups_unread == 0 && stopped.is_ok() {
            self.store.set_full_read_at(report.started_at).await?;
        }
        report.outcome = self.outcome_of(report);
        if let Some(id) = &request.approve
            && stopped.is_ok()
            && report.failures.is_empty()
        {
            self.store
                .resolve_holds(self.clock.now(), Some(id), "applied", request.trigger)
                .await?;
            info!(plan_id = %id, "held plan approved and applied");
        }
        stopped
    }

    /// Finds the users whose status or id attribute changed since `since` in a way that matters
    /// to Q (see [`plan::reads`]) and the groups that must be read again because of them. In
    /// [`Mode::Apply`] it records, in one transaction, the users' new identities, those groups'
    /// read marks cleared, and (when every change was resolved) that user changes up to this
    /// pass are reflected: from then on a failed read or write of those groups cannot hide the
    /// change, because they stay unread until their write is recorded.
    async fn user_changes(
        &self,
        groups: &[OktaGroup],
        snapshot: &Snapshot,
        since: DateTime<Utc>,
        mode: Mode,
        started_at: DateTime<Utc>,
        tracer: Option<&Tracer>,
    ) -> Result<(UserCheck, BTreeSet<GroupName>), Error> {
        let rules = &self.settings.rules;
        let from = since - self.settings.overlap;
        let listed = match self.source.list_users_updated_since(from).await {
            Ok(listed) => listed,
            Err(e) if e.is_fatal() => return Err(Error::Okta(e)),
            Err(e) => {
                warn!(kind = e.kind().as_str(), error = %e, "could not list the Okta users updated since the last pass");
                return Ok((
                    UserCheck::failed(format!(
                        "user status and id changes (Okta's users listing failed: {e}); the next pass retries"
                    )),
                    BTreeSet::new(),
                ));
            }
        };
        let ids: Vec<String> = listed.iter().map(|u| u.id.clone()).collect();
        let known = self.store.known_users(&ids).await?;
        let changes = plan::reads::user_changes(rules, &listed, &known);
        drop(known);
        let mut stale = plan::reads::holding(snapshot, &changes);
        // A user who was left out is in no recorded member list: Okta says which groups they
        // are in. Looked up a few at a time; one that fails is retried by the next pass.
        let lookups: Vec<&plan::reads::UserChange> =
            changes.iter().filter(|c| c.needs_lookup()).collect();
        let mut unresolved: BTreeSet<String> = BTreeSet::new();
        let mut pending = lookups.iter();
        let mut in_flight = FuturesUnordered::new();
        let limit = self.settings.read_concurrency.max(1);
        loop {
            while in_flight.len() < limit {
                match pending.next() {
                    Some(c) => in_flight.push(self.user_groups(c.okta_id.clone())),
                    None => break,
                }
            }
            let Some((user, result)) = in_flight.next().await else {
                break;
            };
            match result {
                Ok(ids) => {
                    let ids: BTreeSet<String> = ids.into_iter().collect();
                    stale.extend(plan::reads::names_of(&ids, groups, rules, snapshot));
                }
                Err(e) if e.is_fatal() => return Err(Error::Okta(e)),
                Err(e) => {
                    warn!(okta_user = %user, kind = e.kind().as_str(), error = %e, "could not read a user's groups");
                    unresolved.insert(user);
                }
            }
        }
        let resolved: Vec<(String, plan::reads::KnownUser)> = changes
            .iter()
            .filter(|c| !unresolved.contains(c.okta_id.as_str()))
            .map(|c| (c.okta_id.clone(), c.after.clone()))
            .collect();
        if mode == Mode::Apply {
            let invalidate: Vec<GroupName> = stale
                .iter()
                .filter(|name| snapshot.groups.contains_key(*name))
                .cloned()
                .collect();
            self.store
                .record_users(&UsersWrite {
                    mode: UsersMode::Upsert,
                    users: &resolved,
                    invalidate: &invalidate,
                    checked_at: unresolved.is_empty().then_some(started_at),
                })
                .await?;
        }
        info!(
            users_listed = listed.len(),
            users_changed = changes.len(),
            groups_affected = stale.len(),
            unresolved = unresolved.len(),
            "checked Okta users updated since the last pass"
        );
        trace::step(tracer, "users", || {
            format!(
                "{} Okta user(s) updated since {}; {} changed status or id, touching {} group(s)",
                listed.len(),
                from.to_rfc3339(),
                changes.len(),
                stale.len()
            )
        });
        let mut check = UserCheck {
            how: UserCheckHow::Listing,
            users_listed: listed.len(),
            users_changed: changes.len(),
            groups_affected: stale.len(),
            error: None,
        };
        if !unresolved.is_empty() {
            check.error = Some(format!(
                "the groups of {} user(s) who became eligible (Okta's lookups failed); the next pass retries",
                unresolved.len()
            ));
        }
        Ok((check, stale))
    }

    /// The groups of one user, with the user's id.
    async fn user_groups(&self, user: String) -> (String, Result<Vec<String>, SourceError>) {
        let result = self.source.groups_of_user(&user).await;
        (user, result)
    }

    /// Records the identity of every Okta user this pass's reads decided. After a complete full
    /// read every group reflects these decisions, so they replace the record (and user changes
    /// up to this pass are reflected); otherwise only users not known yet are added, because
    /// the groups not read this pass were written with the recorded identity, and a change the
    /// next users listing must still find would otherwise be recorded as already seen.
    async fn record_seen_users(
        &self,
        mapper: &Mapper<'_>,
        complete: bool,
        started_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let users: Vec<(String, plan::reads::KnownUser)> = mapper
            .decisions()
            .map(|(id, q)| (id.to_owned(), q.map(|q| q.as_str().to_owned())))
            .collect();
        self.store
            .record_users(&UsersWrite {
                mode: if complete {
                    UsersMode::Replace
                } else {
                    UsersMode::InsertNew
                },
                users: &users,
                invalidate: &[],
                checked_at: complete.then_some(started_at),
            })
            .await?;
        Ok(())
    }

    fn outcome_of(&self, report: &RunReport) -> Outcome {
        if report.plan.held.is_some() {
            Outcome::Held
        } else if report.failures.is_empty() {
            Outcome::Success
        } else {
            Outcome::Partial
        }
    }

    /// The plan of an approval: the fresh plan's destructive changes, if the held plan `id`
    /// covers every one of them (Okta still agrees, or asks for less). Additions are left to
    /// the next pass, so an approval applies exactly what was approved.
    async fn approved(&self, id: &str, fresh: Plan) -> Result<Plan, Error> {
        let record = self
            .store
            .held_plan(Some(id))
            .await?
            .ok_or_else(|| Error::UnknownPlan { id: id.to_owned() })?;
        if record.status != "held" {
            return Err(Error::PlanClosed {
                id: id.to_owned(),
                status: record.status,
            });
        }
        if let Some(reason) = &fresh.withheld_reason {
            // Deciding whether Okta still agrees needs every group read.
            return Err(Error::ApprovalIncomplete {
                id: id.to_owned(),
                reason: reason.clone(),
            });
        }
        if let Err(changes) = record.held.covers(&fresh) {
            self.store
                .resolve_holds(
                    self.clock.now(),
                    Some(id),
                    "superseded",
                    "Okta changed before approval",
                )
                .await?;
            return Err(Error::PlanDisagrees {
                id: id.to_owned(),
                changes,
            });
        }
        let mut plan = fresh;
        plan.changes.retain(|c| match c {
            Change::Delete { reason, .. } => reason.takes_access(),
            Change::Put { removed, .. } => !removed.is_empty(),
        });
        plan.unchanged = 0;
        Ok(plan)
    }

    /// Narrows a pass to some groups, each named by Okta id, Okta name or Q name: the matching
    /// listed groups, and the snapshot entries they (or the names) own, so a rename or deletion
    /// of those groups is handled and nothing else is touched.
    fn some_groups(
        &self,
        wanted: &BTreeSet<&str>,
        groups: Vec<OktaGroup>,
        snapshot: Snapshot,
    ) -> (Vec<OktaGroup>, Snapshot) {
        let subset: Vec<OktaGroup> = groups
            .into_iter()
            .filter(|g| {
                wanted.contains(g.id.as_str())
                    || wanted.contains(g.name.as_str())
                    || matches!(self.settings.rules.scope(g), Scope::In(ref n) if wanted.contains(n.as_str()))
            })
            .collect();
        let ids: BTreeSet<&str> = subset.iter().map(|g| g.id.as_str()).collect();
        let groups = snapshot
            .groups
            .into_iter()
            .filter(|(name, g)| {
                wanted.contains(name.as_str())
                    || wanted.contains(g.okta_id.as_str())
                    || ids.contains(g.okta_id.as_str())
            })
            .collect();
        (subset, Snapshot { groups })
    }

    /// Reads every in-scope group's members. Only an error that no other request can escape
    /// (credentials, permissions) stops the pass; other failures leave that group unread.
    /// Each group is mapped to Q ids as soon as it arrives, so the raw member lists of a large
    /// org are never all in memory at once.
    async fn read_members(
        &self,
        groups: &[&OktaGroup],
        progress: &dyn Progress,
        mapper: &mut Mapper<'_>,
        tracer: Option<&Tracer>,
    ) -> Result<BTreeMap<String, GroupRead>, Error> {
        let mut reads = BTreeMap::new();
        let mut pending = groups.iter();
        let mut in_flight = FuturesUnordered::new();
        let limit = self.settings.read_concurrency.max(1);
        loop {
            while in_flight.len() < limit {
                match pending.next() {
                    Some(g) => in_flight.push(self.read_one(g)),
                    None => break,
                }
            }
            let Some((group, result)) = in_flight.next().await else {
                break;
            };
            progress.group_read();
            let read = match result {
                Ok(MemberRead::Members(members)) => {
                    let mapped = mapper.map(&members);
                    trace::step(tracer, "read", || {
                        format!(
                            "{:?}: {} Okta member(s) read, {} Q user id(s) after mapping",
                            group.name,
                            members.len(),
                            mapped.len()
                        )
                    });
                    GroupRead::Mapped {
                        members: mapped,
                        okta_members: members.len(),
                    }
                }
                Ok(gone @ MemberRead::GroupGone) => GroupRead::Read(gone),
                Err(e) if e.is_fatal() => return Err(Error::Okta(e)),
                Err(e) => {
                    warn!(okta_group = %group.id, group = %group.name, kind = e.kind().as_str(), error = %e, "group unread");
                    GroupRead::Failed {
                        kind: e.kind().as_str(),
                        message: e.to_string(),
                    }
                }
            };
            reads.insert(group.id.clone(), read);
        }
        Ok(reads)
    }

    /// Applies puts (bounded concurrency), then deletes. Before each write its intent is
    /// recorded; after it (and, for puts, its confirmation) the result is recorded at once.
    async fn apply(
        &self,
        report: &mut RunReport,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        marks: &BTreeMap<GroupName, ReadMark>,
        tracer: Option<&Tracer>,
    ) -> Result<(), Error> {
        let run = report.run_id.unwrap_or_default();
        let plan = std::mem::take(&mut report.plan);
        let stop = CancellationToken::new();
        let mut put_failed: BTreeSet<GroupName> = BTreeSet::new();
        let mut fatal: Option<Error> = None;
        // Changes not attempted because of cancellation or a fatal answer.
        let mut not_attempted = 0usize;

        let mut pending = plan.puts();
        let mut writes = FuturesUnordered::new();
        let mut confirms = FuturesUnordered::new();
        let write_limit = self.settings.write_concurrency.max(1);
        // Confirmations wait on Q's processing, not on our write slots; bound them separately.
        let confirm_limit = write_limit * 8;
        loop {
            while writes.len() < write_limit && confirms.len() < confirm_limit {
                match pending.next() {
                    Some(c) => writes.push(self.write_guarded(run, c, cancel, &stop, tracer)),
                    None => break,
                }
            }
            if writes.is_empty() && confirms.is_empty() {
                break;
            }
            tokio::select! {
                Some((change, result)) = writes.next() => match result {
                    None => {
                        not_attempted += 1;
                        put_failed.insert(change.group().clone());
                        progress.applied();
                    }
                    Some(Ok(())) => confirms.push(self.confirm_put(run, change, cancel, marks, tracer)),
                    Some(Err(e)) => {
                        progress.applied();
                        put_failed.insert(change.group().clone());
                        if let Some(err) = self.count_failed(report, change, e) {
                            stop.cancel();
                            fatal.get_or_insert(err);
                        }
                    }
                },
                Some((change, result)) = confirms.next() => {
                    progress.applied();
                    match result {
                        Ok(()) => self.count_applied(report, change),
                        Err(e) => {
                            put_failed.insert(change.group().clone());
                            if let Some(err) = self.count_failed(report, change, e) {
                                stop.cancel();
                                fatal.get_or_insert(err);
                            }
                        }
                    }
                }
            }
        }
        drop(writes);
        drop(confirms);
        drop(pending);

        // Chunks that recorded puts no longer reference (their deletion intents were recorded
        // with the put).
        for change in plan.puts() {
            let Change::Put {
                group,
                okta_id,
                stale_chunks,
                ..
            } = change
            else {
                continue;
            };
            if put_failed.contains(group) || stale_chunks.is_empty() {
                continue;
            }
            for chunk in stale_chunks {
                if cancel.is_cancelled() || stop.is_cancelled() || fatal.is_some() {
                    break;
                }
                if let Err(e) = self.delete_recorded(run, chunk, okta_id, tracer).await {
                    let failed = Change::Delete {
                        group: chunk.clone(),
                        okta_id: okta_id.clone(),
                        reason: plan::DeleteReason::StaleChunk,
                        chunks: Vec::new(),
                    };
                    if let Some(err) = self.count_failed(report, &failed, e) {
                        fatal.get_or_insert(err);
                    }
                }
            }
        }

        for change in plan.deletes() {
            if cancel.is_cancelled() || stop.is_cancelled() || fatal.is_some() {
                not_attempted += 1;
                continue;
            }
            if let Change::Delete {
                reason: plan::DeleteReason::Renamed { to },
                ..
            } = change
                && put_failed.contains(to)
            {
                // Keep the old name until the new one exists, so nobody loses access.
                progress.applied();
                continue;
            }
            let result = self.delete(run, change, tracer).await;
            progress.applied();
            match result {
                Ok(()) => self.count_applied(report, change),
                Err(e) => {
                    if let Some(err) = self.count_failed(report, change, e) {
                        fatal.get_or_insert(err);
                    }
                }
            }
        }
        report.plan = plan;
        if let Some(err) = fatal {
            return Err(err);
        }
        if not_attempted > 0 {
            return Err(Error::Cancelled {
                not_applied: not_attempted,
            });
        }
        Ok(())
    }

    async fn read_one<'a>(
        &self,
        group: &'a OktaGroup,
    ) -> (
        &'a OktaGroup,
        Result<crate::source::MemberRead, SourceError>,
    ) {
        let result = self.source.list_members(&group.id).await;
        (group, result)
    }

    /// Records the intent and sends one put, unless the pass was cancelled or stopped first.
    async fn write_guarded<'a>(
        &self,
        run: RunId,
        change: &'a Change,
        cancel: &CancellationToken,
        stop: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> (&'a Change, Option<Result<(), ApplyError>>) {
        if cancel.is_cancelled() || stop.is_cancelled() {
            return (change, None);
        }
        let Change::Put {
            group,
            okta_id,
            writes,
            ..
        } = change
        else {
            return (change, None);
        };
        // A chunked group's writes run in order (chunks before the group that lists them);
        // each is an intent first, so an interrupted sequence leaves the group unconfirmed and
        // every chunk it touched owned.
        let result = async {
            self.store
                .record_intent(run, self.clock.now(), group, okta_id, "put")
                .await
                .map_err(ApplyError::Store)?;
            for w in writes {
                if w.group != *group {
                    self.store
                        .record_intent(run, self.clock.now(), &w.group, okta_id, "put")
                        .await
                        .map_err(ApplyError::Store)?;
                }
                let sent = self
                    .sink
                    .put_group(&w.group, &w.users, &w.member_groups)
                    .await;
                trace::step(tracer, "write", || match &sent {
                    Ok(()) => format!(
                        "PutGroup {:?} ({} users, {} member groups): accepted",
                        w.group,
                        w.user_count,
                        w.member_groups.len()
                    ),
                    Err(e) => format!("PutGroup {:?}: {e}", w.group),
                });
                sent.map_err(ApplyError::Sink)?;
            }
            Ok(())
        }
        .await;
        (change, Some(result))
    }

    /// Waits until Q Business reports the put SUCCEEDED (when verification applies to this
    /// group), then records it. Anything else leaves the intent, so the next pass writes the
    /// group again.
    async fn confirm_put<'a>(
        &self,
        run: RunId,
        change: &'a Change,
        cancel: &CancellationToken,
        marks: &BTreeMap<GroupName, ReadMark>,
        tracer: Option<&Tracer>,
    ) -> (&'a Change, Result<(), ApplyError>) {
        let Change::Put {
            group,
            okta_id,
            members,
            added,
            removed,
            layout,
            writes,
            stale_chunks,
            ..
        } = change
        else {
            return (change, Ok(()));
        };
        for w in writes {
            if self.settings.verify.wanted(group) {
                let state = self.await_succeeded(&w.group, cancel).await;
                trace::step(tracer, "status", || match &state {
                    Ok(()) => format!("GetGroup {:?}: SUCCEEDED", w.group),
                    Err(ApplyError::Unconfirmed { message, .. }) => {
                        format!("GetGroup {:?}: {message}", w.group)
                    }
                    Err(ApplyError::Sink(e)) => format!("GetGroup {:?}: {e}", w.group),
                    Err(ApplyError::Store(e)) => format!("{:?}: {e}", w.group),
                });
                if let Err(e) = state {
                    return (change, Err(e));
                }
            } else {
                trace::step(tracer, "status", || {
                    format!(
                        "{:?}: not confirmed with GetGroup (qbusiness.verify)",
                        w.group
                    )
                });
            }
        }
        let at = self.clock.now();
        let chunks_written: Vec<GroupName> = writes
            .iter()
            .filter(|w| w.group != *group)
            .map(|w| w.group.clone())
            .collect();
        let put = AppliedPut {
            group,
            okta_id,
            members,
            added,
            removed,
            read: marks.get(group).copied(),
            layout: *layout,
            chunks_written: &chunks_written,
            chunks_stale: stale_chunks,
        };
        if let Err(e) = self.store.record_put(run, at, &put).await {
            return (change, Err(ApplyError::Store(e)));
        }
        trace::step(tracer, "record", || {
            format!(
                "{group:?} recorded in the snapshot: {} members, read mark {}",
                members.len(),
                put.read
                    .map_or_else(|| "none".to_owned(), |r| r.source_updated.to_rfc3339())
            )
        });
        info!(group = %group, op = "put", members = members.len(), added = added.len(),
            removed = removed.len(), "group written");
        (change, Ok(()))
    }

    /// Polls GetGroup with backoff until SUCCEEDED, FAILED or the timeout.
    async fn await_succeeded(
        &self,
        group: &GroupName,
        cancel: &CancellationToken,
    ) -> Result<(), ApplyError> {
        let verify = &self.settings.verify;
        let started = Instant::now();
        let mut delay = verify.first_poll;
        let mut last_error = None;
        loop {
            match self.sink.group_state(group).await {
                Ok(GroupState::Succeeded) => return Ok(()),
                Ok(GroupState::Failed { code, message }) => {
                    return Err(ApplyError::Unconfirmed {
                        kind: "async_failed",
                        message: format!("Q Business reports the put FAILED ({code}): {message}"),
                    });
                }
                Ok(GroupState::Missing | GroupState::Deleted | GroupState::Deleting) => {
                    return Err(ApplyError::Unconfirmed {
                        kind: "unverified",
                        message: "Q Business does not know the group after the put".to_owned(),
                    });
                }
                Ok(GroupState::Processing) => {}
                Err(e) if e.kind.is_fatal() => return Err(ApplyError::Sink(e)),
                Err(e) => last_error = Some(e),
            }
            if started.elapsed() + delay > verify.timeout {
                let detail =
                    last_error.map_or_else(|| "still PROCESSING".to_owned(), |e| e.to_string());
                return Err(ApplyError::Unconfirmed {
                    kind: "unverified",
                    message: format!(
                        "not confirmed within {:?} ({detail}); written again next pass",
                        verify.timeout
                    ),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => {
                    return Err(ApplyError::Unconfirmed {
                        kind: "unverified",
                        message: "shutdown before Q Business confirmed the put; written again next pass".to_owned(),
                    });
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Records the intents, deletes one group (then its chunk sub-groups) and records each
    /// deletion.
    async fn delete(
        &self,
        run: RunId,
        change: &Change,
        tracer: Option<&Tracer>,
    ) -> Result<(), ApplyError> {
        let Change::Delete {
            group,
            okta_id,
            chunks,
            ..
        } = change
        else {
            return Ok(());
        };
        for name in chunks.iter().chain([group]) {
            self.store
                .record_intent(run, self.clock.now(), name, okta_id, "delete")
                .await
                .map_err(ApplyError::Store)?;
        }
        self.delete_recorded(run, group, okta_id, tracer).await?;
        for chunk in chunks {
            self.delete_recorded(run, chunk, okta_id, tracer).await?;
        }
        Ok(())
    }

    /// Deletes a group whose intent is recorded, then records the deletion.
    async fn delete_recorded(
        &self,
        run: RunId,
        group: &GroupName,
        okta_id: &OktaGroupId,
        tracer: Option<&Tracer>,
    ) -> Result<(), ApplyError> {
        let outcome = self.sink.delete_group(group).await;
        trace::step(tracer, "delete", || match &outcome {
            Ok(DeleteOutcome::Deleted) => format!("DeleteGroup {group:?}: deleted"),
            Ok(DeleteOutcome::AlreadyGone) => format!("DeleteGroup {group:?}: already gone"),
            Err(e) => format!("DeleteGroup {group:?}: {e}"),
        });
        let outcome = outcome.map_err(ApplyError::Sink)?;
        self.store
            .record_delete(run, self.clock.now(), group, okta_id)
            .await
            .map_err(ApplyError::Store)?;
        info!(group = %group, op = "delete", already_gone = outcome == DeleteOutcome::AlreadyGone, "group deleted");
        Ok(())
    }

    fn count_applied(&self, report: &mut RunReport, change: &Change) {
        match change {
            Change::Put { added, removed, .. } => {
                report.puts_applied += 1;
                report.users_added += added.len();
                report.users_removed += removed.len();
                metrics::group_write("put", "ok", added.len(), removed.len());
            }
            Change::Delete { .. } => {
                report.deletes_applied += 1;
                metrics::group_write("delete", "ok", 0, 0);
            }
        }
    }

    /// Records a failed change; returns the error that must stop the pass, if it is one.
    fn count_failed(
        &self,
        report: &mut RunReport,
        change: &Change,
        err: ApplyError,
    ) -> Option<Error> {
        let (kind, message, fatal) = match err {
            ApplyError::Sink(e) => {
                warn!(group = %change.group(), op = change.op(), kind = e.kind.as_str(), error = %e, "write failed");
                let fatal = e.kind.is_fatal().then(|| Error::QBusiness(e.clone()));
                (e.kind.as_str(), e.to_string(), fatal)
            }
            ApplyError::Unconfirmed { kind, message } => {
                warn!(group = %change.group(), op = change.op(), kind, error = %message, "write not confirmed");
                (kind, message, None)
            }
            ApplyError::Store(e) => {
                warn!(group = %change.group(), op = change.op(), error = %e,
                    "written to Q Business but not recorded; the next pass repeats it");
                ("snapshot", error_chain(&e), Some(Error::Store(e)))
            }
        };
        metrics::group_write(change.op(), kind, 0, 0);
        report.failures.push(Failure {
            group: change.group().to_string(),
            op: change.op().to_owned(),
            kind: kind.to_owned(),
            message,
        });
        fatal
    }
}

enum ApplyError {
    Sink(SinkError),
    Store(StoreError),
    /// Accepted by Q Business but not confirmed SUCCEEDED (FAILED, timeout, shutdown).
    Unconfirmed {
        kind: &'static str,
        message: String,
    },
}

/// How an event-driven pass names its groups in reports and the run log (the first ten ids).
fn changed_groups_label(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut label = format!(
        "{} group(s) changed in Okta: {}",
        ids.len(),
        ids.iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if ids.len() > SHOWN {
        label.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    label
}

/// The diff step of a one-group trace.
fn trace_plan(tracer: Option<&Tracer>, plan: &Plan) {
    for change in &plan.changes {
        trace::step(tracer, "diff", || match change {
            Change::Put {
                group,
                member_count,
                added,
                removed,
                reason,
                layout,
                writes,
                stale_chunks,
                ..
            } => format!(
                "put {group:?} ({reason:?}): {member_count} members, +{} -{} against the snapshot; {}; {} write(s){}",
                added.len(),
                removed.len(),
                match layout {
                    plan::Layout::Inline => "inline".to_owned(),
                    plan::Layout::Chunked { chunks } => format!("in {chunks} chunk sub-groups"),
                },
                writes.len(),
                if stale_chunks.is_empty() {
                    String::new()
                } else {
                    format!(", then {} stale chunk(s) deleted", stale_chunks.len())
                }
            ),
            Change::Delete {
                group,
                reason,
                chunks,
                ..
            } => {
                format!(
                    "delete {group:?} ({reason:?}) and {} chunk(s)",
                    chunks.len()
                )
            }
        });
    }
    if plan.changes.is_empty() && plan.unchanged > 0 {
        trace::step(tracer, "diff", || {
            "Q Business already matches Okta (per the snapshot): nothing to write".to_owned()
        });
    }
    for issue in &plan.issues {
        trace::step(tracer, "diff", || {
            format!(
                "not synced: {} [{}]: {}",
                issue.group, issue.kind, issue.detail
            )
        });
    }
    if let Some(reason) = &plan.withheld_reason {
        trace::step(tracer, "diff", || format!("deletions withheld: {reason}"));
    }
    if let Some(held) = &plan.held {
        trace::step(tracer, "diff", || {
            format!(
                "held for approval as plan {}: {}",
                held.id,
                held.reasons.join("; ")
            )
        });
    }
}

/// `outer: inner: innermost`, the whole cause chain on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;
