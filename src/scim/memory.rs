//! [`MemScim`]: the SCIM record in memory, with the semantics of the SQLite and PostgreSQL
//! records (one contract test runs against all three). Not durable: for tests and demos.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::protocol::{
    GroupAttrs, IndexHint, ListQuery, Meta, Page, ResourceKind, ScimGroup, ScimUser, UserAttrs,
    fold,
};
use super::record::{
    DirectoryUser, GroupHead, GroupUpdate, RecordError, ScimRecord, UserUpdate, Written, next_time,
    page, resolve_group_attrs, resolve_user_update, to_millis,
};

struct UserRow {
    attrs: UserAttrs,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: u64,
    deleted: bool,
}

struct GroupRow {
    attrs: GroupAttrs,
    created: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    members_updated: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: u64,
    members: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    seq: u64,
    users: BTreeMap<String, UserRow>,
    groups: BTreeMap<String, GroupRow>,
}

/// The SCIM record in memory.
#[derive(Default)]
pub struct MemScim {
    /// A std `Mutex`: every operation is short and never awaits while holding it.
    state: Mutex<State>,
}

impl MemScim {
    pub fn new() -> MemScim {
        MemScim::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl UserRow {
    fn to_user(&self, id: &str) -> ScimUser {
        ScimUser {
            id: id.to_owned(),
            attrs: self.attrs.clone(),
            meta: Meta {
                created: self.created,
                last_modified: self.last_modified,
                version: self.version,
            },
        }
    }

    fn to_directory(&self, id: &str) -> DirectoryUser {
        DirectoryUser {
            id: id.to_owned(),
            user_name: self.attrs.user_name().to_owned(),
            email: self.attrs.preferred_email().map(str::to_owned),
            active: self.attrs.active(),
            deleted: self.deleted,
            last_modified: self.last_modified,
        }
    }
}

impl State {
    fn live_user(&self, id: &str) -> Option<&UserRow> {
        self.users.get(id).filter(|u| !u.deleted)
    }

    fn user_name_taken(&self, key: &str, except: &str) -> bool {
        self.users
            .iter()
            .any(|(id, u)| !u.deleted && id != except && u.attrs.user_name_key() == key)
    }

    fn display_name_taken(&self, key: &str, except: &str) -> bool {
        self.groups
            .iter()
            .any(|(id, g)| id != except && g.attrs.display_name_key() == key)
    }

    fn check_members<'a>(&self, ids: impl Iterator<Item = &'a String>) -> Result<(), RecordError> {
        for id in ids {
            if self.live_user(id).is_none() {
                return Err(RecordError::unknown_member(id));
            }
        }
        Ok(())
    }

    fn live_members(&self, g: &GroupRow) -> BTreeSet<String> {
        g.members
            .iter()
            .filter(|m| self.live_user(m).is_some())
            .cloned()
            .collect()
    }

    fn to_group(&self, id: &str, g: &GroupRow, members: bool) -> ScimGroup {
        ScimGroup {
            id: id.to_owned(),
            attrs: g.attrs.clone(),
            members: members.then(|| self.live_members(g)),
            meta: Meta {
                created: g.created,
                last_modified: g.last_modified,
                version: g.version,
            },
        }
    }

    fn head(id: &str, g: &GroupRow) -> GroupHead {
        GroupHead {
            id: id.to_owned(),
            display_name: g.attrs.display_name().to_owned(),
            last_updated: g.last_updated,
            members_updated: g.members_updated,
        }
    }
}

impl ScimRecord for MemScim {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<Written<ScimUser>, RecordError> {
        let mut s = self.lock();
        if s.users.contains_key(id) {
            return Err(RecordError::id_taken(ResourceKind::User, id));
        }
        if s.user_name_taken(&attrs.user_name_key(), id) {
            return Err(RecordError::user_name_taken(attrs.user_name()));
        }
        s.seq += 1;
        let at = to_millis(at);
        let row = UserRow {
            attrs,
            created: at,
            last_modified: at,
            version: s.seq,
            deleted: false,
        };
        let user = row.to_user(id);
        s.users.insert(id.to_owned(), row);
        Ok(Written {
            value: user,
            seq: Some(s.seq),
        })
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, RecordError> {
        Ok(self.lock().live_user(id).map(|u| u.to_user(id)))
    }

    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<Written<ScimUser>, RecordError> {
        let mut s = self.lock();
        let row = s
            .live_user(id)
            .ok_or_else(|| RecordError::user_not_found(id))?;
        let current = row.to_user(id);
        let attrs = resolve_user_update(&current, update)?;
        if attrs == current.attrs {
            return Ok(Written {
                value: current,
                seq: None,
            });
        }
        if s.user_name_taken(&attrs.user_name_key(), id) {
            return Err(RecordError::user_name_taken(attrs.user_name()));
        }
        s.seq += 1;
        let seq = s.seq;
        let row = s
            .users
            .get_mut(id)
            .ok_or_else(|| RecordError::user_not_found(id))?;
        row.attrs = attrs;
        row.last_modified = next_time(row.last_modified, at);
        row.version = seq;
        Ok(Written {
            value: row.to_user(id),
            seq: Some(seq),
        })
    }

    async fn remove_user(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let mut s = self.lock();
        if s.live_user(id).is_none() {
            return Err(RecordError::user_not_found(id));
        }
        s.seq += 1;
        let seq = s.seq;
        let row = s
            .users
            .get_mut(id)
            .ok_or_else(|| RecordError::user_not_found(id))?;
        row.deleted = true;
        row.last_modified = next_time(row.last_modified, at);
        row.version = seq;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    async fn query_users(&self, query: &ListQuery) -> Result<Page<ScimUser>, RecordError> {
        let s = self.lock();
        let hint = query
            .filter
            .as_ref()
            .and_then(|f| f.index_hint(ResourceKind::User));
        let all: Vec<ScimUser> = s
            .users
            .iter()
            .filter(|(_, u)| !u.deleted)
            .filter(|(id, u)| match &hint {
                None => true,
                Some(IndexHint::Id(v)) => *id == v,
                Some(IndexHint::UserName(v)) => u.attrs.user_name_key() == fold(v),
                Some(IndexHint::ExternalId(v)) => u.attrs.external_id() == Some(v.as_str()),
                Some(IndexHint::DisplayName(_)) => false,
            })
            .map(|(id, u)| u.to_user(id))
            .filter(|u| {
                query
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&u.render(""), ResourceKind::User))
            })
            .collect();
        Ok(page(all, query))
    }

    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let mut s = self.lock();
        if s.groups.contains_key(id) {
            return Err(RecordError::id_taken(ResourceKind::Group, id));
        }
        if s.display_name_taken(&attrs.display_name_key(), id) {
            return Err(RecordError::display_name_taken(attrs.display_name()));
        }
        s.check_members(members.iter())?;
        s.seq += 1;
        let at = to_millis(at);
        let row = GroupRow {
            attrs,
            created: at,
            last_updated: at,
            members_updated: at,
            last_modified: at,
            version: s.seq,
            members,
        };
        let group = s.to_group(id, &row, true);
        s.groups.insert(id.to_owned(), row);
        Ok(Written {
            value: group,
            seq: Some(s.seq),
        })
    }

    async fn get_group(&self, id: &str, members: bool) -> Result<Option<ScimGroup>, RecordError> {
        let s = self.lock();
        Ok(s.groups.get(id).map(|g| s.to_group(id, g, members)))
    }

    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let mut s = self.lock();
        let row = s
            .groups
            .get(id)
            .ok_or_else(|| RecordError::group_not_found(id))?;
        let current = s.to_group(id, row, false);
        let attrs = resolve_group_attrs(&current, update.attrs)?;
        let attrs_changed = attrs != current.attrs;
        if attrs_changed && s.display_name_taken(&attrs.display_name_key(), id) {
            return Err(RecordError::display_name_taken(attrs.display_name()));
        }
        s.check_members(update.members.named_members())?;
        let mut new_members = row.members.clone();
        update.members.apply_to(&mut new_members);
        let members_changed = new_members != row.members;
        if !attrs_changed && !members_changed {
            return Ok(Written {
                value: s.to_group(id, row, members),
                seq: None,
            });
        }
        s.seq += 1;
        let seq = s.seq;
        let row = s
            .groups
            .get_mut(id)
            .ok_or_else(|| RecordError::group_not_found(id))?;
        if attrs_changed {
            row.attrs = attrs;
            row.last_updated = next_time(row.last_updated, at);
        }
        if members_changed {
            row.members = new_members;
            row.members_updated = next_time(row.members_updated, at);
        }
        row.last_modified = next_time(row.last_modified, at);
        row.version = seq;
        let s = &*s;
        let row = s
            .groups
            .get(id)
            .ok_or_else(|| RecordError::group_not_found(id))?;
        Ok(Written {
            value: s.to_group(id, row, members),
            seq: Some(seq),
        })
    }

    async fn remove_group(&self, _at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let mut s = self.lock();
        if s.groups.remove(id).is_none() {
            return Err(RecordError::group_not_found(id));
        }
        s.seq += 1;
        Ok(Written {
            value: (),
            seq: Some(s.seq),
        })
    }

    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<Page<ScimGroup>, RecordError> {
        let s = self.lock();
        let hint = query
            .filter
            .as_ref()
            .and_then(|f| f.index_hint(ResourceKind::Group));
        let need_members = members || query.filter.as_ref().is_some_and(|f| f.mentions("members"));
        let all: Vec<ScimGroup> = s
            .groups
            .iter()
            .filter(|(id, g)| match &hint {
                None => true,
                Some(IndexHint::Id(v)) => *id == v,
                Some(IndexHint::DisplayName(v)) => g.attrs.display_name_key() == fold(v),
                Some(IndexHint::ExternalId(v)) => g.attrs.external_id() == Some(v.as_str()),
                Some(IndexHint::UserName(_)) => false,
            })
            .map(|(id, g)| s.to_group(id, g, need_members))
            .filter(|g| {
                query
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&g.render(""), ResourceKind::Group))
            })
            .map(|mut g| {
                if !members {
                    g.members = None;
                }
                g
            })
            .collect();
        Ok(page(all, query))
    }

    async fn directory_groups(&self) -> Result<Vec<GroupHead>, RecordError> {
        let s = self.lock();
        Ok(s.groups.iter().map(|(id, g)| State::head(id, g)).collect())
    }

    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<DirectoryUser>>, RecordError> {
        let s = self.lock();
        Ok(s.groups.get(group_id).map(|g| {
            g.members
                .iter()
                .filter_map(|m| s.users.get(m).map(|u| u.to_directory(m)))
                .collect()
        }))
    }

    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DirectoryUser>, RecordError> {
        let s = self.lock();
        let mut users: Vec<DirectoryUser> = s
            .users
            .iter()
            .filter(|(_, u)| u.last_modified >= since)
            .map(|(id, u)| u.to_directory(id))
            .collect();
        users.sort_by(|a, b| (a.last_modified, &a.id).cmp(&(b.last_modified, &b.id)));
        Ok(users)
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<GroupHead>, RecordError> {
        let s = self.lock();
        Ok(s.groups
            .iter()
            .filter(|(_, g)| g.members.contains(user_id))
            .map(|(id, g)| State::head(id, g))
            .collect())
    }

    async fn find_users(&self, key: &str) -> Result<Vec<DirectoryUser>, RecordError> {
        let s = self.lock();
        let folded = fold(key);
        Ok(s.users
            .iter()
            .filter(|(id, u)| {
                id.as_str() == key
                    || u.attrs.user_name_key() == folded
                    || u.attrs.preferred_email().is_some_and(|e| fold(e) == folded)
            })
            .map(|(id, u)| u.to_directory(id))
            .collect())
    }

    async fn change_seq(&self) -> Result<u64, RecordError> {
        Ok(self.lock().seq)
    }
}
