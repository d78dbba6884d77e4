//! The users step of an incremental pass, and the record of users' identities: Okta users
//! whose status or id attribute changed since the last pass (which Okta does not report as a
//! membership change), the groups those changes touch, and what the reads decided of each
//! user. The decisions are [`plan::reads`]'.

use std::collections::{BTreeMap, BTreeSet};

use arcstr::ArcStr;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tracing::{info, warn};

use super::context::Pass;
use super::read::Read;
use super::{Engine, Error};
use crate::model::{GroupName, UserId};
use crate::plan::reads::UserChange;
use crate::plan::select::GroupRead;
use crate::plan::{self, Snapshot};
use crate::report::{UserCheck, UserCheckHow};
use crate::sink::GroupSink;
use crate::source::{DirectorySource, OktaGroup, OktaMember, SourceError};
use crate::store::{Store, UserRecord, UsersMode, UsersWrite};

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
        pass: &Pass<'_>,
        groups: &[OktaGroup],
        snapshot: &Snapshot,
        since: DateTime<Utc>,
    ) -> Result<(UserCheck, BTreeSet<GroupName>), Error> {
        let from = self.users_listing_from(since, pass.settings.overlap);
        let (listed, newest) = match self.source.list_users_changed_since(from).await {
            Ok(listed) => (listed.users, listed.newest),
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
        let changes = self.changed_users(pass, &listed).await?;
        let mut stale = plan::reads::holding(snapshot, &changes);
        let unresolved = self
            .groups_of_eligible(pass, &changes, groups, snapshot, &mut stale)
            .await?;
        if pass.writes() {
            self.record_user_changes(pass, &changes, &unresolved, &stale, snapshot)
                .await?;
            if unresolved.is_empty() {
                // Recorded as checked: the next listing may start near its newest stamp.
                self.users_listed_up_to(newest);
            }
        }
        info!(
            users_listed = listed.len(),
            users_changed = changes.len(),
            groups_affected = stale.len(),
            unresolved = unresolved.len(),
            "checked Okta users updated since the last pass"
        );
        pass.trace("users", || {
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

    /// The listed users whose change matters to Q, against what the snapshot knows of them, a
    /// batch at a time: a listing of every user (a profile attribute touched org-wide) does not
    /// hold the whole users table. A user listed twice keeps its last entry's change, as in one
    /// call.
    async fn changed_users(
        &self,
        pass: &Pass<'_>,
        listed: &[OktaMember],
    ) -> Result<Vec<UserChange>, Error> {
        let mut merged: BTreeMap<String, UserChange> = BTreeMap::new();
        for batch in listed.chunks(KNOWN_USERS_BATCH) {
            let ids: Vec<String> = batch.iter().map(|u| u.id.clone()).collect();
            let known = self.store.known_users(&ids).await?;
            for change in plan::reads::user_changes(&pass.settings.rules, batch, &known) {
                merged.insert(change.okta_id.clone(), change);
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Adds to `stale` the groups of the users who became eligible: a user who was left out is
    /// in no recorded member list, so Okta says which groups they are in. Looked up a few at a
    /// time; returns the users whose lookup failed (the next pass retries them).
    async fn groups_of_eligible(
        &self,
        pass: &Pass<'_>,
        changes: &[UserChange],
        groups: &[OktaGroup],
        snapshot: &Snapshot,
        stale: &mut BTreeSet<GroupName>,
    ) -> Result<BTreeSet<String>, Error> {
        let rules = &pass.settings.rules;
        let mut unresolved: BTreeSet<String> = BTreeSet::new();
        let mut pending = changes.iter().filter(|c| c.needs_lookup());
        let mut in_flight = FuturesUnordered::new();
        let limit = pass.settings.read_concurrency.max(1);
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
        Ok(unresolved)
    }

    /// Records, in one transaction, the changed users' new identities (those resolved), the
    /// read marks of the groups they touch cleared, and (when every change was resolved) that
    /// user changes up to this pass are reflected.
    async fn record_user_changes(
        &self,
        pass: &Pass<'_>,
        changes: &[UserChange],
        unresolved: &BTreeSet<String>,
        stale: &BTreeSet<GroupName>,
        snapshot: &Snapshot,
    ) -> Result<(), Error> {
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
                checked_at: unresolved.is_empty().then_some(pass.started_at()),
            })
            .await?;
        Ok(())
    }

    /// The groups of one user, with the user's id.
    async fn user_groups(&self, user: String) -> (String, Result<Vec<String>, SourceError>) {
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
        pass: &Pass<'_>,
        read: &Read<'_>,
    ) -> Result<(), Error> {
        const BATCH: usize = 10_000;
        let unread = read
            .groups
            .values()
            .filter(|r| matches!(r, GroupRead::Failed { .. }))
            .count();
        let complete = read.record.full && !pass.request.limited() && unread == 0;
        let mapper = &read.mapper;
        let record =
            |(id, q): (&ArcStr, Option<&UserId>)| -> UserRecord { (id.clone(), q.cloned()) };
        if complete {
            self.store
                .record_users(UsersWrite {
                    mode: UsersMode::Replace,
                    users: mapper.decisions().map(record).collect(),
                    invalidate: &[],
                    checked_at: Some(pass.started_at()),
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
}
