//! The SCIM record: the IdP's users and groups as pushed, behind [`ScimRecord`].
//!
//! Every write is one transaction, committed before the method returns (a 2xx means the
//! change is stored), takes its time as a parameter, and bumps one change sequence that
//! readers (the applier, another replica) compare cheaply. A write that changes nothing (the
//! IdP sending what is already stored) commits nothing and bumps nothing.
//!
//! SCIM writes are not fenced by leadership: the record is the IdP's state, and any replica
//! may store it; the applier (the leader) brings Q Business to it.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};

use crate::scim::protocol::{
    GroupAttrs, ListQuery, MemberChange, Operation, Page, ResourceKind, ScimError, ScimGroup,
    ScimUser, UserAttrs,
};
use crate::store::StoreError;

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T> {
    /// The resource as stored after the write.
    pub value: T,
    /// The change sequence number the write committed; `None` when it changed nothing.
    pub seq: Option<u64>,
}

/// How [`ScimRecord::update_user`] changes a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserUpdate {
    /// PUT: the attributes become these.
    Replace(UserAttrs),
    /// PATCH: these operations, applied to the stored user inside the transaction.
    Patch(Vec<Operation>),
}

/// How [`ScimRecord::update_group`] changes a group's attributes other than its members.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum GroupAttrsUpdate {
    #[default]
    Keep,
    /// PUT.
    Replace(GroupAttrs),
    /// PATCH: these operations, applied inside the transaction.
    Patch(Vec<Operation>),
}

/// A change to a group: its attributes and its members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupUpdate {
    pub attrs: GroupAttrsUpdate,
    pub members: MemberChange,
}

/// A group as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHead {
    pub id: String,
    pub display_name: String,
    /// When an attribute (the name) last changed.
    pub last_updated: DateTime<Utc>,
    /// When the member list last changed.
    pub members_updated: DateTime<Utc>,
}

/// A user as the directory reads it (tombstones of deleted users included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    pub user_name: String,
    /// The primary email, else the first (trimmed), as sent.
    pub email: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub last_modified: DateTime<Utc>,
}

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such resource (or it was deleted): 404.
    #[error("no {} with id {id:?}", kind.as_str())]
    NotFound { kind: ResourceKind, id: String },
    /// A unique attribute is taken (`userName`, a group's `displayName`): 409 `uniqueness`.
    #[error("{0}")]
    Conflict(String),
    /// A value refers to something that does not exist (a member that is no user): 400
    /// `invalidValue`. Nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The request's own error (a PATCH that does not apply to the stored resource).
    #[error(transparent)]
    Rejected(ScimError),
    /// The store failed: nothing is acknowledged (500).
    #[error("the SCIM record could not be read or written")]
    Store(#[from] StoreError),
}

impl RecordError {
    /// The SCIM error the IdP gets. A store failure says only that the change was not stored
    /// (its cause is logged where it is handled, not sent to the IdP).
    pub fn to_scim(&self) -> ScimError {
        match self {
            RecordError::NotFound { .. } => ScimError::not_found(self.to_string()),
            RecordError::Conflict(d) => ScimError::uniqueness(d.clone()),
            RecordError::Invalid(d) => ScimError::invalid_value(d.clone()),
            RecordError::Rejected(e) => e.clone(),
            RecordError::Store(_) => {
                ScimError::internal("the change was not stored; retry the request")
            }
        }
    }

    pub(crate) fn user_not_found(id: &str) -> RecordError {
        RecordError::NotFound {
            kind: ResourceKind::User,
            id: id.to_owned(),
        }
    }

    pub(crate) fn group_not_found(id: &str) -> RecordError {
        RecordError::NotFound {
            kind: ResourceKind::Group,
            id: id.to_owned(),
        }
    }

    pub(crate) fn user_name_taken(user_name: &str) -> RecordError {
        RecordError::Conflict(format!("a User with userName {user_name:?} exists"))
    }

    pub(crate) fn display_name_taken(name: &str) -> RecordError {
        RecordError::Conflict(format!("a Group with displayName {name:?} exists"))
    }

    pub(crate) fn id_taken(kind: ResourceKind, id: &str) -> RecordError {
        RecordError::Conflict(format!("a {} with id {id:?} exists", kind.as_str()))
    }

    pub(crate) fn unknown_member(id: &str) -> RecordError {
        RecordError::Invalid(format!("member {id:?} is not a User"))
    }
}

/// The IdP's users and groups as pushed over SCIM: what the HTTP endpoint stores and serves,
/// and what [`crate::scim::ScimDirectory`] reads for the engine.
pub trait ScimRecord: Send + Sync {
    /// Stores a new user under `id`. 409 when a live user has the same `userName`
    /// (compared case-insensitively).
    fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> impl Future<Output = Result<Written<ScimUser>, RecordError>> + Send;

    /// A live user (a deleted one is `None`).
    fn get_user(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ScimUser>, RecordError>> + Send;

    /// Replaces (PUT) or patches (PATCH) a live user in one read-modify-write transaction.
    fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> impl Future<Output = Result<Written<ScimUser>, RecordError>> + Send;

    /// Deletes a user: the resource answers 404 from then on, but a tombstone and the user's
    /// memberships stay, so the directory reports them as a deprovisioned member.
    fn remove_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> impl Future<Output = Result<Written<()>, RecordError>> + Send;

    /// Live users matching the query, one page, in id order.
    fn query_users(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Page<ScimUser>, RecordError>> + Send;

    /// Stores a new group with `members` (each must be a live user: 400 naming the first
    /// that is not). 409 when another group has the same `displayName` (case-insensitively).
    fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> impl Future<Output = Result<Written<ScimGroup>, RecordError>> + Send;

    /// A group, with its members (live users only) when `members` is true.
    fn get_group(
        &self,
        id: &str,
        members: bool,
    ) -> impl Future<Output = Result<Option<ScimGroup>, RecordError>> + Send;

    /// Changes a group (PUT or PATCH) in one transaction; member adds and removes cost a row
    /// write each, whatever the group's size. Returns the group, with its members when
    /// `members` is true.
    fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> impl Future<Output = Result<Written<ScimGroup>, RecordError>> + Send;

    /// Deletes a group and its memberships.
    fn remove_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> impl Future<Output = Result<Written<()>, RecordError>> + Send;

    /// Groups matching the query, one page, in id order; members read when `members`.
    fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> impl Future<Output = Result<Page<ScimGroup>, RecordError>> + Send;

    /// Every group, for the directory.
    fn directory_groups(&self) -> impl Future<Output = Result<Vec<GroupHead>, RecordError>> + Send;

    /// The members of a group, deactivated and deleted users included (read in one
    /// snapshot); `None` when the group does not exist.
    fn directory_members(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<DirectoryUser>>, RecordError>> + Send;

    /// Users (tombstones included) whose `lastModified` is at or after `since`.
    fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<DirectoryUser>, RecordError>> + Send;

    /// The groups listing a user (kept after the user is deactivated or deleted).
    fn groups_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<GroupHead>, RecordError>> + Send;

    /// Users (tombstones included) whose id is `key`, or whose `userName` or primary email
    /// is `key` case-insensitively, for `explain`.
    fn find_users(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<DirectoryUser>, RecordError>> + Send;

    /// The change sequence: bumped by every committed write, never by a no-op.
    fn change_seq(&self) -> impl Future<Output = Result<u64, RecordError>> + Send;
}

/// A shared record is a record.
impl<T: ScimRecord + ?Sized> ScimRecord for std::sync::Arc<T> {
    fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> impl Future<Output = Result<Written<ScimUser>, RecordError>> + Send {
        (**self).create_user(at, id, attrs)
    }

    fn get_user(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ScimUser>, RecordError>> + Send {
        (**self).get_user(id)
    }

    fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> impl Future<Output = Result<Written<ScimUser>, RecordError>> + Send {
        (**self).update_user(at, id, update)
    }

    fn remove_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> impl Future<Output = Result<Written<()>, RecordError>> + Send {
        (**self).remove_user(at, id)
    }

    fn query_users(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Page<ScimUser>, RecordError>> + Send {
        (**self).query_users(query)
    }

    fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> impl Future<Output = Result<Written<ScimGroup>, RecordError>> + Send {
        (**self).create_group(at, id, attrs, members)
    }

    fn get_group(
        &self,
        id: &str,
        members: bool,
    ) -> impl Future<Output = Result<Option<ScimGroup>, RecordError>> + Send {
        (**self).get_group(id, members)
    }

    fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> impl Future<Output = Result<Written<ScimGroup>, RecordError>> + Send {
        (**self).update_group(at, id, update, members)
    }

    fn remove_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> impl Future<Output = Result<Written<()>, RecordError>> + Send {
        (**self).remove_group(at, id)
    }

    fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> impl Future<Output = Result<Page<ScimGroup>, RecordError>> + Send {
        (**self).query_groups(query, members)
    }

    fn directory_groups(&self) -> impl Future<Output = Result<Vec<GroupHead>, RecordError>> + Send {
        (**self).directory_groups()
    }

    fn directory_members(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<DirectoryUser>>, RecordError>> + Send {
        (**self).directory_members(group_id)
    }

    fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<DirectoryUser>, RecordError>> + Send {
        (**self).users_modified_since(since)
    }

    fn groups_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<GroupHead>, RecordError>> + Send {
        (**self).groups_of_user(user_id)
    }

    fn find_users(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<DirectoryUser>, RecordError>> + Send {
        (**self).find_users(key)
    }

    fn change_seq(&self) -> impl Future<Output = Result<u64, RecordError>> + Send {
        (**self).change_seq()
    }
}

// ---- shared by the backends ------------------------------------------------------------------

/// `at` to the millisecond: the precision every backend keeps (the SQLite snapshot stores
/// read marks to the millisecond, and the engine compares them for equality).
pub fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let ms = at.timestamp_millis();
    DateTime::from_timestamp_millis(ms).unwrap_or(at)
}

/// The time a resource's change is stamped with: `at`, or a millisecond after `prev` when the
/// clock has not moved past it, so each change of a group or user has a time of its own (the
/// engine's incremental read compares them for equality).
pub fn next_time(prev: DateTime<Utc>, at: DateTime<Utc>) -> DateTime<Utc> {
    let at = to_millis(at);
    let floor = prev + TimeDelta::milliseconds(1);
    if at >= floor { at } else { floor }
}

/// The attributes a user update leaves, computed from the stored user.
pub fn resolve_user_update(
    current: &ScimUser,
    update: UserUpdate,
) -> Result<UserAttrs, RecordError> {
    match update {
        UserUpdate::Replace(attrs) => Ok(attrs),
        UserUpdate::Patch(ops) => {
            crate::scim::protocol::patch_user(current, &ops).map_err(RecordError::Rejected)
        }
    }
}

/// The attributes a group update leaves, computed from the stored group.
pub fn resolve_group_attrs(
    current: &ScimGroup,
    update: GroupAttrsUpdate,
) -> Result<GroupAttrs, RecordError> {
    match update {
        GroupAttrsUpdate::Keep => Ok(current.attrs.clone()),
        GroupAttrsUpdate::Replace(attrs) => Ok(attrs),
        GroupAttrsUpdate::Patch(ops) => {
            crate::scim::protocol::patch_group_attrs(current, &ops).map_err(RecordError::Rejected)
        }
    }
}

/// Parses stored attributes (JSON text).
pub fn parse_attrs(
    what: &str,
    id: &str,
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, RecordError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, id, e))
}

/// A stored user from its columns.
pub fn stored_user(
    id: String,
    attrs: &str,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: i64,
) -> Result<ScimUser, RecordError> {
    let attrs = UserAttrs::from_json(parse_attrs("user", &id, attrs)?)
        .map_err(|e| corrupt("user", &id, e))?;
    Ok(ScimUser {
        id,
        attrs,
        meta: crate::scim::protocol::Meta {
            created,
            last_modified,
            version: version.max(0) as u64,
        },
    })
}

/// A stored group (without members) from its columns.
pub fn stored_group(
    id: String,
    attrs: &str,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: i64,
) -> Result<ScimGroup, RecordError> {
    let attrs = GroupAttrs::from_json(parse_attrs("group", &id, attrs)?)
        .map_err(|e| corrupt("group", &id, e))?;
    Ok(ScimGroup {
        id,
        attrs,
        members: None,
        meta: crate::scim::protocol::Meta {
            created,
            last_modified,
            version: version.max(0) as u64,
        },
    })
}

/// Attributes as stored (JSON text).
pub fn attrs_text(json: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(json.clone()).to_string()
}

/// Collects the page of `query` from matching resources in order, counting them all but
/// keeping only the page.
pub fn page_of<T>(
    matching: impl Iterator<Item = Result<T, RecordError>>,
    query: &ListQuery,
) -> Result<Page<T>, RecordError> {
    let skip = query.start_index.saturating_sub(1);
    let mut total = 0;
    let mut items = Vec::new();
    for item in matching {
        let item = item?;
        if total >= skip && items.len() < query.count {
            items.push(item);
        }
        total += 1;
    }
    Ok(Page { total, items })
}

/// The page `[start_index - 1, + count)` of `all`, with its total.
pub fn page<T>(all: Vec<T>, query: &ListQuery) -> Page<T> {
    let total = all.len();
    let items = all
        .into_iter()
        .skip(query.start_index.saturating_sub(1))
        .take(query.count)
        .collect();
    Page { total, items }
}

/// A stored resource whose attributes no longer parse: reported as a corrupt record.
pub fn corrupt(what: &str, id: &str, detail: impl std::fmt::Display) -> RecordError {
    RecordError::Store(StoreError::Corrupt {
        path: "scim record".into(),
        detail: format!("{what} {id:?}: {detail}"),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn change_times_move_forward_by_at_least_a_millisecond() {
        let t = |ms: i64| {
            Utc.timestamp_millis_opt(1_780_000_000_000 + ms)
                .single()
                .expect("t")
        };
        assert_eq!(next_time(t(0), t(5)), t(5));
        assert_eq!(next_time(t(5), t(5)), t(6));
        assert_eq!(next_time(t(9), t(5)), t(10), "a clock that stepped back");
        let micro = t(7) + TimeDelta::microseconds(999);
        assert_eq!(next_time(t(0), micro), t(7), "kept to the millisecond");
    }
}
