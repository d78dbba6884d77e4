//! The snapshot store in memory.

use crate::store::{HeldPlans, RunLog};
use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::model::{GroupName, Members, OktaGroupId};
use crate::plan::reads::KnownUser;
use crate::plan::safety::Held;
use crate::plan::{Snapshot, SnapshotGroup};
use crate::store::{
    AppliedPut, HeldRecord, HoldStatus, IntentOp, RunId, RunRecord, RunStart, SnapshotStore,
    StoreError, UsersMode, UsersWrite,
};

use super::{FixedClock, lock};

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

    /// Makes every write fail (a full disk) from now on.
    pub fn fail_writes(&self) {
        *lock(&self.fail_records) = true;
    }

    /// Leaves a write intent behind, as a crash between a write and its record does.
    pub fn leave_intent(&self, group: &str, okta_id: &str) {
        lock(&self.pending).insert(GroupName::new(group), OktaGroupId::new(okta_id));
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
