//! End to end: the real binary against the Okta and Q Business emulators over HTTP.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{Harness, TOKEN, expected, text};
use q_group_sync_emulator::generate::{OrgSpec, org};
use q_group_sync_emulator::{FaultAction, LinkStyle, Matcher, OktaFault, OktaOptions, OktaOrg};

fn messy_org() -> OktaOrg {
    let mut o = org(&OrgSpec {
        seed: 7,
        groups: 300,
        users: 3000,
        max_group_size: 999,
        messy: true,
    });
    // Make sure the awkward cases are there whatever the generator drew.
    o.add_user(
        "00uspecial0000000001",
        "ACTIVE",
        Some("Mixed.Case+Tag@Example.TEST"),
        "mixed@example.test",
    );
    o.add_user(
        "00uspecial0000000002",
        "ACTIVE",
        None,
        "noemail@example.test",
    );
    o.add_user(
        "00uspecial0000000003",
        "DEPROVISIONED",
        Some("gone@example.test"),
        "gone@example.test",
    );
    o.add_group("00gspecial0000000001", "Eng Team/α ünïcode", "OKTA_GROUP");
    for u in [
        "00uspecial0000000001",
        "00uspecial0000000002",
        "00uspecial0000000003",
    ] {
        o.add_member("00gspecial0000000001", u);
    }
    o.add_group("00gspecial0000000002", "Empty group", "OKTA_GROUP");
    o.add_group("00gspecial0000000003", "Exactly 999", "OKTA_GROUP");
    for n in 0..999 {
        let id = OktaOrg::user_id(800_000 + n);
        o.add_user(
            &id,
            "ACTIVE",
            Some(&format!("Bulk.{n}@Example.test")),
            &format!("bulk.{n}@example.test"),
        );
        o.add_member("00gspecial0000000003", &id);
    }
    o
}

fn okta_groups(h: &Harness) -> Vec<(String, String)> {
    let org = h.okta.org();
    org.groups
        .values()
        .filter(|g| g.group_type == "OKTA_GROUP")
        .map(|g| (g.id.clone(), g.name.clone()))
        .collect()
}

/// Q groups created by the tool (everything but the foreign seeded group).
fn synced(h: &Harness) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut q = h.q_state();
    q.remove("Made by hand");
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_no_op_five_changes_and_a_deletion() {
    let h = Harness::start(messy_org()).await;
    h.q.seed_group("Made by hand", &["someone@example.test"]);
    let want = expected(&h.okta.org());
    assert!(
        want.len() > 250,
        "generator gives a realistic org ({} groups)",
        want.len()
    );
    assert_eq!(want["Exactly 999"].len(), 999);
    assert_eq!(
        want["Eng Team/α ünïcode"],
        BTreeSet::from(["mixed.case@example.test".to_owned()])
    );

    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(synced(&h), want, "Q holds exactly Okta's entitled members");
    assert_eq!(
        h.q.group("Made by hand").unwrap().users,
        BTreeSet::from(["someone@example.test".to_owned()])
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Result: success"), "{stdout}");

    // No change in Okta: no PutGroup at all.
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q.put_count(), 0, "a no-change pass writes nothing");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing to do"));

    // Five groups change: exactly those five are put.
    let groups = okta_groups(&h);
    let changed: Vec<&(String, String)> = groups
        .iter()
        .filter(|(_, n)| n != "Empty group")
        .step_by(37)
        .take(5)
        .collect();
    h.okta.update(|o| {
        let newcomer = OktaOrg::user_id(900_001);
        o.add_user(
            &newcomer,
            "ACTIVE",
            Some("newcomer@example.test"),
            "newcomer@example.test",
        );
        for (id, _) in &changed {
            o.add_member(id, &newcomer);
        }
    });
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let puts: BTreeSet<String> =
        h.q.calls()
            .into_iter()
            .filter(|c| c.op == "PutGroup" && c.status == 200)
            .filter_map(|c| c.group)
            .collect();
    let want_puts: BTreeSet<String> = changed.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(puts, want_puts);
    assert_eq!(synced(&h), expected(&h.okta.org()));

    // A group deleted in Okta is deleted in Q; the foreign group stays.
    let (gone_id, gone_name) = groups
        .iter()
        .find(|(_, n)| n == "Empty group")
        .unwrap()
        .clone();
    h.okta.update(|o| o.groups.remove(&gone_id));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!h.q_state().contains_key(&gone_name));
    assert!(h.q_state().contains_key("Made by hand"));
    assert_eq!(synced(&h), expected(&h.okta.org()));
}

fn small_org(groups: usize, members: usize) -> OktaOrg {
    common::org_with(groups, members, |g| format!("group {g}"), |_, _| true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_mid_pagination_is_waited_out() {
    let options = OktaOptions {
        token: TOKEN.into(),
        link_style: LinkStyle::CommaJoined,
        ..OktaOptions::default()
    };
    let h = Harness::start_with(small_org(3, 25), options, "").await;
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("[okta]", "[okta]\npage_size = 10\nmember_page_size = 10"),
    )
    .unwrap();
    let gid = OktaOrg::group_id(1);
    h.okta.add_fault(OktaFault {
        matcher: Matcher {
            group_id: Some(gid.clone()),
            page: Some(2),
            ..Matcher::default()
        },
        action: FaultAction::RateLimited,
        times: Some(2),
    });
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(synced(&h), expected(&h.okta.org()));
    assert_eq!(h.q_state()["group 1"].len(), 25);
    let retried: Vec<_> = h
        .okta
        .requests()
        .into_iter()
        .filter(|r| r.retry_count.is_some())
        .collect();
    assert!(!retried.is_empty(), "retries carry X-Okta-Retry-Count");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 rate-limited"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_500_on_page_3_leaves_group_unpushed_and_deletes_nothing() {
    let h = Harness::start(small_org(4, 35)).await;
    // One of four groups goes: within the limits for this test (the breaker has its own tests).
    h.add_config("\n[safety]\nmax_group_deletes_percent = 100.0\n");
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("[okta]", "[okta]\npage_size = 10\nmember_page_size = 10"),
    )
    .unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Group 0 is deleted in Okta, group 2 gains a member, group 1's page 3 keeps failing.
    let g1 = OktaOrg::group_id(1);
    h.okta.update(|o| {
        o.groups.remove(&OktaOrg::group_id(0));
        let id = OktaOrg::user_id(500);
        o.add_user(
            &id,
            "ACTIVE",
            Some("late@example.test"),
            "late@example.test",
        );
        o.add_member(&OktaOrg::group_id(2), &id);
        o.remove_member(&g1, &OktaOrg::user_id(3));
    });
    h.okta.add_fault(OktaFault {
        matcher: Matcher {
            group_id: Some(g1.clone()),
            page: Some(3),
            ..Matcher::default()
        },
        action: FaultAction::Status(500),
        times: None,
    });
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let q = h.q_state();
    assert!(
        q.contains_key("group 0"),
        "no deletions while a group is unread"
    );
    assert_eq!(
        q["group 1"].len(),
        35,
        "the unread group keeps its last good list"
    );
    assert_eq!(q["group 2"].len(), 36, "readable groups are still synced");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deletions withheld"), "{stdout}");

    // Okta recovers: the next run converges.
    h.okta.clear_faults();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing_and_keeps_the_snapshot_byte_identical() {
    let h = Harness::start(small_org(3, 5)).await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.okta.update(|o| {
        o.remove_member(&OktaOrg::group_id(0), &OktaOrg::user_id(0));
    });
    let before = std::fs::read(h.snapshot_path()).unwrap();
    h.q.reset_calls();
    let out = h.run(&["plan", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(plan["changes"].as_array().unwrap().len(), 1);
    assert_eq!(plan["changes"][0]["group"], "group 0");
    assert_eq!(
        plan["changes"][0]["removed"],
        serde_json::json!(["user0@example.test"])
    );
    assert!(
        h.q.calls()
            .iter()
            .all(|c| c.op != "PutGroup" && c.op != "DeleteGroup"),
        "{:?}",
        h.q.calls()
    );
    assert_eq!(
        std::fs::read(h.snapshot_path()).unwrap(),
        before,
        "snapshot byte-identical"
    );

    // plan on a fresh machine (no snapshot yet) creates no file.
    let h2 = Harness::start(small_org(1, 1)).await;
    let out = h2.run(&["plan"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!h2.snapshot_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_appears_in_output_even_at_trace() {
    let h = Harness::start(small_org(2, 3)).await;
    for args in [
        &["--log-level", "trace", "sync"][..],
        &[
            "--log-level",
            "trace",
            "--log-format",
            "json",
            "plan",
            "--output",
            "json",
        ][..],
        &["--log-level", "trace", "check-config"][..],
    ] {
        let out = h.run(args).await;
        let all = text(&out);
        assert!(out.status.code().is_some());
        assert!(!all.contains(TOKEN), "token leaked with {args:?}");
        assert!(!all.contains("SSWS 00Top"), "token leaked with {args:?}");
        assert!(all.len() > 1000, "trace logging really ran: {}", all.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_a_clear_failure_with_no_writes() {
    let h = Harness::start(small_org(2, 3)).await;
    let out = h
        .run_env(&["sync"], &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "wrong")])
        .await;
    // Credentials refused: setup, exit 2, as in check-config.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("E0000011"), "{}", text(&out));
    assert!(h.q_state().is_empty());
    let out = h
        .run_env(
            &["check-config"],
            &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "wrong")],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_over_the_member_limit_is_refused_not_truncated() {
    // With chunking off (tests/large_groups.rs covers the default, chunks).
    let h = Harness::start(small_org(2, 1001)).await;
    let out = h
        .run_env(
            &["sync"],
            &[("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "refuse")],
        )
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(h.q_state().is_empty(), "nothing truncated");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("over_member_limit"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_exit_2_and_name_the_key() {
    let h = Harness::start(small_org(1, 1)).await;
    let original = std::fs::read_to_string(&h.config).unwrap();
    for (edit, key) in [
        (
            original.replace("[state]", "[state]\nbogus_key = 1"),
            "bogus_key",
        ),
        (
            original.replace("max_retries = 3", "max_retries = \"three\""),
            "okta.max_retries",
        ),
        (
            original.replace("region = \"us-east-1\"", "region = \"nowhere land\""),
            "qbusiness.region",
        ),
    ] {
        std::fs::write(&h.config, &edit).unwrap();
        let out = h.run(&["sync"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
    std::fs::write(&h.config, &original).unwrap();
    let out = h.run(&["frobnicate"]).await;
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = h
        .run_env(&["sync"], &[("Q_GROUP_SYNC_OKTA__PAGE_SIZE", "0")])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("okta.page_size"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_stops_the_run() {
    let h = Harness::start(small_org(1, 2)).await;
    std::fs::write(
        h.snapshot_path(),
        b"definitely not a database, and long enough to have a header",
    )
    .unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("snapshot"),
        "{}",
        text(&out)
    );
    assert!(h.q_state().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_one_group_on_demand() {
    let h = Harness::start(small_org(3, 4)).await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.okta.update(|o| {
        o.remove_member(&OktaOrg::group_id(1), &OktaOrg::user_id(0));
        o.remove_member(&OktaOrg::group_id(2), &OktaOrg::user_id(0));
    });
    h.q.reset_calls();
    let out = h.run(&["sync", "--group", "group 1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let puts: Vec<String> =
        h.q.calls()
            .into_iter()
            .filter(|c| c.op == "PutGroup")
            .filter_map(|c| c.group)
            .collect();
    assert_eq!(puts, ["group 1"]);
    let out = h.run(&["sync", "--group", "no such group"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no Okta group or managed Q group is named"),
        "{}",
        text(&out)
    );
}
