//! The SCIM record in whichever snapshot store is configured.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::Backend;
use crate::scim::protocol::{GroupAttrs, ListQuery, Page, ScimGroup, ScimUser, UserAttrs};
use crate::scim::record::{
    DirectoryUser, GroupHead, GroupUpdate, RecordError, ScimRecord, UserUpdate, Written,
};

/// Calls the same method on whichever store is configured.
macro_rules! either {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Sqlite($store) => $call.await,
            Backend::Postgres($store) => $call.await,
        }
    };
}

impl ScimRecord for Backend {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<Written<ScimUser>, RecordError> {
        either!(self, s => s.create_user(at, id, attrs))
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, RecordError> {
        either!(self, s => s.get_user(id))
    }

    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<Written<ScimUser>, RecordError> {
        either!(self, s => s.update_user(at, id, update))
    }

    async fn remove_user(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        either!(self, s => s.remove_user(at, id))
    }

    async fn query_users(&self, query: &ListQuery) -> Result<Page<ScimUser>, RecordError> {
        either!(self, s => s.query_users(query))
    }

    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<Written<ScimGroup>, RecordError> {
        either!(self, s => s.create_group(at, id, attrs, members))
    }

    async fn get_group(&self, id: &str, members: bool) -> Result<Option<ScimGroup>, RecordError> {
        either!(self, s => s.get_group(id, members))
    }

    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<Written<ScimGroup>, RecordError> {
        either!(self, s => s.update_group(at, id, update, members))
    }

    async fn remove_group(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        either!(self, s => s.remove_group(at, id))
    }

    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<Page<ScimGroup>, RecordError> {
        either!(self, s => s.query_groups(query, members))
    }

    async fn directory_groups(&self) -> Result<Vec<GroupHead>, RecordError> {
        either!(self, s => s.directory_groups())
    }

    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<DirectoryUser>>, RecordError> {
        either!(self, s => s.directory_members(group_id))
    }

    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DirectoryUser>, RecordError> {
        either!(self, s => s.users_modified_since(since))
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<GroupHead>, RecordError> {
        either!(self, s => s.groups_of_user(user_id))
    }

    async fn find_users(&self, key: &str) -> Result<Vec<DirectoryUser>, RecordError> {
        either!(self, s => s.find_users(key))
    }

    async fn change_seq(&self) -> Result<u64, RecordError> {
        either!(self, s => s.change_seq())
    }
}
