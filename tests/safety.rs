//! The deletion circuit breaker, verified writes and bad input, through the real binary.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{Harness, expected, text};
use q_group_sync_emulator::{FaultAction, Matcher, OktaFault, OktaOrg, QFault, QFaultAction};

fn org(groups: usize) -> OktaOrg {
    common::org_with(
        groups,
        20,
        |g| format!("team {g:03}"),
        |u, g| (u * 7 + g) % 4 != 0,
    )
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_returning_no_groups_holds_everything_and_approval_later_deletes_nothing() {
    let h = Harness::start(org(100)).await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = h.q_state();
    assert_eq!(before.len(), 100);

    // An outage returning an empty listing, then a filter typo that matches nothing.
    h.okta.add_fault(OktaFault {
        matcher: Matcher::groups_listing(),
        action: FaultAction::EmptyList,
        times: None,
    });
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "held");
    let plan_id = report["plan"]["held"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        report["plan"]["held"]["deletes"].as_array().unwrap().len(),
        100
    );
    assert_eq!(h.q_state(), before, "nothing deleted");
    h.okta.clear_faults();
    let out = h
        .run_env(
            &["sync"],
            &[("Q_GROUP_SYNC_OKTA__GROUP_FILTER", "type eq \"OKTA_GROUPS\"")],
        )
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HELD for approval"),
        "{}",
        text(&out)
    );
    assert_eq!(h.q_state(), before, "nothing deleted");

    // /status and /metrics of the service show the hold.
    h.add_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n");
    let s = h
        .serve(&[("Q_GROUP_SYNC_OKTA__GROUP_FILTER", "type eq \"OKTA_GROUPS\"")])
        .await;
    let st = s.status().await;
    let held_id = st["held_plan"]["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(st["held_plan"]["deletes"], 100);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("q_group_sync_held_changes{kind=\"delete\"} 100"),
        "{metrics}"
    );
    drop(s);

    // Okta is back: approving the held plan finds nothing to delete.
    let out = h.run(&["approve", &held_id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), before);
    let out = h.run(&["approve", &plan_id]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a superseded plan cannot be approved: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not waiting for approval"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_deletions_are_held_and_approve_deletes_exactly_those() {
    let h = Harness::start(org(100)).await;
    h.q.seed_group("made by hand", &["someone@example.test"]);
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let gone: BTreeSet<String> = (0..30).map(|g| format!("team {g:03}")).collect();
    h.okta.update(|o| {
        for g in 0..30 {
            o.groups.remove(&OktaOrg::group_id(g));
        }
        // An addition elsewhere still applies while the deletions wait.
        o.add_member(&OktaOrg::group_id(50), &OktaOrg::user_id(0));
    });
    h.q.reset_calls();
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report = json(&out);
    let plan_id = report["plan"]["held"]["id"].as_str().unwrap().to_owned();
    assert!(h.q.calls().iter().all(|c| c.op != "DeleteGroup"));
    assert!(
        h.q_state()["team 050"].contains("user0@example.test"),
        "additions apply while deletions wait"
    );
    assert!(gone.iter().all(|g| h.q_state().contains_key(g)));

    h.q.reset_calls();
    let out = h.run(&["approve", &plan_id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let deleted: BTreeSet<String> =
        h.q.calls()
            .into_iter()
            .filter(|c| c.op == "DeleteGroup" && c.status == 200)
            .filter_map(|c| c.group)
            .collect();
    assert_eq!(deleted, gone, "exactly the 30");
    assert!(h.q.calls().iter().all(|c| c.op != "PutGroup"));
    let mut q = h.q_state();
    assert!(q.remove("made by hand").is_some());
    assert_eq!(q, expected(&h.okta.org()));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_async_put_is_retried_and_never_recorded() {
    let h = Harness::start(org(5)).await;
    h.q.add_fault(
        QFault::always(QFaultAction::FailAsync {
            error_code: "InternalError".into(),
            message: "index busy".into(),
        })
        .on_group("team 002"),
    );
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("team 002 (put, async_failed)") && stdout.contains("index busy"),
        "{stdout}"
    );
    let out = h.run(&["plan", "--output", "json"]).await;
    let plan = json(&out);
    let puts: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["group"].as_str().unwrap())
        .collect();
    assert_eq!(puts, ["team 002"], "not recorded as applied");
    h.q.clear_faults();
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q.put_count(), 1);
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_okta_input_is_named_and_changes_nothing() {
    let mut o = org(4);
    let long = format!("{}@example.test", "a".repeat(1100));
    o.add_user(
        "00ulong0000000000001",
        "ACTIVE",
        Some(&long),
        "long@example.test",
    );
    o.add_member(&OktaOrg::group_id(0), "00ulong0000000000001");
    o.add_user(
        "00uctrl0000000000001",
        "ACTIVE",
        Some("bad\u{7}id@example.test"),
        "ctrl@example.test",
    );
    o.add_member(&OktaOrg::group_id(0), "00uctrl0000000000001");
    o.add_group(
        "00gbadname00000000001",
        "private \u{E000} use",
        "OKTA_GROUP",
    );
    let h = Harness::start(o).await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 with an id Q Business rejects"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "[invalid_name]: Q group name contains a control or other non-printable character"
        ),
        "{stdout}"
    );
    let good = h.q_state();
    assert_eq!(good.len(), 4);
    assert!(
        good.values()
            .all(|m| m.iter().all(|u| u.len() < 100 && !u.contains('\u{7}')))
    );

    // Malformed JSON, a foreign next link: the group is unread, named, and keeps its members.
    h.okta.update(|o| {
        o.remove_member(&OktaOrg::group_id(1), &OktaOrg::user_id(1));
        o.remove_member(&OktaOrg::group_id(2), &OktaOrg::user_id(1));
    });
    h.okta.add_fault(OktaFault {
        matcher: Matcher::members_of(&OktaOrg::group_id(1)),
        action: FaultAction::MalformedJson,
        times: None,
    });
    h.okta.add_fault(OktaFault {
        matcher: Matcher::members_of(&OktaOrg::group_id(2)),
        action: FaultAction::ForeignNextLink,
        times: None,
    });
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("team 001 [unread]: malformed"), "{stdout}");
    assert!(
        stdout.contains("team 002 [unread]: foreign_link"),
        "{stdout}"
    );
    assert_eq!(h.q_state(), good, "nothing correct in Q was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_local_input_is_one_line_with_the_cause() {
    let h = Harness::start(org(2)).await;
    // An unreadable token file.
    let missing = h.dir.path().join("no-such-token");
    let out = h
        .run_env(
            &["sync"],
            &[
                ("Q_GROUP_SYNC_OKTA__API_TOKEN", ""),
                (
                    "Q_GROUP_SYNC_OKTA__API_TOKEN_FILE",
                    missing.to_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(error.contains("no-such-token"), "{error}");

    // A snapshot written by a newer q-group-sync.
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let conn = rusqlite::Connection::open(h.snapshot_path()).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let before = std::fs::read(h.snapshot_path()).unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.contains("schema version 99") && last.contains("upgrade"),
        "{last}"
    );
    assert_eq!(
        std::fs::read(h.snapshot_path()).unwrap(),
        before,
        "left as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_unrecorded_groups_and_adopts_on_request() {
    let h = Harness::start(org(3)).await;
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config).unwrap().replace("[state]", "[groups]\nname_prefix = \"okta:\"\nadopt_prefixed = true\n\n[safety]\nmax_group_deletes_percent = 100.0\n\n[state]"),
    )
    .unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The snapshot is lost; meanwhile one group was deleted in Okta.
    std::fs::remove_file(h.snapshot_path()).unwrap();
    h.okta.update(|o| o.groups.remove(&OktaOrg::group_id(2)));
    h.q.seed_group("not ours", &["x@example.test"]);
    let out = h.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&out);
    let found: Vec<&str> = r["look_managed_but_unrecorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["group"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["okta:team 000", "okta:team 001", "okta:team 002"]);
    assert!(
        h.q_state().contains_key("okta:team 002"),
        "reconcile deletes nothing by itself"
    );
    let out = h.run(&["reconcile", "--adopt"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut q = h.q_state();
    assert!(q.remove("not ours").is_some(), "never touched");
    let want: std::collections::BTreeMap<String, BTreeSet<String>> = expected(&h.okta.org())
        .into_iter()
        .map(|(k, v)| (format!("okta:{k}"), v))
        .collect();
    assert_eq!(q, want, "the adopted group gone from Okta is deleted");
}
