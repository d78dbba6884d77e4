//! The apply and record steps of a pass that writes: the held plan, the read marks cleared
//! until each write is recorded, the puts (bounded concurrency) and then the deletes, and
//! what the pass is worth for the next one (read marks, the full read, an approval).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::context::Pass;
use super::pipeline::EarlyOutcome;
use super::read::ReadRecord;
use super::write::Tally;
use super::{Engine, Error, run};
use crate::metrics;
use crate::model::GroupName;
use crate::plan::{self, Change, Plan, ReadMark, Snapshot};
use crate::sink::GroupSink;
use crate::source::DirectorySource;
use crate::store::{HoldStatus, Store, UsersWrite};

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Applies the plan of a pass that writes and records what it is worth: the held plan, the
    /// read marks of groups whose members did not change, the completed full read, and the
    /// approval of a held plan.
    pub(super) async fn write(
        &self,
        pass: &mut Pass<'_>,
        snapshot: &Snapshot,
        desired: &plan::Desired,
        read: ReadRecord,
    ) -> Result<(), Error> {
        let ReadRecord {
            mut marks,
            full,
            early,
        } = read;
        self.record_hold(pass).await?;
        // A group whose removals are held is not in its read state after this pass: its next
        // pass must read it again, so its read is not recorded.
        if let Some(held) = &pass.report.plan.held {
            marks.retain(|name, _| !held.removals.contains_key(name));
        }
        let pending = pending_reads(&pass.report.plan, snapshot, &early);
        self.store
            .record_users(UsersWrite::invalidate(&pending))
            .await?;
        let apply_timer = Instant::now();
        let (tally, stopped) = self.apply(pass, &marks, &early).await;
        tally.add_to(&mut pass.report);
        metrics::phase("apply", apply_timer.elapsed());
        let (request, report) = (pass.request, &mut pass.report);
        // Groups read and found unchanged keep their members but get the new read mark.
        let unchanged = plan::reads::unchanged_marks(&marks, &report.plan, snapshot, desired);
        self.store.record_reads(&unchanged).await?;
        if full && !request.limited() && report.groups_unread == 0 && stopped.is_ok() {
            self.store.set_full_read_at(report.started_at).await?;
        }
        report.outcome = run::outcome_of(report);
        if let Some(id) = &request.approve
            && stopped.is_ok()
            && report.failures.is_empty()
        {
            self.store
                .resolve_holds(
                    self.clock.now(),
                    Some(id),
                    HoldStatus::Applied,
                    request.trigger.as_str(),
                )
                .await?;
            info!(plan_id = %id, "held plan approved and applied");
        }
        stopped
    }

    /// Stores the plan's held changes for approval, or (a full pass that held nothing)
    /// supersedes the open held plan.
    async fn record_hold(&self, pass: &Pass<'_>) -> Result<(), Error> {
        let now = self.clock.now();
        match (&pass.report.plan.held, &pass.request.approve) {
            (Some(held), _) => self.store.hold(now, held).await?,
            (None, None) if !pass.request.limited() => {
                self.store
                    .resolve_holds(
                        now,
                        None,
                        HoldStatus::Superseded,
                        "a later pass needed no approval",
                    )
                    .await?
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies puts (bounded concurrency), then the stale chunks they leave, then deletes.
    /// Before each write its intent is recorded; after it (and, for puts, its confirmation) the
    /// result is recorded at once. The puts written while reading (`early`) are not written
    /// again.
    async fn apply(
        &self,
        pass: &Pass<'_>,
        marks: &BTreeMap<GroupName, ReadMark>,
        early: &EarlyOutcome,
    ) -> (Tally, Result<(), Error>) {
        let mut applying = Applying {
            tally: Tally::default(),
            stop: CancellationToken::new(),
            fatal: None,
            not_attempted: 0,
            put_failed: early.failed.clone(),
        };
        self.apply_puts(pass, &mut applying, marks, early).await;
        self.delete_stale_chunks(pass, &mut applying).await;
        self.apply_deletes(pass, &mut applying).await;
        applying.finish()
    }

    /// The puts not written early, a few at a time, each confirmed before it is recorded.
    async fn apply_puts(
        &self,
        pass: &Pass<'_>,
        applying: &mut Applying,
        marks: &BTreeMap<GroupName, ReadMark>,
        early: &EarlyOutcome,
    ) {
        let plan = &pass.report.plan;
        let mut pending = plan.puts().filter(|c| !early.sent.contains(c.group()));
        let mut writes = FuturesUnordered::new();
        let mut confirms = FuturesUnordered::new();
        let write_limit = pass.settings.write_concurrency.max(1);
        // Confirmations wait on Q's processing, not on our write slots; bound them separately.
        let confirm_limit = write_limit * 8;
        let stop = &applying.stop;
        loop {
            while writes.len() < write_limit && confirms.len() < confirm_limit {
                match pending.next() {
                    Some(c) => writes.push(self.write_guarded(pass, c, stop)),
                    None => break,
                }
            }
            if writes.is_empty() && confirms.is_empty() {
                break;
            }
            tokio::select! {
                Some((change, result)) = writes.next() => match result {
                    None => {
                        applying.not_attempted += 1;
                        applying.put_failed.insert(change.group().clone());
                        pass.progress.applied();
                    }
                    Some(Ok(())) => confirms.push(self.confirm_put(pass, change, marks)),
                    Some(Err(e)) => {
                        pass.progress.applied();
                        applying.put_failed.insert(change.group().clone());
                        if let Some(err) = applying.tally.failed(change, e) {
                            stop.cancel();
                            applying.fatal.get_or_insert(err);
                        }
                    }
                },
                Some((change, result)) = confirms.next() => {
                    pass.progress.applied();
                    match result {
                        Ok(()) => applying.tally.applied(change),
                        Err(e) => {
                            applying.put_failed.insert(change.group().clone());
                            if let Some(err) = applying.tally.failed(change, e) {
                                stop.cancel();
                                applying.fatal.get_or_insert(err);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Chunks that recorded puts no longer reference (their deletion intents were recorded
    /// with the put).
    async fn delete_stale_chunks(&self, pass: &Pass<'_>, applying: &mut Applying) {
        for change in pass.report.plan.puts() {
            let Change::Put {
                group,
                okta_id,
                stale_chunks,
                ..
            } = change
            else {
                continue;
            };
            if applying.put_failed.contains(group) || stale_chunks.is_empty() {
                continue;
            }
            for chunk in stale_chunks {
                if applying.stopped(pass) {
                    break;
                }
                if let Err(e) = self.delete_recorded(pass, chunk, okta_id).await {
                    let failed = Change::Delete {
                        group: chunk.clone(),
                        okta_id: okta_id.clone(),
                        reason: plan::DeleteReason::StaleChunk,
                        chunks: Vec::new(),
                    };
                    if let Some(err) = applying.tally.failed(&failed, e) {
                        applying.fatal.get_or_insert(err);
                    }
                }
            }
        }
    }

    /// The deletes, one at a time, after every put.
    async fn apply_deletes(&self, pass: &Pass<'_>, applying: &mut Applying) {
        for change in pass.report.plan.deletes() {
            if applying.stopped(pass) {
                applying.not_attempted += 1;
                continue;
            }
            if let Change::Delete {
                reason: plan::DeleteReason::Renamed { to },
                ..
            } = change
                && applying.put_failed.contains(to)
            {
                // Keep the old name until the new one exists, so nobody loses access.
                pass.progress.applied();
                continue;
            }
            let result = self.delete(pass, change).await;
            pass.progress.applied();
            match result {
                Ok(()) => applying.tally.applied(change),
                Err(e) => {
                    if let Some(err) = applying.tally.failed(change, e) {
                        applying.fatal.get_or_insert(err);
                    }
                }
            }
        }
    }
}

/// The apply step under way.
struct Applying {
    tally: Tally,
    /// Cancelled by a fatal answer: no new write starts.
    stop: CancellationToken,
    /// The answer that stops the pass, if one came.
    fatal: Option<Error>,
    /// Changes not attempted because of cancellation or a fatal answer.
    not_attempted: usize,
    /// Groups whose put failed (early ones included): their renames keep the old name.
    put_failed: BTreeSet<GroupName>,
}

impl Applying {
    /// Whether no further write may start: the pass was cancelled or a write answered fatally.
    fn stopped(&self, pass: &Pass<'_>) -> bool {
        pass.cancel.is_cancelled() || self.stop.is_cancelled() || self.fatal.is_some()
    }

    /// The counts, and the error that stopped the step (a fatal answer, or the changes
    /// cancellation left unapplied).
    fn finish(self) -> (Tally, Result<(), Error>) {
        let stopped = match self.fatal {
            Some(err) => Err(err),
            None if self.not_attempted > 0 => Err(Error::Cancelled {
                not_applied: self.not_attempted,
            }),
            None => Ok(()),
        };
        (self.tally, stopped)
    }
}

/// The groups whose read marks are cleared before the writes. Until its write is recorded, a
/// group with a change is read again by every pass: a failed, unconfirmed, interrupted or held
/// write must not leave it looking current (a change from a user's status or id does not move
/// its lastMembershipUpdated).
fn pending_reads(plan: &Plan, snapshot: &Snapshot, early: &EarlyOutcome) -> Vec<GroupName> {
    plan.changes
        .iter()
        .filter(|c| matches!(c, Change::Put { .. }))
        .map(|c| c.group().clone())
        .chain(plan.held.iter().flat_map(|h| h.removals.keys().cloned()))
        .chain(plan.issues.iter().map(|i| GroupName::new(&i.group)))
        .filter(|name| snapshot.groups.get(name).is_some_and(|g| g.read.is_some()))
        // Written while reading: cleared before their write, and recorded since.
        .filter(|name| !early.sent.contains(name))
        .collect()
}
