use super::pipeline::EarlyFeed;
use super::*;
use arcstr::ArcStr;

use crate::model::UserId;
use crate::store::UserRecord;

/// Listed users looked up in the snapshot's users table at a time.
const KNOWN_USERS_BATCH: usize = 1000;

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Finds the users whose status or id attribute changed since `since` in a way that matters
    /// to Q (see [`plan::reads`]) and the groups that must be read again because of them. In
    /// [`Mode::Apply`] it records, in one transaction, the users' new identities, those groups'
    /// read marks cleared, and (when every change was resolved) that user changes up to this
    /// pass are reflected: from then on a failed read or write of those groups cannot hide the
    /// change, because they stay unread until their write is recorded.
    pub(super) async fn user_changes(
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
        // What the snapshot knows of the listed users, a batch at a time: a listing of every
        // user (a profile attribute touched org-wide) does not hold the whole users table.
        // A user listed twice keeps its last entry's change, as in one call.
        let mut merged: BTreeMap<String, plan::reads::UserChange> = BTreeMap::new();
        for batch in listed.chunks(KNOWN_USERS_BATCH) {
            let ids: Vec<String> = batch.iter().map(|u| u.id.clone()).collect();
            let known = self.store.known_users(&ids).await?;
            for change in plan::reads::user_changes(rules, batch, &known) {
                merged.insert(change.okta_id.clone(), change);
            }
        }
        let changes: Vec<plan::reads::UserChange> = merged.into_values().collect();
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
        let resolved: Vec<UserRecord> = changes
            .iter()
            .filter(|c| !unresolved.contains(c.okta_id.as_str()))
            .map(|c| {
                (
                    ArcStr::from(c.okta_id.as_str()),
                    c.after.as_deref().map(UserId::from_normalised),
                )
            })
            .collect();
        if mode == Mode::Apply {
            let invalidate: Vec<GroupName> = stale
                .iter()
                .filter(|name| snapshot.groups.contains_key(*name))
                .cloned()
                .collect();
            self.store
                .record_users(UsersWrite {
                    mode: UsersMode::Upsert,
                    users: resolved,
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
    pub(super) async fn user_groups(
        &self,
        user: String,
    ) -> (String, Result<Vec<String>, SourceError>) {
        let result = self.source.groups_of_user(&user).await;
        (user, result)
    }

    /// Records the identity of every Okta user this pass's reads decided. After a complete full
    /// read every group reflects these decisions, so they replace the record (and user changes
    /// up to this pass are reflected); otherwise only users not known yet are added, because
    /// the groups not read this pass were written with the recorded identity, and a change the
    /// next users listing must still find would otherwise be recorded as already seen. Added
    /// users go in batches, so a large read does not hold a second copy of every id.
    pub(super) async fn record_seen_users(
        &self,
        mapper: &Mapper<'_>,
        complete: bool,
        started_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        const BATCH: usize = 10_000;
        let record =
            |(id, q): (&ArcStr, Option<&UserId>)| -> UserRecord { (id.clone(), q.cloned()) };
        if complete {
            self.store
                .record_users(UsersWrite {
                    mode: UsersMode::Replace,
                    users: mapper.decisions().map(record).collect(),
                    invalidate: &[],
                    checked_at: Some(started_at),
                })
                .await?;
            return Ok(());
        }
        let mut decisions = mapper.decisions().peekable();
        while decisions.peek().is_some() {
            let users: Vec<UserRecord> = decisions.by_ref().take(BATCH).map(record).collect();
            self.store
                .record_users(UsersWrite {
                    mode: UsersMode::InsertNew,
                    users,
                    invalidate: &[],
                    checked_at: None,
                })
                .await?;
        }
        Ok(())
    }

    /// Reads every in-scope group's members. Only an error that no other request can escape
    /// (credentials, permissions) stops the pass; other failures leave that group unread.
    /// Each group is mapped to Q ids as soon as it arrives, so the raw member lists of a large
    /// org are never all in memory at once, and offered to the `early` writer, if any.
    pub(super) async fn read_members(
        &self,
        groups: &[&OktaGroup],
        progress: &dyn Progress,
        mapper: &mut Mapper<'_>,
        tracer: Option<&Tracer>,
        early: Option<&EarlyFeed<'_>>,
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
                    let mapped = mapper.map_group(&group.id, &members);
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
            if let Some(feed) = early {
                feed.offer(&self.settings, group, &read).await;
            }
            reads.insert(group.id.clone(), read);
        }
        Ok(reads)
    }

    pub(super) async fn read_one<'a>(
        &self,
        group: &'a OktaGroup,
    ) -> (
        &'a OktaGroup,
        Result<crate::source::MemberRead, SourceError>,
    ) {
        let result = self.source.list_members(&group.id).await;
        (group, result)
    }

    /// Whether this pass reads every group (`true`) or incrementally, and the groups a user
    /// change makes it read again. Incremental reads: a group whose lastMembershipUpdated has
    /// not moved since the read its snapshot members come from keeps them, unless a member's
    /// status or id attribute changed since (Okta does not move lastMembershipUpdated for
    /// those); a full read runs every `full_every`, and whenever the snapshot has no record of
    /// user changes yet.
    pub(super) async fn read_scope(
        &self,
        request: &PassRequest,
        groups: &[OktaGroup],
        snapshot: &Snapshot,
        report: &mut RunReport,
        cancel: &CancellationToken,
        tracer: Option<&Tracer>,
    ) -> Result<(bool, BTreeSet<GroupName>), Error> {
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
                check = self.user_changes(groups, snapshot, since, request.mode, report.started_at, tracer) => check?,
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            };
            stale = check.1;
            check.0
        };
        Ok((full, stale))
    }
}
