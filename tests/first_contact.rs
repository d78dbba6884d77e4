//! First contact with a Q Business index that already has groups: a group an admin made by
//! hand is never written by q-group-sync (not by `sync`, `sync --group`, `serve` passes, nor
//! as a chunk sub-group) until it is taken over with `reconcile --adopt` or `groups.take_over`.
//! The real binary against the emulators.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{Harness, expected, text};
use q_group_sync_emulator::{OktaOrg, QFault, QFaultAction};

const HAND_MADE: &str = "Sales & Marketing";

/// `groups` Okta groups (`group N`, with "Sales & Marketing" first) of 8 users each.
fn org(groups: usize) -> OktaOrg {
    common::org_with(
        groups,
        8,
        |g| {
            if g == 0 {
                HAND_MADE.to_owned()
            } else {
                format!("group {g}")
            }
        },
        |u, g| (u + g) % 2 == 0,
    )
}

fn admins() -> BTreeSet<String> {
    BTreeSet::from([
        "admin.one@example.test".to_owned(),
        "admin.two@example.test".to_owned(),
    ])
}

/// The hand-made group exactly as the admin left it: their two members, never written.
fn untouched(h: &Harness) {
    let g = h.q.group(HAND_MADE).expect("still there");
    assert_eq!(g.users, admins());
    assert_eq!(g.put_count, 0, "q-group-sync never wrote it");
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

async fn seeded(groups: usize, extra: &str) -> Harness {
    let h = Harness::start_with(
        org(groups),
        q_group_sync_emulator::OktaOptions {
            token: common::TOKEN.into(),
            ..Default::default()
        },
        extra,
    )
    .await;
    h.q.seed_group(
        HAND_MADE,
        &["admin.one@example.test", "admin.two@example.test"],
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_group_keeps_its_members_until_it_is_adopted() {
    let h = seeded(6, "").await;

    // The first sync writes every other group and leaves the hand-made one alone: exit 0.
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["failures"], serde_json::json!([]));
    let issues = report["plan"]["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["group"], HAND_MADE);
    assert_eq!(issues[0]["kind"], "not_owned");
    assert!(
        issues[0]["detail"]
            .as_str()
            .unwrap()
            .contains("reconcile --adopt")
    );
    untouched(&h);
    let mut want = expected(&h.okta.org());
    want.remove(HAND_MADE);
    let mut have = h.q_state();
    have.remove(HAND_MADE);
    assert_eq!(have, want, "every other group is synced");

    // The text says what happened and how to take it over.
    let out = h.run(&["plan"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[not_owned]"), "{stdout}");
    assert!(stdout.contains("groups.take_over"), "{stdout}");

    // Okta changes the group: still not written, by a full or a one-group sync.
    let sales = OktaOrg::group_id(0);
    h.okta
        .update(|o| o.add_member(&sales, &OktaOrg::user_id(1)));
    for args in [
        &["sync"][..],
        &["sync", "--group", HAND_MADE],
        &["sync", "--group", &sales],
    ] {
        let out = h.run(args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("[not_owned]"),
            "{args:?}: {}",
            text(&out)
        );
        untouched(&h);
        if args.len() == 3 {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("ownership Q Business has {\"Sales & Marketing\"}"),
                "the trace says what Q answered: {stdout}"
            );
        }
    }

    // serve: the start-up pass and scheduled passes leave it too, and say so in /status and
    // the metrics.
    h.add_config("\n[schedule]\ncron = \"* * * * * *\"\n");
    let s = h.serve(&[]).await;
    let st = s
        .wait_status(20, "two passes of serve", |st| {
            st["last_pass"]["trigger"] == "schedule" && st["last_pass"]["outcome"] == "success"
        })
        .await;
    assert_eq!(st["last_pass"]["not_owned"], serde_json::json!([HAND_MADE]));
    assert_eq!(st["last_pass"]["failed"], 0);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "q_group_sync_group_issues{kind=\"not_owned\"} 1"),
        "{metrics}"
    );
    drop(s);
    untouched(&h);

    // reconcile finds it (same name as an in-scope Okta group); --adopt records it as ours,
    // and the next sync writes Okta's members to it.
    let out = h.run(&["reconcile"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(HAND_MADE));
    untouched(&h);
    let out = h.run(&["reconcile", "--adopt"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&h.okta.org()), "now it is Okta's");
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(json(&out)["plan"]["issues"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_in_the_config_writes_it_on_the_first_sync() {
    let h = seeded(3, "\n[groups]\ntake_over = [\"Sales*\"]\n").await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("takes over"), "{stdout}");
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert!(h.q.group(HAND_MADE).unwrap().put_count > 0);
}

/// A large group whose chunk sub-group name someone else already uses is not written at all:
/// no chunk, no parent, and the foreign group keeps its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_name_q_already_has_is_not_overwritten() {
    let mut o = org(2);
    o.add_group("00gbig", "All Staff", "OKTA_GROUP");
    for u in 0..30 {
        let id = OktaOrg::user_id(100 + u);
        let email = format!("staff{u}@example.test");
        o.add_user(&id, "ACTIVE", Some(&email), &email);
        o.add_member("00gbig", &id);
    }
    let h = Harness::start_with(
        o,
        q_group_sync_emulator::OktaOptions {
            token: common::TOKEN.into(),
            ..Default::default()
        },
        "",
    )
    .await;
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("[qbusiness]", "[qbusiness]\ninline_member_limit = 10"),
    )
    .unwrap();
    // Whatever chunk count 30 members get, its first chunk's name is taken.
    let taken: Vec<String> = (2..=10)
        .map(|n| format!("All Staff (q-group-sync chunk 1 of {n})"))
        .collect();
    for name in &taken {
        h.q.seed_group(name, &["someone@example.test"]);
    }
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    let issue = report["plan"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["group"] == "All Staff")
        .cloned()
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(issue["kind"], "not_owned");
    assert!(
        issue["detail"]
            .as_str()
            .unwrap()
            .contains("chunk sub-group")
    );
    assert!(h.q.group("All Staff").is_none(), "no parent written");
    for name in &taken {
        let g = h.q.group(name).unwrap();
        assert_eq!(g.put_count, 0, "{name} not written");
        assert_eq!(g.users, BTreeSet::from(["someone@example.test".to_owned()]));
    }
    let chunks_written =
        h.q.calls()
            .iter()
            .filter(|c| {
                c.op == "PutGroup"
                    && c.group
                        .as_deref()
                        .is_some_and(|g| g.starts_with("All Staff"))
            })
            .count();
    assert_eq!(chunks_written, 0);
}

/// What the check costs: an initial sync of many groups against an empty index asks one
/// ListGroups page and no GetGroup; two new groups against a large index list two pages and
/// look up two names. A check that fails writes none of the unchecked groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_costs_a_handful_of_requests_and_a_failed_check_writes_nothing() {
    let groups = 150;
    let h = Harness::start_with(
        common::org_with(
            groups,
            4,
            |g| format!("group {g:03}"),
            |u, g| (u + g) % 2 == 0,
        ),
        q_group_sync_emulator::OktaOptions {
            token: common::TOKEN.into(),
            ..Default::default()
        },
        "",
    )
    .await;
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("[qbusiness]", "[qbusiness]\nverify = \"never\""),
    )
    .unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = h.q.stats();
    assert_eq!(stats.puts, groups);
    // One listing learns the service's clock (a cutoff in 1970), one lists the index.
    assert_eq!(stats.by_op.get("ListGroups"), Some(&2), "{stats:?}");
    assert_eq!(stats.by_op.get("GetGroup"), None, "{stats:?}");
    eprintln!(
        "initial sync of {groups} groups, empty index: {} ListGroups, 0 GetGroup for the check",
        stats.by_op["ListGroups"]
    );

    // 150 groups are in Q now; two new Okta groups: the clock, 2 pages listed, then 2
    // GetGroups.
    h.q.reset_calls();
    h.okta.update(|o| {
        for (n, name) in [(900, "new one"), (901, "new two")] {
            let gid = OktaOrg::group_id(n);
            o.add_group(&gid, name, "OKTA_GROUP");
            o.add_member(&gid, &OktaOrg::user_id(0));
        }
    });
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = h.q.stats();
    assert_eq!(stats.puts, 2);
    assert_eq!(stats.by_op.get("ListGroups"), Some(&3), "{stats:?}");
    assert_eq!(stats.by_op.get("GetGroup"), Some(&2), "{stats:?}");

    // Q refuses every read: the new group is not written, the pass says why and exits 1.
    h.okta.update(|o| {
        let gid = OktaOrg::group_id(902);
        o.add_group(&gid, "new three", "OKTA_GROUP");
        o.add_member(&gid, &OktaOrg::user_id(0));
    });
    for op in ["ListGroups", "GetGroup"] {
        h.q.add_fault(QFault::always(QFaultAction::InternalError).on_op(op));
    }
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        report["failures"][0]["kind"], "ownership_unchecked",
        "{report:#}"
    );
    assert!(h.q.group("new three").is_none());
    h.q.clear_faults();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(h.q.group("new three").is_some(), "written once checked");
}
