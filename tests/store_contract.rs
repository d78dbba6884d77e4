//! The snapshot store's contract, run against both backends: SQLite (a temp file) and
//! PostgreSQL (a schema of its own on the test server, with this process holding the leader
//! lock). Then what only PostgreSQL has: migrations under a lock, election and fencing.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use q_group_sync::config::{PgTls, StateBackend, StateConfig};
use q_group_sync::leader::Leadership;
use q_group_sync::model::{GroupName, Members, OktaGroupId, UserId};
use q_group_sync::plan::safety::{Held, HeldDelete};
use q_group_sync::plan::{Layout, ReadMark};
use q_group_sync::store::postgres::{CommandLease, Elector, PgSettings};
use q_group_sync::store::{
    AppliedPut, Backend, HeldPlans, HoldStatus, IntentOp, PostgresStore, RunLog, RunRecord,
    RunStart, SnapshotStore, SqliteStore, UserRecord, UsersMode, UsersWrite,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, 0).single().unwrap()
}

fn members(ids: &[&str]) -> Members {
    ids.iter().map(|i| UserId::from_normalised(*i)).collect()
}

/// One backend under test, with what the scenarios need to reopen and tamper with it.
enum Subject {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        schema: String,
        shutdown: CancellationToken,
        lease: Option<CommandLease>,
    },
}

impl Subject {
    fn sqlite() -> Subject {
        Subject::Sqlite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn postgres(test: &str) -> Option<Subject> {
        let url = common::postgres::url(test)?;
        Some(Subject::Postgres {
            url,
            schema: common::postgres::schema(test),
            shutdown: CancellationToken::new(),
            lease: None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Subject::Sqlite { .. } => "sqlite",
            Subject::Postgres { .. } => "postgres",
        }
    }

    fn settings(url: &str, schema: &str) -> PgSettings {
        PgSettings::from_config(&StateConfig {
            backend: StateBackend::Postgres,
            url: Some(SecretString::from(url.to_owned())),
            tls: PgTls::Disable,
            schema: schema.to_owned(),
            leader_takeover: Duration::from_secs(5),
            replica: Some("contract".into()),
            ..StateConfig::default()
        })
        .unwrap()
    }

    /// Opens for writing (migrating), as the leader.
    async fn open(&mut self) -> Result<Backend, q_group_sync::store::StoreError> {
        match self {
            Subject::Sqlite { dir } => {
                SqliteStore::open(&dir.path().join("s.db")).map(Backend::Sqlite)
            }
            Subject::Postgres {
                url,
                schema,
                shutdown,
                lease,
            } => {
                if let Some(old) = lease.take() {
                    old.release().await;
                }
                let settings = Subject::settings(url, schema);
                let leadership = Leadership::elected("postgres", "contract".into(), shutdown);
                let store = PostgresStore::open(&settings, leadership.clone()).await?;
                *lease = Some(Elector::new(&settings, leadership, None).acquire().await?);
                Ok(Backend::Postgres(store))
            }
        }
    }

    async fn open_read_only(&self) -> Result<Backend, q_group_sync::store::StoreError> {
        match self {
            Subject::Sqlite { dir } => {
                SqliteStore::open_read_only(&dir.path().join("s.db")).map(Backend::Sqlite)
            }
            Subject::Postgres {
                url,
                schema,
                shutdown,
                ..
            } => {
                let settings = Subject::settings(url, schema);
                let leadership = Leadership::elected("postgres", "contract".into(), shutdown);
                PostgresStore::open_read_only(&settings, leadership)
                    .await
                    .map(Backend::Postgres)
            }
        }
    }

    /// Runs one SQL statement on the raw database (`{s}` is the schema prefix, `s.` or `"x".`).
    async fn raw(&self, sql: &str) -> i64 {
        match self {
            Subject::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
                let sql = sql.replace("{s}", "");
                if sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
                    conn.query_row(&sql, [], |r| r.get(0)).unwrap()
                } else {
                    conn.execute(&sql, []).unwrap() as i64
                }
            }
            Subject::Postgres { url, schema, .. } => {
                let client = common::postgres::raw(url).await;
                let sql = sql.replace("{s}", &format!("\"{schema}\"."));
                if sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
                    client.query_one(&sql, &[]).await.unwrap().get(0)
                } else {
                    client.execute(&sql, &[]).await.unwrap() as i64
                }
            }
        }
    }

    async fn bump_schema_version(&self) {
        match self {
            Subject::Sqlite { .. } => {
                self.raw("PRAGMA user_version = 99").await;
            }
            Subject::Postgres { .. } => {
                self.raw("UPDATE {s}schema_version SET version = 99").await;
            }
        }
    }
}

fn put<'a>(
    g: &'a GroupName,
    id: &'a OktaGroupId,
    m: &'a Members,
    added: &'a Members,
    removed: &'a Members,
    read: Option<ReadMark>,
) -> AppliedPut<'a> {
    AppliedPut {
        group: g,
        okta_id: id,
        members: m,
        added,
        removed,
        read,
        layout: Layout::Inline,
        chunks_written: &[],
        chunks_stale: &[],
    }
}

/// A chunked group's layout, the intents of its chunks, and the System Log position.
async fn chunked_groups_and_the_events_position(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    assert_eq!(store.events_cursor().await.unwrap(), None, "{name}");
    let run = store.begin_run(at(0), &RunStart::default()).await.unwrap();
    let (g, id) = (GroupName::new("All Staff"), OktaGroupId::new("00gall"));
    let m = members(&["a@x.test", "b@x.test", "c@x.test"]);
    let empty = Members::new();
    let old = Layout::Chunked { chunks: 3 }.chunk_names(&g);
    let new = Layout::Chunked { chunks: 2 }.chunk_names(&g);
    for chunk in &new {
        store
            .record_intent(run, at(1), chunk, &id, IntentOp::Put)
            .await
            .unwrap();
    }
    store
        .record_put(
            run,
            at(2),
            &AppliedPut {
                layout: Layout::Chunked { chunks: 2 },
                chunks_written: &new,
                chunks_stale: &old,
                ..put(&g, &id, &m, &m, &empty, None)
            },
        )
        .await
        .unwrap();
    store
        .set_events_cursor("https://acme.okta.com/api/v1/logs?after=1_2")
        .await
        .unwrap();
    drop(store);
    let store = s.open().await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(
        snap.groups[&g].layout,
        Layout::Chunked { chunks: 2 },
        "{name}"
    );
    // The written chunks' intents are cleared; the stale ones wait for their deletion, owned.
    for chunk in &new {
        assert!(!snap.groups.contains_key(chunk), "{name}: {chunk}");
    }
    for chunk in &old {
        let found = &snap.groups[chunk];
        assert!(found.unconfirmed && found.okta_id == id, "{name}: {chunk}");
    }
    assert_eq!(
        store.events_cursor().await.unwrap().as_deref(),
        Some("https://acme.okta.com/api/v1/logs?after=1_2"),
        "{name}"
    );
}

/// Users' recorded identities: insert-only, upsert and replace; read marks cleared in the same
/// write; the users check time.
async fn users_and_their_marks(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    assert_eq!(store.users_checked_at().await.unwrap(), None, "{name}");
    let run = store.begin_run(at(0), &RunStart::default()).await.unwrap();
    let (g, id) = (GroupName::new("Sales"), OktaGroupId::new("00gsales"));
    let m = members(&["a@x.test"]);
    let mark = ReadMark {
        source_updated: at(-3600),
        read_at: at(1),
    };
    store
        .record_put(
            run,
            at(2),
            &put(&g, &id, &m, &m, &Members::new(), Some(mark)),
        )
        .await
        .unwrap();
    let users = |pairs: &[(&str, Option<&str>)]| -> Vec<UserRecord> {
        pairs
            .iter()
            .map(|(i, q)| ((*i).into(), q.map(UserId::from_normalised)))
            .collect()
    };
    let known_of = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(i, q)| ((*i).to_owned(), q.map(str::to_owned)))
            .collect()
    };
    let ids = |list: &[&str]| -> Vec<String> { list.iter().map(|i| (*i).to_owned()).collect() };
    store
        .record_users(UsersWrite {
            mode: UsersMode::InsertNew,
            users: users(&[("00ua", Some("a@x.test")), ("00ub", None)]),
            invalidate: &[],
            checked_at: None,
        })
        .await
        .unwrap();
    // Insert-only keeps a known user's record.
    store
        .record_users(UsersWrite {
            mode: UsersMode::InsertNew,
            users: users(&[("00ua", None), ("00uc", Some("c@x.test"))]),
            invalidate: &[],
            checked_at: None,
        })
        .await
        .unwrap();
    let known = store
        .known_users(&ids(&["00ua", "00ub", "00uc", "00uz"]))
        .await
        .unwrap();
    assert_eq!(
        known.into_iter().collect::<Vec<_>>(),
        known_of(&[
            ("00ua", Some("a@x.test")),
            ("00ub", None),
            ("00uc", Some("c@x.test"))
        ]),
        "{name}"
    );
    assert_eq!(
        store.load().await.unwrap().groups[&g].read,
        Some(mark),
        "{name}"
    );
    // An upsert with the group's mark cleared and the check time, in one write.
    store
        .record_users(UsersWrite {
            mode: UsersMode::Upsert,
            users: users(&[("00ua", None)]),
            invalidate: std::slice::from_ref(&g),
            checked_at: Some(at(5)),
        })
        .await
        .unwrap();
    drop(store);
    let store = s.open().await.unwrap();
    assert_eq!(store.load().await.unwrap().groups[&g].read, None, "{name}");
    assert_eq!(
        store.users_checked_at().await.unwrap(),
        Some(at(5)),
        "{name}"
    );
    let known = store.known_users(&ids(&["00ua"])).await.unwrap();
    assert_eq!(known.get("00ua"), Some(&None), "{name}");
    // Replace drops the users not given.
    store
        .record_users(UsersWrite {
            mode: UsersMode::Replace,
            users: users(&[("00ub", Some("b@x.test"))]),
            invalidate: &[],
            checked_at: Some(at(9)),
        })
        .await
        .unwrap();
    let known = store
        .known_users(&ids(&["00ua", "00ub", "00uc"]))
        .await
        .unwrap();
    assert_eq!(
        known.into_iter().collect::<Vec<_>>(),
        known_of(&[("00ub", Some("b@x.test"))]),
        "{name}"
    );
    assert_eq!(
        store.users_checked_at().await.unwrap(),
        Some(at(9)),
        "{name}"
    );
}

/// Puts, deletes, intents, reads and the run log, across a reopen.
async fn records_survive_a_reopen(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    assert!(store.load().await.unwrap().groups.is_empty(), "{name}");
    assert_eq!(store.last_success().await.unwrap(), None);
    assert_eq!(store.full_read_at().await.unwrap(), None);
    let start = RunStart {
        pass_id: "p1".into(),
        trigger: "cli".into(),
        group: None,
    };
    let run = store.begin_run(at(0), &start).await.unwrap();
    let (eng, id1) = (GroupName::new("Eng Team/α"), OktaGroupId::new("00g1"));
    let (empty_g, id2) = (GroupName::new("empty"), OktaGroupId::new("00g2"));
    let m = members(&["a@x.test", "b@x.test"]);
    let none = Members::new();
    let mark = ReadMark {
        source_updated: at(-100),
        read_at: at(-10),
    };
    store
        .record_intent(run, at(1), &eng, &id1, IntentOp::Put)
        .await
        .unwrap();
    let snap = store.load().await.unwrap();
    assert!(
        snap.groups[&eng].unconfirmed,
        "{name}: an intent marks the group"
    );
    store
        .record_put(run, at(2), &put(&eng, &id1, &m, &m, &none, Some(mark)))
        .await
        .unwrap();
    store
        .record_put(run, at(2), &put(&empty_g, &id2, &none, &none, &none, None))
        .await
        .unwrap();
    store.set_full_read_at(at(3)).await.unwrap();
    store
        .finish_run(
            run,
            at(4),
            &RunRecord {
                outcome: "success".into(),
                puts: 2,
                ..RunRecord::default()
            },
        )
        .await
        .unwrap();
    drop(store);

    let store = s.open().await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.groups.len(), 2, "{name}");
    let g = &snap.groups[&eng];
    assert_eq!(
        (&g.members, g.pushed_at, g.unconfirmed),
        (&m, at(2), false),
        "{name}"
    );
    assert_eq!(g.read, Some(mark), "{name}");
    assert!(snap.groups[&empty_g].members.is_empty());
    assert_eq!(store.last_success().await.unwrap(), Some(at(4)), "{name}");
    assert_eq!(store.full_read_at().await.unwrap(), Some(at(3)), "{name}");

    // A newer read of an unchanged group; then a deletion (also of a pending intent).
    let run = store.begin_run(at(10), &start).await.unwrap();
    let newer = ReadMark {
        source_updated: at(5),
        read_at: at(9),
    };
    store.record_reads(&[(eng.clone(), newer)]).await.unwrap();
    store
        .record_intent(run, at(11), &empty_g, &id2, IntentOp::Delete)
        .await
        .unwrap();
    store
        .record_delete(run, at(12), &empty_g, &id2)
        .await
        .unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.groups.len(), 1, "{name}");
    assert_eq!(snap.groups[&eng].read, Some(newer), "{name}");
    // A group scoped run does not count as a full success.
    let scoped = RunStart {
        group: Some("Eng Team/α".into()),
        ..start.clone()
    };
    let run2 = store.begin_run(at(20), &scoped).await.unwrap();
    store
        .finish_run(
            run2,
            at(21),
            &RunRecord {
                outcome: "success".into(),
                ..RunRecord::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.last_success().await.unwrap(), Some(at(4)), "{name}");
    assert_eq!(s.raw("SELECT count(*) FROM {s}audit").await, 3, "{name}");
    assert_eq!(s.raw("SELECT count(*) FROM {s}pending").await, 0, "{name}");
    assert_eq!(s.raw("SELECT count(*) FROM {s}runs").await, 3, "{name}");
}

/// An intent without a record survives a reopen as an unconfirmed, owned group.
async fn intents_without_records_mark_groups_unconfirmed(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    let run = store.begin_run(at(0), &RunStart::default()).await.unwrap();
    let (g, id) = (GroupName::new("crashed"), OktaGroupId::new("00g9"));
    store
        .record_intent(run, at(1), &g, &id, IntentOp::Put)
        .await
        .unwrap();
    drop(store);
    let snap = s.open().await.unwrap().load().await.unwrap();
    let found = &snap.groups[&g];
    assert!(found.unconfirmed && found.members.is_empty(), "{name}");
    assert_eq!(
        (found.okta_id.as_str(), found.pushed_at),
        ("00g9", at(1)),
        "{name}"
    );
}

/// Held plans: stored, refreshed, superseded, resolved.
async fn held_plans_are_kept_and_resolved(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    let mut held = Held {
        id: String::new(),
        hash: String::new(),
        reasons: vec!["too many deletes".into()],
        deletes: vec![HeldDelete {
            group: GroupName::new("old"),
            okta_id: OktaGroupId::new("00g1"),
        }],
        removals: [(GroupName::new("eng"), members(&["z@x.test"]))].into(),
    };
    held.hash = held.compute_hash();
    held.id = held.hash[..12].to_owned();
    store.hold(at(0), &held).await.unwrap();
    store.hold(at(5), &held).await.unwrap();
    let open = store.held_plan(None).await.unwrap().expect("held");
    assert_eq!(
        (open.status.as_str(), open.created_at, open.last_seen_at),
        ("held", at(0), at(5)),
        "{name}"
    );
    assert_eq!(open.held, held, "{name}");
    store
        .resolve_holds(at(6), Some(&held.id), HoldStatus::Applied, "admin")
        .await
        .unwrap();
    assert!(store.held_plan(None).await.unwrap().is_none(), "{name}");
    let closed = store
        .held_plan(Some(&held.id))
        .await
        .unwrap()
        .expect("by id");
    assert_eq!(closed.status, HoldStatus::Applied, "{name}");
    assert!(store.held_plan(Some("nope")).await.unwrap().is_none());

    // A tampered plan is corruption, not a plan to apply.
    store.hold(at(7), &held).await.unwrap();
    s.raw("UPDATE {s}held_plans SET body = replace(body, 'z@x.test', 'y@x.test')")
        .await;
    let err = store.held_plan(None).await.expect_err("tampered");
    assert_eq!(err.kind(), "corrupt", "{name}: {err}");
}

/// A member list that does not match its checksum or count stops the load.
async fn tampered_members_are_detected(mut s: Subject) {
    let name = s.name();
    let store = s.open().await.unwrap();
    let run = store.begin_run(at(0), &RunStart::default()).await.unwrap();
    let (g, id, m) = (
        GroupName::new("g"),
        OktaGroupId::new("00g1"),
        members(&["a@x.test"]),
    );
    store
        .record_put(run, at(1), &put(&g, &id, &m, &m, &m, None))
        .await
        .unwrap();
    s.raw("UPDATE {s}groups SET members = 'mallory@x.test'")
        .await;
    let err = store.load().await.expect_err("detected");
    assert_eq!(err.kind(), "corrupt", "{name}: {err}");
    assert!(err.to_string().contains("checksum"), "{name}: {err}");
}

/// A schema newer than this build is refused, on open and read-only open.
async fn a_newer_schema_is_refused(mut s: Subject) {
    let name = s.name();
    drop(s.open().await.unwrap());
    s.bump_schema_version().await;
    let err = s.open().await.err().expect("refused");
    assert_eq!(err.kind(), "too_new", "{name}: {err}");
    assert!(err.to_string().contains("99"), "{name}: {err}");
    let err = s.open_read_only().await.err().expect("refused read-only");
    assert_eq!(err.kind(), "too_new", "{name}: {err}");
}

/// `plan` over a snapshot that does not exist yet: empty, nothing created, writes refused.
async fn read_only_over_nothing_is_empty_and_creates_nothing(s: Subject) {
    let name = s.name();
    let store = s.open_read_only().await.unwrap();
    assert!(store.load().await.unwrap().groups.is_empty(), "{name}");
    assert!(store.held_plan(None).await.unwrap().is_none());
    assert!(
        store.begin_run(at(0), &RunStart::default()).await.is_err(),
        "{name}"
    );
    match &s {
        Subject::Sqlite { dir } => assert!(!dir.path().join("s.db").exists()),
        Subject::Postgres { url, schema, .. } => {
            let n: i64 = common::postgres::raw(url)
                .await
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                    &[schema],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "the schema was not created");
        }
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Subject::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(s) = super::Subject::postgres(stringify!($name)) {
                        super::$name(s).await;
                    }
                }
            )*
        }
    };
}

contract!(
    records_survive_a_reopen,
    intents_without_records_mark_groups_unconfirmed,
    held_plans_are_kept_and_resolved,
    tampered_members_are_detected,
    a_newer_schema_is_refused,
    read_only_over_nothing_is_empty_and_creates_nothing,
    chunked_groups_and_the_events_position,
    users_and_their_marks,
);

// ---- PostgreSQL only: migrations, election, fencing ------------------------------------------

struct Replica {
    store: PostgresStore,
    leadership: Leadership,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(url: &str, schema: &str, name: &str, takeover: Duration) -> Replica {
    let settings = PgSettings::from_config(&StateConfig {
        backend: StateBackend::Postgres,
        url: Some(SecretString::from(url.to_owned())),
        tls: PgTls::Disable,
        schema: schema.to_owned(),
        leader_takeover: takeover,
        replica: Some(name.to_owned()),
        ..StateConfig::default()
    })
    .unwrap();
    let shutdown = CancellationToken::new();
    let leadership = Leadership::elected("postgres", name.to_owned(), &shutdown);
    let store = PostgresStore::open(&settings, leadership.clone())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        Elector::new(&settings, leadership.clone(), Some(format!("{name}:9090"))).run(stop.clone()),
    );
    Replica {
        store,
        leadership,
        stop,
        task,
    }
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once_and_one_leads() {
    let Some(url) = common::postgres::url("replicas_starting_together") else {
        return;
    };
    let schema = common::postgres::schema("together");
    let takeover = Duration::from_secs(3);
    let (a, b) = tokio::join!(
        replica(&url, &schema, "a", takeover),
        replica(&url, &schema, "b", takeover)
    );
    wait_for("a leader", Duration::from_secs(5), || {
        a.leadership.is_leader() || b.leadership.is_leader()
    })
    .await;
    wait_for(
        "the standby to see the leader",
        Duration::from_secs(5),
        || a.leadership.view().leader.is_some() && b.leadership.view().leader.is_some(),
    )
    .await;
    assert!(
        a.leadership.is_leader() != b.leadership.is_leader(),
        "exactly one leads"
    );
    let (leader, standby) = if a.leadership.is_leader() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let seen = standby.leadership.view().leader.unwrap();
    assert_eq!(seen.replica, leader.leadership.replica());
    assert_eq!(
        seen.address.as_deref(),
        Some(format!("{}:9090", seen.replica).as_str())
    );
    let raw = common::postgres::raw(&url).await;
    let version: i32 = raw
        .query_one(
            &format!("SELECT version FROM \"{schema}\".schema_version"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, q_group_sync::store::postgres::SCHEMA_VERSION);
    let rows: i64 = raw
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".schema_version"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "migrated once");

    // The standby may not write; the leader may.
    let err = standby
        .store
        .begin_run(at(0), &RunStart::default())
        .await
        .expect_err("a standby does not write");
    assert_eq!(err.kind(), "fenced", "{err}");
    leader
        .store
        .begin_run(at(0), &RunStart::default())
        .await
        .unwrap();

    // A leader that stops releases the lock; the standby takes over at once.
    leader.stop.cancel();
    let took = wait_for("the standby to lead", Duration::from_secs(3), || {
        standby.leadership.is_leader()
    })
    .await;
    eprintln!("handover after a clean stop: {took:?}");
    for r in [&a, &b] {
        r.stop.cancel();
    }
    let _ = tokio::join!(a.task, b.task);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_is_killed_is_fenced_and_the_standby_takes_over() {
    let Some(url) = common::postgres::url("session_killed") else {
        return;
    };
    let schema = common::postgres::schema("killed");
    let takeover = Duration::from_secs(5);
    let a = replica(&url, &schema, "fence-a", takeover).await;
    wait_for("a to lead", Duration::from_secs(5), || {
        a.leadership.is_leader()
    })
    .await;
    let b = replica(&url, &schema, "fence-b", takeover).await;
    wait_for("b to see a", Duration::from_secs(5), || {
        b.leadership.view().leader.is_some()
    })
    .await;
    let old_term = a.leadership.current().unwrap();
    let run = a
        .store
        .begin_run(at(0), &RunStart::default())
        .await
        .unwrap();
    let (g, id) = (GroupName::new("g"), OktaGroupId::new("00g1"));
    a.store
        .record_intent(run, at(1), &g, &id, IntentOp::Put)
        .await
        .unwrap();

    // Kill a's lock session on the server (as a network cut or a DBA would).
    assert_eq!(
        common::postgres::terminate(&url, "leader lock (fence-a)").await,
        1
    );
    let killed = Instant::now();
    // a notices at once (its session closed): the pass token is cancelled and writes refused.
    wait_for("a to be fenced", Duration::from_secs(2), || {
        old_term.cancel.is_cancelled()
    })
    .await;
    let err = a
        .store
        .record_intent(run, at(2), &g, &id, IntentOp::Put)
        .await
        .expect_err("fenced");
    assert_eq!(err.kind(), "fenced", "{err}");
    let view = a.leadership.view();
    assert!(!view.is_leader);
    assert!(
        view.fenced_reason
            .as_deref()
            .unwrap_or_default()
            .contains("closed"),
        "{view:?}"
    );
    wait_for("b to lead", takeover, || b.leadership.is_leader()).await;
    eprintln!(
        "takeover after the leader's session was killed: {:?}",
        killed.elapsed()
    );
    let new_epoch = b.leadership.current().unwrap().epoch;
    assert!(new_epoch > old_term.epoch);
    b.store
        .record_intent(run, at(3), &g, &id, IntentOp::Put)
        .await
        .unwrap();
    // The raw audit trail: the pending intent now carries b's epoch.
    let raw = common::postgres::raw(&url).await;
    let epoch: i64 = raw
        .query_one(&format!("SELECT epoch FROM \"{schema}\".pending"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epoch, new_epoch);
    // a comes back as a standby and names b.
    wait_for("a to see b lead", Duration::from_secs(5), || {
        a.leadership
            .view()
            .leader
            .is_some_and(|l| l.replica == "fence-b")
    })
    .await;
    assert!(!a.leadership.is_leader());
    for r in [&a, &b] {
        r.stop.cancel();
    }
    let _ = tokio::join!(a.task, b.task);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_term_cannot_write_after_another_replica_raised_the_epoch() {
    let Some(url) = common::postgres::url("stale_term") else {
        return;
    };
    let schema = common::postgres::schema("stale");
    let a = replica(&url, &schema, "stale-a", Duration::from_secs(60)).await;
    wait_for("a to lead", Duration::from_secs(5), || {
        a.leadership.is_leader()
    })
    .await;
    let run = a
        .store
        .begin_run(at(0), &RunStart::default())
        .await
        .unwrap();
    // Another process takes over the record behind a's back (as a new leader would after a's
    // session vanished without a's noticing yet): a's next write must fail, not commit.
    let raw = common::postgres::raw(&url).await;
    raw.execute(
        &format!("UPDATE \"{schema}\".leader SET epoch = epoch + 1"),
        &[],
    )
    .await
    .unwrap();
    let err = a
        .store
        .record_intent(
            run,
            at(1),
            &GroupName::new("g"),
            &OktaGroupId::new("1"),
            IntentOp::Put,
        )
        .await
        .expect_err("stale epoch");
    assert_eq!(err.kind(), "fenced", "{err}");
    assert!(
        err.to_string().contains("another replica took over"),
        "{err}"
    );
    assert!(!a.leadership.is_leader());
    let pending: i64 = raw
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".pending"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "nothing was written");
    a.stop.cancel();
    let _ = a.task.await;
}
