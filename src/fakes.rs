//! In-memory fakes of the three edges, for engine tests.

use crate::store::{HeldPlans, RunLog};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use chrono::{DateTime, TimeZone, Utc};

use crate::clock::Clock;
use crate::model::{GroupName, Members, OktaGroupId, UserId};
use crate::plan::reads::KnownUser;
use crate::plan::safety::Held;
use crate::plan::{Snapshot, SnapshotGroup};
use crate::sink::{DeleteOutcome, GroupPage, GroupSink, GroupState, SinkError, SinkErrorKind};
use crate::source::{
    ChangeEvent, ChangeFeed, DirectorySource, FeedPage, GroupType, MemberRead, OktaGroup,
    OktaMember, SourceError,
};
use crate::store::{
    AppliedPut, HeldRecord, HoldStatus, IntentOp, RunId, RunRecord, RunStart, SnapshotStore,
    StoreError, UsersMode, UsersWrite,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fixed clock.
pub struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
            .single()
            .expect("valid date")
    }
}

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

/// Q Business's CheckDocumentAccess in memory: a fixed answer per document (whoever asks), and
/// the questions asked.
#[derive(Default)]
pub struct MemAccess {
    pub documents: Mutex<BTreeMap<String, crate::plan::explain::AccessAnswer>>,
    /// (user id, document id) of each call.
    pub calls: Mutex<Vec<(String, String)>>,
}

impl MemAccess {
    pub fn document(self, id: &str, answer: crate::plan::explain::AccessAnswer) -> Self {
        lock(&self.documents).insert(id.into(), answer);
        self
    }

    pub fn asked(&self) -> Vec<(String, String)> {
        lock(&self.calls).clone()
    }
}

impl crate::sink::DocumentAccess for MemAccess {
    async fn check_document_access(
        &self,
        user_id: &str,
        document_id: &str,
        _data_source_id: Option<&str>,
    ) -> Result<Option<crate::plan::explain::AccessAnswer>, SinkError> {
        lock(&self.calls).push((user_id.into(), document_id.into()));
        Ok(lock(&self.documents).get(document_id).cloned())
    }
}

/// A Q Business index in memory that records calls and fails on demand.
#[derive(Default)]
pub struct RecordingSink {
    pub groups: Mutex<BTreeMap<GroupName, Members>>,
    /// `memberGroups` of each group (chunked groups).
    pub nested: Mutex<BTreeMap<GroupName, Vec<GroupName>>>,
    pub calls: Mutex<Vec<(String, GroupName)>>,
    /// Groups whose writes fail with this kind.
    pub failing: Mutex<BTreeMap<GroupName, SinkErrorKind>>,
    /// Groups whose puts are accepted but then report FAILED (and do not take effect).
    pub failing_async: Mutex<BTreeSet<GroupName>>,
    /// Puts accepted but not yet visible, for async failures.
    pub states: Mutex<BTreeMap<GroupName, GroupState>>,
    /// While set, each PutGroup waits for a permit ([`RecordingSink::hold_puts`]).
    pub put_gate: Mutex<Option<Arc<Semaphore>>>,
    /// Reads (`ListGroups`, `GetGroup`) in order, with the group a GetGroup names.
    pub reads: Mutex<Vec<(String, Option<GroupName>)>>,
    /// Read operations (`ListGroups`, `GetGroup`) that fail with this kind.
    pub failing_reads: Mutex<BTreeMap<String, SinkErrorKind>>,
}

impl RecordingSink {
    pub fn fail(&self, group: &str, kind: SinkErrorKind) {
        lock(&self.failing).insert(GroupName::new(group), kind);
    }

    /// A group someone else made in Q Business (not by q-group-sync), with these users.
    pub fn seed(&self, group: &str, users: &[&str]) {
        let members: Members = users.iter().map(|u| UserId::from_normalised(*u)).collect();
        lock(&self.groups).insert(GroupName::new(group), members);
    }

    /// Makes every call of read operation `op` (`ListGroups` or `GetGroup`) fail with `kind`.
    pub fn fail_reads(&self, op: &str, kind: SinkErrorKind) {
        lock(&self.failing_reads).insert(op.to_owned(), kind);
    }

    /// The reads made since the last call, by operation.
    pub fn take_reads(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (op, _) in std::mem::take(&mut *lock(&self.reads)) {
            *out.entry(op).or_default() += 1;
        }
        out
    }

    fn check_read(&self, op: &'static str, name: Option<&GroupName>) -> Result<(), SinkError> {
        lock(&self.reads).push((op.to_owned(), name.cloned()));
        match lock(&self.failing_reads).get(op) {
            Some(kind) => Err(SinkError {
                kind: *kind,
                operation: op,
                message: "injected".into(),
            }),
            None => Ok(()),
        }
    }

    pub fn heal(&self) {
        lock(&self.failing).clear();
    }

    /// Makes every PutGroup wait for a permit of the returned semaphore (one per put).
    pub fn hold_puts(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *lock(&self.put_gate) = Some(Arc::clone(&gate));
        gate
    }

    /// The calls so far, kept.
    pub fn calls(&self) -> Vec<(String, GroupName)> {
        lock(&self.calls).clone()
    }

    pub fn take_calls(&self) -> Vec<(String, GroupName)> {
        std::mem::take(&mut *lock(&self.calls))
    }

    pub fn members(&self, group: &str) -> Option<Vec<String>> {
        lock(&self.groups)
            .get(&GroupName::new(group))
            .map(|m| m.iter().map(|u| u.to_string()).collect())
    }

    /// The users of `group` and of its member groups (one level, as q-group-sync nests).
    pub fn effective(&self, group: &str) -> Option<BTreeSet<String>> {
        let groups = lock(&self.groups);
        let nested = lock(&self.nested);
        let name = GroupName::new(group);
        let own = groups.get(&name)?;
        let mut out: BTreeSet<String> = own.iter().map(|u| u.to_string()).collect();
        for sub in nested.get(&name).into_iter().flatten() {
            out.extend(groups.get(sub).into_iter().flatten().map(|u| u.to_string()));
        }
        Some(out)
    }

    fn check(&self, op: &'static str, name: &GroupName) -> Result<(), SinkError> {
        lock(&self.calls).push((op.to_owned(), name.clone()));
        match lock(&self.failing).get(name) {
            Some(kind) => Err(SinkError {
                kind: *kind,
                operation: op,
                message: "injected".into(),
            }),
            None => Ok(()),
        }
    }
}

impl GroupSink for RecordingSink {
    async fn put_group(
        &self,
        name: &GroupName,
        members: &Members,
        groups: &[GroupName],
    ) -> Result<(), SinkError> {
        let gate = lock(&self.put_gate).clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("never closed").forget();
        }
        self.check("PutGroup", name)?;
        if lock(&self.failing_async).contains(name) {
            let failed = GroupState::Failed {
                code: "InvalidRequest".into(),
                message: "injected".into(),
            };
            lock(&self.states).insert(name.clone(), failed);
            return Ok(());
        }
        lock(&self.states).insert(name.clone(), GroupState::Succeeded);
        lock(&self.groups).insert(name.clone(), members.clone());
        lock(&self.nested).insert(name.clone(), groups.to_vec());
        Ok(())
    }

    async fn group_state(&self, name: &GroupName) -> Result<GroupState, SinkError> {
        self.check_read("GetGroup", Some(name))?;
        if let Some(state) = lock(&self.states).get(name) {
            return Ok(state.clone());
        }
        // A group written by someone else: done long ago.
        Ok(if lock(&self.groups).contains_key(name) {
            GroupState::Succeeded
        } else {
            GroupState::Missing
        })
    }

    /// Pages of 10 names in name order; the token is the last name of the previous page.
    async fn list_groups_page(
        &self,
        _updated_before: DateTime<Utc>,
        token: Option<String>,
    ) -> Result<GroupPage, SinkError> {
        self.check_read("ListGroups", None)?;
        let groups = lock(&self.groups);
        let mut after = groups
            .keys()
            .filter(|n| token.as_deref().is_none_or(|t| n.as_str() > t));
        let names: Vec<GroupName> = after.by_ref().take(10).cloned().collect();
        let next = match (after.next(), names.last()) {
            (Some(_), Some(last)) => Some(last.to_string()),
            _ => None,
        };
        Ok(GroupPage { names, next })
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteOutcome, SinkError> {
        self.check("DeleteGroup", name)?;
        lock(&self.nested).remove(name);
        Ok(match lock(&self.groups).remove(name) {
            Some(_) => DeleteOutcome::Deleted,
            None => DeleteOutcome::AlreadyGone,
        })
    }
}

/// A snapshot store in memory.
#[derive(Default)]
pub struct MemStore {
    pub snapshot: Mutex<Snapshot>,
    pub runs: Mutex<Vec<(RunId, Option<RunRecord>)>>,
    pub fail_records: Mutex<bool>,
    /// Intents not yet cleared: group -> okta id.
    pub pending: Mutex<BTreeMap<GroupName, OktaGroupId>>,
    pub holds: Mutex<Vec<HeldRecord>>,
    pub full_read: Mutex<Option<DateTime<Utc>>>,
    /// The System Log position.
    pub events_cursor: Mutex<Option<String>>,
    /// Okta user id -> effective Q id.
    pub users: Mutex<BTreeMap<String, KnownUser>>,
    pub users_checked: Mutex<Option<DateTime<Utc>>>,
}

impl MemStore {
    pub fn names(&self) -> Vec<String> {
        lock(&self.snapshot)
            .groups
            .keys()
            .map(|g| g.to_string())
            .collect()
    }

    fn writable(&self) -> Result<(), StoreError> {
        if *lock(&self.fail_records) {
            Err(StoreError::Task("disk full (injected)".into()))
        } else {
            Ok(())
        }
    }
}

impl SnapshotStore for MemStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = lock(&self.snapshot).clone();
        for (name, okta_id) in lock(&self.pending).iter() {
            snapshot
                .groups
                .entry(name.clone())
                .and_modify(|g| g.unconfirmed = true)
                .or_insert_with(|| SnapshotGroup {
                    okta_id: okta_id.clone(),
                    members: Members::new(),
                    pushed_at: FixedClock.now(),
                    unconfirmed: true,
                    read: None,
                    layout: Default::default(),
                });
        }
        Ok(snapshot)
    }

    async fn record_reads(
        &self,
        marks: &[(GroupName, crate::plan::ReadMark)],
    ) -> Result<(), StoreError> {
        let mut snapshot = lock(&self.snapshot);
        for (name, mark) in marks {
            if let Some(g) = snapshot.groups.get_mut(name) {
                g.read = Some(*mark);
            }
        }
        Ok(())
    }

    async fn full_read_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(*lock(&self.full_read))
    }

    async fn set_full_read_at(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        *lock(&self.full_read) = Some(at);
        Ok(())
    }

    async fn known_users(
        &self,
        okta_ids: &[String],
    ) -> Result<BTreeMap<String, KnownUser>, StoreError> {
        let users = lock(&self.users);
        Ok(okta_ids
            .iter()
            .filter_map(|id| users.get(id).map(|q| (id.clone(), q.clone())))
            .collect())
    }

    async fn record_users(&self, write: UsersWrite<'_>) -> Result<(), StoreError> {
        self.writable()?;
        let mut users = lock(&self.users);
        if write.mode == UsersMode::Replace {
            users.clear();
        }
        for (id, q) in &write.users {
            if write.mode == UsersMode::InsertNew && users.contains_key(&**id) {
                continue;
            }
            users.insert(id.to_string(), q.as_ref().map(|q| q.as_str().to_owned()));
        }
        let mut snapshot = lock(&self.snapshot);
        for name in write.invalidate {
            if let Some(g) = snapshot.groups.get_mut(name) {
                g.read = None;
            }
        }
        if let Some(at) = write.checked_at {
            *lock(&self.users_checked) = Some(at);
        }
        Ok(())
    }

    async fn users_checked_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(*lock(&self.users_checked))
    }

    async fn events_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.events_cursor).clone())
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), StoreError> {
        self.writable()?;
        *lock(&self.events_cursor) = Some(cursor.to_owned());
        Ok(())
    }

    async fn record_intent(
        &self,
        _run: RunId,
        _at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
        _op: IntentOp,
    ) -> Result<(), StoreError> {
        self.writable()?;
        lock(&self.pending).insert(group.clone(), okta_id.clone());
        Ok(())
    }

    async fn record_put(
        &self,
        _run: RunId,
        at: DateTime<Utc>,
        put: &AppliedPut<'_>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        lock(&self.pending).remove(put.group);
        lock(&self.snapshot).groups.insert(
            put.group.clone(),
            SnapshotGroup {
                okta_id: put.okta_id.clone(),
                members: put.members.clone(),
                pushed_at: at,
                unconfirmed: false,
                read: put.read,
                layout: put.layout,
            },
        );
        let mut pending = lock(&self.pending);
        for chunk in put.chunks_written {
            pending.remove(chunk);
        }
        for chunk in put.chunks_stale {
            pending.insert(chunk.clone(), put.okta_id.clone());
        }
        Ok(())
    }

    async fn record_delete(
        &self,
        _run: RunId,
        _at: DateTime<Utc>,
        group: &GroupName,
        _okta_id: &OktaGroupId,
    ) -> Result<(), StoreError> {
        self.writable()?;
        lock(&self.pending).remove(group);
        lock(&self.snapshot).groups.remove(group);
        Ok(())
    }
}

impl RunLog for MemStore {
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }

    async fn begin_run(
        &self,
        _started_at: DateTime<Utc>,
        _start: &RunStart,
    ) -> Result<RunId, StoreError> {
        let mut runs = lock(&self.runs);
        let id = runs.len() as RunId + 1;
        runs.push((id, None));
        Ok(id)
    }

    async fn finish_run(
        &self,
        run: RunId,
        _at: DateTime<Utc>,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        if let Some(entry) = lock(&self.runs).iter_mut().find(|(id, _)| *id == run) {
            entry.1 = Some(record.clone());
        }
        Ok(())
    }
}

impl HeldPlans for MemStore {
    async fn hold(&self, at: DateTime<Utc>, held: &Held) -> Result<(), StoreError> {
        let mut holds = lock(&self.holds);
        for h in holds
            .iter_mut()
            .filter(|h| h.status == HoldStatus::Held && h.held.id != held.id)
        {
            h.status = HoldStatus::Superseded;
        }
        match holds.iter_mut().find(|h| h.held.id == held.id) {
            Some(h) => {
                h.status = HoldStatus::Held;
                h.last_seen_at = at;
            }
            None => holds.push(HeldRecord {
                status: HoldStatus::Held,
                created_at: at,
                last_seen_at: at,
                held: held.clone(),
            }),
        }
        Ok(())
    }

    async fn resolve_holds(
        &self,
        _at: DateTime<Utc>,
        id: Option<&str>,
        status: HoldStatus,
        _by: &str,
    ) -> Result<(), StoreError> {
        for h in lock(&self.holds)
            .iter_mut()
            .filter(|h| h.status == HoldStatus::Held && id.is_none_or(|id| h.held.id == id))
        {
            h.status = status;
        }
        Ok(())
    }

    async fn held_plan(&self, id: Option<&str>) -> Result<Option<HeldRecord>, StoreError> {
        Ok(lock(&self.holds)
            .iter()
            .find(|h| match id {
                Some(id) => h.held.id == id,
                None => h.status == HoldStatus::Held,
            })
            .cloned())
    }
}

/// A System Log in memory: events in persistence order, pages of `page_size`, cursors
/// `https://fake.okta.test/api/v1/logs?after=N`.
pub struct FakeChangeFeed {
    page_size: usize,
    events: Mutex<Vec<ChangeEvent>>,
    user_groups: Mutex<BTreeMap<String, Vec<OktaGroupId>>>,
    /// Polls that fail (503) before polls succeed again.
    failing_polls: Mutex<u32>,
    polls: Mutex<usize>,
}

impl FakeChangeFeed {
    pub fn new(page_size: usize) -> Self {
        FakeChangeFeed {
            page_size: page_size.max(1),
            events: Mutex::default(),
            user_groups: Mutex::default(),
            failing_polls: Mutex::default(),
            polls: Mutex::default(),
        }
    }

    /// Appends an event (it is persisted now, whatever its `published`).
    pub fn push(&self, event: ChangeEvent) {
        lock(&self.events).push(event);
    }

    pub fn set_user_groups(&self, user: &str, groups: &[&str]) {
        lock(&self.user_groups).insert(
            user.into(),
            groups.iter().map(|g| OktaGroupId::new(*g)).collect(),
        );
    }

    pub fn fail_next_polls(&self, n: u32) {
        *lock(&self.failing_polls) = n;
    }

    /// Polls answered, failed ones included.
    pub fn polls(&self) -> usize {
        *lock(&self.polls)
    }

    fn cursor(after: usize) -> url::Url {
        url::Url::parse(&format!("https://fake.okta.test/api/v1/logs?after={after}"))
            .expect("a valid URL")
    }
}

impl ChangeFeed for FakeChangeFeed {
    async fn poll(&self, cursor: Option<&url::Url>) -> Result<FeedPage, SourceError> {
        *lock(&self.polls) += 1;
        {
            let mut failing = lock(&self.failing_polls);
            if *failing > 0 {
                *failing -= 1;
                return Err(SourceError::Server {
                    path: "/api/v1/logs".into(),
                    status: 503,
                });
            }
        }
        let start = match cursor {
            None => 0,
            Some(url) => url
                .query_pairs()
                .find(|(k, _)| k == "after")
                .and_then(|(_, v)| v.parse().ok())
                .ok_or_else(|| SourceError::BadRequest {
                    path: "/api/v1/logs".into(),
                    code: "E0000053".into(),
                    summary: format!("not a cursor: {url}"),
                })?,
        };
        let events = lock(&self.events);
        let start = start.min(events.len());
        let end = (start + self.page_size).min(events.len());
        Ok(FeedPage {
            events: events[start..end].to_vec(),
            next: Self::cursor(end),
            full: end - start == self.page_size,
            malformed: 0,
            ignored: 0,
        })
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroupId>, SourceError> {
        Ok(lock(&self.user_groups)
            .get(user_id)
            .cloned()
            .unwrap_or_default())
    }
}
