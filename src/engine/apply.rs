use super::*;
use crate::store::IntentOp;

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Applies the plan of a pass that writes and records what it is worth: the held plan, the
    /// read marks of groups whose members did not change, the completed full read, and the
    /// approval of a held plan.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write(
        &self,
        request: &PassRequest,
        report: &mut RunReport,
        snapshot: &Snapshot,
        desired: &plan::Desired,
        marks: BTreeMap<GroupName, ReadMark>,
        full: bool,
        early: &EarlyOutcome,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        match (&report.plan.held, &request.approve) {
            (Some(held), _) => self.store.hold(now, held).await?,
            (None, None) if !request.limited() => {
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
            // Written while reading: cleared before their write, and recorded since.
            .filter(|name| !early.sent.contains(name))
            .collect();
        self.store
            .record_users(UsersWrite::invalidate(&pending))
            .await?;
        let apply_timer = Instant::now();
        let stopped = self
            .apply(report, progress, cancel, &marks, early, tracer)
            .await;
        metrics::phase("apply", apply_timer.elapsed());
        // Groups read and found unchanged keep their members but get the new read mark.
        let unchanged = plan::reads::unchanged_marks(&marks, &report.plan, snapshot, desired);
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

    /// Applies puts (bounded concurrency), then deletes. Before each write its intent is
    /// recorded; after it (and, for puts, its confirmation) the result is recorded at once.
    /// The puts written while reading (`early`) are not written again.
    pub(super) async fn apply(
        &self,
        report: &mut RunReport,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        marks: &BTreeMap<GroupName, ReadMark>,
        early: &EarlyOutcome,
        tracer: Option<&Tracer>,
    ) -> Result<(), Error> {
        let run = report.run_id.unwrap_or_default();
        let plan = std::mem::take(&mut report.plan);
        let stop = CancellationToken::new();
        let mut put_failed: BTreeSet<GroupName> = early.failed.clone();
        let mut fatal: Option<Error> = None;
        // Changes not attempted because of cancellation or a fatal answer.
        let mut not_attempted = 0usize;

        let mut pending = plan.puts().filter(|c| !early.sent.contains(c.group()));
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

    /// Records the intent and sends one put, unless the pass was cancelled or stopped first.
    pub(super) async fn write_guarded<'a>(
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
    pub(super) async fn confirm_put<'a>(
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

    /// Polls GetGroup with backoff until SUCCEEDED, FAILED or the timeout. After a shutdown
    /// (`cancel`) it keeps polling for `verify.after_shutdown` at most, so a put Q Business
    /// accepted is recorded rather than written again by the next pass.
    async fn await_succeeded(
        &self,
        group: &GroupName,
        cancel: &CancellationToken,
    ) -> Result<(), ApplyError> {
        let verify = &self.settings.verify;
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
                _ = cancel.cancelled(), if stop_at.is_none() => {
                    stop_at = Some(Instant::now() + verify.after_shutdown);
                    continue;
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
                .record_intent(run, self.clock.now(), name, okta_id, IntentOp::Delete)
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

    pub(super) fn count_applied(&self, report: &mut RunReport, change: &Change) {
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
    pub(super) fn count_failed(
        &self,
        report: &mut RunReport,
        change: &Change,
        err: ApplyError,
    ) -> Option<Error> {
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
        report.failures.push(Failure {
            group: change.group().to_string(),
            op: change.op().into(),
            kind: kind.to_owned(),
            message,
        });
        fatal
    }
}

pub(super) enum ApplyError {
    Sink(SinkError),
    Store(StoreError),
    /// Accepted by Q Business but not confirmed SUCCEEDED (FAILED, timeout, shutdown).
    Unconfirmed {
        kind: &'static str,
        message: String,
    },
}
