use super::*;
use crate::model::Members;
use chrono::TimeZone;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0)
        .single()
        .expect("date")
}

fn members(ids: &[&str]) -> Members {
    ids.iter()
        .map(|i| crate::model::UserId::from_normalised(*i))
        .collect()
}

#[tokio::test]
async fn put_delete_and_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).expect("open");
    assert!(store.load().await.expect("load").groups.is_empty());
    let run = store
        .begin_run(at(), &RunStart::default())
        .await
        .expect("run");
    let (g, id) = (GroupName::new("Eng Team/α"), OktaGroupId::new("00g1"));
    let m = members(&["a@x.test", "b@x.test"]);
    let empty = Members::new();
    store
        .record_put(
            run,
            at(),
            &AppliedPut {
                group: &g,
                okta_id: &id,
                members: &m,
                added: &m,
                removed: &empty,
                read: None,
                layout: crate::plan::Layout::Inline,
                chunks_written: &[],
                chunks_stale: &[],
            },
        )
        .await
        .expect("put");
    let g2 = GroupName::new("empty");
    store
        .record_put(
            run,
            at(),
            &AppliedPut {
                group: &g2,
                okta_id: &id,
                members: &empty,
                added: &empty,
                removed: &empty,
                read: None,
                layout: crate::plan::Layout::Inline,
                chunks_written: &[],
                chunks_stale: &[],
            },
        )
        .await
        .expect("put");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    let snap = store.load().await.expect("load");
    assert_eq!(snap.groups[&g].members, m);
    assert_eq!(snap.groups[&g].pushed_at, at());
    assert!(snap.groups[&g2].members.is_empty());
    store
        .record_delete(run, at(), &g2, &id)
        .await
        .expect("delete");
    store
        .finish_run(
            run,
            at(),
            &RunRecord {
                outcome: "success".into(),
                ..RunRecord::default()
            },
        )
        .await
        .expect("finish");
    let snap = store.load().await.expect("load");
    assert_eq!(snap.groups.len(), 1);
    let conn = Connection::open(&path).expect("raw");
    let audits: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .expect("count");
    assert_eq!(audits, 3);
}

#[tokio::test]
async fn read_only_missing_file_is_empty_and_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("none.db");
    let store = SqliteStore::open_read_only(&path).expect("open");
    assert!(store.load().await.expect("load").groups.is_empty());
    assert!(store.begin_run(at(), &RunStart::default()).await.is_err());
    assert!(!path.exists());
}

#[tokio::test]
async fn garbage_file_is_an_error_not_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.db");
    std::fs::write(
        &path,
        b"this is not sqlite at all, just some bytes that are long enough........",
    )
    .expect("write");
    let err = SqliteStore::open(&path).err().expect("rejected");
    assert_eq!(err.kind(), "corrupt", "{err}");
    let err = SqliteStore::open_read_only(&path).err().expect("rejected");
    assert_eq!(err.kind(), "corrupt", "{err}");
}

#[tokio::test]
async fn foreign_database_and_newer_schema_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE t (x)")
        .expect("create");
    assert_eq!(
        SqliteStore::open(&foreign).err().expect("refused").kind(),
        "corrupt"
    );

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).expect("create"));
    Connection::open(&newer)
        .expect("open")
        .execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    let err = SqliteStore::open(&newer).err().expect("refused");
    assert_eq!(err.kind(), "too_new");
    assert!(err.to_string().contains("99"), "{err}");
}

#[tokio::test]
async fn tampered_members_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).expect("open");
    let run = store
        .begin_run(at(), &RunStart::default())
        .await
        .expect("run");
    let (g, id, m) = (
        GroupName::new("g"),
        OktaGroupId::new("00g1"),
        members(&["a@x.test"]),
    );
    store
        .record_put(
            run,
            at(),
            &AppliedPut {
                group: &g,
                okta_id: &id,
                members: &m,
                added: &m,
                removed: &m,
                read: None,
                layout: crate::plan::Layout::Inline,
                chunks_written: &[],
                chunks_stale: &[],
            },
        )
        .await
        .expect("put");
    drop(store);
    Connection::open(&path)
        .expect("raw")
        .execute("UPDATE groups SET members = 'mallory@x.test'", [])
        .expect("tamper");
    let err = SqliteStore::open(&path)
        .expect("opens")
        .load()
        .await
        .expect_err("detected");
    assert_eq!(err.kind(), "corrupt");
}
