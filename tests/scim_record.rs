//! The SCIM record's contract, run against the three records: in memory, SQLite (a temp file)
//! and PostgreSQL (a schema of its own on the test server; skipped without
//! `Q_GROUP_SYNC_TEST_POSTGRES_URL`, failing under `CI`), the last two through `Backend`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use q_group_sync::config::{PgTls, StateBackend, StateConfig};
use q_group_sync::leader::Leadership;
use q_group_sync::scim::protocol::{
    Filter, GroupAttrs, ListQuery, MemberChange, ResourceKind, ScimType, UserAttrs, parse_patch,
};
use q_group_sync::scim::{
    GroupAttrsUpdate, GroupUpdate, MemScim, RecordError, ScimRecord, UserUpdate,
};
use q_group_sync::store::postgres::PgSettings;
use q_group_sync::store::{Backend, PostgresStore, SqliteStore};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_795_000_000_000 + ms)
        .single()
        .unwrap()
}

fn user(name: &str) -> UserAttrs {
    UserAttrs::from_body(&json!({
        "userName": name,
        "externalId": format!("ext-{name}"),
        "name": {"givenName": "G", "familyName": "F"},
        "emails": [{"value": format!("{name}@x.test"), "type": "work", "primary": true}],
        "active": true
    }))
    .unwrap()
}

fn group(name: &str) -> GroupAttrs {
    GroupAttrs::from_body(&json!({"displayName": name}))
        .unwrap()
        .0
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn patch(kind: ResourceKind, ops: Value) -> Vec<q_group_sync::scim::protocol::Operation> {
    parse_patch(&json!({"Operations": ops}), kind).unwrap()
}

fn query(filter: Option<&str>, kind: ResourceKind, start: usize, count: usize) -> ListQuery {
    ListQuery {
        filter: filter.map(|f| Filter::parse(f, kind).unwrap()),
        start_index: start,
        count,
    }
}

fn add(list: &[&str]) -> GroupUpdate {
    GroupUpdate {
        attrs: GroupAttrsUpdate::Keep,
        members: MemberChange::Delta {
            add: ids(list),
            remove: BTreeSet::new(),
        },
    }
}

fn remove(list: &[&str]) -> GroupUpdate {
    GroupUpdate {
        attrs: GroupAttrsUpdate::Keep,
        members: MemberChange::Delta {
            add: BTreeSet::new(),
            remove: ids(list),
        },
    }
}

fn scim_type(e: &RecordError) -> (u16, Option<ScimType>) {
    let s = e.to_scim();
    (s.status, s.scim_type)
}

// ---- subjects ------------------------------------------------------------------------------

/// One record under test, and what reopening it needs.
enum Subject {
    Mem,
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        schema: String,
        shutdown: CancellationToken,
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
        })
    }

    /// Opens the store (again); `None` for the in-memory record, which cannot be reopened.
    async fn open(&self) -> Option<Backend> {
        match self {
            Subject::Mem => None,
            Subject::Sqlite { dir } => Some(Backend::Sqlite(
                SqliteStore::open(&dir.path().join("s.db")).unwrap(),
            )),
            Subject::Postgres {
                url,
                schema,
                shutdown,
            } => {
                let settings = PgSettings::from_config(&StateConfig {
                    backend: StateBackend::Postgres,
                    url: Some(SecretString::from(url.clone())),
                    tls: PgTls::Disable,
                    schema: schema.clone(),
                    leader_takeover: Duration::from_secs(5),
                    replica: Some("scim-contract".into()),
                    ..StateConfig::default()
                })
                .unwrap();
                // Not the leader: SCIM writes are not fenced.
                let leadership = Leadership::elected("postgres", "scim-contract".into(), shutdown);
                Some(Backend::Postgres(
                    PostgresStore::open(&settings, leadership).await.unwrap(),
                ))
            }
        }
    }
}

/// Runs `scenario` against the subject's record.
async fn run<F, Fut>(s: Subject, scenario: F)
where
    F: Fn(Box<dyn Fn() -> Record + Send + Sync>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match s.open().await {
        None => {
            let mem = std::sync::Arc::new(MemScim::new());
            scenario(Box::new(move || Record::Mem(mem.clone()))).await
        }
        Some(backend) => scenario(Box::new(move || Record::Backend(backend.clone()))).await,
    }
}

/// The record a scenario drives.
#[derive(Clone)]
enum Record {
    Mem(std::sync::Arc<MemScim>),
    Backend(Backend),
}

macro_rules! each {
    ($self:ident, $r:ident => $call:expr) => {
        match $self {
            Record::Mem($r) => $call.await,
            Record::Backend($r) => $call.await,
        }
    };
}

impl ScimRecord for Record {
    async fn create_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: UserAttrs,
    ) -> Result<q_group_sync::scim::Written<q_group_sync::scim::protocol::ScimUser>, RecordError>
    {
        each!(self, r => r.create_user(at, id, attrs))
    }
    async fn get_user(
        &self,
        id: &str,
    ) -> Result<Option<q_group_sync::scim::protocol::ScimUser>, RecordError> {
        each!(self, r => r.get_user(id))
    }
    async fn update_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: UserUpdate,
    ) -> Result<q_group_sync::scim::Written<q_group_sync::scim::protocol::ScimUser>, RecordError>
    {
        each!(self, r => r.update_user(at, id, update))
    }
    async fn remove_user(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> Result<q_group_sync::scim::Written<()>, RecordError> {
        each!(self, r => r.remove_user(at, id))
    }
    async fn query_users(
        &self,
        query: &ListQuery,
    ) -> Result<
        q_group_sync::scim::protocol::Page<q_group_sync::scim::protocol::ScimUser>,
        RecordError,
    > {
        each!(self, r => r.query_users(query))
    }
    async fn create_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        attrs: GroupAttrs,
        members: BTreeSet<String>,
    ) -> Result<q_group_sync::scim::Written<q_group_sync::scim::protocol::ScimGroup>, RecordError>
    {
        each!(self, r => r.create_group(at, id, attrs, members))
    }
    async fn get_group(
        &self,
        id: &str,
        members: bool,
    ) -> Result<Option<q_group_sync::scim::protocol::ScimGroup>, RecordError> {
        each!(self, r => r.get_group(id, members))
    }
    async fn update_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
        update: GroupUpdate,
        members: bool,
    ) -> Result<q_group_sync::scim::Written<q_group_sync::scim::protocol::ScimGroup>, RecordError>
    {
        each!(self, r => r.update_group(at, id, update, members))
    }
    async fn remove_group(
        &self,
        at: DateTime<Utc>,
        id: &str,
    ) -> Result<q_group_sync::scim::Written<()>, RecordError> {
        each!(self, r => r.remove_group(at, id))
    }
    async fn query_groups(
        &self,
        query: &ListQuery,
        members: bool,
    ) -> Result<
        q_group_sync::scim::protocol::Page<q_group_sync::scim::protocol::ScimGroup>,
        RecordError,
    > {
        each!(self, r => r.query_groups(query, members))
    }
    async fn directory_groups(&self) -> Result<Vec<q_group_sync::scim::GroupHead>, RecordError> {
        each!(self, r => r.directory_groups())
    }
    async fn directory_members(
        &self,
        group_id: &str,
    ) -> Result<Option<Vec<q_group_sync::scim::DirectoryUser>>, RecordError> {
        each!(self, r => r.directory_members(group_id))
    }
    async fn users_modified_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<q_group_sync::scim::DirectoryUser>, RecordError> {
        each!(self, r => r.users_modified_since(since))
    }
    async fn groups_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<q_group_sync::scim::GroupHead>, RecordError> {
        each!(self, r => r.groups_of_user(user_id))
    }
    async fn find_users(
        &self,
        key: &str,
    ) -> Result<Vec<q_group_sync::scim::DirectoryUser>, RecordError> {
        each!(self, r => r.find_users(key))
    }
    async fn change_seq(&self) -> Result<u64, RecordError> {
        each!(self, r => r.change_seq())
    }
}

// ---- scenarios -----------------------------------------------------------------------------

/// Users: create, the case-insensitive uniqueness of userName, PATCH and PUT, no-op writes,
/// delete with a tombstone that frees the userName.
async fn users_are_created_changed_and_deleted(s: Subject) {
    run(s, |open| async move {
        let r = open();
        assert_eq!(r.change_seq().await.unwrap(), 0);
        let w = r.create_user(at(0), "u-ana", user("Ana")).await.unwrap();
        assert_eq!(w.seq, Some(1));
        assert_eq!(w.value.meta.created, at(0));
        assert_eq!(w.value.meta.version, 1);
        let e = r
            .create_user(at(1), "u-other", user("ANA "))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (409, Some(ScimType::Uniqueness)));
        let e = r
            .create_user(at(1), "u-ana", user("someone"))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e).0, 409);
        assert_eq!(
            r.change_seq().await.unwrap(),
            1,
            "refused writes bump nothing"
        );

        let got = r.get_user("u-ana").await.unwrap().unwrap();
        assert_eq!(got.attrs.user_name(), "Ana");
        assert_eq!(got.attrs.json()["name"]["givenName"], "G");

        // PATCH: deactivate. The time moves, the sequence too.
        let ops = patch(
            ResourceKind::User,
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        );
        let w = r
            .update_user(at(5), "u-ana", UserUpdate::Patch(ops.clone()))
            .await
            .unwrap();
        assert_eq!(w.seq, Some(2));
        assert!(!w.value.attrs.active());
        assert_eq!(w.value.meta.last_modified, at(5));
        // The same again changes nothing: no sequence, no time.
        let w = r
            .update_user(at(9), "u-ana", UserUpdate::Patch(ops))
            .await
            .unwrap();
        assert_eq!(w.seq, None);
        assert_eq!(w.value.meta.last_modified, at(5));
        assert_eq!(r.change_seq().await.unwrap(), 2);
        // A change in the same millisecond still gets a later time.
        let ops = patch(
            ResourceKind::User,
            json!([{"op": "replace", "value": {"active": true}}]),
        );
        let w = r
            .update_user(at(5), "u-ana", UserUpdate::Patch(ops))
            .await
            .unwrap();
        assert_eq!(w.value.meta.last_modified, at(6));

        // PUT to a userName taken by another live user: 409, nothing changes.
        r.create_user(at(10), "u-bo", user("bo")).await.unwrap();
        let e = r
            .update_user(at(11), "u-ana", UserUpdate::Replace(user("BO")))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (409, Some(ScimType::Uniqueness)));
        assert_eq!(
            r.get_user("u-ana")
                .await
                .unwrap()
                .unwrap()
                .attrs
                .user_name(),
            "Ana"
        );
        // A PATCH that does not apply: the request's own error, nothing changes.
        let ops = patch(
            ResourceKind::User,
            json!([{"op": "remove", "path": "userName"}]),
        );
        let e = r
            .update_user(at(11), "u-ana", UserUpdate::Patch(ops))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (400, Some(ScimType::InvalidValue)));
        let seq = r.change_seq().await.unwrap();
        // PUT replaces: attributes not sent are gone.
        let put = UserAttrs::from_body(&json!({"userName": "ana", "active": true})).unwrap();
        let w = r
            .update_user(at(12), "u-ana", UserUpdate::Replace(put))
            .await
            .unwrap();
        assert_eq!(w.seq, Some(seq + 1));
        assert!(w.value.attrs.json().get("name").is_none());
        assert_eq!(w.value.attrs.user_name(), "ana");

        // Delete: 404 afterwards, a second delete is 404 too, and the userName is free.
        r.remove_user(at(20), "u-bo").await.unwrap();
        assert!(r.get_user("u-bo").await.unwrap().is_none());
        let e = r.remove_user(at(21), "u-bo").await.unwrap_err();
        assert_eq!(scim_type(&e).0, 404);
        let e = r
            .update_user(at(21), "u-bo", UserUpdate::Replace(user("bo")))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e).0, 404);
        r.create_user(at(22), "u-bo2", user("Bo")).await.unwrap();
        let e = r
            .create_user(at(23), "u-bo", user("zed"))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e).0, 409, "a tombstone keeps its id");
    })
    .await
}

/// Listing: paging in id order, count 0, indexed and scanned filters, tombstones left out.
async fn users_are_listed_filtered_and_paged(s: Subject) {
    run(s, |open| async move {
        let r = open();
        for i in 0..25 {
            r.create_user(at(i), &format!("u-{i:02}"), user(&format!("User{i:02}")))
                .await
                .unwrap();
        }
        r.remove_user(at(30), "u-24").await.unwrap();
        let p = r
            .query_users(&query(None, ResourceKind::User, 11, 10))
            .await
            .unwrap();
        assert_eq!(p.total, 24);
        let got: Vec<&str> = p.items.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            got,
            (10..20).map(|i| format!("u-{i:02}")).collect::<Vec<_>>()
        );
        let p = r
            .query_users(&query(None, ResourceKind::User, 20, 10))
            .await
            .unwrap();
        assert_eq!((p.total, p.items.len()), (24, 5));
        let p = r
            .query_users(&query(None, ResourceKind::User, 1, 0))
            .await
            .unwrap();
        assert_eq!((p.total, p.items.len()), (24, 0));

        let one = |f: &str| query(Some(f), ResourceKind::User, 1, 100);
        let p = r
            .query_users(&one(r#"userName eq "user07""#))
            .await
            .unwrap();
        assert_eq!(
            p.items.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["u-07"]
        );
        let p = r
            .query_users(&one(r#"externalId eq "ext-User08""#))
            .await
            .unwrap();
        assert_eq!(p.total, 1);
        assert_eq!(
            r.query_users(&one(r#"externalId eq "ext-user08""#))
                .await
                .unwrap()
                .total,
            0
        );
        let p = r
            .query_users(&one(r#"id eq "u-03" and active eq true"#))
            .await
            .unwrap();
        assert_eq!(p.total, 1);
        assert_eq!(
            r.query_users(&one(r#"userName eq "User24""#))
                .await
                .unwrap()
                .total,
            0,
            "deleted"
        );
        assert_eq!(
            r.query_users(&one(r#"userName eq "nobody""#))
                .await
                .unwrap()
                .total,
            0
        );
        let p = r
            .query_users(&one(r#"emails[type eq "work"].value sw "user1""#))
            .await
            .unwrap();
        assert_eq!(p.total, 10);
        let p = r
            .query_users(&query(
                Some(r#"userName sw "USER1""#),
                ResourceKind::User,
                3,
                4,
            ))
            .await
            .unwrap();
        assert_eq!(p.total, 10);
        assert_eq!(
            p.items.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["u-12", "u-13", "u-14", "u-15"]
        );
    })
    .await
}

/// Groups: members must be live users, displayName is unique, changes touch the right times,
/// a refused write changes nothing.
async fn groups_keep_members_and_names(s: Subject) {
    run(s, |open| async move {
        let r = open();
        for u in ["a", "b", "c", "d"] {
            r.create_user(at(0), &format!("u-{u}"), user(u))
                .await
                .unwrap();
        }
        let seq = r.change_seq().await.unwrap();
        let e = r
            .create_group(at(1), "g-1", group("Eng"), ids(&["u-a", "u-zz"]))
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (400, Some(ScimType::InvalidValue)));
        assert!(e.to_scim().detail.contains("u-zz"), "{e}");
        assert!(
            r.get_group("g-1", true).await.unwrap().is_none(),
            "nothing stored"
        );
        assert_eq!(r.change_seq().await.unwrap(), seq);

        let w = r
            .create_group(at(2), "g-1", group("Eng"), ids(&["u-a", "u-b"]))
            .await
            .unwrap();
        assert_eq!(w.value.members, Some(ids(&["u-a", "u-b"])));
        let e = r
            .create_group(at(3), "g-2", group(" eng"), BTreeSet::new())
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (409, Some(ScimType::Uniqueness)));
        r.create_group(at(3), "g-2", group("Sales"), BTreeSet::new())
            .await
            .unwrap();

        let head = |r: Record| async move {
            r.directory_groups()
                .await
                .unwrap()
                .into_iter()
                .find(|g| g.id == "g-1")
                .unwrap()
        };
        let before = head(r.clone()).await;
        assert_eq!(
            (before.last_updated, before.members_updated),
            (at(2), at(2))
        );

        // Members change: only members_updated moves.
        let w = r
            .update_group(at(10), "g-1", add(&["u-c"]), true)
            .await
            .unwrap();
        assert!(w.seq.is_some());
        assert_eq!(w.value.members, Some(ids(&["u-a", "u-b", "u-c"])));
        let h = head(r.clone()).await;
        assert_eq!((h.last_updated, h.members_updated), (at(2), at(10)));
        // Adding a member already there, removing one who is not: no change at all.
        let w = r
            .update_group(at(11), "g-1", add(&["u-a"]), false)
            .await
            .unwrap();
        assert_eq!(w.seq, None);
        assert_eq!(w.value.members, None, "not read when not asked");
        assert_eq!(
            r.update_group(at(11), "g-1", remove(&["u-d"]), false)
                .await
                .unwrap()
                .seq,
            None
        );
        // Two changes in the same millisecond: two distinct times.
        r.update_group(at(12), "g-1", remove(&["u-c"]), false)
            .await
            .unwrap();
        r.update_group(at(12), "g-1", add(&["u-c"]), false)
            .await
            .unwrap();
        let h = head(r.clone()).await;
        assert_eq!(h.members_updated, at(13));

        // Rename: only last_updated moves.
        let rename = GroupUpdate {
            attrs: GroupAttrsUpdate::Patch(patch(
                ResourceKind::Group,
                json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Engineering"}}]),
            )),
            members: MemberChange::default(),
        };
        let w = r.update_group(at(20), "g-1", rename, false).await.unwrap();
        assert_eq!(w.value.attrs.display_name(), "Engineering");
        let h = head(r.clone()).await;
        assert_eq!(
            (h.display_name.as_str(), h.last_updated, h.members_updated),
            ("Engineering", at(20), at(13))
        );

        // Refused: a taken name, an unknown member, a bad PATCH; nothing changes.
        let seq = r.change_seq().await.unwrap();
        let taken = GroupUpdate {
            attrs: GroupAttrsUpdate::Replace(group("SALES")),
            members: MemberChange::Replace(ids(&["u-a"])),
        };
        let e = r
            .update_group(at(30), "g-1", taken, true)
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e).0, 409);
        let e = r
            .update_group(at(30), "g-1", add(&["u-d", "u-nobody"]), true)
            .await
            .unwrap_err();
        assert_eq!(scim_type(&e), (400, Some(ScimType::InvalidValue)));
        let bad = GroupUpdate {
            attrs: GroupAttrsUpdate::Patch(patch(
                ResourceKind::Group,
                json!([{"op": "remove", "path": "displayName"}]),
            )),
            members: MemberChange::Replace(BTreeSet::new()),
        };
        let e = r.update_group(at(30), "g-1", bad, true).await.unwrap_err();
        assert_eq!(scim_type(&e).0, 400);
        assert_eq!(r.change_seq().await.unwrap(), seq);
        let g = r.get_group("g-1", true).await.unwrap().unwrap();
        assert_eq!(g.members, Some(ids(&["u-a", "u-b", "u-c"])));
        assert_eq!(g.attrs.display_name(), "Engineering");

        // PUT: name and members replaced at once.
        let put = GroupUpdate {
            attrs: GroupAttrsUpdate::Replace(group("Eng")),
            members: MemberChange::Replace(ids(&["u-c", "u-d"])),
        };
        let w = r.update_group(at(40), "g-1", put, true).await.unwrap();
        assert_eq!(w.value.members, Some(ids(&["u-c", "u-d"])));
        let h = head(r.clone()).await;
        assert_eq!((h.last_updated, h.members_updated), (at(40), at(40)));

        // Listing groups: by displayName (any case), without members, paged.
        let p = r
            .query_groups(
                &query(Some(r#"displayName eq "ENG""#), ResourceKind::Group, 1, 10),
                false,
            )
            .await
            .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].members, None);
        let p = r
            .query_groups(&query(None, ResourceKind::Group, 1, 10), true)
            .await
            .unwrap();
        assert_eq!(p.total, 2);
        assert_eq!(p.items[0].members, Some(ids(&["u-c", "u-d"])));
        let p = r
            .query_groups(
                &query(
                    Some(r#"members[value eq "u-d"]"#),
                    ResourceKind::Group,
                    1,
                    10,
                ),
                false,
            )
            .await
            .unwrap();
        assert_eq!((p.total, p.items[0].id.as_str()), (1, "g-1"));
        let p = r
            .query_groups(
                &query(Some(r#"displayName co "a""#), ResourceKind::Group, 1, 10),
                false,
            )
            .await
            .unwrap();
        assert_eq!(p.total, 1);

        // Delete: 404 afterwards; its memberships go with it.
        r.remove_group(at(50), "g-1").await.unwrap();
        assert!(r.get_group("g-1", true).await.unwrap().is_none());
        assert_eq!(
            scim_type(&r.remove_group(at(51), "g-1").await.unwrap_err()).0,
            404
        );
        assert_eq!(
            scim_type(
                &r.update_group(at(51), "g-1", add(&["u-a"]), false)
                    .await
                    .unwrap_err()
            )
            .0,
            404
        );
        assert!(r.groups_of_user("u-c").await.unwrap().is_empty());
        assert!(r.directory_members("g-1").await.unwrap().is_none());
    })
    .await
}

/// What the directory reads: deactivated and deleted members (flagged), the users changed
/// since a time, a user's groups after deletion, users by id, userName or email.
async fn the_directory_sees_every_member_and_change(s: Subject) {
    run(s, |open| async move {
        let r = open();
        for u in ["ana", "bo", "cy"] {
            r.create_user(at(0), &format!("u-{u}"), user(u))
                .await
                .unwrap();
        }
        r.create_group(at(1), "g-1", group("Eng"), ids(&["u-ana", "u-bo", "u-cy"]))
            .await
            .unwrap();
        r.create_group(at(1), "g-2", group("Ops"), ids(&["u-bo"]))
            .await
            .unwrap();
        let deactivate = patch(
            ResourceKind::User,
            json!([{"op": "replace", "value": {"active": false}}]),
        );
        r.update_user(at(10), "u-bo", UserUpdate::Patch(deactivate))
            .await
            .unwrap();
        r.remove_user(at(20), "u-cy").await.unwrap();

        let members = r.directory_members("g-1").await.unwrap().unwrap();
        let flags: Vec<(&str, bool, bool)> = members
            .iter()
            .map(|m| (m.id.as_str(), m.active, m.deleted))
            .collect();
        assert_eq!(
            flags,
            [
                ("u-ana", true, false),
                ("u-bo", false, false),
                ("u-cy", true, true)
            ]
        );
        assert_eq!(members[0].email.as_deref(), Some("ana@x.test"));
        assert_eq!(members[0].user_name, "ana");
        // The SCIM resource hides the deleted member; the directory does not.
        let g = r.get_group("g-1", true).await.unwrap().unwrap();
        assert_eq!(g.members, Some(ids(&["u-ana", "u-bo"])));
        assert!(r.directory_members("g-nope").await.unwrap().is_none());

        let since: Vec<String> = r
            .users_modified_since(at(10))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(since, ["u-bo", "u-cy"], "at or after, tombstones included");
        assert_eq!(r.users_modified_since(at(21)).await.unwrap().len(), 0);

        let of_bo: Vec<String> = r
            .groups_of_user("u-bo")
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(of_bo, ["g-1", "g-2"]);
        let of_cy = r.groups_of_user("u-cy").await.unwrap();
        assert_eq!(of_cy.len(), 1, "a deleted user's memberships are kept");
        assert_eq!(of_cy[0].display_name, "Eng");

        let found = |k: &'static str| {
            let r = r.clone();
            async move {
                r.find_users(k)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|u| u.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("u-ana").await, ["u-ana"]);
        assert_eq!(found("ANA").await, ["u-ana"]);
        assert_eq!(found("Bo@X.test").await, ["u-bo"]);
        assert_eq!(found("u-cy").await, ["u-cy"]);
        assert!(found("nobody").await.is_empty());
    })
    .await
}

/// A large group: 1,000 members added in batches of 100, then a few removed, each write
/// touching only the rows it names; the member list and sequence are exact.
async fn large_groups_change_by_the_members_named(s: Subject) {
    run(s, |open| async move {
        let r = open();
        for i in 0..1000 {
            r.create_user(at(0), &format!("u-{i:04}"), user(&format!("user{i:04}")))
                .await
                .unwrap();
        }
        r.create_group(at(1), "g-big", group("Big"), BTreeSet::new())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        for batch in 0..10 {
            let names: Vec<String> = (batch * 100..batch * 100 + 100)
                .map(|i| format!("u-{i:04}"))
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let w = r
                .update_group(at(2 + batch as i64), "g-big", add(&refs), false)
                .await
                .unwrap();
            assert!(w.seq.is_some());
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(20),
            "10 batches took {elapsed:?}"
        );
        r.update_group(at(20), "g-big", remove(&["u-0000", "u-0999"]), false)
            .await
            .unwrap();
        let members = r.directory_members("g-big").await.unwrap().unwrap();
        assert_eq!(members.len(), 998);
        assert_eq!(r.change_seq().await.unwrap(), 1000 + 1 + 10 + 1);
    })
    .await
}

/// What was acknowledged is there after a reopen, change sequence included.
async fn writes_survive_a_reopen(s: Subject) {
    let Some(first) = s.open().await else {
        return;
    };
    first.create_user(at(0), "u-1", user("ana")).await.unwrap();
    first
        .create_group(at(1), "g-1", group("Eng"), ids(&["u-1"]))
        .await
        .unwrap();
    let seq = first.change_seq().await.unwrap();
    drop(first);
    let again = s.open().await.unwrap();
    assert_eq!(again.change_seq().await.unwrap(), seq);
    assert_eq!(
        again
            .get_user("u-1")
            .await
            .unwrap()
            .unwrap()
            .attrs
            .user_name(),
        "ana"
    );
    let g = again.get_group("g-1", true).await.unwrap().unwrap();
    assert_eq!(g.members, Some(ids(&["u-1"])));
    assert_eq!(g.meta.created, at(1));
    let heads = again.directory_groups().await.unwrap();
    assert_eq!(heads[0].members_updated, at(1));
}

/// Two handles on one record (two replicas sharing PostgreSQL, two connections to one SQLite
/// file) writing at once: one user per userName, every member added, one sequence number per
/// committed write.
async fn concurrent_writes_from_two_handles_keep_every_rule(s: Subject) {
    let (a, b) = match (s.open().await, s.open().await) {
        (Some(a), Some(b)) => (Record::Backend(a), Record::Backend(b)),
        _ => {
            let mem = std::sync::Arc::new(MemScim::new());
            (Record::Mem(mem.clone()), Record::Mem(mem))
        }
    };
    for i in 0..10 {
        a.create_user(at(0), &format!("u-{i}"), user(&format!("user{i}")))
            .await
            .unwrap();
    }
    b.create_group(at(1), "g-1", group("Eng"), BTreeSet::new())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let r = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            r.create_user(at(2), &format!("dup-{i}"), user("Same"))
                .await
                .map(|_| ())
        }));
    }
    for i in 0..10 {
        let r = if i % 2 == 0 { b.clone() } else { a.clone() };
        tasks.push(tokio::spawn(async move {
            r.update_group(at(3), "g-1", add(&[&format!("u-{i}")]), false)
                .await
                .map(|_| ())
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(()) if i < 20 => created += 1,
            Ok(()) => {}
            Err(e) if i < 20 && scim_type(&e).0 == 409 => conflicts += 1,
            Err(e) => panic!("write {i} failed: {e}"),
        }
    }
    assert_eq!((created, conflicts), (1, 19));
    let members = a.directory_members("g-1").await.unwrap().unwrap();
    assert_eq!(members.len(), 10);
    assert_eq!(b.change_seq().await.unwrap(), 10 + 1 + 1 + 10);
    let heads = b.directory_groups().await.unwrap();
    assert!(
        heads[0].members_updated >= at(3) + chrono::TimeDelta::milliseconds(9),
        "each change has a time of its own"
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Subject::Mem).await;
                }
            )*
        }
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
    users_are_created_changed_and_deleted,
    users_are_listed_filtered_and_paged,
    groups_keep_members_and_names,
    the_directory_sees_every_member_and_change,
    large_groups_change_by_the_members_named,
    writes_survive_a_reopen,
    concurrent_writes_from_two_handles_keep_every_rule,
);
