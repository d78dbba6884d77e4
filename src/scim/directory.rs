//! [`ScimDirectory`]: the SCIM record seen as a [`DirectorySource`] and a [`UserDirectory`],
//! so the unchanged engine (ownership check, breaker, PutGroup and confirmation, one commit
//! per group, metrics, `/status`) brings Q Business to the state the IdP pushed.
//!
//! SCIM users and groups are reported as Okta's would be: a group's `lastMembershipUpdated`
//! moves with its member list only and `lastUpdated` with its name (each change has a time of
//! its own, see [`crate::scim::record::next_time`]); a user with `active: false`, or deleted,
//! is a `DEPROVISIONED` member (their membership is kept, so reactivating brings them back);
//! a user's change (status, email, deletion) moves their `lastModified`, which the engine's
//! user step reads through [`DirectorySource::list_users_updated_since`].

use chrono::{DateTime, Utc};

use crate::source::{
    DirectorySource, GroupType, MemberRead, OktaGroup, OktaMember, OktaUser, SourceError,
    UserDirectory, UserLookup,
};

use super::record::{DirectoryUser, GroupHead, RecordError, ScimRecord};

/// Where a SCIM user's Q Business user id comes from (`scim.user_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserIdSource {
    /// The primary email (`emails[primary eq true]`), else the first email, else `userName`.
    #[default]
    Email,
    /// `userName`.
    UserName,
}

/// The status a SCIM user reports as, in Okta's words (`users.statuses` decides who counts).
pub const ACTIVE: &str = "ACTIVE";
/// A user with `active: false`, or deleted.
pub const DEPROVISIONED: &str = "DEPROVISIONED";

/// The SCIM record as the engine's directory.
#[derive(Debug, Clone)]
pub struct ScimDirectory<R> {
    record: R,
    user_id: UserIdSource,
}

impl<R: ScimRecord> ScimDirectory<R> {
    pub fn new(record: R, user_id: UserIdSource) -> ScimDirectory<R> {
        ScimDirectory { record, user_id }
    }

    /// The record read.
    pub fn record(&self) -> &R {
        &self.record
    }

    /// Where Q user ids come from.
    pub fn user_id(&self) -> UserIdSource {
        self.user_id
    }

    /// The raw Q user id of a user (trimmed; the engine's mapper normalises it), if any.
    pub fn attribute(&self, u: &DirectoryUser) -> Option<String> {
        let user_name = || Some(u.user_name.trim()).filter(|s| !s.is_empty());
        let raw = match self.user_id {
            UserIdSource::Email => u
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .or_else(user_name),
            UserIdSource::UserName => user_name(),
        };
        raw.map(str::to_owned)
    }

    fn member(&self, u: &DirectoryUser) -> OktaMember {
        OktaMember {
            id: u.id.clone(),
            status: status(u).to_owned(),
            attribute: self.attribute(u),
        }
    }
}

fn status(u: &DirectoryUser) -> &'static str {
    if u.active && !u.deleted {
        ACTIVE
    } else {
        DEPROVISIONED
    }
}

fn group(h: GroupHead) -> OktaGroup {
    OktaGroup {
        id: h.id,
        name: h.display_name,
        kind: GroupType::Okta,
        last_membership_updated: Some(h.members_updated),
        last_updated: Some(h.last_updated),
    }
}

/// A failed read of the record, as the engine's directory error: not fatal (the group stays
/// unread, the pass goes on), retried by the next pass. The cause is logged here.
fn source_error(what: &'static str, e: RecordError) -> SourceError {
    tracing::warn!(read = what, error = %crate::error::error_chain(&e), "reading the SCIM record failed");
    SourceError::Record {
        what: what.to_owned(),
    }
}

impl<R: ScimRecord> DirectorySource for ScimDirectory<R> {
    async fn list_groups(&self) -> Result<Vec<OktaGroup>, SourceError> {
        let heads = self
            .record
            .directory_groups()
            .await
            .map_err(|e| source_error("groups", e))?;
        Ok(heads.into_iter().map(group).collect())
    }

    async fn list_members(&self, group_id: &str) -> Result<MemberRead, SourceError> {
        let members = self
            .record
            .directory_members(group_id)
            .await
            .map_err(|e| source_error("members", e))?;
        Ok(match members {
            None => MemberRead::GroupGone,
            Some(users) => MemberRead::Members(users.iter().map(|u| self.member(u)).collect()),
        })
    }

    async fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaMember>, SourceError> {
        let users = self
            .record
            .users_modified_since(since)
            .await
            .map_err(|e| source_error("users", e))?;
        Ok(users.iter().map(|u| self.member(u)).collect())
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<String>, SourceError> {
        let groups = self
            .record
            .groups_of_user(user_id)
            .await
            .map_err(|e| source_error("a user's groups", e))?;
        Ok(groups.into_iter().map(|g| g.id).collect())
    }
}

impl<R: ScimRecord> UserDirectory for ScimDirectory<R> {
    /// The user whose id is `key`; else the live user whose `userName` or primary email is
    /// `key` (case-insensitively), several being ambiguous; else a deleted one.
    async fn find_user(&self, key: &str) -> Result<UserLookup, SourceError> {
        let found = self
            .record
            .find_users(key)
            .await
            .map_err(|e| source_error("a user", e))?;
        let pick = found
            .iter()
            .find(|u| u.id == key)
            .map(|u| vec![u])
            .unwrap_or_else(|| {
                let live: Vec<&DirectoryUser> = found.iter().filter(|u| !u.deleted).collect();
                if live.is_empty() {
                    found.iter().collect()
                } else {
                    live
                }
            });
        Ok(match pick.as_slice() {
            [] => UserLookup::NotFound,
            [u] => UserLookup::Found(OktaUser {
                id: u.id.clone(),
                status: status(u).to_owned(),
                login: Some(u.user_name.clone()),
                email: u.email.clone(),
                attribute: self.attribute(u),
            }),
            many => UserLookup::Ambiguous(many.iter().map(|u| u.id.clone()).collect()),
        })
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroup>, SourceError> {
        let groups = self
            .record
            .groups_of_user(user_id)
            .await
            .map_err(|e| source_error("a user's groups", e))?;
        Ok(groups.into_iter().map(group).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use chrono::TimeDelta;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::clock::Clock;
    use crate::engine::{Engine, EngineSettings, NoProgress, Verify};
    use crate::fakes::{FixedClock, MemStore, RecordingSink};
    use crate::model::GroupName;
    use crate::plan::safety::SafetyPolicy;
    use crate::plan::{Policy, Rules};
    use crate::report::{Mode, Outcome, PassRequest, RunReport, Trigger};
    use crate::scim::MemScim;
    use crate::scim::protocol::{GroupAttrs, MemberChange, ResourceKind, UserAttrs, parse_patch};
    use crate::scim::record::{GroupAttrsUpdate, GroupUpdate, UserUpdate};

    /// A clock the test moves.
    struct StepClock(Mutex<DateTime<Utc>>);

    impl StepClock {
        fn advance(&self, secs: i64) -> DateTime<Utc> {
            let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
            *t += TimeDelta::seconds(secs);
            *t
        }
    }

    impl Clock for StepClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    type ScimEngine = Engine<ScimDirectory<Arc<MemScim>>, Arc<RecordingSink>, MemStore>;

    struct World {
        engine: ScimEngine,
        /// Q Business as the engine writes it.
        sink: Arc<RecordingSink>,
        /// The directory the engine reads, for the tests that read it directly.
        dir: ScimDirectory<Arc<MemScim>>,
        record: Arc<MemScim>,
        clock: Arc<StepClock>,
    }

    fn settings(safety: SafetyPolicy) -> EngineSettings {
        EngineSettings {
            rules: Rules::new(&["*".into()], &[], "", &[ACTIVE.into()], true).expect("rules"),
            policy: Policy::default(),
            read_concurrency: 3,
            write_concurrency: 2,
            safety,
            full_every: std::time::Duration::from_secs(24 * 3600),
            // SCIM times are exact and distinct per change: no overlap is needed.
            overlap: TimeDelta::zero(),
            take_over: Default::default(),
            verify: Verify {
                first_poll: std::time::Duration::from_millis(1),
                ..Verify::default()
            },
        }
    }

    fn world(user_id: UserIdSource, safety: SafetyPolicy) -> World {
        let record = Arc::new(MemScim::new());
        let clock = Arc::new(StepClock(Mutex::new(FixedClock.now())));
        let sink = Arc::new(RecordingSink::default());
        let engine = Engine::new(
            ScimDirectory::new(Arc::clone(&record), user_id),
            Arc::clone(&sink),
            MemStore::default(),
            settings(safety),
            Arc::clone(&clock) as Arc<dyn Clock>,
        );
        World {
            engine,
            sink,
            dir: ScimDirectory::new(Arc::clone(&record), user_id),
            record,
            clock,
        }
    }

    impl World {
        /// The time of the next IdP write (a second later).
        fn now(&self) -> DateTime<Utc> {
            self.clock.advance(1)
        }

        async fn user(&self, id: &str, user_name: &str, email: Option<&str>) {
            let mut body = json!({"userName": user_name, "active": true});
            if let Some(e) = email {
                body["emails"] = json!([{"value": e, "type": "work", "primary": true}]);
            }
            let attrs = UserAttrs::from_body(&body).expect("user");
            self.record
                .create_user(self.now(), id, attrs)
                .await
                .expect("create user");
        }

        async fn group(&self, id: &str, name: &str, members: &[&str]) {
            let attrs = GroupAttrs::from_body(&json!({"displayName": name}))
                .expect("group")
                .0;
            let members: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
            self.record
                .create_group(self.now(), id, attrs, members)
                .await
                .expect("create group");
        }

        async fn patch_user(&self, id: &str, ops: serde_json::Value) {
            let ops = parse_patch(&json!({"Operations": ops}), ResourceKind::User).expect("ops");
            self.record
                .update_user(self.now(), id, UserUpdate::Patch(ops))
                .await
                .expect("patch user");
        }

        async fn patch_group(&self, id: &str, ops: serde_json::Value) {
            let ops = parse_patch(&json!({"Operations": ops}), ResourceKind::Group).expect("ops");
            let patch = crate::scim::protocol::GroupPatch::split(ops).expect("split");
            let update = GroupUpdate {
                attrs: GroupAttrsUpdate::Patch(patch.ops),
                members: patch.members,
            };
            self.record
                .update_group(self.now(), id, update, false)
                .await
                .expect("patch group");
        }

        async fn pass(&self) -> RunReport {
            self.clock.advance(1);
            self.engine
                .run_once(
                    &PassRequest::cli(Mode::Apply),
                    &NoProgress,
                    &CancellationToken::new(),
                )
                .await
        }

        fn q(&self, group: &str) -> Option<Vec<String>> {
            self.sink.members(group)
        }
    }

    #[tokio::test]
    async fn pushed_users_and_groups_reach_q_business() {
        let w = world(UserIdSource::Email, SafetyPolicy::off());
        w.user("u-ana", "ana", Some("Ana@X.test")).await;
        w.user("u-bo", "bo@x.test", None).await;
        w.user("u-cy", "cy", Some("cy@x.test")).await;
        w.group("g-eng", "Engineering", &["u-ana", "u-bo"]).await;
        w.group("g-ops", "Ops", &["u-cy"]).await;
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        // The primary email, normalised by the engine; else the userName.
        assert_eq!(
            w.q("Engineering"),
            Some(vec!["ana@x.test".into(), "bo@x.test".into()])
        );
        assert_eq!(w.q("Ops"), Some(vec!["cy@x.test".into()]));
        w.sink.take_calls();

        // Nothing changed: nothing read again, nothing written.
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(r.groups_read, 0, "incremental: {r:?}");
        assert!(w.sink.take_calls().is_empty());

        // Deactivated (Entra's string boolean): gone from Q; only their group is written.
        w.patch_user(
            "u-bo",
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(w.q("Engineering"), Some(vec!["ana@x.test".into()]));
        assert_eq!(
            w.sink.take_calls(),
            [("PutGroup".to_owned(), GroupName::new("Engineering"))]
        );

        // Reactivated (Okta's path-less form): back.
        w.patch_user(
            "u-bo",
            json!([{"op": "replace", "value": {"active": true}}]),
        )
        .await;
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(
            w.q("Engineering"),
            Some(vec!["ana@x.test".into(), "bo@x.test".into()])
        );
        w.sink.take_calls();

        // A new email: the user is renamed in their groups.
        w.patch_user(
            "u-ana",
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ana.lima@x.test"}]),
        )
        .await;
        w.pass().await;
        assert_eq!(
            w.q("Engineering"),
            Some(vec!["ana.lima@x.test".into(), "bo@x.test".into()])
        );

        // Members added and removed (Okta's forms): one put per group.
        w.sink.take_calls();
        w.patch_group(
            "g-ops",
            json!([{"op": "add", "path": "members", "value": [{"value": "u-ana"}]}]),
        )
        .await;
        w.patch_group(
            "g-eng",
            json!([{"op": "remove", "path": "members[value eq \"u-bo\"]"}]),
        )
        .await;
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(
            w.q("Ops"),
            Some(vec!["ana.lima@x.test".into(), "cy@x.test".into()])
        );
        assert_eq!(w.q("Engineering"), Some(vec!["ana.lima@x.test".into()]));
        assert_eq!(w.sink.take_calls().len(), 2);

        // A deleted user leaves every group.
        w.record.remove_user(w.now(), "u-cy").await.expect("delete");
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(w.q("Ops"), Some(vec!["ana.lima@x.test".into()]));
    }

    #[tokio::test]
    async fn a_renamed_group_is_renamed_in_q() {
        let w = world(UserIdSource::Email, SafetyPolicy::off());
        w.user("u-ana", "ana", Some("ana@x.test")).await;
        w.group("g-1", "Sales", &["u-ana"]).await;
        w.pass().await;
        w.sink.take_calls();
        w.patch_group(
            "g-1",
            json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Sales EMEA"}}]),
        )
        .await;
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(w.q("Sales EMEA"), Some(vec!["ana@x.test".into()]));
        assert_eq!(w.q("Sales"), None, "the old name is deleted");
        let calls = w.sink.take_calls();
        assert!(
            calls.contains(&("PutGroup".to_owned(), GroupName::new("Sales EMEA"))),
            "{calls:?}"
        );
        assert!(
            calls.contains(&("DeleteGroup".to_owned(), GroupName::new("Sales"))),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn user_names_as_q_ids() {
        let w = world(UserIdSource::UserName, SafetyPolicy::off());
        w.user("u-1", " Ana.Lima ", Some("ana@x.test")).await;
        w.group("g-1", "Eng", &["u-1"]).await;
        w.pass().await;
        // A userName that is not an email is sent as the IdP has it, trimmed only (ACLs may
        // compare it case-sensitively); only email ids are folded.
        assert_eq!(w.q("Eng"), Some(vec!["Ana.Lima".into()]));
    }

    #[tokio::test]
    async fn deleted_groups_go_through_the_breaker() {
        let w = world(UserIdSource::Email, SafetyPolicy::default());
        w.user("u-ana", "ana", Some("ana@x.test")).await;
        for g in 0..40 {
            w.group(&format!("g-{g:02}"), &format!("Group {g:02}"), &["u-ana"])
                .await;
        }
        assert_eq!(w.pass().await.outcome, Outcome::Success);
        w.sink.take_calls();
        // The IdP deletes most groups (an admin unassigning them from the app).
        for g in 0..30 {
            w.record
                .remove_group(w.now(), &format!("g-{g:02}"))
                .await
                .expect("delete");
        }
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Held, "{r:?}");
        assert!(
            w.sink.take_calls().is_empty(),
            "nothing deleted without approval"
        );
        let held = r.plan.held.expect("held");
        assert_eq!(held.deletes.len(), 30);
        let r = w
            .engine
            .run_once(
                &PassRequest::approve(&held.id, Trigger::Cli),
                &NoProgress,
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(w.q("Group 00"), None);
        assert_eq!(w.q("Group 35"), Some(vec!["ana@x.test".into()]));
        // A single deletion is under the limits: applied at once.
        w.sink.take_calls();
        w.record
            .remove_group(w.now(), "g-39")
            .await
            .expect("delete");
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(
            w.sink.take_calls(),
            [("DeleteGroup".to_owned(), GroupName::new("Group 39"))]
        );
    }

    #[tokio::test]
    async fn a_burst_of_member_patches_is_one_put() {
        let w = world(UserIdSource::Email, SafetyPolicy::off());
        let mut ids = Vec::new();
        for i in 0..300 {
            let id = format!("u-{i:03}");
            w.user(
                &id,
                &format!("user{i:03}"),
                Some(&format!("user{i:03}@x.test")),
            )
            .await;
            ids.push(id);
        }
        w.group("g-big", "Big", &[]).await;
        for batch in ids.chunks(100) {
            let value: Vec<serde_json::Value> =
                batch.iter().map(|id| json!({"value": id})).collect();
            w.patch_group(
                "g-big",
                json!([{"op": "Add", "path": "members", "value": value}]),
            )
            .await;
        }
        let r = w.pass().await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(w.q("Big").map(|m| m.len()), Some(300));
        assert_eq!(
            w.sink.take_calls(),
            [("PutGroup".to_owned(), GroupName::new("Big"))]
        );
    }

    #[tokio::test]
    async fn explain_finds_users_by_id_user_name_or_email() {
        let w = world(UserIdSource::Email, SafetyPolicy::off());
        w.user("u-ana", "ana", Some("Ana@X.test")).await;
        w.user("u-bo", "bo", Some("bo@x.test")).await;
        w.group("g-1", "Eng", &["u-ana", "u-bo"]).await;
        w.patch_user(
            "u-bo",
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
        let dir = &w.dir;
        let found = |k: &'static str| async move { dir.find_user(k).await.expect("find") };
        let UserLookup::Found(ana) = found("ana@x.test").await else {
            panic!("ana by email");
        };
        assert_eq!((ana.id.as_str(), ana.status.as_str()), ("u-ana", ACTIVE));
        assert_eq!(ana.attribute.as_deref(), Some("Ana@X.test"));
        assert_eq!(ana.login.as_deref(), Some("ana"));
        let UserLookup::Found(bo) = found("BO").await else {
            panic!("bo by userName");
        };
        assert_eq!(bo.status, DEPROVISIONED);
        assert!(matches!(found("u-ana").await, UserLookup::Found(_)));
        assert_eq!(found("nobody").await, UserLookup::NotFound);
        let groups = dir.user_groups("u-bo").await.expect("groups");
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["Eng"]
        );
        // A user whose userName is another's email: ambiguous.
        w.user("u-x", "ana@x.test", None).await;
        assert_eq!(
            found("ana@x.test").await,
            UserLookup::Ambiguous(vec!["u-ana".into(), "u-x".into()])
        );
    }

    #[tokio::test]
    async fn groups_report_their_times_and_gone_groups() {
        let w = world(UserIdSource::Email, SafetyPolicy::off());
        w.user("u-1", "a", None).await;
        w.group("g-1", "Eng", &[]).await;
        let dir = &w.dir;
        let before = dir.list_groups().await.expect("groups")[0].clone();
        w.patch_group(
            "g-1",
            json!([{"op": "add", "path": "members", "value": [{"value": "u-1"}]}]),
        )
        .await;
        let after = dir.list_groups().await.expect("groups")[0].clone();
        assert!(after.last_membership_updated > before.last_membership_updated);
        assert_eq!(after.last_updated, before.last_updated);
        w.record
            .update_group(
                w.now(),
                "g-1",
                GroupUpdate {
                    attrs: GroupAttrsUpdate::Replace(
                        GroupAttrs::from_body(&json!({"displayName": "Eng2"}))
                            .expect("g")
                            .0,
                    ),
                    members: MemberChange::default(),
                },
                false,
            )
            .await
            .expect("rename");
        let renamed = dir.list_groups().await.expect("groups")[0].clone();
        assert_eq!(renamed.name, "Eng2");
        assert!(renamed.last_updated > after.last_updated);
        assert_eq!(
            renamed.last_membership_updated,
            after.last_membership_updated
        );
        assert_eq!(
            dir.list_members("g-nope").await.expect("read"),
            MemberRead::GroupGone
        );
    }
}
