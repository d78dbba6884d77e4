//! SQLite snapshot store: one file, WAL mode, one transaction per recorded write.
//!
//! Member lists are stored sorted and `\n`-joined (Q ids cannot contain control characters),
//! with their count and SHA-256, so a damaged row is detected at load instead of being diffed.

use crate::store::{HeldPlans, RunLog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::codec::{self, AuditRow, GroupRow, HeldRow, PendingRow, parse_ts, ts};
use super::{
    AppliedPut, HeldRecord, HoldStatus, IntentOp, RunId, RunRecord, RunStart, SnapshotStore,
    StoreError, UsersMode, UsersWrite,
};
use crate::model::{GroupName, Interner, OktaGroupId, UserId};
use crate::plan::reads::KnownUser;
use crate::plan::safety::Held;
use crate::plan::{ReadMark, Snapshot};

/// `PRAGMA application_id` of q-group-sync snapshots ("QGS1").
const APPLICATION_ID: i64 = 0x5147_5331;

/// The SQLite-backed [`SnapshotStore`].
///
/// The connection sits behind a std `Mutex`: every operation is short, runs on the blocking
/// pool, and never holds the lock across an `.await`.
#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    /// `None` for a read-only store over a file that does not exist yet (an empty snapshot).
    conn: Option<Arc<Mutex<Connection>>>,
}

mod schema;
mod scim;

pub use schema::SCHEMA_VERSION;
use schema::{check_ours, migrate};

impl SqliteStore {
    /// A value of the `meta` table.
    /// A time kept in the `meta` table.
    async fn meta_time(&self, key: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.meta(key).await?.as_deref().and_then(parse_ts))
    }

    async fn meta(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        let found = self
            .with_conn(move |conn, p| {
                conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| classify(p, "read meta", e))
            })
            .await?;
        Ok(found.flatten())
    }

    async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError> {
        self.writable()?;
        self.with_conn(move |conn, p| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(|e| classify(p, "write meta", e))?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Opens (creating if needed) the snapshot for a pass that writes, and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let p = display(path);
        if let Some(detail) = directory_problem(path) {
            return Err(StoreError::Location { path: p, detail });
        }
        let conn = Connection::open(path).map_err(|source| opening_failed(path, true, source))?;
        // Member emails: owner only, before WAL mode creates -wal/-shm (SQLite gives them the
        // database file's mode). A file left more open by an older version is tightened.
        for file in [
            path.to_owned(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            match crate::files::make_private(&file) {
                Ok(true) => {
                    tracing::warn!(path = %file.display(), "the snapshot file was readable by group or others; now 0600")
                }
                Ok(false) => {}
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        path: p,
                        detail: format!("cannot make {} private (chmod 600): {e}", file.display()),
                    });
                }
            }
        }
        let sql = |op: &'static str| {
            let p = p.clone();
            move |source| classify(&p, op, source)
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql("busy timeout"))?;
        check_ours(&conn, &p)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql("journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: p,
                detail: format!("cannot switch to WAL mode (got {mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(sql("pragmas"))?;
        migrate(&conn, &p)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            conn: Some(Arc::new(Mutex::new(conn))),
        })
    }

    /// Opens the snapshot for reading only (`plan`): never creates, migrates or writes the file.
    /// A missing file is an empty snapshot; anything unreadable is an error.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let p = display(path);
        // Only a file that is not there is "no snapshot yet"; one that cannot be reached (a
        // directory without permission, a file where a directory should be) is an error.
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SqliteStore {
                    path: path.to_owned(),
                    conn: None,
                });
            }
            Err(e) => {
                return Err(StoreError::Location {
                    path: p,
                    detail: directory_problem(path).unwrap_or_else(|| unreachable_file(path, &e)),
                });
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| opening_failed(path, false, source))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| classify(&p, "busy timeout", e))?;
        let version = check_ours(&conn, &p)?;
        if version == 0 {
            return Ok(SqliteStore {
                path: path.to_owned(),
                conn: None,
            });
        }
        if version != SCHEMA_VERSION {
            // Older schemas are migrated by the next `sync`; `plan` must not write, so refuse.
            return Err(StoreError::Corrupt {
                path: p,
                detail: format!(
                    "schema version {version} needs migrating to {SCHEMA_VERSION}; run `q-group-sync sync` once"
                ),
            });
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            conn: Some(Arc::new(Mutex::new(conn))),
        })
    }

    /// Whether a pass that writes could open or create the snapshot at `path`, without
    /// opening it: the directory is there and reachable, and the file opens for reading and
    /// writing, or the directory takes a new file. `Err` says what is wrong and what to do.
    pub fn check_location(path: &Path) -> Result<(), String> {
        if let Some(problem) = directory_problem(path) {
            return Err(problem);
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(unreachable_file(
                path,
                &std::io::Error::other("a directory"),
            )),
            Ok(_) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop)
                .map_err(|e| unreachable_file(path, &e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match new_file_problem(path) {
                Some(problem) => Err(problem),
                None => Ok(()),
            },
            Err(e) => Err(unreachable_file(path, &e)),
        }
    }

    /// The file this store reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection in the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        let Some(conn) = self.conn.clone() else {
            return Ok(None);
        };
        let path = display(&self.path);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard, &path)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map(Some)
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.conn {
            Some(_) => Ok(()),
            None => Err(StoreError::Task("snapshot opened read-only".into())),
        }
    }
}

impl SnapshotStore for SqliteStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.with_conn(load).await?.unwrap_or_default())
    }

    async fn record_put(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        put: &AppliedPut<'_>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let (row, audit) = (GroupRow::from_put(put, at), AuditRow::put(put));
        let (written, stale) = codec::chunk_names(put);
        self.with_conn(move |conn, p| {
            let tx = conn.transaction().map_err(|e| classify(p, "begin transaction", e))?;
            tx.execute(
                "INSERT INTO groups (q_name, okta_id, members, member_count, members_sha256, pushed_at,
                                     source_updated_at, read_at, chunks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (q_name) DO UPDATE SET okta_id = excluded.okta_id, members = excluded.members,
                   member_count = excluded.member_count, members_sha256 = excluded.members_sha256,
                   pushed_at = excluded.pushed_at, source_updated_at = excluded.source_updated_at,
                   read_at = excluded.read_at, chunks = excluded.chunks",
                params![
                    row.q_name,
                    row.okta_id,
                    row.members,
                    row.member_count,
                    row.members_sha256,
                    ts(row.pushed_at),
                    row.read.map(|r| ts(r.source_updated)),
                    row.read.map(|r| ts(r.read_at)),
                    row.chunks
                ],
            )
            .map_err(|e| classify(p, "record put", e))?;
            insert_audit(&tx, p, run, at, &audit)?;
            tx.execute("DELETE FROM pending WHERE q_name = ?1", params![row.q_name])
                .map_err(|e| classify(p, "clear pending write", e))?;
            for chunk in &written {
                tx.execute("DELETE FROM pending WHERE q_name = ?1", params![chunk])
                    .map_err(|e| classify(p, "clear pending chunk write", e))?;
            }
            for chunk in &stale {
                insert_pending(&tx, p, chunk, &row.okta_id, "delete", run, at)?;
            }
            tx.commit().map_err(|e| classify(p, "commit put", e))
        })
        .await?;
        Ok(())
    }

    async fn record_delete(
        &self,
        run: RunId,
        at: DateTime<Utc>,
        group: &GroupName,
        okta_id: &OktaGroupId,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let (group, okta_id) = (group.clone(), okta_id.clone());
        self.with_conn(move |conn, p| {
            let q_name = group.as_str();
            let tx = conn
                .transaction()
                .map_err(|e| classify(p, "begin transaction", e))?;
            let old: Option<(String, i64)> = tx
                .query_row(
                    "SELECT members, member_count FROM groups WHERE q_name = ?1",
                    params![q_name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| classify(p, "read group", e))?;
            tx.execute("DELETE FROM pending WHERE q_name = ?1", params![q_name])
                .map_err(|e| classify(p, "clear pending write", e))?;
            tx.execute("DELETE FROM groups WHERE q_name = ?1", params![q_name])
                .map_err(|e| classify(p, "record delete", e))?;
            insert_audit(&tx, p, run, at, &AuditRow::delete(&group, &okta_id, old))?;
            tx.commit().map_err(|e| classify(p, "commit delete", e))
        })
        .await?;
        Ok(())
    }

    async fn record_reads(&self, marks: &[(GroupName, ReadMark)]) -> Result<(), StoreError> {
        self.writable()?;
        if marks.is_empty() {
            return Ok(());
        }
        let marks: Vec<(String, String, String)> = marks
            .iter()
            .map(|(g, m)| (g.as_str().to_owned(), ts(m.source_updated), ts(m.read_at)))
            .collect();
        self.with_conn(move |conn, p| {
            let tx = conn
                .transaction()
                .map_err(|e| classify(p, "begin transaction", e))?;
            {
                let mut stmt = tx
                    .prepare(
                        "UPDATE groups SET source_updated_at = ?2, read_at = ?3 WHERE q_name = ?1",
                    )
                    .map_err(|e| classify(p, "record reads", e))?;
                for (q_name, source_updated, read_at) in &marks {
                    stmt.execute(params![q_name, source_updated, read_at])
                        .map_err(|e| classify(p, "record reads", e))?;
                }
            }
            tx.commit().map_err(|e| classify(p, "commit reads", e))
        })
        .await?;
        Ok(())
    }

    async fn full_read_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time("full_read_at").await
    }

    async fn set_full_read_at(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_meta("full_read_at", ts(at)).await
    }

    async fn known_users(
        &self,
        okta_ids: &[String],
    ) -> Result<BTreeMap<String, KnownUser>, StoreError> {
        if okta_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ids = okta_ids.to_vec();
        Ok(self
            .with_conn(move |conn, p| {
                let mut stmt = conn
                    .prepare_cached("SELECT q_id FROM users WHERE okta_id = ?1")
                    .map_err(|e| classify(p, "read users", e))?;
                let mut out = BTreeMap::new();
                for id in ids {
                    let found: Option<Option<String>> = stmt
                        .query_row(params![id], |r| r.get(0))
                        .optional()
                        .map_err(|e| classify(p, "read users", e))?;
                    if let Some(q_id) = found {
                        out.insert(id, q_id);
                    }
                }
                Ok(out)
            })
            .await?
            .unwrap_or_default())
    }

    async fn record_users(&self, write: UsersWrite<'_>) -> Result<(), StoreError> {
        self.writable()?;
        if write.is_empty() {
            return Ok(());
        }
        let mode = write.mode;
        let users = write.users;
        let invalidate: Vec<String> = write
            .invalidate
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let checked_at = write.checked_at.map(ts);
        self.with_conn(move |conn, p| {
            let tx = conn
                .transaction()
                .map_err(|e| classify(p, "begin transaction", e))?;
            let err = |e| classify(p, "record users", e);
            if mode == UsersMode::Replace {
                tx.execute("DELETE FROM users", []).map_err(err)?;
            }
            {
                let sql = match mode {
                    UsersMode::InsertNew => {
                        "INSERT INTO users (okta_id, q_id) VALUES (?1, ?2) ON CONFLICT (okta_id) DO NOTHING"
                    }
                    UsersMode::Upsert | UsersMode::Replace => {
                        "INSERT INTO users (okta_id, q_id) VALUES (?1, ?2)
                         ON CONFLICT (okta_id) DO UPDATE SET q_id = excluded.q_id"
                    }
                };
                let mut stmt = tx.prepare(sql).map_err(err)?;
                for (okta_id, q_id) in &users {
                    stmt.execute(params![&**okta_id, q_id.as_ref().map(UserId::as_str)])
                        .map_err(err)?;
                }
                let mut stmt = tx
                    .prepare(
                        "UPDATE groups SET source_updated_at = NULL, read_at = NULL WHERE q_name = ?1",
                    )
                    .map_err(err)?;
                for name in &invalidate {
                    stmt.execute(params![name]).map_err(err)?;
                }
            }
            if let Some(at) = checked_at {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('users_checked_at', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![at],
                )
                .map_err(err)?;
            }
            tx.commit().map_err(|e| classify(p, "commit users", e))
        })
        .await?;
        Ok(())
    }

    async fn users_checked_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time("users_checked_at").await
    }

    async fn events_cursor(&self) -> Result<Option<String>, StoreError> {
        self.meta("events_cursor").await
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), StoreError> {
        self.set_meta("events_cursor", cursor.to_owned()).await
    }

    async fn q_readings(&self) -> Result<Option<String>, StoreError> {
        self.meta("q_readings").await
    }

    async fn set_q_readings(&self, readings: &str) -> Result<(), StoreError> {
        self.set_meta("q_readings", readings.to_owned()).await
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
        self.writable()?;
        let (q_name, okta_id) = (group.as_str().to_owned(), okta_id.as_str().to_owned());
        self.with_conn(move |conn, p| insert_pending(conn, p, &q_name, &okta_id, op, run, at))
            .await?;
        Ok(())
    }
}

impl RunLog for SqliteStore {
    async fn begin_run(
        &self,
        started_at: DateTime<Utc>,
        start: &RunStart,
    ) -> Result<RunId, StoreError> {
        self.writable()?;
        let start = start.clone();
        let id = self
            .with_conn(move |conn, p| {
                conn.execute(
                    "INSERT INTO runs (started_at, pass_id, trigger, scope) VALUES (?1, ?2, ?3, ?4)",
                    params![ts(started_at), start.pass_id, start.trigger, start.group],
                )
                .map_err(|e| classify(p, "begin run", e))?;
                Ok(conn.last_insert_rowid())
            })
            .await?;
        id.ok_or_else(|| StoreError::Task("snapshot opened read-only".into()))
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let found = self
            .with_conn(|conn, p| {
                let at: Option<String> = conn
                    .query_row(
                        "SELECT max(finished_at) FROM runs WHERE outcome = 'success' AND scope IS NULL",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(|e| classify(p, "read runs", e))?;
                at.map(|t| {
                    DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Corrupt {
                        path: p.to_owned(),
                        detail: format!("bad run time {t:?}: {e}"),
                    })
                })
                .transpose()
            })
            .await?;
        Ok(found.flatten())
    }

    async fn finish_run(
        &self,
        run: RunId,
        finished_at: DateTime<Utc>,
        r: &RunRecord,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let r = r.clone();
        self.with_conn(move |conn, p| {
            conn.execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, groups_in_scope = ?4, puts = ?5, deletes = ?6,
                   failed = ?7, unchanged = ?8, users_added = ?9, users_removed = ?10, error = ?11 WHERE id = ?1",
                params![
                    run,
                    ts(finished_at),
                    r.outcome,
                    r.groups_in_scope as i64,
                    r.puts as i64,
                    r.deletes as i64,
                    r.failed as i64,
                    r.unchanged as i64,
                    r.users_added as i64,
                    r.users_removed as i64,
                    r.error
                ],
            )
            .map_err(|e| classify(p, "finish run", e))?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}

impl HeldPlans for SqliteStore {
    async fn hold(&self, at: DateTime<Utc>, held: &Held) -> Result<(), StoreError> {
        self.writable()?;
        let row = HeldRow::encode(held).map_err(StoreError::Task)?;
        self.with_conn(move |conn, p| {
            let tx = conn.transaction().map_err(|e| classify(p, "begin transaction", e))?;
            tx.execute(
                "UPDATE held_plans SET status = 'superseded', resolved_at = ?2, resolved_by = 'newer plan'
                 WHERE status = 'held' AND id <> ?1",
                params![row.id, ts(at)],
            )
            .map_err(|e| classify(p, "supersede held plans", e))?;
            tx.execute(
                "INSERT INTO held_plans (id, hash, status, body, deletes, removals, created_at, last_seen_at)
                 VALUES (?1, ?2, 'held', ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (id) DO UPDATE SET status = 'held', body = excluded.body,
                   last_seen_at = excluded.last_seen_at, resolved_at = NULL, resolved_by = NULL",
                params![row.id, row.hash, row.body, row.deletes, row.removals, ts(at)],
            )
            .map_err(|e| classify(p, "record held plan", e))?;
            tx.commit().map_err(|e| classify(p, "commit held plan", e))
        })
        .await?;
        Ok(())
    }

    async fn resolve_holds(
        &self,
        at: DateTime<Utc>,
        id: Option<&str>,
        status: HoldStatus,
        by: &str,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let (id, by) = (id.map(str::to_owned), by.to_owned());
        let status = status.as_str();
        self.with_conn(move |conn, p| {
            conn.execute(
                "UPDATE held_plans SET status = ?2, resolved_at = ?3, resolved_by = ?4
                 WHERE status = 'held' AND (?1 IS NULL OR id = ?1)",
                params![id, status, ts(at), by],
            )
            .map_err(|e| classify(p, "resolve held plans", e))?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn held_plan(&self, id: Option<&str>) -> Result<Option<HeldRecord>, StoreError> {
        let id = id.map(str::to_owned);
        let found = self
            .with_conn(move |conn, p| {
                let row: Option<(String, String, String, String)> = conn
                    .query_row(
                        "SELECT status, body, created_at, last_seen_at FROM held_plans
                         WHERE (?1 IS NULL AND status = 'held') OR id = ?1
                         ORDER BY last_seen_at DESC LIMIT 1",
                        params![id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()
                    .map_err(|e| classify(p, "read held plan", e))?;
                let Some((status, body, created, seen)) = row else {
                    return Ok(None);
                };
                let corrupt = |detail: String| StoreError::Corrupt {
                    path: p.to_owned(),
                    detail,
                };
                let time = |t: &str| {
                    parse_ts(t)
                        .ok_or_else(|| corrupt(format!("held plan time {t:?} is not RFC 3339")))
                };
                codec::decode_held(status, &body, time(&created)?, time(&seen)?)
                    .map(Some)
                    .map_err(corrupt)
            })
            .await?;
        Ok(found.flatten())
    }
}

fn load(conn: &mut Connection, p: &str) -> Result<Snapshot, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT q_name, okta_id, members, member_count, members_sha256, pushed_at,
                    source_updated_at, read_at, chunks FROM groups",
        )
        .map_err(|e| classify(p, "read groups", e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(|e| classify(p, "read groups", e))?;
    let mut snapshot = Snapshot::default();
    let mut ids = Interner::default();
    for row in rows {
        let (
            q_name,
            okta_id,
            members,
            member_count,
            members_sha256,
            pushed_at,
            source_updated,
            read_at,
            chunks,
        ) = row.map_err(|e| classify(p, "read groups", e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            path: p.to_owned(),
            detail,
        };
        let pushed_at = parse_ts(&pushed_at)
            .ok_or_else(|| corrupt(format!("group {q_name:?}: bad pushed_at {pushed_at:?}")))?;
        let row = GroupRow {
            q_name,
            okta_id,
            members,
            member_count,
            members_sha256,
            pushed_at,
            read: codec::read_mark(
                source_updated.as_deref().and_then(parse_ts),
                read_at.as_deref().and_then(parse_ts),
            ),
            chunks,
        };
        let (name, group) = row.into_group(&mut ids).map_err(corrupt)?;
        snapshot.groups.insert(name, group);
    }
    drop(stmt);
    // Writes that were started but never recorded (a crash, a FAILED or unverified put).
    let mut stmt = conn
        .prepare("SELECT q_name, okta_id, at FROM pending")
        .map_err(|e| classify(p, "read pending writes", e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| classify(p, "read pending writes", e))?;
    let mut pending = Vec::new();
    for row in rows {
        let (q_name, okta_id, at) = row.map_err(|e| classify(p, "read pending writes", e))?;
        let at = parse_ts(&at).ok_or_else(|| StoreError::Corrupt {
            path: p.to_owned(),
            detail: format!("pending {q_name:?}: bad time {at:?}"),
        })?;
        pending.push(PendingRow {
            q_name,
            okta_id,
            at,
        });
    }
    codec::add_pending(&mut snapshot, pending);
    Ok(snapshot)
}

fn classify(p: &str, op: &'static str, source: rusqlite::Error) -> StoreError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt {
                path: p.to_owned(),
                detail: source.to_string(),
            }
        }
        _ => StoreError::Sqlite {
            path: p.to_owned(),
            op,
            source,
        },
    }
}

/// Inserts the audit entry of an applied change.
/// Records (or replaces) the write intent for `q_name`.
fn insert_pending(
    conn: &Connection,
    p: &str,
    q_name: &str,
    okta_id: &str,
    op: &str,
    run: RunId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO pending (q_name, okta_id, op, run_id, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (q_name) DO UPDATE SET okta_id = excluded.okta_id, op = excluded.op,
           run_id = excluded.run_id, at = excluded.at",
        params![q_name, okta_id, op, run, ts(at)],
    )
    .map_err(|e| classify(p, "record pending write", e))?;
    Ok(())
}

fn insert_audit(
    tx: &rusqlite::Transaction<'_>,
    p: &str,
    run: RunId,
    at: DateTime<Utc>,
    a: &AuditRow,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (run_id, at, q_name, okta_id, op, users_added, users_removed, added, removed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![run, ts(at), a.q_name, a.okta_id, a.op, a.users_added, a.users_removed, a.added, a.removed],
    )
    .map_err(|e| classify(p, "audit", e))?;
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// What to do about a snapshot location that cannot be used.
const LOCATION_FIX: &str =
    "by the user q-group-sync runs as (65532 in the image), or set state.path";

/// What is wrong with the directory `path` is in, if something is: it does not exist, is not
/// a directory, or cannot be reached (a directory above it without permission).
fn directory_problem(path: &Path) -> Option<String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        // Searchable, unless the file in it cannot even be looked at.
        Ok(m) if m.is_dir() => match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
                "directory {} cannot be reached ({e}); let the user q-group-sync runs as (65532 in the image) search it, or set state.path",
                dir.display()
            )),
            _ => None,
        },
        Ok(_) => Some(format!(
            "{} is a file, not a directory; set state.path to a file in a directory writable by the user q-group-sync runs as (65532 in the image)",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "directory {} does not exist; create it, writable {LOCATION_FIX}",
            dir.display()
        )),
        Err(e) => Some(format!(
            "directory {} cannot be reached ({e}); let the user q-group-sync runs as (65532 in the image) search it and the directories above it, or set state.path",
            dir.display()
        )),
    }
}

/// The detail of a snapshot file that exists but cannot be reached or opened.
fn unreachable_file(path: &Path, e: &std::io::Error) -> String {
    if path.is_dir() {
        return format!(
            "{} is a directory, not a snapshot file; set state.path to a file in it (e.g. {}/snapshot.db)",
            path.display(),
            path.display()
        );
    }
    format!(
        "{} cannot be opened ({e}); make it and its directory readable and writable {LOCATION_FIX}",
        path.display()
    )
}

/// Why the directory of `path` does not take a new file, if it does not (tried with a probe
/// file, removed at once).
fn new_file_problem(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".q-group-sync-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "directory {} does not take new files ({e}), so {} cannot be created; make it writable {LOCATION_FIX}",
            dir.display(),
            path.display()
        )),
    }
}

/// The error of a failed `Connection::open`: where the file system explains it (permissions,
/// a directory in the way), a [`StoreError::Location`] naming what to do; otherwise
/// [`StoreError::Open`] with SQLite's own cause.
fn opening_failed(path: &Path, write: bool, source: rusqlite::Error) -> StoreError {
    let p = display(path);
    if let Some(detail) = directory_problem(path) {
        return StoreError::Location { path: p, detail };
    }
    let detail = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Some(unreachable_file(
            path,
            &std::io::Error::other("a directory"),
        )),
        Ok(_) => std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .err()
            .map(|e| unreachable_file(path, &e)),
        // The file would be created: the directory must take it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_file_problem(path),
        Err(e) => Some(unreachable_file(path, &e)),
    };
    match detail {
        Some(detail) => StoreError::Location { path: p, detail },
        None => StoreError::Open { path: p, source },
    }
}

#[cfg(test)]
mod tests;

/// `<path><suffix>`: SQLite's `-wal` and `-shm` files beside the database.
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}
