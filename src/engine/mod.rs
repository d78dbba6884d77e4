//! One pass: load the snapshot, read Okta, plan, apply with bounded concurrency, commit per group.
//!
//! `plan` and `sync` run exactly this code; only [`Mode`] differs, and [`Mode::Plan`] writes
//! nothing anywhere, not even the run log.
//!
//! [`Engine::pass`] lists the steps in the order of ARCHITECTURE.md's data path; each step is a
//! function of the file that owns it, and takes the pass's context ([`context::Pass`]).
//!
//! [`Mode`]: crate::report::Mode
//! [`Mode::Plan`]: crate::report::Mode::Plan

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::metrics;
use crate::plan::safety::{self, Managed};
use crate::plan::{self, Snapshot};
use crate::report::{PassRequest, RunReport};
use crate::sink::GroupSink;
use crate::source::DirectorySource;
use crate::store::Store;

mod apply;
mod approve;
mod context;
mod error;
mod listing;
mod ownership;
mod pipeline;
mod read;
pub mod reconcile;
mod run;
mod scope;
mod services;
mod settings;
mod summary;
mod traces;
mod users;
mod write;

use context::Pass;
pub use error::Error;
pub use settings::{EngineSettings, Verify};

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

/// Runs passes over a source, a sink and a store.
pub struct Engine<S, K, T> {
    source: S,
    sink: K,
    store: T,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    /// How passes list the groups, and what the last listing found.
    listing: std::sync::Mutex<listing::ListingState>,
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
            listing: listing::new_state(),
        }
    }

    /// One pass. `cancel` stops it between writes: what succeeded so far stays recorded.
    pub async fn run_once(
        &self,
        request: &PassRequest,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> RunReport {
        let timer = Instant::now();
        metrics::pass_in_progress(true);
        let report = match self.begin(request).await {
            Ok((report, snapshot)) => {
                let mut pass = Pass::new(request, &self.settings, progress, cancel, report);
                self.run(&mut pass, snapshot).await;
                pass.report
            }
            Err(report) => report,
        };
        metrics::pass_in_progress(false);
        metrics::pass_finished(&report, timer.elapsed());
        report
    }

    /// The steps of a pass: list, narrow, select, read (with the early writes), desired, plan,
    /// first contact, guard, then apply and record. A dry run stops before apply.
    async fn pass(&self, pass: &mut Pass<'_>, snapshot: Snapshot) -> Result<(), Error> {
        let read_timer = Instant::now();
        let listed = self.list(pass).await?;
        let managed = Managed::of(&snapshot);
        // Every name q-group-sync owns, before a limited pass narrows the snapshot.
        let mut owned = plan::ownership::owned(&snapshot);
        let (groups, snapshot) = scope::narrow(pass, listed, snapshot)?;
        let selection = self.select(pass, &groups, &snapshot).await?;
        let early = self
            .early_writes(pass, &groups, &snapshot, &selection.read, &owned)
            .await?;
        let read = self
            .read(pass, selection, early.as_ref(), &snapshot)
            .await?;
        // What the early writer wrote is q-group-sync's now (its intents are recorded).
        owned.extend(read.record.early.written.iter().cloned());
        metrics::phase("okta_read", read_timer.elapsed());
        if pass.writes() {
            self.record_seen_users(pass, &read).await?;
        }

        let plan_timer = Instant::now();
        let rules = &pass.settings.rules;
        let desired = plan::select::desired_with(&groups, rules, read.groups, read.mapper);
        let plan = plan::plan(&desired, &snapshot, &pass.settings.policy);
        // First contact: no group Q Business already has and q-group-sync did not create is
        // written, whatever the plan says; asked once, before any write.
        let plan = match &pass.request.approve {
            Some(id) => {
                let approved = self.approved(id, plan).await?;
                self.first_contact(pass, approved, &owned).await?
            }
            None => safety::guard(
                self.first_contact(pass, plan, &owned).await?,
                managed,
                !pass.request.limited(),
                &pass.settings.safety,
                &snapshot,
                &pass.settings.policy,
            ),
        };
        metrics::phase("plan", plan_timer.elapsed());
        let early = &read.record.early;
        let to_apply = plan
            .changes
            .iter()
            .filter(|c| !early.sent.contains(c.group()));
        pass.progress.planned(to_apply.count());
        pass.report.plan = summary::summarise(pass, plan, desired.unread);
        if !pass.writes() {
            pass.report.outcome = run::outcome_of(&pass.report);
            return Ok(());
        }
        self.write(pass, &snapshot, &desired, read.record).await
    }
}

#[cfg(test)]
mod tests;
