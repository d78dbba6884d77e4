//! The pipelined read: each group read in full whose put may go early ([`plan::early`]) waits
//! in a bounded queue for a writer that applies it while other groups are still read. The
//! queue is the backpressure: when the writer is paced, the reader waits for room.
//!
//! Everything else about a write stays as in [`super::apply`]: the intent before the put,
//! GetGroup until SUCCEEDED, the record after the confirmation, one transaction per group.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::Pass;
use super::write::{ApplyError, Tally};
use super::{Engine, EngineSettings, Error};
use crate::model::GroupName;
use crate::plan::early::EarlyWrites;
use crate::plan::select::{GroupRead, Mapper};
use crate::plan::{self, Change, ReadMark, Snapshot};
use crate::sink::GroupSink;
use crate::source::{DirectorySource, OktaGroup};
use crate::store::{Store, UsersWrite};

/// The puts that may go early, and the names they may write.
pub(super) struct EarlyPlan {
    writes: EarlyWrites,
    /// The Q names an early put may write: owned, or checked absent in Q Business (a chunk
    /// sub-group of a new large group is not, so that group waits for the plan's check).
    writable: BTreeSet<GroupName>,
}

/// A read group's put on its way to the early writer.
pub(super) struct EarlyPut {
    change: Change,
    /// The read mark recorded with the put.
    mark: Option<ReadMark>,
    /// The group has a read mark in the snapshot: cleared before the write, so a write that
    /// is not recorded leaves it to be read again.
    invalidate: bool,
}

/// The reader's end of the queue.
pub(super) struct EarlyFeed<'a> {
    plan: &'a EarlyPlan,
    snapshot: &'a Snapshot,
    started_at: DateTime<Utc>,
    tx: mpsc::Sender<EarlyPut>,
}

impl EarlyFeed<'_> {
    /// Hands `group`'s put to the writer when it may go early. Waits while the queue is full.
    pub(super) async fn offer(
        &self,
        settings: &EngineSettings,
        group: &OktaGroup,
        read: &GroupRead,
    ) {
        let GroupRead::Mapped {
            members,
            okta_members,
        } = read
        else {
            return;
        };
        let Some(change) = self.plan.writes.put(
            &group.id,
            &group.name,
            members,
            *okta_members,
            &settings.policy,
        ) else {
            return;
        };
        let Change::Put { writes, .. } = &change else {
            return;
        };
        if !writes.iter().all(|w| self.plan.writable.contains(&w.group)) {
            return;
        }
        let mark = plan::reads::marks(&[group], |_| true, &settings.rules, self.started_at)
            .into_values()
            .next();
        let invalidate = self
            .snapshot
            .groups
            .get(change.group())
            .is_some_and(|g| g.read.is_some());
        // An error means the writer stopped (shutdown, a fatal answer): the put is not sent,
        // and the pass ends without the apply step.
        let _ = self
            .tx
            .send(EarlyPut {
                change,
                mark,
                invalidate,
            })
            .await;
    }
}

/// What the early writer did.
#[derive(Default)]
pub(super) struct EarlyOutcome {
    /// Groups the writer took (applied, failed or not attempted): the apply step skips them.
    pub sent: BTreeSet<GroupName>,
    /// Those whose put was not confirmed and recorded.
    pub failed: BTreeSet<GroupName>,
    /// Every Q name the writer took a put for (groups and their chunk sub-groups).
    pub written: BTreeSet<GroupName>,
    /// An answer that must stop the pass.
    pub fatal: Option<Error>,
    /// The writer's counts and failures, added to the pass's report once reading is done.
    pub tally: Tally,
}

/// Puts waiting for the writer at most, per write slot.
const QUEUE_PER_WRITE_SLOT: usize = 4;

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// The early writes step: the puts no safety rule can hold go while the other groups are
    /// read. Their candidates are known from the listing, before the first member read, so
    /// their first-contact check runs now, before any write: only names q-group-sync owns
    /// (`owned`) or Q Business does not have may go early; the others wait for the plan's own
    /// check. `None` when nothing may go early (a dry run, an approval).
    pub(super) async fn early_writes(
        &self,
        pass: &Pass<'_>,
        groups: &[OktaGroup],
        snapshot: &Snapshot,
        to_read: &[&OktaGroup],
        owned: &BTreeSet<GroupName>,
    ) -> Result<Option<EarlyPlan>, Error> {
        if !pass.writes() || pass.request.approve.is_some() {
            return Ok(None);
        }
        let mut writes = EarlyWrites::from_listing(groups, &pass.settings.rules, snapshot, to_read);
        if writes.is_empty() {
            return Ok(None);
        }
        let mut writable = owned.clone();
        let unowned: BTreeSet<GroupName> = writes
            .names()
            .filter(|name| !owned.contains(*name))
            .cloned()
            .collect();
        if !unowned.is_empty() {
            let found = pass
                .unless_cancelled(self.existing_in_q(unowned))
                .await?
                .map_err(Error::QBusiness)?;
            writable.extend(found.absent);
            writes.retain(|name| writable.contains(name));
        }
        Ok((!writes.is_empty()).then_some(EarlyPlan { writes, writable }))
    }

    /// Reads `to_read` while the puts that may go early are written. Returns the reads (or why
    /// reading stopped) and what the writer did, its counts and failures included.
    pub(super) async fn read_pipelined(
        &self,
        pass: &Pass<'_>,
        to_read: &[&OktaGroup],
        plan: &EarlyPlan,
        snapshot: &Snapshot,
        mapper: &mut Mapper<'_>,
    ) -> (Result<BTreeMap<String, GroupRead>, Error>, EarlyOutcome) {
        let capacity = pass.settings.write_concurrency.max(1) * QUEUE_PER_WRITE_SLOT;
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        let feed = EarlyFeed {
            plan,
            snapshot,
            started_at: pass.started_at(),
            tx,
        };
        let reader = async {
            let feed = feed;
            // Reading can take minutes on a large org; a shutdown does not wait for it.
            let reads = tokio::select! {
                reads = self.read_members(pass, to_read, mapper, Some(&feed)) => reads,
                _ = pass.cancel.cancelled() => Err(Error::Interrupted),
                _ = stop.cancelled() => Err(Error::Interrupted),
            };
            // A read that stops the pass (credentials, permissions) stops new writes too; the
            // puts already sent are still confirmed and recorded.
            if reads.is_err() {
                stop.cancel();
            }
            reads
        };
        let writer = self.write_early(pass, rx, &stop);
        tokio::join!(reader, writer)
    }

    /// Applies the puts that arrive on `rx` until the reader is done (or the pass stops), with
    /// the apply step's bounds on writes and confirmations in flight.
    async fn write_early(
        &self,
        pass: &Pass<'_>,
        mut rx: mpsc::Receiver<EarlyPut>,
        stop: &CancellationToken,
    ) -> EarlyOutcome {
        let (cancel, progress) = (pass.cancel, pass.progress);
        let mut out = EarlyOutcome::default();
        let mut open = true;
        let mut writes = FuturesUnordered::new();
        let mut confirms = FuturesUnordered::new();
        let write_limit = pass.settings.write_concurrency.max(1);
        let confirm_limit = write_limit * 8;
        loop {
            if open && (cancel.is_cancelled() || stop.is_cancelled()) {
                // No new write starts; the puts already sent are still confirmed.
                rx.close();
                open = false;
            }
            if !open && writes.is_empty() && confirms.is_empty() {
                break;
            }
            let room = open && writes.len() < write_limit && confirms.len() < confirm_limit;
            tokio::select! {
                got = rx.recv(), if room => match got {
                    Some(put) => {
                        out.sent.insert(put.change.group().clone());
                        if let Change::Put { writes, .. } = &put.change {
                            out.written.extend(writes.iter().map(|w| w.group.clone()));
                        }
                        writes.push(async move {
                            let EarlyPut { change, mark, invalidate } = put;
                            if invalidate {
                                let cleared = self
                                    .store
                                    .record_users(UsersWrite::invalidate(std::slice::from_ref(
                                        change.group(),
                                    )))
                                    .await;
                                if let Err(e) = cleared {
                                    return (change, mark, Some(Err(ApplyError::Store(e))));
                                }
                            }
                            let result = self.write_guarded(pass, &change, stop).await.1;
                            (change, mark, result)
                        });
                    }
                    None => open = false,
                },
                Some((change, mark, result)) = writes.next() => match result {
                    None => {
                        out.failed.insert(change.group().clone());
                        progress.written_early();
                    }
                    Some(Ok(())) => confirms.push(async move {
                        let marks: BTreeMap<GroupName, ReadMark> =
                            mark.map(|m| (change.group().clone(), m)).into_iter().collect();
                        let result = self.confirm_put(pass, &change, &marks).await.1;
                        (change, result)
                    }),
                    Some(Err(e)) => {
                        progress.written_early();
                        out.failed.insert(change.group().clone());
                        if let Some(err) = out.tally.failed(&change, e) {
                            stop.cancel();
                            out.fatal.get_or_insert(err);
                        }
                    }
                },
                Some((change, result)) = confirms.next() => {
                    progress.written_early();
                    match result {
                        Ok(()) => out.tally.applied(&change),
                        Err(e) => {
                            out.failed.insert(change.group().clone());
                            if let Some(err) = out.tally.failed(&change, e) {
                                stop.cancel();
                                out.fatal.get_or_insert(err);
                            }
                        }
                    }
                }
                _ = cancel.cancelled(), if open => {}
                _ = stop.cancelled(), if open => {}
            }
        }
        out
    }
}
