//! Q Business in memory: groups and document access.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use chrono::{DateTime, Utc};

use crate::model::{GroupName, Members, UserId};
use crate::sink::{DeleteOutcome, GroupPage, GroupSink, GroupState, SinkError, SinkErrorKind};

use super::lock;

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

    /// Makes puts to `group` accepted but then reported FAILED (and without effect).
    pub fn fail_async(&self, group: &str) {
        lock(&self.failing_async).insert(GroupName::new(group));
    }

    pub fn heal_async(&self) {
        lock(&self.failing_async).clear();
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

/// A shared sink is a sink: a test keeps a handle on the fake it hands the engine.
impl<T: GroupSink + ?Sized> GroupSink for std::sync::Arc<T> {
    fn put_group(
        &self,
        name: &GroupName,
        users: &Members,
        groups: &[GroupName],
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).put_group(name, users, groups)
    }

    fn delete_group(
        &self,
        name: &GroupName,
    ) -> impl Future<Output = Result<DeleteOutcome, SinkError>> + Send {
        (**self).delete_group(name)
    }

    fn group_state(
        &self,
        name: &GroupName,
    ) -> impl Future<Output = Result<GroupState, SinkError>> + Send {
        (**self).group_state(name)
    }

    fn list_groups_page(
        &self,
        updated_before: DateTime<Utc>,
        token: Option<String>,
    ) -> impl Future<Output = Result<GroupPage, SinkError>> + Send {
        (**self).list_groups_page(updated_before, token)
    }
}
