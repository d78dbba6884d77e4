//! The pipelined read: each group read in full whose put may go early ([`plan::early`]) waits
//! in a bounded queue for a writer that applies it while other groups are still read. The
//! queue is the backpressure: when the writer is paced, the reader waits for room.
//!
//! Everything else about a write stays as in [`super::apply`]: the intent before the put,
//! GetGroup until SUCCEEDED, the record after the confirmation, one transaction per group.

use tokio::sync::mpsc;

use super::apply::ApplyError;
use super::*;
use crate::plan::early::EarlyWrites;
use crate::store::UsersWrite;

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
    pub writes: &'a EarlyWrites,
    /// The Q names an early put may write: owned, or checked absent in Q Business (a chunk
    /// sub-group of a new large group is not, so that group waits for the plan's check).
    pub writable: &'a BTreeSet<GroupName>,
    pub snapshot: &'a Snapshot,
    pub started_at: DateTime<Utc>,
    pub tx: mpsc::Sender<EarlyPut>,
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
        let Some(change) = self.writes.put(
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
        if !writes.iter().all(|w| self.writable.contains(&w.group)) {
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
}

/// Puts waiting for the writer at most, per write slot.
const QUEUE_PER_WRITE_SLOT: usize = 4;

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Reads `to_read` while the puts that may go early are written. Returns the reads (or why
    /// reading stopped) and what the writer did; counts and failures of the early writes are
    /// in `report`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn read_pipelined(
        &self,
        to_read: &[&OktaGroup],
        early: &EarlyWrites,
        writable: &BTreeSet<GroupName>,
        snapshot: &Snapshot,
        report: &mut RunReport,
        progress: &dyn Progress,
        mapper: &mut Mapper<'_>,
        cancel: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> (Result<BTreeMap<String, GroupRead>, Error>, EarlyOutcome) {
        let capacity = self.settings.write_concurrency.max(1) * QUEUE_PER_WRITE_SLOT;
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        let feed = EarlyFeed {
            writes: early,
            writable,
            snapshot,
            started_at: report.started_at,
            tx,
        };
        let reader = async {
            let feed = feed;
            // Reading can take minutes on a large org; a shutdown does not wait for it.
            let reads = tokio::select! {
                reads = self.read_members(to_read, progress, mapper, tracer, Some(&feed)) => reads,
                _ = cancel.cancelled() => Err(Error::Interrupted),
                _ = stop.cancelled() => Err(Error::Interrupted),
            };
            // A read that stops the pass (credentials, permissions) stops new writes too; the
            // puts already sent are still confirmed and recorded.
            if reads.is_err() {
                stop.cancel();
            }
            reads
        };
        let writer = self.write_early(rx, report, progress, cancel, &stop, tracer);
        tokio::join!(reader, writer)
    }

    /// Applies the puts that arrive on `rx` until the reader is done (or the pass stops), with
    /// the apply step's bounds on writes and confirmations in flight.
    async fn write_early(
        &self,
        mut rx: mpsc::Receiver<EarlyPut>,
        report: &mut RunReport,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        stop: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> EarlyOutcome {
        let run = report.run_id.unwrap_or_default();
        let mut out = EarlyOutcome::default();
        let mut open = true;
        let mut writes = FuturesUnordered::new();
        let mut confirms = FuturesUnordered::new();
        let write_limit = self.settings.write_concurrency.max(1);
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
                            let result = self.write_guarded(run, &change, cancel, stop, tracer).await.1;
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
                        let result = self.confirm_put(run, &change, cancel, &marks, tracer).await.1;
                        (change, result)
                    }),
                    Some(Err(e)) => {
                        progress.written_early();
                        out.failed.insert(change.group().clone());
                        if let Some(err) = self.count_failed(report, &change, e) {
                            stop.cancel();
                            out.fatal.get_or_insert(err);
                        }
                    }
                },
                Some((change, result)) = confirms.next() => {
                    progress.written_early();
                    match result {
                        Ok(()) => self.count_applied(report, &change),
                        Err(e) => {
                            out.failed.insert(change.group().clone());
                            if let Some(err) = self.count_failed(report, &change, e) {
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
