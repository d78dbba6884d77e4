//! One group's write, from intent to record: the intent, PutGroup (each chunk first) or
//! DeleteGroup, GetGroup until SUCCEEDED, then the record, one transaction per group. The apply
//! step and the early writer both write through here, and count what they did in a [`Tally`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::Pass;
use super::{Engine, Error};
use crate::error::error_chain;
use crate::metrics;
use crate::model::{GroupName, OktaGroupId};
use crate::plan::{Change, ReadMark};
use crate::report::{Failure, RunReport};
use crate::sink::{DeleteOutcome, GroupSink, GroupState, SinkError};
use crate::source::DirectorySource;
use crate::store::{AppliedPut, IntentOp, Store, StoreError};

/// Why one group's write did not end recorded.
pub(super) enum ApplyError {
    Sink(SinkError),
    Store(StoreError),
    /// Accepted by Q Business but not confirmed SUCCEEDED (FAILED, timeout, shutdown).
    Unconfirmed {
        kind: &'static str,
        message: String,
    },
}

/// What the writes of one step did, counted as they finish and added to the report when the
/// step is done (the early writer counts while the reads go on beside it).
#[derive(Debug, Default)]
pub(super) struct Tally {
    puts_applied: usize,
    deletes_applied: usize,
    users_added: usize,
    users_removed: usize,
    failures: Vec<Failure>,
}

impl Tally {
    /// Counts a change applied (and confirmed) and recorded.
    pub(super) fn applied(&mut self, change: &Change) {
        match change {
            Change::Put { added, removed, .. } => {
                self.puts_applied += 1;
                self.users_added += added.len();
                self.users_removed += removed.len();
                metrics::group_write("put", "ok", added.len(), removed.len());
            }
            Change::Delete { .. } => {
                self.deletes_applied += 1;
                metrics::group_write("delete", "ok", 0, 0);
            }
        }
    }

    /// Records a failed change; returns the error that must stop the pass, if it is one.
    pub(super) fn failed(&mut self, change: &Change, err: ApplyError) -> Option<Error> {
        let (kind, message, fatal) = match err {
            ApplyError::Sink(e) => {
                warn!(group = %change.group(), op = change.op().as_str(), kind = e.kind.as_str(), error = %e, "write failed");
                let fatal = e.kind.is_fatal().then(|| Error::QBusiness(e.clone()));
                (e.kind.as_str(), e.to_string(), fatal)
            }
            ApplyError::Unconfirmed { kind, message } => {
                warn!(group = %change.group(), op = change.op().as_str(), kind, error = %message, "write not confirmed");
                (kind, message, None)
            }
            ApplyError::Store(e) => {
                warn!(group = %change.group(), op = change.op().as_str(), error = %e,
                    "written to Q Business but not recorded; the next pass repeats it");
                ("snapshot", error_chain(&e), Some(Error::Store(e)))
            }
        };
        metrics::group_write(change.op().as_str(), kind, 0, 0);
        self.failures.push(Failure {
            group: change.group().to_string(),
            op: change.op().into(),
            kind: kind.to_owned(),
            message,
        });
        fatal
    }

    /// Adds the counts and failures to the pass's report.
    pub(super) fn add_to(self, report: &mut RunReport) {
        report.puts_applied += self.puts_applied;
        report.deletes_applied += self.deletes_applied;
        report.users_added += self.users_added;
        report.users_removed += self.users_removed;
        report.failures.extend(self.failures);
    }
}

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Records the intent and sends one put, unless the pass was cancelled or stopped first.
    pub(super) async fn write_guarded<'a>(
        &self,
        pass: &Pass<'_>,
        change: &'a Change,
        stop: &CancellationToken,
    ) -> (&'a Change, Option<Result<(), ApplyError>>) {
        if pass.cancel.is_cancelled() || stop.is_cancelled() {
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
        let run = pass.run_id();
        let result = async {
            self.store
                .record_intent(run, self.clock.now(), group, okta_id, IntentOp::Put)
                .await
                .map_err(ApplyError::Store)?;
            for w in writes {
                if w.group != *group {
                    self.store
                        .record_intent(run, self.clock.now(), &w.group, okta_id, IntentOp::Put)
                        .await
                        .map_err(ApplyError::Store)?;
                }
                let sent = self
                    .sink
                    .put_group(&w.group, &w.users, &w.member_groups)
                    .await;
                pass.trace("write", || match &sent {
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
    pub(super) async fn confirm_put<'a>(
        &self,
        pass: &Pass<'_>,
        change: &'a Change,
        marks: &BTreeMap<GroupName, ReadMark>,
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
            if pass.settings.verify.wanted(group) {
                let state = self.await_succeeded(pass, &w.group).await;
                pass.trace("status", || match &state {
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
                pass.trace("status", || {
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
        if let Err(e) = self.store.record_put(pass.run_id(), at, &put).await {
            return (change, Err(ApplyError::Store(e)));
        }
        pass.trace("record", || {
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

    /// Polls GetGroup with backoff until SUCCEEDED, FAILED or the timeout. After a shutdown
    /// (`cancel`) it keeps polling for `verify.after_shutdown` at most, so a put Q Business
    /// accepted is recorded rather than written again by the next pass.
    async fn await_succeeded(&self, pass: &Pass<'_>, group: &GroupName) -> Result<(), ApplyError> {
        let verify = &pass.settings.verify;
        let started = Instant::now();
        let mut delay = verify.first_poll;
        let mut last_error = None;
        // When the shutdown's confirmation time runs out.
        let mut stop_at: Option<Instant> = None;
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
            let mut wait = delay;
            if let Some(at) = stop_at {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ApplyError::Unconfirmed {
                        kind: "unverified",
                        message: format!(
                            "shutdown: Q Business did not confirm the put within {:?}; written again next pass",
                            verify.after_shutdown
                        ),
                    });
                }
                wait = wait.min(left);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = pass.cancel.cancelled(), if stop_at.is_none() => {
                    stop_at = Some(Instant::now() + verify.after_shutdown);
                    continue;
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Records the intents, deletes one group (then its chunk sub-groups) and records each
    /// deletion.
    pub(super) async fn delete(&self, pass: &Pass<'_>, change: &Change) -> Result<(), ApplyError> {
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
                .record_intent(
                    pass.run_id(),
                    self.clock.now(),
                    name,
                    okta_id,
                    IntentOp::Delete,
                )
                .await
                .map_err(ApplyError::Store)?;
        }
        self.delete_recorded(pass, group, okta_id).await?;
        for chunk in chunks {
            self.delete_recorded(pass, chunk, okta_id).await?;
        }
        Ok(())
    }

    /// Deletes a group whose intent is recorded, then records the deletion.
    pub(super) async fn delete_recorded(
        &self,
        pass: &Pass<'_>,
        group: &GroupName,
        okta_id: &OktaGroupId,
    ) -> Result<(), ApplyError> {
        let outcome = self.sink.delete_group(group).await;
        pass.trace("delete", || match &outcome {
            Ok(DeleteOutcome::Deleted) => format!("DeleteGroup {group:?}: deleted"),
            Ok(DeleteOutcome::AlreadyGone) => format!("DeleteGroup {group:?}: already gone"),
            Err(e) => format!("DeleteGroup {group:?}: {e}"),
        });
        let outcome = outcome.map_err(ApplyError::Sink)?;
        self.store
            .record_delete(pass.run_id(), self.clock.now(), group, okta_id)
            .await
            .map_err(ApplyError::Store)?;
        info!(group = %group, op = "delete", already_gone = outcome == DeleteOutcome::AlreadyGone, "group deleted");
        Ok(())
    }
}
