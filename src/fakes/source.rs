//! The Okta directory in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::source::{DirectorySource, GroupType, MemberRead, OktaGroup, OktaMember, SourceError};

use super::{FixedClock, lock};

/// How a fake read fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFault {
    Server,
    Unauthorized,
}

/// An Okta directory in memory.
#[derive(Default)]
pub struct MemSource {
    pub groups: Mutex<BTreeMap<String, (String, BTreeSet<String>)>>,
    /// User id -> (status, email).
    pub users: Mutex<BTreeMap<String, (String, Option<String>)>>,
    pub failing: Mutex<BTreeMap<String, ReadFault>>,
    pub list_fails: Mutex<bool>,
    /// Member listings served.
    pub member_reads: Mutex<usize>,
    /// lastMembershipUpdated per group, bumped by `set_members` (default: a day before the clock).
    pub updated: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// lastUpdated per user, set to the clock's time by `set_user` (default: a week before).
    pub user_updated: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// The users listing fails (503) while set.
    pub users_list_fails: Mutex<bool>,
    /// Users listings and user-group lookups served.
    pub user_reads: Mutex<usize>,
    /// Groups whose member reads wait for a permit of their semaphore ([`MemSource::hold`]).
    pub held: Mutex<BTreeMap<String, Arc<Semaphore>>>,
}

impl MemSource {
    pub fn user(self, id: &str, status: &str, email: Option<&str>) -> Self {
        lock(&self.users).insert(id.into(), (status.into(), email.map(Into::into)));
        self
    }

    pub fn active(self, id: &str) -> Self {
        let email = format!("{id}@x.test");
        self.user(id, "ACTIVE", Some(&email))
    }

    pub fn group(self, id: &str, name: &str, members: &[&str]) -> Self {
        lock(&self.groups).insert(
            id.into(),
            (name.into(), members.iter().map(|m| m.to_string()).collect()),
        );
        self
    }

    /// Adds a group to a running directory (its members changed now, as for `set_members`).
    pub fn add_group(&self, id: &str, name: &str, members: &[&str]) {
        lock(&self.groups).insert(id.into(), (name.into(), BTreeSet::new()));
        self.set_members(id, members);
    }

    pub fn set_members(&self, id: &str, members: &[&str]) {
        // An hour before the fixed clock: a read in the next pass counts as current.
        lock(&self.updated).insert(id.into(), FixedClock.now() - chrono::TimeDelta::hours(1));
        if let Some(g) = lock(&self.groups).get_mut(id) {
            g.1 = members.iter().map(|m| m.to_string()).collect();
        }
    }

    /// Changes a user's status or email as Okta does: its `lastUpdated` moves, its groups'
    /// `lastMembershipUpdated` does not.
    pub fn set_user(&self, id: &str, status: &str, email: Option<&str>) {
        lock(&self.user_updated).insert(id.into(), FixedClock.now());
        lock(&self.users).insert(id.into(), (status.into(), email.map(Into::into)));
    }

    fn member(&self, id: &str) -> OktaMember {
        let (status, email) = lock(&self.users)
            .get(id)
            .cloned()
            .unwrap_or(("ACTIVE".into(), None));
        OktaMember {
            id: id.to_owned(),
            status,
            attribute: email,
        }
    }

    pub fn remove_group(&self, id: &str) {
        lock(&self.groups).remove(id);
    }

    /// Renames group `id` in Okta; its id and members stay.
    pub fn rename_group(&self, id: &str, name: &str) {
        lock(&self.groups)
            .get_mut(id)
            .expect("a group of this directory")
            .0 = name.into();
    }

    /// Takes every group out of the directory (Okta looks empty); returns them for
    /// [`MemSource::restore_groups`].
    pub fn take_groups(&self) -> BTreeMap<String, (String, BTreeSet<String>)> {
        std::mem::take(&mut *lock(&self.groups))
    }

    pub fn restore_groups(&self, groups: BTreeMap<String, (String, BTreeSet<String>)>) {
        *lock(&self.groups) = groups;
    }

    /// Changes a user's status or email without Okta reporting it anywhere: neither its
    /// `lastUpdated` nor its groups' `lastMembershipUpdated` moves.
    pub fn set_user_unreported(&self, id: &str, status: &str, email: Option<&str>) {
        lock(&self.users).insert(id.into(), (status.into(), email.map(Into::into)));
    }

    /// Sets group `id`'s `lastMembershipUpdated`.
    pub fn set_membership_updated(&self, id: &str, at: DateTime<Utc>) {
        lock(&self.updated).insert(id.into(), at);
    }

    /// Makes the groups listing fail (503) while `fails`.
    pub fn fail_listing(&self, fails: bool) {
        *lock(&self.list_fails) = fails;
    }

    /// Makes the users listing fail (503) while `fails`.
    pub fn fail_users_listing(&self, fails: bool) {
        *lock(&self.users_list_fails) = fails;
    }

    pub fn fail(&self, id: &str, fault: ReadFault) {
        lock(&self.failing).insert(id.into(), fault);
    }

    pub fn heal(&self) {
        lock(&self.failing).clear();
    }

    /// Makes the member reads of group `id` wait until a permit is added to the returned
    /// semaphore (one per read).
    pub fn hold(&self, id: &str) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        lock(&self.held).insert(id.into(), Arc::clone(&gate));
        gate
    }
}

impl DirectorySource for MemSource {
    async fn list_groups(&self) -> Result<Vec<OktaGroup>, SourceError> {
        if *lock(&self.list_fails) {
            return Err(SourceError::Server {
                path: "/api/v1/groups".into(),
                status: 503,
            });
        }
        Ok(lock(&self.groups)
            .iter()
            .map(|(id, (name, _))| OktaGroup {
                id: id.clone(),
                name: name.clone(),
                kind: GroupType::Okta,
                last_membership_updated: Some(
                    lock(&self.updated)
                        .get(id)
                        .copied()
                        .unwrap_or(FixedClock.now() - chrono::TimeDelta::days(1)),
                ),
                last_updated: None,
            })
            .collect())
    }

    async fn list_members(&self, group_id: &str) -> Result<MemberRead, SourceError> {
        *lock(&self.member_reads) += 1;
        let gate = lock(&self.held).get(group_id).cloned();
        if let Some(gate) = gate {
            gate.acquire().await.expect("never closed").forget();
        }
        let path = format!("/api/v1/groups/{group_id}/users");
        match lock(&self.failing).get(group_id) {
            Some(ReadFault::Server) => return Err(SourceError::Server { path, status: 500 }),
            Some(ReadFault::Unauthorized) => {
                return Err(SourceError::Unauthorized {
                    code: "E0000011".into(),
                });
            }
            None => {}
        }
        let groups = lock(&self.groups);
        let Some((_, members)) = groups.get(group_id) else {
            return Ok(MemberRead::GroupGone);
        };
        let members: Vec<String> = members.iter().cloned().collect();
        drop(groups);
        Ok(MemberRead::Members(
            members.iter().map(|id| self.member(id)).collect(),
        ))
    }

    async fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaMember>, SourceError> {
        *lock(&self.user_reads) += 1;
        if *lock(&self.users_list_fails) {
            return Err(SourceError::Server {
                path: "/api/v1/users".into(),
                status: 503,
            });
        }
        let week_ago = FixedClock.now() - chrono::TimeDelta::days(7);
        let ids: Vec<String> = lock(&self.users).keys().cloned().collect();
        let updated = lock(&self.user_updated).clone();
        Ok(ids
            .iter()
            .filter(|id| updated.get(*id).copied().unwrap_or(week_ago) > since)
            .map(|id| self.member(id))
            .collect())
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<String>, SourceError> {
        *lock(&self.user_reads) += 1;
        Ok(lock(&self.groups)
            .iter()
            .filter(|(_, (_, members))| members.contains(user_id))
            .map(|(id, _)| id.clone())
            .collect())
    }
}

impl crate::source::UserDirectory for MemSource {
    async fn find_user(&self, key: &str) -> Result<crate::source::UserLookup, SourceError> {
        use crate::source::{OktaUser, UserLookup};
        let users = lock(&self.users);
        let found = users.iter().find(|(id, (_, email))| {
            id.as_str() == key
                || email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(key))
        });
        Ok(match found {
            Some((id, (status, email))) => UserLookup::Found(OktaUser {
                id: id.clone(),
                status: status.clone(),
                login: email.clone(),
                email: email.clone(),
                attribute: email.clone(),
            }),
            None => UserLookup::NotFound,
        })
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroup>, SourceError> {
        Ok(lock(&self.groups)
            .iter()
            .filter(|(_, (_, members))| members.contains(user_id))
            .map(|(id, (name, _))| OktaGroup {
                id: id.clone(),
                name: name.clone(),
                kind: GroupType::Okta,
                last_membership_updated: None,
                last_updated: None,
            })
            .collect())
    }
}
