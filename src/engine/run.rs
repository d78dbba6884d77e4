//! The start and the end of a pass around its steps: the report and the snapshot it starts
//! from, the run log entry, the span its logs carry, and a failure turned into the report.

use tracing::{Instrument, info, info_span, warn};

use super::context::Pass;
use super::{Engine, Error};
use crate::error::error_chain;
use crate::plan::Snapshot;
use crate::report::{Mode, Outcome, PassRequest, RunReport, changed_groups_label};
use crate::sink::GroupSink;
use crate::source::DirectorySource;
use crate::store::{RunRecord, RunStart, Store};

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Starts a pass: its report, the snapshot, and for a pass that writes its run log entry.
    /// `Err` is the report of a pass that could not start.
    pub(super) async fn begin(
        &self,
        request: &PassRequest,
    ) -> Result<(RunReport, Snapshot), RunReport> {
        let mut report = RunReport::new(request.mode, self.clock.now());
        report.pass_id = request.pass_id.clone();
        report.group = request.group.clone().or_else(|| {
            (!request.groups.is_empty()).then(|| changed_groups_label(&request.groups))
        });
        let snapshot = match self.store.load().await {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(self.failed(report, Error::Store(e))),
        };
        if request.mode == Mode::Apply {
            let start = RunStart {
                pass_id: request.pass_id.clone().unwrap_or_default(),
                trigger: request.trigger.as_str().to_owned(),
                group: report.group.clone(),
            };
            match self.store.begin_run(report.started_at, &start).await {
                Ok(id) => report.run_id = Some(id),
                Err(e) => return Err(self.failed(report, Error::Store(e))),
            }
        }
        if report.pass_id.is_none() {
            report.pass_id = Some(
                report
                    .run_id
                    .map_or_else(|| "plan".to_owned(), |id| id.to_string()),
            );
        }
        Ok((report, snapshot))
    }

    /// Runs the steps of `pass` in its span, then closes it: the error (if any) and the trace
    /// into the report, the run log entry, one log line.
    pub(super) async fn run(&self, pass: &mut Pass<'_>, snapshot: Snapshot) {
        let pass_id = pass.report.pass_id.clone().unwrap_or_default();
        let span = info_span!("pass", pass_id = %pass_id, mode = ?pass.request.mode, trigger = pass.request.trigger.as_str());
        match self.pass(pass, snapshot).instrument(span.clone()).await {
            Err(e) => {
                pass.trace("error", || format!("pass stopped: {}", error_chain(&e)));
                span.in_scope(|| self.fail(&mut pass.report, e));
            }
            Ok(()) => pass.report.finished_at = self.clock.now(),
        }
        let report = &mut pass.report;
        report.trace = pass.tracer.take().map(|t| t.finish());
        if let Some(run) = report.run_id
            && let Err(e) = self
                .store
                .finish_run(run, report.finished_at, &run_record(report))
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
    }

    fn failed(&self, mut report: RunReport, err: Error) -> RunReport {
        self.fail(&mut report, err);
        report
    }

    /// Marks the pass failed with `err`, as of now.
    fn fail(&self, report: &mut RunReport, err: Error) {
        report.outcome = Outcome::Failed;
        report.error_kind = Some(err.kind());
        report.fix = err.fix();
        report.error = Some(error_chain(&err));
        report.finished_at = self.clock.now();
        warn!(kind = err.kind(), error = %report.error.as_deref().unwrap_or_default(), "pass failed");
    }
}

/// How a pass that ran to its end went: held, or with failures, or not.
pub(super) fn outcome_of(report: &RunReport) -> Outcome {
    if report.plan.held.is_some() {
        Outcome::Held
    } else if report.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
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
