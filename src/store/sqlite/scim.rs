//! The SCIM record in the SQLite snapshot file (the `scim_*` tables of schema v7). Each write
//! is one `BEGIN IMMEDIATE` transaction, committed (WAL, `synchronous = FULL`) before the
//! method returns; a write that changes nothing is rolled back.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{SqliteStore, classify, display};
use crate::scim::protocol::{
    GroupAttrs, IndexHint, ListQuery, MemberChange, Page, ResourceKind, ScimGroup, ScimUser,
    UserAttrs, fold,
};
use crate::scim::record::{
    DirectoryUser, GroupHead, GroupUpdate, RecordError, ScimRecord, UserUpdate, Written,
    attrs_text, next_time, page_of, resolve_group_attrs, resolve_user_update, stored_group,
    stored_user, to_millis,
};
use crate::store::StoreError;
use crate::store::codec::{parse_ts, ts};

const USER: &str = "id, attrs, created, last_modified, version";
const DIRECTORY_USER: &str = "id, user_name, email, active, deleted, last_modified";
const GROUP: &str = "id, attrs, created, last_modified, version";
const HEAD: &str = "id, display_name, last_updated, members_updated";

// The statements on the paths an IdP's push takes once per user or member; each is answered
// by an index (the tests below check the query plans), so a push of 10,000 users never scans.
const USER_BY_ID: &str = "SELECT id, attrs, created, last_modified, version FROM scim_users
    WHERE id = ?1 AND deleted = 0";
const USERS_BY_NAME: &str = "SELECT id, attrs, created, last_modified, version FROM scim_users
    WHERE deleted = 0 AND user_name_key = ?1 ORDER BY id";
const USERS_BY_EXTERNAL_ID: &str = "SELECT id, attrs, created, last_modified, version
    FROM scim_users WHERE deleted = 0 AND external_id = ?1 ORDER BY id";
const USER_NAME_TAKEN: &str =
    "SELECT 1 FROM scim_users WHERE user_name_key = ?1 AND deleted = 0 AND id <> ?2";
const LIVE_USER_EXISTS: &str = "SELECT 1 FROM scim_users WHERE id = ?1 AND deleted = 0";
const DISPLAY_NAME_TAKEN: &str =
    "SELECT 1 FROM scim_groups WHERE display_name_key = ?1 AND id <> ?2";
const GROUPS_BY_NAME: &str = "SELECT id, attrs, created, last_modified, version FROM scim_groups
    WHERE display_name_key = ?1";
const MEMBER_ADD: &str = "INSERT INTO scim_members (group_id, user_id) VALUES (?1, ?2)
    ON CONFLICT (group_id, user_id) DO NOTHING";
const MEMBER_REMOVE: &str = "DELETE FROM scim_members WHERE group_id = ?1 AND user_id = ?2";
const USERS_SINCE: &str = "SELECT id, user_name, email, active, deleted, last_modified
    FROM scim_users WHERE last_modified >= ?1 ORDER BY last_modified, id";
const LIVE_MEMBERS: &str = "SELECT m.user_id FROM scim_members m
    JOIN scim_users u ON u.id = m.user_id WHERE m.group_id = ?1 AND u.deleted = 0";
const DIRECTORY_MEMBERS: &str = "SELECT u.id, u.user_name, u.email, u.active, u.deleted,
    u.last_modified FROM scim_members m JOIN scim_users u ON u.id = m.user_id
    WHERE m.group_id = ?1 ORDER BY u.id";
const GROUPS_OF_USER: &str = "SELECT g.id, g.display_name, g.last_updated, g.members_updated
    FROM scim_members m JOIN scim_groups g ON g.id = m.group_id WHERE m.user_id = ?1 ORDER BY g.id";

fn db<'a>(p: &'a str, op: &'static str) -> impl Fn(rusqlite::Error) -> RecordError + 'a {
    move |e| RecordError::Store(classify(p, op, e))
}

fn time(p: &str, what: &str, t: &str) -> Result<DateTime<Utc>, RecordError> {
    parse_ts(t).ok_or_else(|| {
        RecordError::Store(StoreError::Corrupt {
            path: p.to_owned(),
            detail: format!("SCIM {what}: bad time {t:?}"),
        })
    })
}

impl SqliteStore {
    /// Runs `f` on the connection in the blocking pool; `None` for a read-only store over a
    /// file that does not exist yet.
    async fn scim<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, RecordError> + Send + 'static,
    ) -> Result<Option<T>, RecordError> {
        let Some(conn) = self.conn.clone() else {
            return Ok(None);
        };
        let path = display(&self.path);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard, &path)
        })
        .await
        .map_err(|e| RecordError::Store(StoreError::Task(e.to_string())))?
        .map(Some)
    }

    /// Runs a write transaction; a read-only store refuses it.
    async fn scim_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, RecordError> + Send + 'static,
    ) -> Result<T, RecordError> {
        self.writable()?;
        self.scim(f)
            .await?
            .ok_or_else(|| RecordError::Store(StoreError::Task("snapshot opened read-only".into())))
    }
}

/// Begins a write and bumps the change sequence; the number is the write's.
fn begin<'c>(conn: &'c mut Connection, p: &str) -> Result<(Transaction<'c>, u64), RecordError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(p, "begin SCIM write"))?;
    let seq: i64 = tx
        .query_row(
            "UPDATE scim_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq",
            [],
            |r| r.get(0),
        )
        .map_err(db(p, "bump SCIM change sequence"))?;
    Ok((tx, seq.max(0) as u64))
}

fn commit(tx: Transaction<'_>, p: &str) -> Result<(), RecordError> {
    tx.commit().map_err(db(p, "commit SCIM write"))
}

fn user_row(p: &str, r: &rusqlite::Row<'_>) -> Result<ScimUser, RecordError> {
    let get = |e| RecordError::Store(classify(p, "read SCIM user", e));
    let id: String = r.get(0).map_err(get)?;
    let attrs: String = r.get(1).map_err(get)?;
    let created: String = r.get(2).map_err(get)?;
    let modified: String = r.get(3).map_err(get)?;
    let version: i64 = r.get(4).map_err(get)?;
    stored_user(
        id,
        &attrs,
        time(p, "user", &created)?,
        time(p, "user", &modified)?,
        version,
    )
}

fn directory_row(p: &str, r: &rusqlite::Row<'_>) -> Result<DirectoryUser, RecordError> {
    let get = |e| RecordError::Store(classify(p, "read SCIM user", e));
    let modified: String = r.get(5).map_err(get)?;
    Ok(DirectoryUser {
        id: r.get(0).map_err(get)?,
        user_name: r.get(1).map_err(get)?,
        email: r.get(2).map_err(get)?,
        active: r.get(3).map_err(get)?,
        deleted: r.get(4).map_err(get)?,
        last_modified: time(p, "user", &modified)?,
    })
}

fn group_row(p: &str, r: &rusqlite::Row<'_>) -> Result<ScimGroup, RecordError> {
    let get = |e| RecordError::Store(classify(p, "read SCIM group", e));
    let id: String = r.get(0).map_err(get)?;
    let attrs: String = r.get(1).map_err(get)?;
    let created: String = r.get(2).map_err(get)?;
    let modified: String = r.get(3).map_err(get)?;
    let version: i64 = r.get(4).map_err(get)?;
    stored_group(
        id,
        &attrs,
        time(p, "group", &created)?,
        time(p, "group", &modified)?,
        version,
    )
}

fn head_row(p: &str, r: &rusqlite::Row<'_>) -> Result<GroupHead, RecordError> {
    let get = |e| RecordError::Store(classify(p, "read SCIM group", e));
    let updated: String = r.get(2).map_err(get)?;
    let members: String = r.get(3).map_err(get)?;
    Ok(GroupHead {
        id: r.get(0).map_err(get)?,
        display_name: r.get(1).map_err(get)?,
        last_updated: time(p, "group", &updated)?,
        members_updated: time(p, "group", &members)?,
    })
}

/// Runs `sql` with `params` and maps each row.
fn rows<T>(
    conn: &Connection,
    p: &str,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&str, &rusqlite::Row<'_>) -> Result<T, RecordError>,
) -> Result<Vec<T>, RecordError> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(db(p, "read SCIM record"))?;
    let mut rows = stmt.query(params).map_err(db(p, "read SCIM record"))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db(p, "read SCIM record"))? {
        out.push(map(p, r)?);
    }
    Ok(out)
}

fn live_user(conn: &Connection, p: &str, id: &str) -> Result<Option<ScimUser>, RecordError> {
    Ok(rows(conn, p, USER_BY_ID, params![id], user_row)?.pop())
}

fn user_name_taken(
    conn: &Connection,
    p: &str,
    key: &str,
    except: &str,
) -> Result<bool, RecordError> {
    conn.query_row(USER_NAME_TAKEN, params![key, except], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(db(p, "check userName"))
}

fn display_name_taken(
    conn: &Connection,
    p: &str,
    key: &str,
    except: &str,
) -> Result<bool, RecordError> {
    conn.query_row(DISPLAY_NAME_TAKEN, params![key, except], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(db(p, "check displayName"))
}

fn write_user(
    tx: &Transaction<'_>,
    p: &str,
    id: &str,
    attrs: &UserAttrs,
    insert: Option<DateTime<Utc>>,
    modified: DateTime<Utc>,
    seq: u64,
) -> Result<(), RecordError> {
    let email = attrs.preferred_email();
    let (user_name, key, external_id, email_key, active, json, modified, version) = (
        attrs.user_name(),
        attrs.user_name_key(),
        attrs.external_id(),
        email.map(fold),
        attrs.active(),
        attrs_text(attrs.json()),
        ts(modified),
        seq as i64,
    );
    match insert {
        Some(created) => tx.execute(
            "INSERT INTO scim_users (id, user_name, user_name_key, external_id, email, email_key, active,
                                     attrs, last_modified, version, created, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)",
            params![id, user_name, key, external_id, email, email_key, active, json, modified, version, ts(created)],
        ),
        None => tx.execute(
            "UPDATE scim_users SET user_name = ?2, user_name_key = ?3, external_id = ?4, email = ?5,
               email_key = ?6, active = ?7, attrs = ?8, last_modified = ?9, version = ?10
             WHERE id = ?1",
            params![id, user_name, key, external_id, email, email_key, active, json, modified, version],
        ),
    }
    .map_err(db(p, "write SCIM user"))?;
    Ok(())
}

fn read_group(
    conn: &Connection,
    p: &str,
    id: &str,
) -> Result<Option<(ScimGroup, GroupHead)>, RecordError> {
    let group = rows(
        conn,
        p,
        &format!("SELECT {GROUP} FROM scim_groups WHERE id = ?1"),
        params![id],
        group_row,
    )?
    .pop();
    let head = rows(
        conn,
        p,
        &format!("SELECT {HEAD} FROM scim_groups WHERE id = ?1"),
        params![id],
        head_row,
    )?
    .pop();
    Ok(group.zip(head))
}

/// The live users in a group.
fn live_members(conn: &Connection, p: &str, id: &str) -> Result<BTreeSet<String>, RecordError> {
    Ok(rows(conn, p, LIVE_MEMBERS, params![id], |p, r| {
        r.get::<_, String>(0).map_err(db(p, "read SCIM members"))
    })?
    .into_iter()
    .collect())
}

fn check_members<'a>(
    tx: &Transaction<'_>,
    p: &str,
    ids: impl Iterator<Item = &'a String>,
) -> Result<(), RecordError> {
    let mut stmt = tx
        .prepare_cached(LIVE_USER_EXISTS)
        .map_err(db(p, "check members"))?;
    for id in ids {
        let found = stmt
            .query_row(params![id], |_| Ok(()))
            .optional()
            .map_err(db(p, "check members"))?;
        if found.is_none() {
            return Err(RecordError::unknown_member(id));
        }
    }
    Ok(())
}

/// Applies a member change in as many row writes as it names members (a replace reads the
/// current rows to find the difference); whether any row changed.
fn apply_members(
    tx: &Transaction<'_>,
    p: &str,
    group: &str,
    change: &MemberChange,
) -> Result<bool, RecordError> {
    let (add, remove): (Vec<String>, Vec<String>) = match change {
        MemberChange::Delta { add, remove } => (
            add.iter().cloned().collect(),
            remove.iter().cloned().collect(),
        ),
        MemberChange::Replace(want) => {
            let have: BTreeSet<String> = rows(
                tx,
                p,
                "SELECT user_id FROM scim_members WHERE group_id = ?1",
                params![group],
                |p, r| r.get::<_, String>(0).map_err(db(p, "read SCIM members")),
            )?
            .into_iter()
            .collect();
            (
                want.difference(&have).cloned().collect(),
                have.difference(want).cloned().collect(),
            )
        }
    };
    let mut changed = 0;
    {
        let mut ins = tx
            .prepare_cached(MEMBER_ADD)
            .map_err(db(p, "add SCIM members"))?;
        for id in &add {
            changed += ins
                .execute(params![group, id])
                .map_err(db(p, "add SCIM members"))?;
        }
        let mut del = tx
            .prepare_cached(MEMBER_REMOVE)
            .map_err(db(p, "remove SCIM members"))?;
        for id in &remove {
            changed += del
                .execute(params![group, id])
                .map_err(db(p, "remove SCIM members"))?;
        }
    }
    Ok(changed > 0)
}

fn group_with_members(
    conn: &Connection,
    p: &str,
    mut g: ScimGroup,
    members: bool,
) -> Result<ScimGroup, RecordError> {
    if members {
        g.members = Some(live_members(conn, p, &g.id)?);
    }
    Ok(g)
}

impl ScimRecord for SqliteStore {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<Written<ScimUser>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM scim_users WHERE id = ?1",
                    params![id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db(p, "read SCIM user"))?;
            if exists.is_some() {
                return Err(RecordError::id_taken(ResourceKind::User, &id));
            }
            if user_name_taken(&tx, p, &attrs.user_name_key(), &id)? {
                return Err(RecordError::user_name_taken(attrs.user_name()));
            }
            let at = to_millis(at);
            write_user(&tx, p, &id, &attrs, Some(at), at, seq)?;
            let user = live_user(&tx, p, &id)?.ok_or_else(|| RecordError::user_not_found(&id))?;
            commit(tx, p)?;
            Ok(Written {
                value: user,
                seq: Some(seq),
            })
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, RecordError> {
        let id = id.to_owned();
        Ok(self
            .scim(move |conn, p| live_user(conn, p, &id))
            .await?
            .flatten())
    }

    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<Written<ScimUser>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            let current =
                live_user(&tx, p, &id)?.ok_or_else(|| RecordError::user_not_found(&id))?;
            let attrs = resolve_user_update(&current, update)?;
            if attrs == current.attrs {
                // Rolled back: nothing changed, the sequence stays.
                return Ok(Written {
                    value: current,
                    seq: None,
                });
            }
            if user_name_taken(&tx, p, &attrs.user_name_key(), &id)? {
                return Err(RecordError::user_name_taken(attrs.user_name()));
            }
            let modified = next_time(current.meta.last_modified, at);
            write_user(&tx, p, &id, &attrs, None, modified, seq)?;
            let user = live_user(&tx, p, &id)?.ok_or_else(|| RecordError::user_not_found(&id))?;
            commit(tx, p)?;
            Ok(Written {
                value: user,
                seq: Some(seq),
            })
        })
        .await
    }

    async fn remove_user(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            let current =
                live_user(&tx, p, &id)?.ok_or_else(|| RecordError::user_not_found(&id))?;
            tx.execute(
                "UPDATE scim_users SET deleted = 1, last_modified = ?2, version = ?3 WHERE id = ?1",
                params![
                    id,
                    ts(next_time(current.meta.last_modified, at)),
                    seq as i64
                ],
            )
            .map_err(db(p, "delete SCIM user"))?;
            commit(tx, p)?;
            Ok(Written {
                value: (),
                seq: Some(seq),
            })
        })
        .await
    }

    async fn query_users(&self, query: &ListQuery) -> Result<Page<ScimUser>, RecordError> {
        let query = query.clone();
        let page = self
            .scim(move |conn, p| {
                let select = format!("SELECT {USER} FROM scim_users WHERE deleted = 0");
                let candidates = match query
                    .filter
                    .as_ref()
                    .and_then(|f| f.index_hint(ResourceKind::User))
                {
                    Some(IndexHint::Id(v)) => rows(conn, p, USER_BY_ID, params![v], user_row)?,
                    Some(IndexHint::UserName(v)) => {
                        rows(conn, p, USERS_BY_NAME, params![fold(&v)], user_row)?
                    }
                    Some(IndexHint::ExternalId(v)) => {
                        rows(conn, p, USERS_BY_EXTERNAL_ID, params![v], user_row)?
                    }
                    Some(IndexHint::DisplayName(_)) => Vec::new(),
                    None if query.filter.is_none() => {
                        let total: i64 = conn
                            .query_row(
                                "SELECT count(*) FROM scim_users WHERE deleted = 0",
                                [],
                                |r| r.get(0),
                            )
                            .map_err(db(p, "count SCIM users"))?;
                        let items = rows(
                            conn,
                            p,
                            &format!("{select} ORDER BY id LIMIT ?1 OFFSET ?2"),
                            params![
                                query.count as i64,
                                query.start_index.saturating_sub(1) as i64
                            ],
                            user_row,
                        )?;
                        return Ok(Page {
                            total: total.max(0) as usize,
                            items,
                        });
                    }
                    None => rows(conn, p, &format!("{select} ORDER BY id"), [], user_row)?,
                };
                let filter = query.filter.as_ref();
                page_of(
                    candidates
                        .into_iter()
                        .filter(|u| {
                            filter.is_none_or(|f| f.matches(&u.render(""), ResourceKind::User))
                        })
                        .map(Ok),
                    &query,
                )
            })
            .await?;
        Ok(page.unwrap_or(Page {
            total: 0,
            items: Vec::new(),
        }))
    }

    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            let exists = tx
                .query_row("SELECT 1 FROM scim_groups WHERE id = ?1", params![id], |_| Ok(()))
                .optional()
                .map_err(db(p, "read SCIM group"))?;
            if exists.is_some() {
                return Err(RecordError::id_taken(ResourceKind::Group, &id));
            }
            if display_name_taken(&tx, p, &attrs.display_name_key(), &id)? {
                return Err(RecordError::display_name_taken(attrs.display_name()));
            }
            check_members(&tx, p, members.iter())?;
            let at = ts(to_millis(at));
            tx.execute(
                "INSERT INTO scim_groups (id, display_name, display_name_key, external_id, attrs, created,
                                          last_updated, members_updated, last_modified, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?6, ?7)",
                params![
                    id,
                    attrs.display_name(),
                    attrs.display_name_key(),
                    attrs.external_id(),
                    attrs_text(attrs.json()),
                    at,
                    seq as i64
                ],
            )
            .map_err(db(p, "write SCIM group"))?;
            apply_members(&tx, p, &id, &MemberChange::Replace(members))?;
            let (group, _) = read_group(&tx, p, &id)?.ok_or_else(|| RecordError::group_not_found(&id))?;
            let group = group_with_members(&tx, p, group, true)?;
            commit(tx, p)?;
            Ok(Written { value: group, seq: Some(seq) })
        })
        .await
    }

    async fn get_group(&self, id: &str, members: bool) -> Result<Option<ScimGroup>, RecordError> {
        let id = id.to_owned();
        Ok(self
            .scim(move |conn, p| match read_group(conn, p, &id)? {
                Some((g, _)) => group_with_members(conn, p, g, members).map(Some),
                None => Ok(None),
            })
            .await?
            .flatten())
    }

    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            let (current, head) = read_group(&tx, p, &id)?.ok_or_else(|| RecordError::group_not_found(&id))?;
            let attrs = resolve_group_attrs(&current, update.attrs)?;
            let attrs_changed = attrs != current.attrs;
            if attrs_changed && display_name_taken(&tx, p, &attrs.display_name_key(), &id)? {
                return Err(RecordError::display_name_taken(attrs.display_name()));
            }
            check_members(&tx, p, update.members.named_members())?;
            let members_changed = apply_members(&tx, p, &id, &update.members)?;
            if !attrs_changed && !members_changed {
                let group = group_with_members(&tx, p, current, members)?;
                return Ok(Written { value: group, seq: None });
            }
            let last_updated = if attrs_changed { next_time(head.last_updated, at) } else { head.last_updated };
            let members_updated = if members_changed { next_time(head.members_updated, at) } else { head.members_updated };
            tx.execute(
                "UPDATE scim_groups SET display_name = ?2, display_name_key = ?3, external_id = ?4, attrs = ?5,
                   last_updated = ?6, members_updated = ?7, last_modified = ?8, version = ?9
                 WHERE id = ?1",
                params![
                    id,
                    attrs.display_name(),
                    attrs.display_name_key(),
                    attrs.external_id(),
                    attrs_text(attrs.json()),
                    ts(last_updated),
                    ts(members_updated),
                    ts(next_time(current.meta.last_modified, at)),
                    seq as i64
                ],
            )
            .map_err(db(p, "write SCIM group"))?;
            let (group, _) = read_group(&tx, p, &id)?.ok_or_else(|| RecordError::group_not_found(&id))?;
            let group = group_with_members(&tx, p, group, members)?;
            commit(tx, p)?;
            Ok(Written { value: group, seq: Some(seq) })
        })
        .await
    }

    async fn remove_group(&self, _at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let id = id.to_owned();
        self.scim_write(move |conn, p| {
            let (tx, seq) = begin(conn, p)?;
            tx.execute("DELETE FROM scim_members WHERE group_id = ?1", params![id])
                .map_err(db(p, "delete SCIM group"))?;
            let n = tx
                .execute("DELETE FROM scim_groups WHERE id = ?1", params![id])
                .map_err(db(p, "delete SCIM group"))?;
            if n == 0 {
                return Err(RecordError::group_not_found(&id));
            }
            commit(tx, p)?;
            Ok(Written {
                value: (),
                seq: Some(seq),
            })
        })
        .await
    }

    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<Page<ScimGroup>, RecordError> {
        let query = query.clone();
        let page = self
            .scim(move |conn, p| {
                let select = format!("SELECT {GROUP} FROM scim_groups WHERE 1 = 1");
                let candidates = match query
                    .filter
                    .as_ref()
                    .and_then(|f| f.index_hint(ResourceKind::Group))
                {
                    Some(IndexHint::Id(v)) => rows(
                        conn,
                        p,
                        &format!("{select} AND id = ?1"),
                        params![v],
                        group_row,
                    )?,
                    Some(IndexHint::DisplayName(v)) => {
                        rows(conn, p, GROUPS_BY_NAME, params![fold(&v)], group_row)?
                    }
                    Some(IndexHint::ExternalId(v)) => rows(
                        conn,
                        p,
                        &format!("{select} AND external_id = ?1 ORDER BY id"),
                        params![v],
                        group_row,
                    )?,
                    Some(IndexHint::UserName(_)) => Vec::new(),
                    None if query.filter.is_none() => {
                        let total: i64 = conn
                            .query_row("SELECT count(*) FROM scim_groups", [], |r| r.get(0))
                            .map_err(db(p, "count SCIM groups"))?;
                        let items = rows(
                            conn,
                            p,
                            &format!("{select} ORDER BY id LIMIT ?1 OFFSET ?2"),
                            params![
                                query.count as i64,
                                query.start_index.saturating_sub(1) as i64
                            ],
                            group_row,
                        )?
                        .into_iter()
                        .map(|g| group_with_members(conn, p, g, members))
                        .collect::<Result<Vec<_>, _>>()?;
                        return Ok(Page {
                            total: total.max(0) as usize,
                            items,
                        });
                    }
                    None => rows(conn, p, &format!("{select} ORDER BY id"), [], group_row)?,
                };
                let Some(filter) = query.filter.as_ref() else {
                    return page_of(candidates.into_iter().map(Ok), &query);
                };
                let by_members = filter.mentions("members");
                let mut page = page_of(
                    candidates.into_iter().filter_map(|g| {
                        let g = match group_with_members(conn, p, g, by_members) {
                            Ok(g) => g,
                            Err(e) => return Some(Err(e)),
                        };
                        filter
                            .matches(&g.render(""), ResourceKind::Group)
                            .then_some(Ok(g))
                    }),
                    &query,
                )?;
                for g in &mut page.items {
                    g.members = if members {
                        Some(live_members(conn, p, &g.id)?)
                    } else {
                        None
                    };
                }
                Ok(page)
            })
            .await?;
        Ok(page.unwrap_or(Page {
            total: 0,
            items: Vec::new(),
        }))
    }

    async fn directory_groups(&self) -> Result<Vec<GroupHead>, RecordError> {
        Ok(self
            .scim(|conn, p| {
                rows(
                    conn,
                    p,
                    &format!("SELECT {HEAD} FROM scim_groups ORDER BY id"),
                    [],
                    head_row,
                )
            })
            .await?
            .unwrap_or_default())
    }

    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<DirectoryUser>>, RecordError> {
        let id = group_id.to_owned();
        Ok(self
            .scim(move |conn, p| {
                // One connection, behind a lock: the two reads see the same state.
                let exists = conn
                    .query_row(
                        "SELECT 1 FROM scim_groups WHERE id = ?1",
                        params![id],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db(p, "read SCIM group"))?;
                if exists.is_none() {
                    return Ok(None);
                }
                rows(conn, p, DIRECTORY_MEMBERS, params![id], directory_row).map(Some)
            })
            .await?
            .flatten())
    }

    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DirectoryUser>, RecordError> {
        // Times are stored as fixed-width RFC 3339 text, so text order is time order.
        let since = ts(since);
        Ok(self
            .scim(move |conn, p| rows(conn, p, USERS_SINCE, params![since], directory_row))
            .await?
            .unwrap_or_default())
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<GroupHead>, RecordError> {
        let id = user_id.to_owned();
        Ok(self
            .scim(move |conn, p| rows(conn, p, GROUPS_OF_USER, params![id], head_row))
            .await?
            .unwrap_or_default())
    }

    async fn find_users(&self, key: &str) -> Result<Vec<DirectoryUser>, RecordError> {
        let (key, folded) = (key.to_owned(), fold(key));
        Ok(self
            .scim(move |conn, p| {
                rows(
                    conn,
                    p,
                    &format!(
                        "SELECT {DIRECTORY_USER} FROM scim_users
                         WHERE id = ?1 OR user_name_key = ?2 OR email_key = ?2 ORDER BY id"
                    ),
                    params![key, folded],
                    directory_row,
                )
            })
            .await?
            .unwrap_or_default())
    }

    async fn change_seq(&self) -> Result<u64, RecordError> {
        Ok(self
            .scim(|conn, p| {
                conn.query_row("SELECT seq FROM scim_seq WHERE id = 1", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|s| s.max(0) as u64)
                .map_err(db(p, "read SCIM change sequence"))
            })
            .await?
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite runs `sql`: the `detail` column of `EXPLAIN QUERY PLAN`, joined.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let n = stmt.parameter_count();
        let params: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn the_statements_of_a_push_use_an_index() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("s.db")).expect("open");
        let conn = store.conn.as_ref().expect("writable");
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        for sql in [
            USER_BY_ID,
            USERS_BY_NAME,
            USERS_BY_EXTERNAL_ID,
            USER_NAME_TAKEN,
            LIVE_USER_EXISTS,
            DISPLAY_NAME_TAKEN,
            GROUPS_BY_NAME,
            MEMBER_ADD,
            MEMBER_REMOVE,
            USERS_SINCE,
            GROUPS_OF_USER,
            LIVE_MEMBERS,
            DIRECTORY_MEMBERS,
        ] {
            let how = plan(&conn, sql);
            // SEARCH is an index lookup; SCAN (even "USING INDEX") reads every row.
            let scans = how.split("; ").any(|step| step.starts_with("SCAN"));
            assert!(!scans, "{sql}\n  is run as: {how}");
        }
    }
}
