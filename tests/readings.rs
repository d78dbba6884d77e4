//! Where the AWS documentation leaves Q Business's behaviour open, the product is right under
//! every reading: the real binary against the Q Business emulator switched to each one
//! ([`QModes`]): a stale GetGroup, a put that changes nothing, an empty member list, an empty
//! group, a ListGroups cutoff in the future; and ids that are not emails keep their case.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Harness, TOKEN, text};
use q_group_sync_emulator::{EmptyMembers, OktaOptions, OktaOrg, QFault, QFaultAction, QModes};

fn okta_options() -> OktaOptions {
    OktaOptions {
        token: TOKEN.into(),
        ..OktaOptions::default()
    }
}

/// Removals of whole groups' members pass the circuit breaker (these tests empty groups).
const LET_EMPTY: &str = "\n[safety]\nblock_empty_groups = false\nmax_member_removals_percent = 100\nmax_group_deletes_percent = 100\n";

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn users(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until the wall clock has passed a whole second since now: a status written before
/// the wait and a put sent after it fall in different seconds of the service's `Date`.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_success_does_not_confirm_a_put_that_then_fails_and_the_next_pass_writes_it_again()
{
    // One group, ana in it; bo joins later.
    let org = common::org_with(1, 2, |_| "team".to_owned(), |u, _| u == 0);
    let h = Harness::start_with(org, okta_options(), "").await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state()["team"], users(&["user0@example.test"]));

    // GetGroup now answers the previous SUCCEEDED for 2 s after a put, and the next put FAILS.
    h.q.set_modes(QModes {
        status_lag: Duration::from_secs(2),
        ..QModes::default()
    });
    h.q.add_fault(
        QFault::times(
            QFaultAction::FailAsync {
                error_code: "InternalError".into(),
                message: "the index could not apply the group".into(),
            },
            1,
        )
        .on_op("PutGroup")
        .on_group("team"),
    );
    h.okta
        .update(|o| o.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(1)));
    next_second().await;
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report:#}");
    assert_eq!(failures[0]["group"], "team");
    assert_eq!(failures[0]["kind"], "async_failed", "{report:#}");
    // Q kept the previous members: the failed put changed nothing.
    assert_eq!(h.q_state()["team"], users(&["user0@example.test"]));

    // The next pass (the stale window still on) writes the group again, and it holds.
    next_second().await;
    let puts_before = h.q.group("team").unwrap().put_count;
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["puts_applied"], 1, "{report:#}");
    assert_eq!(h.q.group("team").unwrap().put_count, puts_before + 1);
    assert_eq!(
        h.q_state()["team"],
        users(&["user0@example.test", "user1@example.test"])
    );
    // And once recorded, nothing is left to write.
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["puts_applied"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_not_visible_yet_is_confirmed_once_it_shows() {
    let org = common::org_with(2, 3, |g| format!("group {g}"), |_, _| true);
    let h = Harness::start_with(org, okta_options(), "").await;
    h.q.set_modes(QModes {
        status_lag: Duration::from_millis(1500),
        ..QModes::default()
    });
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["puts_applied"], 2);
}

/// An org with "team" (one member, to be emptied) and "big" (5 members: chunked at a limit of 4).
async fn empty_harness(reading: EmptyMembers) -> Harness {
    let org = common::org_with(
        2,
        6,
        |g| if g == 0 { "team".into() } else { "big".into() },
        |u, g| if g == 0 { u == 0 } else { u >= 1 },
    );
    let h = Harness::start_with(org, okta_options(), LET_EMPTY).await;
    let text_cfg = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text_cfg.replace("[qbusiness]", "[qbusiness]\ninline_member_limit = 4"),
    )
    .unwrap();
    h.q.set_modes(QModes {
        empty_members: reading,
        ..QModes::default()
    });
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_group_holds_no_member_in_q_under_every_empty_list_reading() {
    for reading in [
        EmptyMembers::Accept,
        EmptyMembers::OmitOnly,
        EmptyMembers::Refuse,
    ] {
        let h = empty_harness(reading).await;
        // Chunk parents carry only their chunk list: accepted under every reading.
        let out = h.run(&["sync", "--output", "json"]).await;
        assert_eq!(out.status.code(), Some(0), "{reading:?}: {}", text(&out));
        assert_eq!(
            h.q.effective_members("big").unwrap().len(),
            5,
            "{reading:?}"
        );
        let parent_puts: Vec<_> =
            h.q.calls()
                .into_iter()
                .filter(|c| c.op == "PutGroup" && c.group.as_deref() == Some("big"))
                .collect();
        assert!(
            parent_puts.iter().all(|c| c.status == 200),
            "{reading:?}: {parent_puts:?}"
        );

        // "team" loses its only member in Okta.
        h.okta
            .update(|o| o.remove_member(&OktaOrg::group_id(0), &OktaOrg::user_id(0)));
        let out = h.run(&["sync", "--output", "json"]).await;
        assert_eq!(out.status.code(), Some(0), "{reading:?}: {}", text(&out));
        assert_eq!(json(&out)["puts_applied"], 1, "{reading:?}: {}", text(&out));
        let members = h.q.effective_members("team");
        assert!(
            members.as_ref().is_none_or(BTreeSet::is_empty),
            "{reading:?}: Q still holds {members:?}"
        );
        match reading {
            EmptyMembers::Refuse => assert!(h.q.group("team").is_none(), "deleted"),
            _ => assert!(h.q.group("team").is_some(), "kept, empty"),
        }
        // Recorded: the next pass has nothing to write.
        h.q.reset_calls();
        let out = h.run(&["sync", "--output", "json"]).await;
        assert_eq!(out.status.code(), Some(0), "{reading:?}: {}", text(&out));
        assert_eq!(json(&out)["puts_applied"], 0, "{reading:?}");
        assert_eq!(h.q.put_count(), 0, "{reading:?}");

        // Members again: the group is written (created again where it was deleted), still
        // owned (no first-contact refusal).
        h.okta
            .update(|o| o.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(5)));
        let out = h.run(&["sync", "--output", "json"]).await;
        assert_eq!(out.status.code(), Some(0), "{reading:?}: {}", text(&out));
        let report = json(&out);
        assert_eq!(
            report["plan"]["issues"],
            serde_json::json!([]),
            "{reading:?}"
        );
        assert_eq!(
            h.q_state()["team"],
            users(&["user5@example.test"]),
            "{reading:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ownership_check_lists_groups_when_a_future_cutoff_is_refused() {
    // 25 new groups, one of which an admin made by hand in Q; the service's clock is two
    // minutes behind ours, and ListGroups refuses a cutoff ahead of its clock.
    let org = common::org_with(25, 4, |g| format!("group {g:02}"), |u, g| (u + g) % 2 == 0);
    let h = Harness::start_with(org, okta_options(), "").await;
    h.q.set_modes(QModes {
        future_cutoff: false,
        clock_skew_secs: -120,
        ..QModes::default()
    });
    // Made by hand just before the first sync.
    h.q.seed_group("group 07", &["admin@example.test"]);
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    let issues = report["plan"]["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["group"], "group 07");
    assert_eq!(issues[0]["kind"], "not_owned");
    assert_eq!(report["puts_applied"], 24);
    assert_eq!(
        h.q.group("group 07").unwrap().users,
        users(&["admin@example.test"])
    );

    // Answered by ListGroups (one to learn the service's clock, then three pages, none
    // refused), not by 25 GetGroup calls.
    let calls = h.q.calls();
    let first_put = calls.iter().position(|c| c.op == "PutGroup").unwrap();
    let before: Vec<_> = calls[..first_put].iter().collect();
    let lists = before.iter().filter(|c| c.op == "ListGroups").count();
    let refused = before
        .iter()
        .filter(|c| c.op == "ListGroups" && c.status == 400)
        .count();
    let lookups = before.iter().filter(|c| c.op == "GetGroup").count();
    assert_eq!(lookups, 0, "{before:?}");
    assert_eq!(refused, 0, "{before:?}");
    assert!((2..=4).contains(&lists), "{before:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_attribute_that_is_not_an_email_keeps_its_case() {
    let mut org = OktaOrg::default();
    let ids = [
        // A login that is not an email: exactly as Okta has it.
        ("JDoe", "jdoe@example.test"),
        // One that is: lowercased, its +tag folded.
        ("Ana.Smith+hr@Example.TEST", "ana.smith@example.test"),
        // A Windows-style login.
        ("CORP\\BoJones", "bo@example.test"),
    ];
    for (n, (login, email)) in ids.iter().enumerate() {
        org.add_user(&OktaOrg::user_id(n), "ACTIVE", Some(email), login);
    }
    org.add_group(&OktaOrg::group_id(0), "team", "OKTA_GROUP");
    for n in 0..ids.len() {
        org.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(n));
    }
    let h = Harness::start_with(org, okta_options(), "").await;
    h.add_config("\n[users]\nid_attribute = \"login\"\n");
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        h.q_state()["team"],
        users(&["JDoe", "ana.smith@example.test", "CORP\\BoJones"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_changes_nothing_is_confirmed_only_where_the_probe_found_its_status_stays() {
    let org = common::org_with(1, 2, |_| "team".to_owned(), |_, _| true);
    let h = Harness::start_with(org, okta_options(), "").await;
    let config = std::fs::read_to_string(&h.config).unwrap();
    let with_timeout = |t: &str| {
        std::fs::write(
            &h.config,
            config.replace(
                "[qbusiness]",
                &format!("[qbusiness]\nverify_timeout = \"{t}\""),
            ),
        )
        .unwrap();
    };
    // Q Business leaves the status of a put that changes nothing as it was.
    h.q.set_modes(QModes {
        noop_moves_status: false,
        ..QModes::default()
    });
    // A put Q applies but that is not confirmed in time: not recorded, written again.
    with_timeout("1s");
    h.q.add_fault(
        QFault::times(QFaultAction::Processing(Duration::from_secs(2)), 1)
            .on_op("PutGroup")
            .on_group("team"),
    );
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json(&out)["failures"][0]["kind"], "unverified");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The next put falls in a later second than this one's SUCCEEDED (the service's `Date`
    // counts whole seconds; two processes' writes within one second cannot be told apart).
    next_second().await;
    assert_eq!(
        h.q_state()["team"],
        users(&["user0@example.test", "user1@example.test"])
    );

    // Nothing known: the same put again changes nothing, its status never moves, and it is
    // not taken as confirmed (safe: written again next pass).
    with_timeout("3s");
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json(&out)["failures"][0]["kind"], "unverified");

    // The probe finds that such a put keeps its status, and records it: the next pass takes
    // the unmoved SUCCEEDED as the put's once the probe's delay has passed, and says so.
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("write probe: status moves on a put that changes nothing: no"),
        "{}",
        text(&out)
    );
    with_timeout("30s");
    let out = h
        .run(&["--log-format", "json", "sync", "--output", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["puts_applied"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("taken as a put that changed nothing"),
        "{}",
        text(&out)
    );
    let out = h.run(&["sync", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["puts_applied"], 0);
}
