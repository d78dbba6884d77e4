//! End to end: users deactivated, suspended, reactivated or renamed in Okta reach Q Business on
//! the next plain pass (no `--full`), through the real binary against the emulators, with the
//! default configuration. Okta moves the user's `lastUpdated` for these changes and never the
//! groups' `lastMembershipUpdated`, as the emulator models.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Harness, expected, org_with, text};
use q_group_sync::clock::{Clock, SystemClock};
use q_group_sync_emulator::{OktaOrg, OktaStats};

const ADMIN: &str = "admin-token-for-lifecycle-tests";

/// 20 groups of 40 users: user `u` is in group `g` when `u % 20 == g` or `u % 7 == g % 7`;
/// "Board" (group 20) holds only user 3; user 3 is also in groups 3, 10 and 17.
fn lifecycle_org() -> OktaOrg {
    let mut o = org_with(
        21,
        40,
        |g| {
            if g == 20 {
                "Board".to_owned()
            } else {
                format!("Team {g:02}")
            }
        },
        |u, g| {
            if g == 20 {
                u == 3
            } else {
                u % 20 == g || u % 7 == g % 7
            }
        },
    );
    // Memberships last changed an hour ago, so the first pass's reads count as current and the
    // following passes read a group only when something tells them to.
    let now = SystemClock.now().timestamp();
    let hour_ago = now - 3600;
    for g in o.groups.values_mut() {
        g.last_membership_updated = hour_ago;
        g.last_updated = hour_ago;
    }
    o
}

fn user(n: usize) -> String {
    OktaOrg::user_id(n)
}

fn member_reads(stats: &OktaStats) -> usize {
    stats.list_members.requests
}

fn groups_of(org: &OktaOrg, n: usize) -> Vec<String> {
    org.groups_of(&user(n))
        .iter()
        .map(|g| g.name.clone())
        .collect()
}

async fn sync_ok(h: &Harness) -> String {
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    text(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_suspended_renamed_and_reactivated_users_on_the_next_plain_sync() {
    let h = Harness::start(lifecycle_org()).await;
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    let board = h.q_state()["Board"].clone();
    assert_eq!(board.len(), 1, "user 3 alone");
    let user3_groups = groups_of(&h.okta.org(), 3);
    assert_eq!(user3_groups.len(), 4, "{user3_groups:?}");

    // A no-change pass reads no group's members.
    h.okta.reset_stats();
    let out = sync_ok(&h).await;
    assert!(out.contains("Q Business matches Okta"), "{out}");
    assert_eq!(member_reads(&h.okta.stats()), 0);

    // Deactivated: out of all four groups, including the one where they were alone, on the
    // next plain sync, which reads those four groups only.
    h.okta.update(|o| o.deactivate_user(&user(3))).unwrap();
    h.okta.reset_stats();
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert!(h.q_state()["Board"].is_empty());
    let stats = h.okta.stats();
    assert_eq!(member_reads(&stats), 4, "only user 3's groups");
    assert_eq!(stats.list_users.requests, 1, "one users page");

    // Suspended: the same.
    h.okta.update(|o| o.suspend_user(&user(9))).unwrap();
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert!(
        h.q_state()
            .values()
            .all(|m| !m.contains("user9@example.test"))
    );

    // A new email: renamed in every group.
    h.okta
        .update(|o| o.set_user_email(&user(12), Some("twelve@example.test")));
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    let renamed = h
        .q_state()
        .values()
        .filter(|m| m.contains("twelve@example.test"))
        .count();
    assert_eq!(renamed, groups_of(&h.okta.org(), 12).len());

    // Reactivated and unsuspended: back in every group.
    h.okta.update(|o| o.reactivate_user(&user(3))).unwrap();
    h.okta.update(|o| o.unsuspend_user(&user(9))).unwrap();
    h.okta.reset_stats();
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert_eq!(h.q_state()["Board"], board);
    assert_eq!(
        h.okta.stats().user_groups.requests,
        2,
        "their groups are asked of Okta"
    );

    // A nightly HR job touches every profile: no group is read again.
    h.okta.update(OktaOrg::touch_all_users);
    h.okta.reset_stats();
    let out = sync_ok(&h).await;
    assert!(out.contains("Nothing to do"), "{out}");
    let stats = h.okta.stats();
    assert_eq!(member_reads(&stats), 0);
    assert_eq!(stats.list_users.requests, 1, "40 users fit one page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_users_listing_is_reported_and_caught_up() {
    use q_group_sync_emulator::{FaultAction, Matcher, OktaFault};
    let h = Harness::start(lifecycle_org()).await;
    sync_ok(&h).await;
    h.okta.update(|o| o.deactivate_user(&user(3))).unwrap();
    h.okta.add_fault(OktaFault::always(
        Matcher::users_listing(),
        FaultAction::Status(503),
    ));
    let out = h.run(&["sync", "--output", "json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["users"]["how"], "listing", "{}", text(&out));
    assert!(
        report["users"]["error"]
            .as_str()
            .unwrap()
            .contains("users listing failed"),
        "{report:#}"
    );
    assert!(report["next_full_read_at"].is_string());
    let plain = h.run(&["plan"]).await;
    let plain = text(&plain);
    assert!(!plain.contains("matches Okta"), "{plain}");
    assert!(plain.contains("not checked"), "{plain}");
    assert_eq!(h.q_state()["Board"].len(), 1, "not yet seen");
    h.okta.clear_faults();
    sync_ok(&h).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspicious_empty_group_is_held_alone() {
    let h = Harness::start(lifecycle_org()).await;
    sync_ok(&h).await;
    // Okta suddenly lists no one for Team 05 (several members), and user 3 is deactivated.
    h.okta
        .update(|o| {
            let g = OktaOrg::group_id(5);
            let members: Vec<String> = o.groups[&g].members.iter().cloned().collect();
            for m in &members {
                o.remove_member(&g, m);
            }
            o.deactivate_user(&user(3))
        })
        .unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let q = h.q_state();
    assert!(!q["Team 05"].is_empty(), "held");
    assert!(q["Board"].is_empty(), "user 3's removals applied");
    for g in groups_of(&h.okta.org(), 3) {
        assert!(!q[&g].contains("user3@example.test"), "{g}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_removes_a_deactivated_user_on_its_next_pass() {
    let h = Harness::start(lifecycle_org()).await;
    h.add_config(&format!(
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\n[server]\nadmin_token = \"{ADMIN}\"\n"
    ));
    let s = h.serve(&[]).await;
    s.wait_status(30, "start-up pass", |st| {
        st["last_pass"]["outcome"] == "success"
    })
    .await;
    h.okta.update(|o| o.deactivate_user(&user(3))).unwrap();
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id: serde_json::Value = resp.json().await.unwrap();
    let id = id["pass_id"].as_str().unwrap().to_owned();
    s.wait_status(30, "the triggered pass", |st| {
        st["last_pass"]["pass_id"] == id.as_str() && st["pass_running"] == false
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert!(h.q_state()["Board"].is_empty());
    let st = s.status().await;
    assert_eq!(st["last_pass"]["users"]["how"], "listing", "{st:#}");
    assert_eq!(st["last_pass"]["users"]["users_changed"], 1, "{st:#}");
    assert!(st["last_pass"]["next_full_read_at"].is_string(), "{st:#}");
}
