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
    AppliedPut, HoldStatus, RunId, RunRecord, RunStart, Store, StoreError, UsersMode, UsersWrite,
};
use crate::trace::{self, Tracer};
use sha2::{Digest, Sha256};

mod apply;
mod approve;
mod error;
mod ownership;
mod pipeline;
mod read;
mod scope;
mod summary;
mod traces;

pub use crate::error::error_chain;
use crate::report::changed_groups_label;
pub use crate::report::{
    Failure, Mode, Outcome, PassRequest, RunReport, Trigger, UserCheck, UserCheckHow,
};
pub use error::Error;
use pipeline::EarlyOutcome;
use traces::trace_plan;

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
    /// One write that went while groups were still being read finished (applied or failed).
    fn written_early(&self) {}
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
    /// Q groups made outside q-group-sync that it may write over (`groups.take_over`).
    pub take_over: plan::ownership::TakeOver,
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
    /// After a shutdown (the pass's token cancelled), how long puts already sent are still
    /// confirmed and recorded; one not confirmed by then is written again by the next pass.
    pub after_shutdown: Duration,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            mode: VerifyMode::Always,
            sample_percent: 10,
            timeout: Duration::from_secs(300),
            first_poll: Duration::from_millis(200),
            after_shutdown: Duration::ZERO,
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

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
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

    /// The Q Business client (`explain` asks it CheckDocumentAccess).
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Scope and user mapping rules (`groups.*`, `users.*`).
    pub fn rules(&self) -> &crate::plan::Rules {
        &self.settings.rules
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
                    trigger: request.trigger.as_str().to_owned(),
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
        let span = info_span!("pass", pass_id = %pass_id, mode = ?request.mode, trigger = request.trigger.as_str());
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
                .finish_run(run, report.finished_at, &run_record(&report))
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
        let groups = tokio::select! {
            groups = self.source.list_groups() => groups?,
            _ = cancel.cancelled() => return Err(Error::Interrupted),
        };
        let managed = Managed::of(&snapshot);
        // Every name q-group-sync owns, before a limited pass narrows the snapshot.
        let mut owned = plan::ownership::owned(&snapshot);
        let (groups, snapshot) = self.narrow(request, groups, snapshot, tracer)?;
        let (full, stale) = self
            .read_scope(request, &groups, &snapshot, report, cancel, tracer)
            .await?;
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
            mapper.read_against(&snapshot);
        }
        // The puts no safety rule can hold go while the other groups are read. Their
        // candidates are known from the listing, before the first member read, so their
        // first-contact check runs now, before any write: only names q-group-sync owns or Q
        // Business does not have may go early (the others wait for the plan's own check).
        let early = (mode == Mode::Apply && request.approve.is_none())
            .then(|| {
                plan::early::EarlyWrites::from_listing(
                    &groups,
                    &self.settings.rules,
                    &snapshot,
                    &to_read,
                )
            })
            .filter(|early| !early.is_empty());
        let mut writable = owned.clone();
        let early = match early {
            Some(mut writes) => {
                let unowned: BTreeSet<GroupName> = writes
                    .names()
                    .filter(|name| !owned.contains(*name))
                    .cloned()
                    .collect();
                if !unowned.is_empty() {
                    let found = tokio::select! {
                        found = self.existing_in_q(unowned) => found,
                        _ = cancel.cancelled() => return Err(Error::Interrupted),
                    };
                    writable.extend(found.absent);
                    writes.retain(|name| writable.contains(name));
                }
                (!writes.is_empty()).then_some(writes)
            }
            None => None,
        };
        let (reads, early) = match &early {
            Some(writes) => {
                self.read_pipelined(
                    &to_read,
                    writes,
                    &writable,
                    &snapshot,
                    report,
                    progress,
                    &mut mapper,
                    cancel,
                    tracer,
                )
                .await
            }
            // Reading can take minutes on a large org; a shutdown does not wait for it.
            None => {
                let reads = tokio::select! {
                    reads = self.read_members(&to_read, progress, &mut mapper, tracer, None) => reads,
                    _ = cancel.cancelled() => Err(Error::Interrupted),
                };
                (reads, EarlyOutcome::default())
            }
        };
        if let Some(err) = early.fatal {
            return Err(err);
        }
        // What the early writer wrote is q-group-sync's now (its intents are recorded).
        owned.extend(early.written.iter().cloned());
        let mut reads = reads?;
        if !early.sent.is_empty() {
            info!(
                written = early.sent.len() - early.failed.len(),
                failed = early.failed.len(),
                "puts written while reading"
            );
        }
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
        let marks = plan::reads::marks(
            &to_read,
            |id| matches!(reads.get(id), Some(GroupRead::Mapped { .. })),
            &self.settings.rules,
            report.started_at,
        );
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
        // First contact: no group Q Business already has and q-group-sync did not create is
        // written, whatever the plan says; asked once, before any write.
        let plan = match &request.approve {
            Some(id) => {
                let approved = self.approved(id, plan).await?;
                self.first_contact(approved, &owned, cancel, tracer).await?
            }
            None => safety::guard(
                self.first_contact(plan, &owned, cancel, tracer).await?,
                managed,
                !request.limited(),
                &self.settings.safety,
                &snapshot,
                &self.settings.policy,
            ),
        };
        metrics::phase("plan", plan_timer.elapsed());
        progress.planned(
            plan.changes
                .iter()
                .filter(|c| !early.sent.contains(c.group()))
                .count(),
        );
        let plan = self.summarise(request, report, plan, desired.unread, tracer);
        report.plan = plan;
        if mode == Mode::Plan {
            report.outcome = self.outcome_of(report);
            return Ok(());
        }
        self.write(
            request, report, &snapshot, &desired, marks, full, &early, progress, cancel, tracer,
        )
        .await
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
}

/// The run-log summary of a report.
fn run_record(report: &RunReport) -> RunRecord {
    RunRecord {
        outcome: report.outcome.as_str().to_owned(),
        groups_in_scope: report.groups_in_scope,
        puts: report.puts_applied,
        deletes: report.deletes_applied,
        failed: report.failures.len(),
        unchanged: report.plan.unchanged,
        users_added: report.users_added,
        users_removed: report.users_removed,
        error: report.error.clone(),
    }
}

#[cfg(test)]
mod tests;
