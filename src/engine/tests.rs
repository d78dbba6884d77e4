use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::Clock;
use crate::config::VerifyMode;
use crate::fakes::{FixedClock, MemSource, MemStore, ReadFault, RecordingSink};
use crate::model::{GroupName, OktaGroupId};
use crate::plan::IssueKind;
use crate::plan::safety::SafetyPolicy;
use crate::plan::{Policy, Rules};
use crate::report::{Mode, Outcome, PassRequest, RunReport, Trigger, UserCheckHow};
use crate::sink::SinkErrorKind;
use crate::store::{HoldStatus, SnapshotStore};

fn settings() -> EngineSettings {
    EngineSettings {
        rules: Rules::new(
            &["*".into()],
            &["skip*".into()],
            "",
            &[
                "ACTIVE".into(),
                "PASSWORD_EXPIRED".into(),
                "LOCKED_OUT".into(),
                "RECOVERY".into(),
            ],
            true,
        )
        .expect("rules"),
        policy: Policy::default(),
        read_concurrency: 3,
        write_concurrency: 2,
        safety: SafetyPolicy::off(),
        full_every: std::time::Duration::from_secs(24 * 3600),
        overlap: chrono::TimeDelta::seconds(120),
        take_over: Default::default(),
        verify: Verify {
            first_poll: std::time::Duration::from_millis(1),
            ..Verify::default()
        },
    }
}

fn org() -> MemSource {
    MemSource::default()
        .active("ana")
        .active("bo")
        .active("cy")
        .user("dee", "DEPROVISIONED", Some("dee@x.test"))
        .group("g1", "Engineering", &["ana", "bo", "dee"])
        .group("g2", "Sales", &["cy"])
        .group("g3", "Empty", &[])
}

type TestEngine = Engine<MemSource, RecordingSink, MemStore>;

fn engine(source: MemSource) -> TestEngine {
    Engine::new(
        source,
        RecordingSink::default(),
        MemStore::default(),
        settings(),
        Arc::new(FixedClock),
    )
}

async fn sync(e: &TestEngine) -> RunReport {
    e.run_once(
        &PassRequest::cli(Mode::Apply),
        &NoProgress,
        &CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn first_run_then_no_op() {
    let e = engine(org());
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.puts_applied, 3);
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into(), "bo@x.test".into()])
    );
    assert_eq!(e.sink.members("Empty"), Some(vec![]));
    assert_eq!(e.store.names(), ["Empty", "Engineering", "Sales"]);
    e.sink.take_calls();

    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert!(
        e.sink.take_calls().is_empty(),
        "a no-change pass writes nothing"
    );
    assert_eq!(r.plan.unchanged, 3);
    let runs = e.store.runs.lock().expect("lock");
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[1].1.as_ref().map(|r| r.outcome.as_str()),
        Some("success")
    );
}

#[tokio::test]
async fn removed_member_and_vanished_group() {
    let e = engine(org());
    sync(&e).await;
    e.sink.take_calls();
    e.source.set_members("g1", &["ana"]);
    e.source.remove_group("g2");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let calls = e.sink.take_calls();
    assert_eq!(
        calls,
        [
            ("PutGroup".to_owned(), GroupName::new("Engineering")),
            ("DeleteGroup".to_owned(), GroupName::new("Sales"))
        ]
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into()])
    );
    assert_eq!(r.users_removed, 1);
    assert_eq!(e.store.names(), ["Empty", "Engineering"]);
}

#[tokio::test]
async fn plan_mode_writes_nothing() {
    let e = engine(org());
    let r = e
        .run_once(
            &PassRequest::cli(Mode::Plan),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.plan.puts().count(), 3);
    assert!(e.sink.take_calls().is_empty());
    assert!(e.store.names().is_empty());
    assert!(e.store.runs.lock().expect("lock").is_empty());
    assert_eq!(r.run_id, None);
}

#[tokio::test]
async fn failing_write_keeps_old_snapshot_entry_and_is_retried() {
    let e = engine(org());
    sync(&e).await;
    e.source.set_members("g1", &["ana", "cy"]);
    e.source.set_members("g2", &["cy", "bo"]);
    e.sink.fail("Engineering", SinkErrorKind::Throttled);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial);
    assert_eq!(r.puts_applied, 1);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].kind, "throttled");
    let snap = e.store.snapshot.lock().expect("lock").clone();
    assert_eq!(
        snap.groups[&GroupName::new("Engineering")].members.len(),
        2,
        "old entry kept"
    );
    e.sink.heal();
    e.sink.take_calls();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Engineering"))]
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into(), "cy@x.test".into()])
    );
}

#[tokio::test]
async fn unread_group_blocks_its_put_and_all_deletes() {
    let e = engine(org());
    sync(&e).await;
    e.sink.take_calls();
    e.source.fail("g1", ReadFault::Server);
    e.source.set_members("g1", &["ana", "bo", "dee"]); // moves lastMembershipUpdated: read again
    e.source.remove_group("g2");
    e.source.set_members("g3", &["bo"]);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial);
    assert_eq!(r.groups_unread, 1);
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Empty"))]
    );
    assert_eq!(r.plan.withheld_deletes.len(), 1);
    assert!(
        e.sink.members("Sales").is_some(),
        "nothing deleted while a group is unread"
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into(), "bo@x.test".into()])
    );

    e.source.heal();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        e.sink.take_calls(),
        [("DeleteGroup".to_owned(), GroupName::new("Sales"))]
    );
}

#[tokio::test]
async fn unauthorized_stops_the_pass_before_any_write() {
    let e = engine(org());
    e.source.fail("g1", ReadFault::Unauthorized);
    // The other reads are still under way when the first one is refused.
    let _g2 = e.source.hold("g2");
    let _g3 = e.source.hold("g3");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.error_kind, Some("okta"));
    assert!(e.sink.take_calls().is_empty());
}

#[tokio::test]
async fn listing_failure_fails_the_pass() {
    let e = engine(org());
    e.source.fail_listing(true);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.error.as_deref().unwrap_or_default().contains("503"),
        "{:?}",
        r.error
    );
    assert!(e.sink.take_calls().is_empty());
}

#[tokio::test]
async fn access_denied_stops_further_writes() {
    let e = engine(org());
    e.sink.fail("Empty", SinkErrorKind::AccessDenied);
    e.sink.fail("Engineering", SinkErrorKind::AccessDenied);
    e.sink.fail("Sales", SinkErrorKind::AccessDenied);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.error_kind, Some("qbusiness"));
    assert!(
        e.sink.take_calls().len() <= 2,
        "stops after the first fatal answer (2 in flight at most)"
    );
}

#[tokio::test]
async fn store_failure_after_write_stops_and_reports() {
    let e = engine(org());
    e.store.fail_writes();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.error_kind, Some("snapshot"));
    assert!(e.store.names().is_empty());
}

#[tokio::test]
async fn rename_puts_new_name_then_deletes_old() {
    let e = engine(org());
    sync(&e).await;
    e.sink.take_calls();
    e.source.rename_group("g2", "Sales EMEA");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [
            ("PutGroup".to_owned(), GroupName::new("Sales EMEA")),
            ("DeleteGroup".to_owned(), GroupName::new("Sales"))
        ]
    );
}

#[tokio::test]
async fn failed_rename_put_keeps_the_old_name() {
    let e = engine(org());
    sync(&e).await;
    e.sink.take_calls();
    e.source.rename_group("g2", "Sales EMEA");
    e.sink.fail("Sales EMEA", SinkErrorKind::Server);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial);
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Sales EMEA"))]
    );
    assert!(e.sink.members("Sales").is_some());
}

#[tokio::test]
async fn out_of_scope_group_is_deleted_and_foreign_groups_untouched() {
    let e = engine(org());
    e.sink.seed("Made by hand", &[]);
    sync(&e).await;
    e.sink.take_calls();
    e.source.rename_group("g3", "skip me");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [("DeleteGroup".to_owned(), GroupName::new("Empty"))]
    );
    assert!(e.sink.members("Made by hand").is_some());
}

#[tokio::test]
async fn cancelled_pass_applies_nothing_more() {
    let e = engine(org());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let r = e
        .run_once(&PassRequest::cli(Mode::Apply), &NoProgress, &cancel)
        .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(e.sink.take_calls().is_empty());
    assert!(e.store.names().is_empty());
}

fn one(mode: Mode, group: &str) -> PassRequest {
    PassRequest {
        mode,
        group: Some(group.into()),
        pass_id: Some("p1".into()),
        trigger: Trigger::Admin,
        approve: None,
        full: false,
        groups: Vec::new(),
    }
}

#[tokio::test]
async fn an_events_pass_syncs_the_changed_groups_only() {
    let e = engine(org());
    assert_eq!(sync(&e).await.outcome, Outcome::Success);
    e.source.set_members("g1", &["ana"]);
    e.source.set_members("g2", &["cy", "bo"]);
    e.sink.take_calls();
    let request = PassRequest {
        groups: vec!["g2".into(), "gone-and-never-known".into()],
        trigger: Trigger::Events,
        ..PassRequest::cli(Mode::Apply)
    };
    let r = e
        .run_once(&request, &NoProgress, &CancellationToken::new())
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let calls = e.sink.take_calls();
    assert!(
        calls.iter().all(|(_, g)| g.as_str() == "Sales"),
        "{calls:?}"
    );
    assert_eq!(
        e.sink.members("Sales"),
        Some(vec!["bo@x.test".into(), "cy@x.test".into()])
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into(), "bo@x.test".into()]),
        "not in the event: untouched"
    );
    // An events pass is not a full pass: the group-count rule and held plans stay as they are.
    assert!(r.group.as_deref().is_some_and(|g| g.contains("g2")));
}

#[tokio::test]
async fn single_group_pass_touches_only_that_group() {
    let e = engine(org());
    sync(&e).await;
    e.sink.take_calls();
    e.source.set_members("g1", &["ana"]);
    e.source.set_members("g2", &["cy", "bo"]);
    e.source.remove_group("g3");
    // By Okta name, by id, and by Q name all select the same group.
    for wanted in ["Engineering", "g1"] {
        let r = e
            .run_once(
                &one(Mode::Plan, wanted),
                &NoProgress,
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(r.plan.changes.len(), 1, "{wanted}: {r:?}");
        assert_eq!(r.plan.changes[0].group().as_str(), "Engineering");
    }
    let r = e
        .run_once(
            &one(Mode::Apply, "Engineering"),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.pass_id.as_deref(), Some("p1"));
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Engineering"))]
    );
    // A group gone from Okta, named by its Q name, is deleted; nothing else is.
    let r = e
        .run_once(
            &one(Mode::Apply, "Empty"),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        e.sink.take_calls(),
        [("DeleteGroup".to_owned(), GroupName::new("Empty"))]
    );
    assert!(e.sink.members("Sales").is_some());
}

#[tokio::test]
async fn single_group_pass_for_an_unknown_name_fails_cleanly() {
    let e = engine(org());
    let r = e
        .run_once(
            &one(Mode::Apply, "Nope"),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.error_kind, Some("unknown_group"));
    assert!(e.sink.take_calls().is_empty());
}

fn guarded(source: MemSource) -> TestEngine {
    let mut s = settings();
    s.safety = SafetyPolicy::default();
    Engine::new(
        source,
        RecordingSink::default(),
        MemStore::default(),
        s,
        Arc::new(FixedClock),
    )
}

fn big_org(groups: usize) -> MemSource {
    let mut o = MemSource::default().active("ana").active("bo");
    for g in 0..groups {
        o = o.group(&format!("g{g}"), &format!("Group {g:03}"), &["ana", "bo"]);
    }
    o
}

#[tokio::test]
async fn mass_deletion_is_held_then_approved_exactly() {
    let e = guarded(big_org(100));
    assert_eq!(sync(&e).await.outcome, Outcome::Success);
    e.sink.take_calls();
    for g in 0..30 {
        e.source.remove_group(&format!("g{g}"));
    }
    e.source.set_members("g50", &["ana"]);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    assert!(
        e.sink.take_calls().is_empty(),
        "nothing destructive applied"
    );
    let held = r.plan.held.clone().expect("held");
    assert_eq!(held.deletes.len(), 30);
    assert_eq!(held.removal_count(), 1);
    // The same situation again is the same held plan.
    let again = sync(&e).await;
    assert_eq!(
        again.plan.held.as_ref().map(|h| h.id.clone()),
        Some(held.id.clone())
    );

    let r = e
        .run_once(
            &PassRequest::approve(&held.id, Trigger::Cli),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let calls = e.sink.take_calls();
    assert_eq!(
        calls.iter().filter(|(op, _)| op == "DeleteGroup").count(),
        30
    );
    assert_eq!(calls.iter().filter(|(op, _)| op == "PutGroup").count(), 1);
    assert_eq!(e.sink.members("Group 050"), Some(vec!["ana@x.test".into()]));
    let stored = e.store.holds.lock().expect("lock")[0].clone();
    assert_eq!(stored.status, HoldStatus::Applied);
    // Approving again is refused.
    let r = e
        .run_once(
            &PassRequest::approve(&held.id, Trigger::Cli),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.error_kind, Some("approval"));
}

#[tokio::test]
async fn okta_empty_is_held_and_approval_after_recovery_deletes_nothing() {
    let e = guarded(big_org(100));
    sync(&e).await;
    e.sink.take_calls();
    let saved = e.source.take_groups();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Held);
    let id = r.plan.held.as_ref().expect("held").id.clone();
    assert!(e.sink.take_calls().is_empty());
    e.source.restore_groups(saved);
    let r = e
        .run_once(
            &PassRequest::approve(&id, Trigger::Cli),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        e.sink.take_calls().is_empty(),
        "Okta is back: nothing to delete"
    );
    assert_eq!(e.sink.groups.lock().expect("lock").len(), 100);
}

#[tokio::test]
async fn approval_is_refused_when_okta_asks_for_more() {
    let e = guarded(big_org(100));
    sync(&e).await;
    for g in 0..30 {
        e.source.remove_group(&format!("g{g}"));
    }
    let id = sync(&e).await.plan.held.expect("held").id;
    e.source.remove_group("g99");
    e.sink.take_calls();
    let r = e
        .run_once(
            &PassRequest::approve(&id, Trigger::Cli),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.error
            .as_deref()
            .unwrap_or_default()
            .contains("no longer agrees"),
        "{:?}",
        r.error
    );
    assert!(e.sink.take_calls().is_empty());
}

#[tokio::test]
async fn async_failure_is_not_recorded_and_is_retried() {
    let e = engine(org());
    e.sink.fail_async("Sales");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial);
    assert_eq!(r.failures[0].kind, "async_failed");
    assert_eq!(
        e.store.names(),
        ["Empty", "Engineering"],
        "FAILED is never recorded as applied"
    );
    e.sink.heal_async();
    e.sink.take_calls();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Sales"))]
    );
    assert_eq!(e.store.names(), ["Empty", "Engineering", "Sales"]);
}

#[tokio::test]
async fn an_unrecorded_write_is_redone_even_when_okta_changed_back() {
    let e = engine(org());
    sync(&e).await;
    // A crash after a put to Sales was sent but before it was recorded: the intent stays.
    e.store.leave_intent("Sales", "g2");
    e.sink.take_calls();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Sales"))],
        "written again though unchanged"
    );
    // A crash before a new group was recorded, and the group is gone from Okta by now: it is
    // still known to be ours and is deleted.
    e.store.leave_intent("Orphan", "g9");
    e.sink.seed("Orphan", &[]);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(
        e.sink.take_calls(),
        [("DeleteGroup".to_owned(), GroupName::new("Orphan"))]
    );
    assert!(e.store.pending.lock().expect("lock").is_empty());
}

fn reads(e: &TestEngine) -> usize {
    std::mem::take(&mut *e.source.member_reads.lock().expect("lock"))
}

#[tokio::test]
async fn incremental_reads_skip_groups_okta_reports_unchanged() {
    let e = engine(org());
    let r = sync(&e).await;
    assert_eq!(
        (r.groups_read, reads(&e)),
        (3, 3),
        "the first pass reads everything"
    );
    // The read marks: a second pass reads nothing and writes nothing.
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!((r.groups_read, reads(&e)), (0, 0));
    assert_eq!(r.plan.unchanged, 3);
    e.sink.take_calls();
    // One group changes in Okta (its lastMembershipUpdated moves): only it is read and put.
    e.source.set_members("g2", &["cy", "ana"]);
    let r = sync(&e).await;
    assert_eq!((r.groups_read, reads(&e)), (1, 1));
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Sales"))]
    );
    // A change Okta reports nowhere (neither lastMembershipUpdated nor the user's lastUpdated
    // moves): only the full read catches it.
    e.source
        .set_user_unreported("ana", "ACTIVE", Some("ana.new@x.test"));
    let r = sync(&e).await;
    assert_eq!(reads(&e), 0);
    assert!(r.plan.is_empty(), "not seen without a full read");
    let full = PassRequest {
        full: true,
        ..PassRequest::cli(Mode::Apply)
    };
    let r = e
        .run_once(&full, &NoProgress, &CancellationToken::new())
        .await;
    assert_eq!(reads(&e), 3);
    assert_eq!(r.puts_applied, 2, "Engineering and Sales have ana");
    assert_eq!(
        e.sink.members("Sales"),
        Some(vec!["ana.new@x.test".into(), "cy@x.test".into()])
    );
}

#[tokio::test]
async fn a_read_too_close_to_the_change_is_read_again() {
    let e = engine(org());
    // Okta says the membership changed a few seconds before this pass: the read might have
    // raced Okta's eventual consistency, so the next pass reads the group again.
    e.source
        .set_membership_updated("g1", FixedClock.now() - chrono::TimeDelta::seconds(5));
    sync(&e).await;
    reads(&e);
    let r = sync(&e).await;
    assert_eq!(r.groups_read, 1);
    assert_eq!(reads(&e), 1);
}

#[tokio::test]
async fn approval_needs_a_complete_read_and_keeps_the_plan_held() {
    let e = guarded(big_org(100));
    sync(&e).await;
    for g in 0..30 {
        e.source.remove_group(&format!("g{g}"));
    }
    let id = sync(&e).await.plan.held.expect("held").id;
    e.source.fail("g60", ReadFault::Server);
    e.source.set_members("g60", &["ana", "bo"]);
    e.sink.take_calls();
    let full = PassRequest {
        full: true,
        ..PassRequest::approve(&id, Trigger::Cli)
    };
    let r = e
        .run_once(&full, &NoProgress, &CancellationToken::new())
        .await;
    assert_eq!(r.error_kind, Some("approval"), "{r:?}");
    assert!(e.sink.take_calls().is_empty());
    assert_eq!(
        e.store.holds.lock().expect("lock")[0].status,
        HoldStatus::Held
    );
    e.source.heal();
    let r = e
        .run_once(
            &PassRequest::approve(&id, Trigger::Cli),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(e.sink.take_calls().len(), 30);
}

/// Group "Big" with `n` active users (`u0`..), on a limit of 10 users per PutGroup.
fn chunky(n: usize) -> TestEngine {
    chunky_with(n, SafetyPolicy::off())
}

fn chunky_with(n: usize, safety: SafetyPolicy) -> TestEngine {
    let mut source = MemSource::default();
    let mut ids = Vec::new();
    for i in 0..n {
        source = source.active(&format!("u{i}"));
        ids.push(format!("u{i}"));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut s = settings();
    s.policy.inline_member_limit = 10;
    s.safety = safety;
    Engine::new(
        source.group("gbig", "Big", &refs),
        RecordingSink::default(),
        MemStore::default(),
        s,
        Arc::new(FixedClock),
    )
}

#[tokio::test]
async fn a_chunk_that_fails_leaves_the_group_unconfirmed_and_the_next_pass_repairs_it() {
    let e = chunky(45);
    let want: BTreeSet<String> = (0..45).map(|i| format!("u{i}@x.test")).collect();
    // 45 users at 10 per group: chunks of at most 7 on average, so 7 chunks, then the group.
    let third = plan::chunks::chunk_name(&GroupName::new("Big"), 2, 7);
    e.sink.fail(third.as_str(), SinkErrorKind::Server);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial, "{r:?}");
    let calls = e.sink.take_calls();
    assert!(
        !calls
            .iter()
            .any(|(op, g)| op == "PutGroup" && g.as_str() == "Big"),
        "the group is not switched to chunks that are not all written: {calls:?}"
    );
    let snap = e.store.load().await.expect("load");
    assert!(snap.groups[&GroupName::new("Big")].unconfirmed);
    assert!(
        snap.groups.contains_key(&third),
        "the chunk that failed is owned"
    );

    e.sink.heal();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(e.sink.effective("Big"), Some(want));
    let snap = e.store.load().await.expect("load");
    assert_eq!(snap.groups.len(), 1, "{:?}", snap.groups.keys());
    assert_eq!(
        snap.groups[&GroupName::new("Big")].layout,
        plan::Layout::Chunked { chunks: 7 }
    );
    // Settled: nothing to do.
    e.sink.take_calls();
    let r = sync(&e).await;
    assert_eq!(r.puts_applied + r.deletes_applied, 0, "{r:?}");
}

#[tokio::test]
async fn a_failed_stale_chunk_deletion_is_finished_by_the_next_pass() {
    let e = chunky(45);
    assert_eq!(sync(&e).await.outcome, Outcome::Success);
    // Shrink to 5: back inline; the first chunk's deletion fails.
    e.source
        .set_members("gbig", &["u0", "u1", "u2", "u3", "u4"]);
    let first = plan::chunks::chunk_name(&GroupName::new("Big"), 0, 7);
    e.sink.fail(first.as_str(), SinkErrorKind::Server);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial, "{r:?}");
    assert_eq!(e.sink.effective("Big").map(|m| m.len()), Some(5));
    assert!(e.sink.members(first.as_str()).is_some(), "still there");
    e.sink.heal();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(e.sink.members(first.as_str()).is_none(), "deleted now");
    assert_eq!(r.deletes_applied, 1);
    let snap = e.store.load().await.expect("load");
    assert_eq!(snap.groups.len(), 1);
}

#[tokio::test]
async fn held_removals_still_write_the_newcomers_chunk() {
    let e = chunky_with(45, SafetyPolicy::default());
    assert_eq!(sync(&e).await.outcome, Outcome::Success);
    // 30 of 45 leave (held: over the removal limit) and one joins (applied).
    e.source
        .set_user_unreported("new", "ACTIVE", Some("new@x.test"));
    let mut keep: Vec<String> = (30..45).map(|i| format!("u{i}")).collect();
    keep.push("new".into());
    let refs: Vec<&str> = keep.iter().map(String::as_str).collect();
    e.source.set_members("gbig", &refs);
    e.sink.take_calls();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    let effective = e.sink.effective("Big").expect("group");
    assert_eq!(
        effective.len(),
        46,
        "everyone keeps access, the newcomer gains it"
    );
    assert!(effective.contains("new@x.test"));
    let puts: Vec<_> = e
        .sink
        .take_calls()
        .into_iter()
        .filter(|(op, _)| op == "PutGroup")
        .collect();
    assert_eq!(puts.len(), 1, "one chunk holds the newcomer: {puts:?}");
}

// ---------------------------------------------------------------------------------------------
// User lifecycle and identity changes
// ---------------------------------------------------------------------------------------------

fn user_reads(e: &TestEngine) -> usize {
    std::mem::take(&mut *e.source.user_reads.lock().expect("lock"))
}

/// ana in three groups, alone in one; bo and cy elsewhere; ten groups of ten others, so that
/// one user's removals stay well under the breaker's pass-wide limits.
fn lifecycle_org() -> MemSource {
    let mut o = MemSource::default();
    let others: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    for u in &refs {
        o = o.active(u);
    }
    for g in 0..10 {
        o = o.group(&format!("f{g}"), &format!("Team {g}"), &refs);
    }
    o.active("ana")
        .active("bo")
        .active("cy")
        .group("g1", "Engineering", &["ana", "bo"])
        .group("g2", "Sales", &["ana", "cy"])
        .group("g3", "Board", &["ana"])
        .group("g4", "Support", &["cy"])
}

async fn settled(source: MemSource) -> TestEngine {
    let e = guarded(source);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.users.how, UserCheckHow::FullRead);
    e.sink.take_calls();
    reads(&e);
    user_reads(&e);
    e
}

#[tokio::test]
async fn a_deactivated_user_leaves_every_group_on_the_next_pass() {
    let e = settled(lifecycle_org()).await;
    e.source
        .set_user("ana", "DEPROVISIONED", Some("ana@x.test"));
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.users.how, UserCheckHow::Listing);
    assert_eq!((r.users.users_listed, r.users.users_changed), (1, 1));
    assert_eq!(r.users.groups_affected, 3);
    assert_eq!(reads(&e), 3, "only ana's groups are read again");
    assert_eq!(user_reads(&e), 1, "one users listing, no lookups");
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["bo@x.test".into()])
    );
    assert_eq!(e.sink.members("Sales"), Some(vec!["cy@x.test".into()]));
    assert_eq!(e.sink.members("Board"), Some(vec![]), "her only group too");
    assert_eq!(r.users_removed, 3);
    // Settled: the next pass reads no group.
    let r = sync(&e).await;
    assert_eq!((reads(&e), r.plan.changes.len()), (0, 0));
    assert_eq!(r.users.users_changed, 0);
}

#[tokio::test]
async fn suspension_then_reactivation_and_a_new_email() {
    let e = settled(lifecycle_org()).await;
    e.source.set_user("ana", "SUSPENDED", Some("ana@x.test"));
    sync(&e).await;
    assert_eq!(e.sink.members("Board"), Some(vec![]));
    reads(&e);
    user_reads(&e);
    // Back, under a new email: Okta is asked for her groups (she is in no recorded list).
    e.source.set_user("ana", "ACTIVE", Some("ana.b@x.test"));
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        user_reads(&e),
        2,
        "the listing and one lookup of her groups"
    );
    assert_eq!(reads(&e), 3);
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana.b@x.test".into(), "bo@x.test".into()])
    );
    assert_eq!(e.sink.members("Board"), Some(vec!["ana.b@x.test".into()]));
    // A new email while active: renamed in every group.
    e.source.set_user("ana", "ACTIVE", Some("ana.c@x.test"));
    sync(&e).await;
    assert_eq!(
        e.sink.members("Sales"),
        Some(vec!["ana.c@x.test".into(), "cy@x.test".into()])
    );
    assert_eq!(e.sink.members("Board"), Some(vec!["ana.c@x.test".into()]));
}

#[tokio::test]
async fn a_profile_touched_without_a_change_reads_no_group() {
    let e = settled(lifecycle_org()).await;
    for u in ["ana", "bo", "cy"] {
        e.source.set_user(u, "ACTIVE", Some(&format!("{u}@x.test")));
    }
    let r = sync(&e).await;
    assert_eq!((r.users.users_listed, r.users.users_changed), (3, 0));
    assert_eq!(reads(&e), 0);
    assert!(r.plan.is_empty());
    assert!(r.plan.to_string().contains("Q Business matches Okta"));
}

#[tokio::test]
async fn changes_among_thousands_of_listed_users_are_all_found() {
    // More listed users than one lookup of the users table takes: changes in the first, a
    // middle and the last batch are all found, and the touched rest changes nothing.
    let mut o = MemSource::default();
    let users: Vec<String> = (0..2500).map(|i| format!("u{i:04}")).collect();
    for u in &users {
        o = o.active(u);
    }
    for g in 0..25 {
        let refs: Vec<&str> = users[g * 100..(g + 1) * 100]
            .iter()
            .map(String::as_str)
            .collect();
        o = o.group(&format!("g{g:02}"), &format!("Team {g:02}"), &refs);
    }
    let e = settled(o).await;
    for u in &users {
        e.source.set_user(u, "ACTIVE", Some(&format!("{u}@x.test")));
    }
    for u in ["u0005", "u1500", "u2499"] {
        e.source
            .set_user(u, "SUSPENDED", Some(&format!("{u}@x.test")));
    }
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!((r.users.users_listed, r.users.users_changed), (2500, 3));
    assert_eq!(reads(&e), 3, "only the three users' groups are read again");
    for (group, gone) in [
        ("Team 00", "u0005"),
        ("Team 15", "u1500"),
        ("Team 24", "u2499"),
    ] {
        let members = e.sink.members(group).expect("written");
        assert_eq!(members.len(), 99, "{group}");
        assert!(!members.contains(&format!("{gone}@x.test")), "{group}");
    }
    assert_eq!(e.sink.members("Team 01").map(|m| m.len()), Some(100));
}

#[tokio::test]
async fn a_failed_users_listing_is_said_and_retried() {
    let e = settled(lifecycle_org()).await;
    e.source
        .set_user("ana", "DEPROVISIONED", Some("ana@x.test"));
    e.source.fail_users_listing(true);
    let r = sync(&e).await;
    assert!(r.users.error.is_some());
    let text = r.plan.to_string();
    assert!(!text.contains("matches Okta"), "{text}");
    assert!(
        text.contains("not checked: user status and id changes") && text.contains("full read"),
        "{text}"
    );
    assert_eq!(e.sink.members("Board"), Some(vec!["ana@x.test".into()]));
    // Okta answers again: the change is found (the check did not move on without it).
    e.source.fail_users_listing(false);
    sync(&e).await;
    assert_eq!(e.sink.members("Board"), Some(vec![]));
}

#[tokio::test]
async fn a_failed_write_of_an_affected_group_is_retried_by_the_next_pass() {
    let e = settled(lifecycle_org()).await;
    e.source
        .set_user("ana", "DEPROVISIONED", Some("ana@x.test"));
    e.sink.fail("Sales", SinkErrorKind::Throttled);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial, "{r:?}");
    assert_eq!(
        e.sink.members("Sales"),
        Some(vec!["ana@x.test".into(), "cy@x.test".into()])
    );
    e.sink.heal();
    reads(&e);
    // Okta's dates have not moved, and ana is not listed again: the group is read anyway.
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(reads(&e), 1);
    assert_eq!(e.sink.members("Sales"), Some(vec!["cy@x.test".into()]));
}

#[tokio::test]
async fn plan_mode_shows_the_change_and_records_nothing() {
    let e = settled(lifecycle_org()).await;
    e.source
        .set_user("ana", "DEPROVISIONED", Some("ana@x.test"));
    let r = e
        .run_once(
            &PassRequest::cli(Mode::Plan),
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.plan.puts().count(), 3);
    assert!(e.sink.take_calls().is_empty());
    // Nothing recorded: the next apply pass still sees the change.
    let r = sync(&e).await;
    assert_eq!(r.puts_applied, 3);
}

#[tokio::test]
async fn a_suspicious_empty_group_does_not_hold_the_others() {
    let mut o = lifecycle_org();
    for u in ["dan", "eve", "fay"] {
        o = o.active(u);
    }
    let o = o
        .group("g5", "Finance", &["dan", "eve", "fay"])
        .group("g6", "Legal", &["bo", "cy", "dan", "eve", "fay"])
        .group("g7", "Ops", &["bo", "cy", "dan", "eve", "fay"]);
    let e = settled(o).await;
    // Okta suddenly lists no one for Finance (three members), and ana is deactivated.
    e.source.set_members("g5", &[]);
    e.source
        .set_user("ana", "DEPROVISIONED", Some("ana@x.test"));
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    let held = r.plan.held.as_ref().expect("held");
    assert_eq!(
        held.removals
            .keys()
            .map(GroupName::as_str)
            .collect::<Vec<_>>(),
        ["Finance"]
    );
    assert_eq!(
        e.sink.members("Board"),
        Some(vec![]),
        "ana's removals applied"
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["bo@x.test".into()])
    );
    assert_eq!(e.sink.members("Finance").map(|m| m.len()), Some(3));
}

/// An org whose "Sales" an admin also made in Q Business by hand, with two members.
fn first_contact(take_over: &[&str]) -> TestEngine {
    let mut s = settings();
    s.take_over = crate::plan::ownership::TakeOver::new(
        &take_over
            .iter()
            .map(|t| (*t).to_owned())
            .collect::<Vec<_>>(),
    );
    let e = Engine::new(
        org(),
        RecordingSink::default(),
        MemStore::default(),
        s,
        Arc::new(FixedClock),
    );
    e.sink.seed("Sales", &["hand@x.test", "made@x.test"]);
    e
}

fn hand_made(e: &TestEngine) -> Option<Vec<String>> {
    e.sink.members("Sales")
}

#[tokio::test]
async fn a_group_q_already_has_is_left_untouched_by_every_kind_of_pass() {
    let e = first_contact(&[]);
    let hand = Some(vec!["hand@x.test".to_owned(), "made@x.test".to_owned()]);
    let r = sync(&e).await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "not ours is not a failure: {r:?}"
    );
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(hand_made(&e), hand);
    assert_eq!(
        e.store.names(),
        ["Empty", "Engineering"],
        "not recorded as ours"
    );
    let issue = &r.plan.issues[0];
    assert_eq!(
        (issue.group.as_str(), issue.kind),
        ("Sales", IssueKind::NotOwned)
    );
    assert!(r.plan.to_string().contains("reconcile --adopt"));
    assert_eq!(
        e.sink.take_reads(),
        BTreeMap::from([("GetGroup".to_owned(), 2), ("ListGroups".to_owned(), 2)]),
        "one page lists the small index before the reads (for the puts that go early) and one \
         for the plan's check; the GetGroups confirm the two puts"
    );

    // Later passes, one-group passes and dry runs leave it alone too.
    e.source.set_members("g2", &["cy", "ana"]);
    e.sink.take_calls();
    for request in [
        PassRequest::cli(Mode::Apply),
        one(Mode::Apply, "Sales"),
        one(Mode::Apply, "g2"),
        PassRequest::cli(Mode::Plan),
    ] {
        let r = e
            .run_once(&request, &NoProgress, &CancellationToken::new())
            .await;
        assert_eq!(r.outcome, Outcome::Success, "{request:?}: {r:?}");
        assert!(
            r.plan.issues.iter().any(|i| i.kind == IssueKind::NotOwned),
            "{request:?}"
        );
    }
    assert!(e.sink.take_calls().is_empty(), "nothing written");
    assert_eq!(hand_made(&e), hand);

    // The Okta group goes away: nothing of it was ours, so nothing is deleted.
    e.source.remove_group("g2");
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert!(e.sink.take_calls().is_empty());
    assert_eq!(hand_made(&e), hand);
}

#[tokio::test]
async fn an_adopted_or_taken_over_group_is_written_and_then_ours() {
    // Adopted (what `reconcile --adopt` records): the next sync writes Okta's members.
    let e = first_contact(&[]);
    sync(&e).await;
    e.store
        .record_intent(
            0,
            FixedClock.now(),
            &GroupName::new("Sales"),
            &OktaGroupId::new("g2"),
            crate::store::IntentOp::Adopt,
        )
        .await
        .expect("adopt");
    e.sink.take_reads();
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(hand_made(&e), Some(vec!["cy@x.test".to_owned()]));
    assert!(r.plan.issues.is_empty());
    assert_eq!(
        e.sink.take_reads().get("ListGroups"),
        None,
        "an owned group is not checked"
    );

    // groups.take_over: written on the first pass, and reported as taken over.
    let e = first_contact(&["Sal*"]);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(hand_made(&e), Some(vec!["cy@x.test".to_owned()]));
    assert_eq!(r.plan.taken_over, [GroupName::new("Sales")]);
    assert!(r.plan.to_string().contains("takes over"));
    assert_eq!(e.store.names(), ["Empty", "Engineering", "Sales"]);
    // From then on it is ours: Okta dropping it deletes it.
    e.source.remove_group("g2");
    sync(&e).await;
    assert_eq!(hand_made(&e), None);
}

#[tokio::test]
async fn a_failed_check_writes_no_unchecked_group() {
    let e = first_contact(&[]);
    e.sink.fail_reads("ListGroups", SinkErrorKind::Throttled);
    e.sink.fail_reads("GetGroup", SinkErrorKind::Server);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Partial, "{r:?}");
    assert!(e.sink.take_calls().is_empty(), "no group written unchecked");
    let kinds: Vec<IssueKind> = r.plan.issues.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [IssueKind::OwnershipUnchecked; 3]);
    assert_eq!(
        r.failures
            .iter()
            .map(|f| f.kind.as_str())
            .collect::<Vec<_>>(),
        ["ownership_unchecked"; 3]
    );
    // GetGroup alone answers when ListGroups is refused (e.g. a role without it).
    lock_clear(&e.sink.failing_reads);
    e.sink.fail_reads("ListGroups", SinkErrorKind::AccessDenied);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(e.store.names(), ["Empty", "Engineering"]);
    assert_eq!(
        hand_made(&e),
        Some(vec!["hand@x.test".to_owned(), "made@x.test".to_owned()])
    );
}

fn lock_clear<K: Ord, V>(m: &std::sync::Mutex<BTreeMap<K, V>>) {
    m.lock().expect("lock").clear();
}

#[tokio::test]
async fn the_check_lists_a_small_index_and_looks_up_few_names_in_a_big_one() {
    // 60 new groups, empty index: one ListGroups page answers for all of them.
    let mut s = settings();
    s.verify.mode = VerifyMode::Never;
    let e = Engine::new(
        big_org(60),
        RecordingSink::default(),
        MemStore::default(),
        s,
        Arc::new(FixedClock),
    );
    let r = sync(&e).await;
    assert_eq!(r.puts_applied, 60);
    assert_eq!(
        e.sink.take_reads(),
        BTreeMap::from([("ListGroups".to_owned(), 1)])
    );
    // Two new groups against an index of 500 groups: two pages, then two GetGroups.
    for g in 0..440 {
        e.sink.seed(&format!("someone else's {g:03}"), &[]);
    }
    e.source.add_group("g9001", "New one", &["ana"]);
    e.source.add_group("g9002", "New two", &["bo"]);
    let r = sync(&e).await;
    assert_eq!(r.puts_applied, 2, "{r:?}");
    assert_eq!(
        e.sink.take_reads(),
        BTreeMap::from([("GetGroup".to_owned(), 2), ("ListGroups".to_owned(), 2)])
    );
}

/// Waits (briefly, in small steps) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

fn puts_of(calls: &[(String, GroupName)]) -> Vec<&str> {
    calls
        .iter()
        .filter(|(op, _)| op == "PutGroup")
        .map(|(_, g)| g.as_str())
        .collect()
}

#[tokio::test]
async fn new_groups_are_written_and_recorded_while_others_are_still_read() {
    let e = engine(org());
    let gate = e.source.hold("g3");
    let cancel = CancellationToken::new();
    let request = PassRequest::cli(Mode::Apply);
    let pass = e.run_once(&request, &NoProgress, &cancel);
    let watch = async {
        until("the early puts to be recorded", || {
            e.store.names() == ["Engineering", "Sales"]
        })
        .await;
        let calls = e.sink.calls();
        gate.add_permits(1);
        calls
    };
    let (r, during) = tokio::join!(pass, watch);
    // While "Empty" was still being read, the two groups read in full were put, confirmed
    // and recorded.
    assert_eq!(puts_of(&during), ["Engineering", "Sales"]);
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.puts_applied, 3);
    assert_eq!(
        puts_of(&e.sink.take_calls()),
        ["Engineering", "Sales", "Empty"],
        "each group is put once"
    );
    assert_eq!(e.store.names(), ["Empty", "Engineering", "Sales"]);
    assert_eq!(r.plan.puts().count(), 3, "the report lists every put");
    assert!(
        sync(&e).await.plan.is_empty(),
        "and the next pass has nothing to do"
    );
}

#[tokio::test]
async fn removals_and_deletions_wait_for_the_whole_read() {
    let e = engine(
        org()
            .group("g4", "Gone soon", &["ana"])
            .group("g5", "Support", &["cy"]),
    );
    sync(&e).await;
    e.sink.take_calls();
    e.source.set_members("g1", &["ana"]); // bo leaves Engineering
    e.source.set_members("g2", &["cy", "ana"]); // ana joins Sales
    e.source.set_members("g3", &[]);
    e.source.remove_group("g4");
    e.source.set_members("g5", &["cy"]);
    let gate = e.source.hold("g5");
    let request = PassRequest {
        full: true,
        ..PassRequest::cli(Mode::Apply)
    };
    let cancel = CancellationToken::new();
    let pass = e.run_once(&request, &NoProgress, &cancel);
    let watch = async {
        until("the addition to be written", || {
            puts_of(&e.sink.calls()) == ["Sales"]
        })
        .await;
        // Give the pass every chance to (wrongly) write more before the last read ends.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let calls = e.sink.calls();
        gate.add_permits(1);
        calls
    };
    let (r, during) = tokio::join!(pass, watch);
    assert_eq!(during.len(), 1, "only the addition went early: {during:?}");
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        e.sink.take_calls(),
        [
            ("PutGroup".to_owned(), GroupName::new("Sales")),
            ("PutGroup".to_owned(), GroupName::new("Engineering")),
            ("DeleteGroup".to_owned(), GroupName::new("Gone soon")),
        ]
    );
    assert_eq!(
        e.sink.members("Engineering"),
        Some(vec!["ana@x.test".into()])
    );
}

#[tokio::test]
async fn a_failed_read_still_blocks_deletions_while_new_groups_go() {
    let e = engine(org().group("g4", "Gone soon", &["ana"]));
    sync(&e).await;
    e.sink.take_calls();
    e.source.remove_group("g4");
    e.source.set_members("g1", &["ana", "bo", "dee", "cy"]);
    e.source.fail("g2", ReadFault::Server);
    let r = e
        .run_once(
            &PassRequest {
                full: true,
                ..PassRequest::cli(Mode::Apply)
            },
            &NoProgress,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Partial, "{r:?}");
    assert_eq!(
        e.sink.take_calls(),
        [("PutGroup".to_owned(), GroupName::new("Engineering"))],
        "the addition is written, the deletion withheld"
    );
    assert!(e.store.names().contains(&"Gone soon".to_owned()));
}

#[tokio::test]
async fn a_paced_writer_holds_the_reader_back() {
    let mut source = MemSource::default().active("ana");
    for n in 0..40 {
        source = source.group(&format!("g{n:02}"), &format!("Group {n:02}"), &["ana"]);
    }
    let mut s = settings();
    s.write_concurrency = 1;
    let e = Engine::new(
        source,
        RecordingSink::default(),
        MemStore::default(),
        s,
        Arc::new(FixedClock),
    );
    let gate = e.sink.hold_puts();
    let cancel = CancellationToken::new();
    let request = PassRequest::cli(Mode::Apply);
    let pass = e.run_once(&request, &NoProgress, &cancel);
    let watch = async {
        until("the first put to wait", || {
            *e.source.member_reads.lock().expect("lock") > 5
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let reads = *e.source.member_reads.lock().expect("lock");
        gate.add_permits(1000);
        reads
    };
    let (r, reads_while_blocked) = tokio::join!(pass, watch);
    // One put in flight, a queue of 4 and the reads in flight: far from all 40 groups.
    assert!(
        reads_while_blocked <= 1 + 4 + 1 + 3,
        "{reads_while_blocked} groups read while the writer was blocked"
    );
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.puts_applied, 40);
    assert_eq!(e.store.names().len(), 40);
}

#[tokio::test]
async fn a_shutdown_while_reading_keeps_the_confirmed_early_puts() {
    let e = engine(org());
    let gate = e.source.hold("g3");
    let cancel = CancellationToken::new();
    let request = PassRequest::cli(Mode::Apply);
    let pass = e.run_once(&request, &NoProgress, &cancel);
    let watch = async {
        until("the early puts to be recorded", || {
            e.store.names().len() == 2
        })
        .await;
        cancel.cancel();
    };
    let (r, ()) = tokio::join!(pass, watch);
    drop(gate);
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert_eq!(r.puts_applied, 2);
    e.sink.take_calls();
    let gate = e.source.hold("g3");
    gate.add_permits(1);
    let r = sync(&e).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        puts_of(&e.sink.take_calls()),
        ["Empty"],
        "nothing is put twice"
    );
}

#[tokio::test]
async fn reconcile_adopts_what_looks_managed_under_its_own_run() {
    let e = engine(org());
    // A lost snapshot: Q Business has groups q-group-sync made, the snapshot knows none.
    for name in ["Engineering", "Sales", "Made by hand"] {
        e.sink.seed(name, &[]);
    }
    let look = reconcile::ReconcileRequest::default();
    let found = e.reconcile(&look).await.expect("reconcile");
    assert!(
        found.adopted.is_empty(),
        "without --adopt nothing is recorded"
    );
    assert!(e.store.pending.lock().expect("lock").is_empty());
    assert!(e.store.runs.lock().expect("lock").is_empty());
    let names: Vec<&str> = found
        .found
        .look_managed_but_unrecorded
        .iter()
        .map(|u| u.group.as_str())
        .collect();
    assert_eq!(names, ["Engineering", "Sales"]);

    let adopt = reconcile::ReconcileRequest {
        adopt: true,
        ..look
    };
    let done = e.reconcile(&adopt).await.expect("reconcile --adopt");
    assert_eq!(done.adopted, ["Engineering", "Sales"]);
    let pending = e.store.pending.lock().expect("lock").clone();
    assert_eq!(
        pending.into_iter().collect::<Vec<_>>(),
        [
            (GroupName::new("Engineering"), OktaGroupId::new("g1")),
            (GroupName::new("Sales"), OktaGroupId::new("g2")),
        ]
    );
    let runs = e.store.runs.lock().expect("lock");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].1.as_ref().map(|r| r.outcome.as_str()),
        Some("success")
    );
    assert!(
        e.sink.take_calls().is_empty(),
        "reconcile writes nothing to Q"
    );
}
