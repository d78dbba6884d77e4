//! The SCIM record in the PostgreSQL schema (the `scim_*` tables of schema v4). Each write is
//! one transaction that first bumps the change sequence: its row lock orders SCIM writes from
//! every replica, so the checks that follow (a taken `userName`, the current member rows) see
//! every earlier write. Not fenced by leadership (see [`crate::scim::record`]). Reads that
//! take several statements run in one repeatable-read snapshot.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PostgresStore;
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

const USER: &str = "id, attrs, created, last_modified, version";
const DIRECTORY_USER: &str = "id, user_name, email, active, deleted, last_modified";
const GROUP: &str = "id, attrs, created, last_modified, version";
const HEAD: &str = "id, display_name, last_updated, members_updated";

type Params<'a> = [&'a (dyn ToSql + Sync)];

fn user_row(r: &Row) -> Result<ScimUser, RecordError> {
    stored_user(r.get(0), r.get::<_, &str>(1), r.get(2), r.get(3), r.get(4))
}

fn group_row(r: &Row) -> Result<ScimGroup, RecordError> {
    stored_group(r.get(0), r.get::<_, &str>(1), r.get(2), r.get(3), r.get(4))
}

fn directory_row(r: &Row) -> DirectoryUser {
    DirectoryUser {
        id: r.get(0),
        user_name: r.get(1),
        email: r.get(2),
        active: r.get(3),
        deleted: r.get(4),
        last_modified: r.get(5),
    }
}

fn head_row(r: &Row) -> GroupHead {
    GroupHead {
        id: r.get(0),
        display_name: r.get(1),
        last_updated: r.get(2),
        members_updated: r.get(3),
    }
}

impl PostgresStore {
    fn scim_db(&self, op: &'static str) -> impl Fn(tokio_postgres::Error) -> RecordError + '_ {
        move |e| RecordError::Store(self.db(op)(e))
    }

    async fn scim_client(&self) -> Result<Object, RecordError> {
        Ok(self.client().await?)
    }

    /// Begins a write and bumps the change sequence (taking its row lock until the end of the
    /// transaction); the number is the write's.
    async fn scim_begin<'a>(
        &self,
        client: &'a mut Object,
    ) -> Result<(Transaction<'a>, u64), RecordError> {
        if self.read_only || self.empty {
            return Err(RecordError::Store(StoreError::Task(
                "snapshot opened read-only".into(),
            )));
        }
        let tx = client
            .transaction()
            .await
            .map_err(self.scim_db("begin SCIM write"))?;
        let seq: i64 = tx
            .query_one(
                &self.sql("UPDATE {s}.scim_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq"),
                &[],
            )
            .await
            .map_err(self.scim_db("bump SCIM change sequence"))?
            .get(0);
        Ok((tx, seq.max(0) as u64))
    }

    /// A read-only snapshot for reads of several statements.
    async fn scim_read<'a>(&self, client: &'a mut Object) -> Result<Transaction<'a>, RecordError> {
        client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(self.scim_db("begin SCIM read"))
    }

    async fn scim_rows(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, RecordError> {
        tx.query(&self.sql(sql), params)
            .await
            .map_err(self.scim_db("read SCIM record"))
    }

    async fn live_user(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
    ) -> Result<Option<ScimUser>, RecordError> {
        self.scim_rows(
            tx,
            &format!("SELECT {USER} FROM {{s}}.scim_users WHERE id = $1 AND NOT deleted"),
            &[&id],
        )
        .await?
        .first()
        .map(user_row)
        .transpose()
    }

    async fn exists(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<bool, RecordError> {
        Ok(!self.scim_rows(tx, sql, params).await?.is_empty())
    }

    async fn write_user(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
        attrs: &UserAttrs,
        created: Option<DateTime<Utc>>,
        modified: DateTime<Utc>,
        seq: u64,
    ) -> Result<(), RecordError> {
        let email = attrs.preferred_email();
        let (key, email_key, json, version) = (
            attrs.user_name_key(),
            email.map(fold),
            attrs_text(attrs.json()),
            seq as i64,
        );
        let (user_name, external_id, active) =
            (attrs.user_name(), attrs.external_id(), attrs.active());
        let values: [&(dyn ToSql + Sync); 10] = [
            &id,
            &user_name,
            &key,
            &external_id,
            &email,
            &email_key,
            &active,
            &json,
            &modified,
            &version,
        ];
        let result = match created {
            Some(created) => {
                let mut all: Vec<&(dyn ToSql + Sync)> = values.to_vec();
                all.push(&created);
                tx.execute(
                    &self.sql(
                        "INSERT INTO {s}.scim_users (id, user_name, user_name_key, external_id, email, email_key,
                                                     active, attrs, last_modified, version, created)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    ),
                    &all,
                )
                .await
            }
            None => {
                tx.execute(
                    &self.sql(
                        "UPDATE {s}.scim_users SET user_name = $2, user_name_key = $3, external_id = $4,
                           email = $5, email_key = $6, active = $7, attrs = $8, last_modified = $9,
                           version = $10
                         WHERE id = $1",
                    ),
                    &values,
                )
                .await
            }
        };
        result.map_err(self.scim_db("write SCIM user"))?;
        Ok(())
    }

    async fn read_group(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
    ) -> Result<Option<(ScimGroup, GroupHead)>, RecordError> {
        let rows = self
            .scim_rows(
                tx,
                &format!("SELECT {GROUP}, last_updated, members_updated, display_name FROM {{s}}.scim_groups WHERE id = $1"),
                &[&id],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let group = group_row(r)?;
        let head = GroupHead {
            id: group.id.clone(),
            display_name: r.get(7),
            last_updated: r.get(5),
            members_updated: r.get(6),
        };
        Ok(Some((group, head)))
    }

    async fn live_members(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        id: &str,
    ) -> Result<BTreeSet<String>, RecordError> {
        Ok(self
            .scim_rows(
                tx,
                "SELECT m.user_id FROM {s}.scim_members m JOIN {s}.scim_users u ON u.id = m.user_id
                 WHERE m.group_id = $1 AND NOT u.deleted",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn with_members(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        mut g: ScimGroup,
        members: bool,
    ) -> Result<ScimGroup, RecordError> {
        if members {
            g.members = Some(self.live_members(tx, &g.id).await?);
        }
        Ok(g)
    }

    async fn check_members(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        ids: Vec<String>,
    ) -> Result<(), RecordError> {
        if ids.is_empty() {
            return Ok(());
        }
        let found: BTreeSet<String> = self
            .scim_rows(
                tx,
                "SELECT id FROM {s}.scim_users WHERE id = ANY($1) AND NOT deleted",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        match ids.iter().find(|id| !found.contains(*id)) {
            Some(missing) => Err(RecordError::unknown_member(missing)),
            None => Ok(()),
        }
    }

    /// Applies a member change in one statement per direction, touching only the rows named
    /// (a replace reads the current rows to find the difference); whether any row changed.
    async fn apply_members(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        group: &str,
        change: &MemberChange,
    ) -> Result<bool, RecordError> {
        let (add, remove): (Vec<String>, Vec<String>) = match change {
            MemberChange::Delta { add, remove } => (
                add.iter().cloned().collect(),
                remove.iter().cloned().collect(),
            ),
            MemberChange::Replace(want) => {
                let have: BTreeSet<String> = self
                    .scim_rows(
                        tx,
                        "SELECT user_id FROM {s}.scim_members WHERE group_id = $1",
                        &[&group],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                (
                    want.difference(&have).cloned().collect(),
                    have.difference(want).cloned().collect(),
                )
            }
        };
        let mut changed = 0;
        if !add.is_empty() {
            changed += tx
                .execute(
                    &self.sql(
                        "INSERT INTO {s}.scim_members (group_id, user_id) SELECT $1, unnest($2::text[])
                         ON CONFLICT (group_id, user_id) DO NOTHING",
                    ),
                    &[&group, &add],
                )
                .await
                .map_err(self.scim_db("add SCIM members"))?;
        }
        if !remove.is_empty() {
            changed += tx
                .execute(
                    &self.sql(
                        "DELETE FROM {s}.scim_members WHERE group_id = $1 AND user_id = ANY($2)",
                    ),
                    &[&group, &remove],
                )
                .await
                .map_err(self.scim_db("remove SCIM members"))?;
        }
        Ok(changed > 0)
    }

    async fn commit_scim(&self, tx: Transaction<'_>) -> Result<(), RecordError> {
        tx.commit().await.map_err(self.scim_db("commit SCIM write"))
    }
}

impl ScimRecord for PostgresStore {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<Written<ScimUser>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        if self
            .exists(&tx, "SELECT 1 FROM {s}.scim_users WHERE id = $1", &[&id])
            .await?
        {
            return Err(RecordError::id_taken(ResourceKind::User, id));
        }
        let key = attrs.user_name_key();
        if self
            .exists(
                &tx,
                "SELECT 1 FROM {s}.scim_users WHERE user_name_key = $1 AND NOT deleted",
                &[&key],
            )
            .await?
        {
            return Err(RecordError::user_name_taken(attrs.user_name()));
        }
        let at = to_millis(at);
        self.write_user(&tx, id, &attrs, Some(at), at, seq).await?;
        let user = self
            .live_user(&tx, id)
            .await?
            .ok_or_else(|| RecordError::user_not_found(id))?;
        self.commit_scim(tx).await?;
        Ok(Written {
            value: user,
            seq: Some(seq),
        })
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, RecordError> {
        if self.empty {
            return Ok(None);
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        self.live_user(&tx, id).await
    }

    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<Written<ScimUser>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        let current = self
            .live_user(&tx, id)
            .await?
            .ok_or_else(|| RecordError::user_not_found(id))?;
        let attrs = resolve_user_update(&current, update)?;
        if attrs == current.attrs {
            // Rolled back when `tx` drops: nothing changed, the sequence stays.
            return Ok(Written {
                value: current,
                seq: None,
            });
        }
        let key = attrs.user_name_key();
        if self
            .exists(
                &tx,
                "SELECT 1 FROM {s}.scim_users WHERE user_name_key = $1 AND NOT deleted AND id <> $2",
                &[&key, &id],
            )
            .await?
        {
            return Err(RecordError::user_name_taken(attrs.user_name()));
        }
        let modified = next_time(current.meta.last_modified, at);
        self.write_user(&tx, id, &attrs, None, modified, seq)
            .await?;
        let user = self
            .live_user(&tx, id)
            .await?
            .ok_or_else(|| RecordError::user_not_found(id))?;
        self.commit_scim(tx).await?;
        Ok(Written {
            value: user,
            seq: Some(seq),
        })
    }

    async fn remove_user(&self, at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        let current = self
            .live_user(&tx, id)
            .await?
            .ok_or_else(|| RecordError::user_not_found(id))?;
        let modified = next_time(current.meta.last_modified, at);
        tx.execute(
            &self.sql("UPDATE {s}.scim_users SET deleted = true, last_modified = $2, version = $3 WHERE id = $1"),
            &[&id, &modified, &(seq as i64)],
        )
        .await
        .map_err(self.scim_db("delete SCIM user"))?;
        self.commit_scim(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    async fn query_users(&self, query: &ListQuery) -> Result<Page<ScimUser>, RecordError> {
        if self.empty {
            return Ok(Page {
                total: 0,
                items: Vec::new(),
            });
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        let select = format!("SELECT {USER} FROM {{s}}.scim_users WHERE NOT deleted");
        let rows = match query
            .filter
            .as_ref()
            .and_then(|f| f.index_hint(ResourceKind::User))
        {
            Some(IndexHint::Id(v)) => {
                self.scim_rows(&tx, &format!("{select} AND id = $1 ORDER BY id"), &[&v])
                    .await?
            }
            Some(IndexHint::UserName(v)) => {
                self.scim_rows(
                    &tx,
                    &format!("{select} AND user_name_key = $1 ORDER BY id"),
                    &[&fold(&v)],
                )
                .await?
            }
            Some(IndexHint::ExternalId(v)) => {
                self.scim_rows(
                    &tx,
                    &format!("{select} AND external_id = $1 ORDER BY id"),
                    &[&v],
                )
                .await?
            }
            Some(IndexHint::DisplayName(_)) => Vec::new(),
            None if query.filter.is_none() => {
                let total: i64 = self
                    .scim_rows(
                        &tx,
                        "SELECT count(*) FROM {s}.scim_users WHERE NOT deleted",
                        &[],
                    )
                    .await?
                    .first()
                    .map_or(0, |r| r.get(0));
                let (limit, offset) = (
                    query.count as i64,
                    query.start_index.saturating_sub(1) as i64,
                );
                let items = self
                    .scim_rows(
                        &tx,
                        &format!("{select} ORDER BY id LIMIT $1 OFFSET $2"),
                        &[&limit, &offset],
                    )
                    .await?
                    .iter()
                    .map(user_row)
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Page {
                    total: total.max(0) as usize,
                    items,
                });
            }
            None => {
                self.scim_rows(&tx, &format!("{select} ORDER BY id"), &[])
                    .await?
            }
        };
        let filter = query.filter.as_ref();
        page_of(
            rows.iter().map(user_row).filter(|u| match (u, filter) {
                (Ok(u), Some(f)) => f.matches(&u.render(""), ResourceKind::User),
                _ => true,
            }),
            query,
        )
    }

    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        if self
            .exists(&tx, "SELECT 1 FROM {s}.scim_groups WHERE id = $1", &[&id])
            .await?
        {
            return Err(RecordError::id_taken(ResourceKind::Group, id));
        }
        let key = attrs.display_name_key();
        if self
            .exists(
                &tx,
                "SELECT 1 FROM {s}.scim_groups WHERE display_name_key = $1",
                &[&key],
            )
            .await?
        {
            return Err(RecordError::display_name_taken(attrs.display_name()));
        }
        self.check_members(&tx, members.iter().cloned().collect())
            .await?;
        let at = to_millis(at);
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.scim_groups (id, display_name, display_name_key, external_id, attrs, created,
                                              last_updated, members_updated, last_modified, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $6, $7)",
            ),
            &[
                &id,
                &attrs.display_name(),
                &key,
                &attrs.external_id(),
                &attrs_text(attrs.json()),
                &at,
                &(seq as i64),
            ],
        )
        .await
        .map_err(self.scim_db("write SCIM group"))?;
        self.apply_members(&tx, id, &MemberChange::Replace(members))
            .await?;
        let (group, _) = self
            .read_group(&tx, id)
            .await?
            .ok_or_else(|| RecordError::group_not_found(id))?;
        let group = self.with_members(&tx, group, true).await?;
        self.commit_scim(tx).await?;
        Ok(Written {
            value: group,
            seq: Some(seq),
        })
    }

    async fn get_group(&self, id: &str, members: bool) -> Result<Option<ScimGroup>, RecordError> {
        if self.empty {
            return Ok(None);
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        match self.read_group(&tx, id).await? {
            Some((g, _)) => Ok(Some(self.with_members(&tx, g, members).await?)),
            None => Ok(None),
        }
    }

    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<Written<ScimGroup>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        let (current, head) = self
            .read_group(&tx, id)
            .await?
            .ok_or_else(|| RecordError::group_not_found(id))?;
        let attrs = resolve_group_attrs(&current, update.attrs)?;
        let attrs_changed = attrs != current.attrs;
        let key = attrs.display_name_key();
        if attrs_changed
            && self
                .exists(
                    &tx,
                    "SELECT 1 FROM {s}.scim_groups WHERE display_name_key = $1 AND id <> $2",
                    &[&key, &id],
                )
                .await?
        {
            return Err(RecordError::display_name_taken(attrs.display_name()));
        }
        self.check_members(&tx, update.members.named_members().cloned().collect())
            .await?;
        let members_changed = self.apply_members(&tx, id, &update.members).await?;
        if !attrs_changed && !members_changed {
            let group = self.with_members(&tx, current, members).await?;
            return Ok(Written {
                value: group,
                seq: None,
            });
        }
        let last_updated = if attrs_changed {
            next_time(head.last_updated, at)
        } else {
            head.last_updated
        };
        let members_updated = if members_changed {
            next_time(head.members_updated, at)
        } else {
            head.members_updated
        };
        let modified = next_time(current.meta.last_modified, at);
        tx.execute(
            &self.sql(
                "UPDATE {s}.scim_groups SET display_name = $2, display_name_key = $3, external_id = $4,
                   attrs = $5, last_updated = $6, members_updated = $7, last_modified = $8, version = $9
                 WHERE id = $1",
            ),
            &[
                &id,
                &attrs.display_name(),
                &key,
                &attrs.external_id(),
                &attrs_text(attrs.json()),
                &last_updated,
                &members_updated,
                &modified,
                &(seq as i64),
            ],
        )
        .await
        .map_err(self.scim_db("write SCIM group"))?;
        let (group, _) = self
            .read_group(&tx, id)
            .await?
            .ok_or_else(|| RecordError::group_not_found(id))?;
        let group = self.with_members(&tx, group, members).await?;
        self.commit_scim(tx).await?;
        Ok(Written {
            value: group,
            seq: Some(seq),
        })
    }

    async fn remove_group(&self, _at: DateTime<Utc>, id: &str) -> Result<Written<()>, RecordError> {
        let mut client = self.scim_client().await?;
        let (tx, seq) = self.scim_begin(&mut client).await?;
        tx.execute(
            &self.sql("DELETE FROM {s}.scim_members WHERE group_id = $1"),
            &[&id],
        )
        .await
        .map_err(self.scim_db("delete SCIM group"))?;
        let n = tx
            .execute(
                &self.sql("DELETE FROM {s}.scim_groups WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(self.scim_db("delete SCIM group"))?;
        if n == 0 {
            return Err(RecordError::group_not_found(id));
        }
        self.commit_scim(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<Page<ScimGroup>, RecordError> {
        if self.empty {
            return Ok(Page {
                total: 0,
                items: Vec::new(),
            });
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        let select = format!("SELECT {GROUP} FROM {{s}}.scim_groups WHERE true");
        let rows = match query
            .filter
            .as_ref()
            .and_then(|f| f.index_hint(ResourceKind::Group))
        {
            Some(IndexHint::Id(v)) => {
                self.scim_rows(&tx, &format!("{select} AND id = $1"), &[&v])
                    .await?
            }
            Some(IndexHint::DisplayName(v)) => {
                self.scim_rows(
                    &tx,
                    &format!("{select} AND display_name_key = $1"),
                    &[&fold(&v)],
                )
                .await?
            }
            Some(IndexHint::ExternalId(v)) => {
                self.scim_rows(
                    &tx,
                    &format!("{select} AND external_id = $1 ORDER BY id"),
                    &[&v],
                )
                .await?
            }
            Some(IndexHint::UserName(_)) => Vec::new(),
            None if query.filter.is_none() => {
                let total: i64 = self
                    .scim_rows(&tx, "SELECT count(*) FROM {s}.scim_groups", &[])
                    .await?
                    .first()
                    .map_or(0, |r| r.get(0));
                let (limit, offset) = (
                    query.count as i64,
                    query.start_index.saturating_sub(1) as i64,
                );
                let mut items = Vec::new();
                for r in self
                    .scim_rows(
                        &tx,
                        &format!("{select} ORDER BY id LIMIT $1 OFFSET $2"),
                        &[&limit, &offset],
                    )
                    .await?
                {
                    items.push(self.with_members(&tx, group_row(&r)?, members).await?);
                }
                return Ok(Page {
                    total: total.max(0) as usize,
                    items,
                });
            }
            None => {
                self.scim_rows(&tx, &format!("{select} ORDER BY id"), &[])
                    .await?
            }
        };
        let by_members = query.filter.as_ref().is_some_and(|f| f.mentions("members"));
        let mut matching = Vec::new();
        for r in &rows {
            let g = self.with_members(&tx, group_row(r)?, by_members).await?;
            if query
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(&g.render(""), ResourceKind::Group))
            {
                matching.push(Ok(g));
            }
        }
        let mut page = page_of(matching.into_iter(), query)?;
        for g in &mut page.items {
            g.members = if members {
                Some(self.live_members(&tx, &g.id).await?)
            } else {
                None
            };
        }
        Ok(page)
    }

    async fn directory_groups(&self) -> Result<Vec<GroupHead>, RecordError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        Ok(self
            .scim_rows(
                &tx,
                &format!("SELECT {HEAD} FROM {{s}}.scim_groups ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(head_row)
            .collect())
    }

    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<DirectoryUser>>, RecordError> {
        if self.empty {
            return Ok(None);
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        if !self
            .exists(
                &tx,
                "SELECT 1 FROM {s}.scim_groups WHERE id = $1",
                &[&group_id],
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(
            self.scim_rows(
                &tx,
                "SELECT u.id, u.user_name, u.email, u.active, u.deleted, u.last_modified
                 FROM {s}.scim_members m JOIN {s}.scim_users u ON u.id = m.user_id
                 WHERE m.group_id = $1 ORDER BY u.id",
                &[&group_id],
            )
            .await?
            .iter()
            .map(directory_row)
            .collect(),
        ))
    }

    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DirectoryUser>, RecordError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        Ok(self
            .scim_rows(
                &tx,
                &format!("SELECT {DIRECTORY_USER} FROM {{s}}.scim_users WHERE last_modified >= $1 ORDER BY last_modified, id"),
                &[&since],
            )
            .await?
            .iter()
            .map(directory_row)
            .collect())
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<GroupHead>, RecordError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        Ok(self
            .scim_rows(
                &tx,
                "SELECT g.id, g.display_name, g.last_updated, g.members_updated
                 FROM {s}.scim_members m JOIN {s}.scim_groups g ON g.id = m.group_id
                 WHERE m.user_id = $1 ORDER BY g.id",
                &[&user_id],
            )
            .await?
            .iter()
            .map(head_row)
            .collect())
    }

    async fn find_users(&self, key: &str) -> Result<Vec<DirectoryUser>, RecordError> {
        if self.empty {
            return Ok(Vec::new());
        }
        let folded = fold(key);
        let mut client = self.scim_client().await?;
        let tx = self.scim_read(&mut client).await?;
        Ok(self
            .scim_rows(
                &tx,
                &format!(
                    "SELECT {DIRECTORY_USER} FROM {{s}}.scim_users
                     WHERE id = $1 OR user_name_key = $2 OR email_key = $2 ORDER BY id"
                ),
                &[&key, &folded],
            )
            .await?
            .iter()
            .map(directory_row)
            .collect())
    }

    async fn change_seq(&self) -> Result<u64, RecordError> {
        if self.empty {
            return Ok(0);
        }
        let client = self.scim_client().await?;
        let seq: i64 = client
            .query_one(&self.sql("SELECT seq FROM {s}.scim_seq WHERE id = 1"), &[])
            .await
            .map_err(self.scim_db("read SCIM change sequence"))?
            .get(0);
        Ok(seq.max(0) as u64)
    }
}
