//! PostgreSQL snapshot store, shared by two or more `serve` replicas: the same tables and
//! semantics as [`super::SqliteStore`] (one transaction per recorded write, member lists
//! hashed and checked on load), in the schema `state.schema`, plus the `leader` record.
//!
//! Every write that changes what q-group-sync believes Q Business holds (intents, puts,
//! deletes, reads, held plans) is fenced: in its own transaction it locks the leader record
//! (`FOR SHARE`) and checks that the record's epoch is this replica's term and that this
//! replica's lock session still holds the advisory lock. A new leader raises the epoch, which
//! waits for such a transaction to end, so once it leads no old leader's write can commit, and
//! no old leader can start a write to Q Business (intents are recorded before every write).

mod connect;
mod election;
mod rows;
mod schema;
mod scim;

use crate::store::{HeldPlans, RunLog};
use schema::MIGRATIONS;
pub use schema::SCHEMA_VERSION;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool, Transaction};

pub use connect::{PgSettings, Timings};
pub use election::{CommandLease, Elector, LOCK_NAMESPACE};

use super::codec::{self, AuditRow, GroupRow, HeldRow, PendingRow};
use super::{
    AppliedPut, HeldRecord, HoldStatus, IntentOp, RunId, RunRecord, RunStart, SnapshotStore,
    StoreError, UsersMode, UsersWrite,
};
use crate::leader::{Leadership, Term};
use crate::model::{GroupName, Interner, OktaGroupId, UserId};
use crate::plan::reads::KnownUser;
use crate::plan::safety::Held;
use crate::plan::{ReadMark, Snapshot};

/// Marks a schema as q-group-sync's (`schema_version.application`).
const APPLICATION: &str = "q-group-sync";

/// The PostgreSQL-backed [`SnapshotStore`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// `"schema"`, quoted; validated by the config (lowercase, digits, `_`).
    schema: String,
    target: String,
    leadership: Leadership,
    /// Second key of this schema's leader lock (the first is [`LOCK_NAMESPACE`]; migrations
    /// lock `LOCK_NAMESPACE + 1` with the same key).
    lock_key: i32,
    /// `plan`: never migrates or writes; a schema that does not exist yet is an empty snapshot.
    read_only: bool,
    /// Read-only over a schema without tables: every read is empty.
    empty: bool,
}

impl PostgresStore {
    /// Connects, and migrates the schema (once, under a lock, however many replicas start).
    pub async fn open(
        settings: &PgSettings,
        leadership: Leadership,
    ) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::new(settings, leadership, false)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects for reading only (`plan`): never creates or migrates anything.
    pub async fn open_read_only(
        settings: &PgSettings,
        leadership: Leadership,
    ) -> Result<PostgresStore, StoreError> {
        let mut store = PostgresStore::new(settings, leadership, true)?;
        let mut client = store.client().await?;
        let version = store.version(&mut client).await?;
        match version {
            None => store.empty = true,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    path: store.target.clone(),
                    found: i64::from(v),
                    supported: i64::from(SCHEMA_VERSION),
                });
            }
            Some(v) => {
                return Err(StoreError::Corrupt {
                    path: store.target.clone(),
                    detail: format!(
                        "schema version {v} needs migrating to {SCHEMA_VERSION}; run `q-group-sync sync` once"
                    ),
                });
            }
        }
        Ok(store)
    }

    fn new(
        settings: &PgSettings,
        leadership: Leadership,
        read_only: bool,
    ) -> Result<PostgresStore, StoreError> {
        let target = settings.target().to_owned();
        let pool = settings.pool().map_err(|detail| StoreError::Connect {
            target: target.clone(),
            detail,
        })?;
        Ok(PostgresStore {
            pool,
            schema: format!("\"{}\"", settings.schema),
            target,
            leadership,
            lock_key: election::lock_key(&settings.schema),
            read_only,
            empty: false,
        })
    }

    /// The server and schema, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `text` with `{s}` replaced by the quoted schema name.
    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.schema)
    }

    fn db(&self, op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |source| StoreError::Database {
            target: self.target.clone(),
            op,
            source,
        }
    }

    /// The leadership this store's writes are fenced by.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Connect {
            target: self.target.clone(),
            detail: crate::error::error_chain(&e),
        })
    }

    /// The schema version, or `None` when the schema has no q-group-sync tables yet. A schema
    /// of another application is corrupt.
    async fn version(&self, client: &mut Object) -> Result<Option<i32>, StoreError> {
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{}.schema_version", self.schema)],
            )
            .await
            .map_err(self.db("read schema version"))?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let row = client
            .query_opt(
                &self.sql("SELECT version, application FROM {s}.schema_version"),
                &[],
            )
            .await
            .map_err(self.db("read schema version"))?;
        match row {
            Some(row) if row.get::<_, String>(1) == APPLICATION => Ok(Some(row.get(0))),
            _ => Err(StoreError::Corrupt {
                path: self.target.clone(),
                detail: "schema_version belongs to another application".into(),
            }),
        }
    }

    /// Applies the missing migrations in one transaction under a transaction-level advisory
    /// lock, so replicas that start together migrate once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(self.db("begin migration"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&(LOCK_NAMESPACE + 1), &self.lock_key],
        )
        .await
        .map_err(self.db("lock for migration"))?;
        tx.batch_execute(&self.sql(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_version (
                 version     integer NOT NULL,
                 application text NOT NULL,
                 migrated_at timestamptz NOT NULL
             );",
        ))
        .await
        .map_err(self.db("create schema"))?;
        let current = tx
            .query_opt(
                &self.sql("SELECT version, application FROM {s}.schema_version"),
                &[],
            )
            .await
            .map_err(self.db("read schema version"))?;
        let version = match current {
            None => {
                let tables: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                        &[&self.schema.trim_matches('"')],
                    )
                    .await
                    .map_err(self.db("read schema"))?
                    .get(0);
                if tables > 1 {
                    return Err(StoreError::Corrupt {
                        path: self.target.clone(),
                        detail: "the schema holds tables of another application".into(),
                    });
                }
                tx.execute(
                    &self.sql(
                        "INSERT INTO {s}.schema_version (version, application, migrated_at) VALUES (0, $1, now())",
                    ),
                    &[&APPLICATION],
                )
                .await
                .map_err(self.db("create schema version"))?;
                0
            }
            Some(row) if row.get::<_, String>(1) != APPLICATION => {
                return Err(StoreError::Corrupt {
                    path: self.target.clone(),
                    detail: "schema_version belongs to another application".into(),
                });
            }
            Some(row) => row.get::<_, i32>(0),
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.target.clone(),
                found: i64::from(version),
                supported: i64::from(SCHEMA_VERSION),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(&self.sql(sql))
                .await
                .map_err(self.db("migrate schema"))?;
            tx.execute(
                &self.sql("UPDATE {s}.schema_version SET version = $1, migrated_at = now()"),
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(self.db("migrate schema"))?;
        }
        tx.commit().await.map_err(self.db("commit migration"))
    }

    /// Begins a write transaction that holds the leader record and has checked that this
    /// replica's term is still the leader's. A failed check ends the term (the pass stops).
    async fn fenced<'a>(
        &self,
        client: &'a mut Object,
        op: &'static str,
    ) -> Result<(Transaction<'a>, Term), StoreError> {
        if self.read_only || self.empty {
            return Err(StoreError::Task("snapshot opened read-only".into()));
        }
        let term = self
            .leadership
            .fence()
            .map_err(|reason| StoreError::Fenced { op, reason })?;
        let tx = client
            .transaction()
            .await
            .map_err(self.db("begin transaction"))?;
        let row = tx
            .query_one(
                &self.sql(
                    "SELECT l.epoch, EXISTS (
                         SELECT 1 FROM pg_locks k
                         WHERE k.locktype = 'advisory' AND k.classid = $1::int4::oid
                           AND k.objid = $2::int4::oid AND k.objsubid = 2 AND k.pid = $3 AND k.granted)
                     FROM {s}.leader l WHERE l.id = 1 FOR SHARE OF l",
                ),
                &[&LOCK_NAMESPACE, &self.lock_key, &term.lock_pid],
            )
            .await
            .map_err(self.db("check leadership"))?;
        let (epoch, holds): (i64, bool) = (row.get(0), row.get(1));
        let problem = if epoch != term.epoch {
            Some(format!(
                "another replica took over (leader epoch {epoch}, this replica's term {})",
                term.epoch
            ))
        } else if !holds {
            Some("the session holding the leader lock has ended".to_owned())
        } else {
            None
        };
        if let Some(reason) = problem {
            self.leadership.lose(&reason);
            return Err(StoreError::Fenced { op, reason });
        }
        Ok((tx, term))
    }
}

impl SnapshotStore for PostgresStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        if self.empty {
            return Ok(snapshot);
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &self.sql(
                    "SELECT q_name, okta_id, members, member_count, members_sha256, pushed_at,
                            source_updated_at, read_at, chunks FROM {s}.groups",
                ),
                &[],
            )
            .await
            .map_err(self.db("read groups"))?;
        let mut ids = Interner::default();
        for r in rows {
            let row = GroupRow {
                q_name: r.get(0),
                okta_id: r.get(1),
                members: r.get(2),
                member_count: r.get(3),
                members_sha256: r.get(4),
                pushed_at: r.get(5),
                read: codec::read_mark(r.get(6), r.get(7)),
                chunks: r.get(8),
            };
            let (name, group) = row
                .into_group(&mut ids)
                .map_err(|detail| StoreError::Corrupt {
                    path: self.target.clone(),
                    detail,
                })?;
            snapshot.groups.insert(name, group);
        }
        let pending = client
            .query(
                &self.sql("SELECT q_name, okta_id, at FROM {s}.pending"),
                &[],
            )
            .await
            .map_err(self.db("read pending writes"))?;
        codec::add_pending(
            &mut snapshot,
            pending.iter().map(|r| PendingRow {
                q_name: r.get(0),
                okta_id: r.get(1),
                at: r.get(2),
            }),
        );
        Ok(snapshot)
    }

    async fn record_put(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        put: &AppliedPut<'_>,
    ) -> Result<(), StoreError> {
        let (row, audit) = (GroupRow::from_put(put, at), AuditRow::put(put));
        let (written, stale) = codec::chunk_names(put);
        let mut client = self.client().await?;
        let (tx, term) = self.fenced(&mut client, "record put").await?;
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.groups (q_name, okta_id, members, member_count, members_sha256,
                                         pushed_at, source_updated_at, read_at, chunks)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (q_name) DO UPDATE SET okta_id = excluded.okta_id,
                   members = excluded.members, member_count = excluded.member_count,
                   members_sha256 = excluded.members_sha256, pushed_at = excluded.pushed_at,
                   source_updated_at = excluded.source_updated_at, read_at = excluded.read_at,
                   chunks = excluded.chunks",
            ),
            &[
                &row.q_name,
                &row.okta_id,
                &row.members,
                &row.member_count,
                &row.members_sha256,
                &row.pushed_at,
                &row.read.map(|r| r.source_updated),
                &row.read.map(|r| r.read_at),
                &row.chunks,
            ],
        )
        .await
        .map_err(self.db("record put"))?;
        self.insert_audit(&tx, run, term.epoch, at, &audit).await?;
        for name in std::iter::once(&row.q_name).chain(&written) {
            tx.execute(
                &self.sql("DELETE FROM {s}.pending WHERE q_name = $1"),
                &[name],
            )
            .await
            .map_err(self.db("clear pending write"))?;
        }
        for chunk in &stale {
            self.insert_pending(&tx, chunk, &row.okta_id, "delete", run, term.epoch, at)
                .await?;
        }
        tx.commit().await.map_err(self.db("commit put"))
    }

    async fn record_delete(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let (tx, term) = self.fenced(&mut client, "record delete").await?;
        let old = tx
            .query_opt(
                &self.sql("SELECT members, member_count FROM {s}.groups WHERE q_name = $1"),
                &[&group.as_str()],
            )
            .await
            .map_err(self.db("read group"))?
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)));
        for table in ["pending", "groups"] {
            tx.execute(
                &self.sql(&format!("DELETE FROM {{s}}.{table} WHERE q_name = $1")),
                &[&group.as_str()],
            )
            .await
            .map_err(self.db("record delete"))?;
        }
        let audit = AuditRow::delete(group, okta_id, old);
        self.insert_audit(&tx, run, term.epoch, at, &audit).await?;
        tx.commit().await.map_err(self.db("commit delete"))
    }

    async fn record_intent(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
        op: IntentOp,
    ) -> Result<(), StoreError> {
        let op = op.as_str();
        let mut client = self.client().await?;
        let (tx, term) = self.fenced(&mut client, "record pending write").await?;
        self.insert_pending(
            &tx,
            group.as_str(),
            okta_id.as_str(),
            op,
            run,
            term.epoch,
            at,
        )
        .await?;
        tx.commit().await.map_err(self.db("commit pending write"))
    }

    async fn record_reads(&self, marks: &[(GroupName, ReadMark)]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let (tx, _) = self.fenced(&mut client, "record reads").await?;
        let stmt = tx
            .prepare(&self.sql(
                "UPDATE {s}.groups SET source_updated_at = $2, read_at = $3 WHERE q_name = $1",
            ))
            .await
            .map_err(self.db("record reads"))?;
        for (group, mark) in marks {
            tx.execute(
                &stmt,
                &[&group.as_str(), &mark.source_updated, &mark.read_at],
            )
            .await
            .map_err(self.db("record reads"))?;
        }
        tx.commit().await.map_err(self.db("commit reads"))
    }

    async fn full_read_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time("full_read_at").await
    }

    async fn set_full_read_at(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_meta("full_read_at", &codec::ts(at)).await
    }

    async fn known_users(
        &self,
        okta_ids: &[String],
    ) -> Result<BTreeMap<String, KnownUser>, StoreError> {
        if self.empty || okta_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &self.sql("SELECT okta_id, q_id FROM {s}.users WHERE okta_id = ANY($1)"),
                &[&okta_ids],
            )
            .await
            .map_err(self.db("read users"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn record_users(&self, write: UsersWrite<'_>) -> Result<(), StoreError> {
        if write.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let (tx, _) = self.fenced(&mut client, "record users").await?;
        if write.mode == UsersMode::Replace {
            tx.execute(&self.sql("DELETE FROM {s}.users"), &[])
                .await
                .map_err(self.db("record users"))?;
        }
        if !write.users.is_empty() {
            let ids: Vec<&str> = write.users.iter().map(|(id, _)| &**id).collect();
            let q_ids: Vec<Option<&str>> = write
                .users
                .iter()
                .map(|(_, q)| q.as_ref().map(UserId::as_str))
                .collect();
            let conflict = match write.mode {
                UsersMode::InsertNew => "DO NOTHING",
                UsersMode::Upsert | UsersMode::Replace => "DO UPDATE SET q_id = excluded.q_id",
            };
            tx.execute(
                &self.sql(&format!(
                    "INSERT INTO {{s}}.users (okta_id, q_id)
                     SELECT * FROM UNNEST($1::text[], $2::text[])
                     ON CONFLICT (okta_id) {conflict}"
                )),
                &[&ids, &q_ids],
            )
            .await
            .map_err(self.db("record users"))?;
        }
        if !write.invalidate.is_empty() {
            let names: Vec<&str> = write.invalidate.iter().map(GroupName::as_str).collect();
            tx.execute(
                &self.sql(
                    "UPDATE {s}.groups SET source_updated_at = NULL, read_at = NULL
                     WHERE q_name = ANY($1)",
                ),
                &[&names],
            )
            .await
            .map_err(self.db("record users"))?;
        }
        if let Some(at) = write.checked_at {
            tx.execute(
                &self.sql(
                    "INSERT INTO {s}.meta (key, value) VALUES ('users_checked_at', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ),
                &[&codec::ts(at)],
            )
            .await
            .map_err(self.db("record users"))?;
        }
        tx.commit().await.map_err(self.db("commit users"))
    }

    async fn users_checked_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time("users_checked_at").await
    }

    async fn events_cursor(&self) -> Result<Option<String>, StoreError> {
        self.meta("events_cursor").await
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), StoreError> {
        self.set_meta("events_cursor", cursor).await
    }

    async fn q_readings(&self) -> Result<Option<String>, StoreError> {
        self.meta("q_readings").await
    }

    async fn set_q_readings(&self, readings: &str) -> Result<(), StoreError> {
        self.set_meta("q_readings", readings).await
    }
}

impl RunLog for PostgresStore {
    async fn begin_run(
        &self,
        started_at: DateTime<Utc>,
        start: &RunStart,
    ) -> Result<RunId, StoreError> {
        let mut client = self.client().await?;
        let (tx, term) = self.fenced(&mut client, "begin run").await?;
        let id: i64 = tx
            .query_one(
                &self.sql(
                    "INSERT INTO {s}.runs (started_at, pass_id, trigger, scope, replica, epoch)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                ),
                &[
                    &started_at,
                    &start.pass_id,
                    &start.trigger,
                    &start.group,
                    &self.leadership.replica(),
                    &term.epoch,
                ],
            )
            .await
            .map_err(self.db("begin run"))?
            .get(0);
        tx.commit().await.map_err(self.db("commit run"))?;
        Ok(id)
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        let client = self.client().await?;
        Ok(client
            .query_one(
                &self.sql(
                    "SELECT max(finished_at) FROM {s}.runs WHERE outcome = 'success' AND scope IS NULL",
                ),
                &[],
            )
            .await
            .map_err(self.db("read runs"))?
            .get(0))
    }

    /// Not fenced: it closes this replica's own run log entry, also after leadership was lost
    /// (the entry then says why the pass stopped).
    async fn finish_run(
        &self,
        run: RunId,
        finished_at: DateTime<Utc>,
        r: &RunRecord,
    ) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Task("snapshot opened read-only".into()));
        }
        let client = self.client().await?;
        let n = |v: usize| v as i64;
        client
            .execute(
                &self.sql(
                    "UPDATE {s}.runs SET finished_at = $2, outcome = $3, groups_in_scope = $4,
                       puts = $5, deletes = $6, failed = $7, unchanged = $8, users_added = $9,
                       users_removed = $10, error = $11 WHERE id = $1",
                ),
                &[
                    &run,
                    &finished_at,
                    &r.outcome,
                    &n(r.groups_in_scope),
                    &n(r.puts),
                    &n(r.deletes),
                    &n(r.failed),
                    &n(r.unchanged),
                    &n(r.users_added),
                    &n(r.users_removed),
                    &r.error,
                ],
            )
            .await
            .map_err(self.db("finish run"))?;
        Ok(())
    }
}

impl HeldPlans for PostgresStore {
    async fn hold(&self, at: DateTime<Utc>, held: &Held) -> Result<(), StoreError> {
        let row = HeldRow::encode(held).map_err(StoreError::Task)?;
        let mut client = self.client().await?;
        let (tx, _) = self.fenced(&mut client, "record held plan").await?;
        tx.execute(
            &self.sql(
                "UPDATE {s}.held_plans SET status = 'superseded', resolved_at = $2,
                   resolved_by = 'newer plan' WHERE status = 'held' AND id <> $1",
            ),
            &[&row.id, &at],
        )
        .await
        .map_err(self.db("supersede held plans"))?;
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.held_plans (id, hash, status, body, deletes, removals, created_at, last_seen_at)
                 VALUES ($1, $2, 'held', $3, $4, $5, $6, $6)
                 ON CONFLICT (id) DO UPDATE SET status = 'held', body = excluded.body,
                   last_seen_at = excluded.last_seen_at, resolved_at = NULL, resolved_by = NULL",
            ),
            &[&row.id, &row.hash, &row.body, &row.deletes, &row.removals, &at],
        )
        .await
        .map_err(self.db("record held plan"))?;
        tx.commit().await.map_err(self.db("commit held plan"))
    }

    async fn resolve_holds(
        &self,
        at: DateTime<Utc>,
        id: Option<&str>,
        status: HoldStatus,
        by: &str,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        let mut client = self.client().await?;
        let (tx, _) = self.fenced(&mut client, "resolve held plans").await?;
        tx.execute(
            &self.sql(
                "UPDATE {s}.held_plans SET status = $2, resolved_at = $3, resolved_by = $4
                 WHERE status = 'held' AND ($1::text IS NULL OR id = $1)",
            ),
            &[&id, &status, &at, &by],
        )
        .await
        .map_err(self.db("resolve held plans"))?;
        tx.commit().await.map_err(self.db("commit held plans"))
    }

    async fn held_plan(&self, id: Option<&str>) -> Result<Option<HeldRecord>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        let client = self.client().await?;
        let row = client
            .query_opt(
                &self.sql(
                    "SELECT status, body, created_at, last_seen_at FROM {s}.held_plans
                     WHERE ($1::text IS NULL AND status = 'held') OR id = $1
                     ORDER BY last_seen_at DESC LIMIT 1",
                ),
                &[&id],
            )
            .await
            .map_err(self.db("read held plan"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        codec::decode_held(r.get(0), r.get(1), r.get(2), r.get(3))
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                path: self.target.clone(),
                detail,
            })
    }
}
