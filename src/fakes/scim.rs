//! The SCIM record in memory ([`MemScim`], public as `crate::scim::MemScim` so the contract
//! test in `tests/` runs against it too), and a wrapper whose writes fail on demand.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::scim::MemScim;
use crate::scim::protocol::{GroupAttrs, ListQuery, Page, ScimGroup, ScimUser, UserAttrs};
use crate::scim::{
    DirectoryUser, GroupHead, GroupUpdate, RecordError, ScimRecord, UserUpdate, Written,
};
use crate::store::StoreError;

/// A record whose writes fail (as a full disk or a lost database would) while
/// [`FlakyScim::fail_writes`] is on; reads always work.
#[derive(Default)]
pub struct FlakyScim {
    pub inner: MemScim,
    failing: AtomicBool,
}

impl FlakyScim {
    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), RecordError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(RecordError::Store(StoreError::Task(
                "disk full (injected)".into(),
            )))
        } else {
            Ok(())
        }
    }
}

impl ScimRecord for FlakyScim {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<Written<ScimUser>, RecordError> {
        self.check()?;
        self.inner.create_user(at, id, attrs).await
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, RecordError> {
        self.inner.get_user(id).await
    }

    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<Written<ScimUser>, RecordError> {
        self.check()?;
        self.inner.update_user(at, id, update).await
    }

    async fn remove_user(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        self.check()?;
        self.inner.remove_user(at, id).await
    }

    async fn query_users(&self, query: &ListQuery) -> Result<Page<ScimUser>, RecordError> {
        self.inner.query_users(query).await
    }

    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<Written<ScimGroup>, RecordError> {
        self.check()?;
        self.inner.create_group(at, id, attrs, members).await
    }

    async fn get_group(&self, id: &str, members: bool) -> Result<Option<ScimGroup>, RecordError> {
        self.inner.get_group(id, members).await
    }

    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<Written<ScimGroup>, RecordError> {
        self.check()?;
        self.inner.update_group(at, id, update, members).await
    }

    async fn remove_group(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        self.check()?;
        self.inner.remove_group(at, id).await
    }

    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<Page<ScimGroup>, RecordError> {
        self.inner.query_groups(query, members).await
    }

    async fn directory_groups(&self) -> Result<Vec<GroupHead>, RecordError> {
        self.inner.directory_groups().await
    }

    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<DirectoryUser>>, RecordError> {
        self.inner.directory_members(group_id).await
    }

    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DirectoryUser>, RecordError> {
        self.inner.users_modified_since(since).await
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<GroupHead>, RecordError> {
        self.inner.groups_of_user(user_id).await
    }

    async fn find_users(&self, key: &str) -> Result<Vec<DirectoryUser>, RecordError> {
        self.inner.find_users(key).await
    }

    async fn change_seq(&self) -> Result<u64, RecordError> {
        self.inner.change_seq().await
    }
}
