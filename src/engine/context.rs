//! The context of one pass: what it was asked, the settings it runs with, where its progress
//! and trace go, what cancels it, and the report it builds. Every step of a pass takes it.

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{EngineSettings, Error, Progress};
use crate::report::{Mode, PassRequest, RunReport};
use crate::store::RunId;
use crate::trace::{self, Tracer};

/// One pass under way.
pub(super) struct Pass<'p> {
    pub(super) request: &'p PassRequest,
    pub(super) settings: &'p EngineSettings,
    pub(super) progress: &'p dyn Progress,
    /// Cancelled on shutdown (or lost leadership): the pass stops between writes.
    pub(super) cancel: &'p CancellationToken,
    /// The step-by-step account of a one-group pass.
    pub(super) tracer: Option<Tracer>,
    /// What the pass did so far; steps that run beside each other (the early writer) count
    /// into a [`super::write::Tally`] added to it when they are done.
    pub(super) report: RunReport,
}

impl<'p> Pass<'p> {
    pub(super) fn new(
        request: &'p PassRequest,
        settings: &'p EngineSettings,
        progress: &'p dyn Progress,
        cancel: &'p CancellationToken,
        report: RunReport,
    ) -> Pass<'p> {
        Pass {
            request,
            settings,
            progress,
            cancel,
            tracer: request.group.is_some().then(Tracer::default),
            report,
        }
    }

    /// Whether this pass writes ([`Mode::Apply`]); a dry run writes nothing anywhere.
    pub(super) fn writes(&self) -> bool {
        self.request.mode == Mode::Apply
    }

    pub(super) fn started_at(&self) -> DateTime<Utc> {
        self.report.started_at
    }

    /// The run log entry writes are recorded under (0 for a dry run, which records nothing).
    pub(super) fn run_id(&self) -> RunId {
        self.report.run_id.unwrap_or_default()
    }

    /// Records a trace step when this is a one-group pass; `detail` is not evaluated otherwise.
    pub(super) fn trace(&self, step: &'static str, detail: impl FnOnce() -> String) {
        trace::step(self.tracer.as_ref(), step, detail);
    }

    /// Whether trace steps are recorded (a one-group pass).
    pub(super) fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// Runs `work` unless the pass is cancelled first: reads can take minutes on a large org,
    /// and a shutdown does not wait for them.
    pub(super) async fn unless_cancelled<T>(
        &self,
        work: impl Future<Output = T>,
    ) -> Result<T, Error> {
        tokio::select! {
            out = work => Ok(out),
            _ = self.cancel.cancelled() => Err(Error::Interrupted),
        }
    }
}
