//! End to end: how soon an Okta change is in Q Business under `serve`'s default cadence (no
//! `[schedule]`: a light check every `sync.poll_every`, every group listed every
//! `sync.full_listing_every`), what a quiet org costs, and that an explicit `schedule.cron`
//! still lists every group on every pass. The real binary against the emulators; changes made
//! at random moments. The intervals are shortened (scaled from the defaults), except in
//! `the_real_defaults_bring_a_change_to_q_within_a_minute`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Served, expected, org_with};
use q_group_sync_emulator::{OktaOptions, OktaOrg, StampPrecision};
use rand::Rng;

/// 30 groups of 60 users: user `u` is in group `g` when `u % 30 == g` or `u % 7 == g % 7`.
fn org() -> OktaOrg {
    org_with(
        30,
        60,
        |g| format!("Team {g:02}"),
        |u, g| u % 30 == g || u % 7 == g % 7,
    )
}

/// `[sync]` with the polling intervals shortened, and the overlap (120 s, within which a
/// changed group's members are read again by every check) and the full listing's rate (2 a
/// minute, which would stretch a shortened interval to 30 s for one page) with them.
fn cadence(poll: &str, full: &str) -> String {
    format!(
        "\n[sync]\npoll_every = \"{poll}\"\nfull_listing_every = \"{full}\"\nfull_listing_rate = 120\noverlap = \"4s\"\nstamp_margin = \"1s\"\n"
    )
}

async fn harness(extra: &str) -> Harness {
    harness_of(org(), extra).await
}

async fn harness_of(org: OktaOrg, extra: &str) -> Harness {
    Harness::start_with(
        org,
        OktaOptions {
            token: common::TOKEN.into(),
            ..OktaOptions::default()
        },
        extra,
    )
    .await
}

/// Waits until Q holds what Okta says, up to `within`; returns how long it took.
async fn until_q_matches(h: &Harness, served: &Served, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let want = expected(&h.okta.org());
        if h.q_state() == want {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!(
                "{what}: not in Q within {within:?}\nQ: {:?}\nwant: {want:?}\nlogs:\n{}",
                h.q_state(),
                served.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One change of each kind the issue names, in turn: a member added, a member removed, a
/// group renamed, a user deactivated, a user reactivated.
fn change(org: &mut OktaOrg, n: usize) -> &'static str {
    let g = OktaOrg::group_id(n % 30);
    match n % 5 {
        0 => {
            let u = OktaOrg::user_id((n * 11) % 60);
            if !org.add_member(&g, &u) {
                org.remove_member(&g, &u);
            }
            "membership"
        }
        1 => {
            let u = org.groups[&g].members.iter().next().cloned().unwrap();
            org.remove_member(&g, &u);
            "removal"
        }
        2 => {
            org.rename_group(&g, &format!("Team {:02} renamed {n}", n % 30));
            "rename"
        }
        3 => {
            org.deactivate_user(&OktaOrg::user_id(n % 60)).unwrap();
            "deactivation"
        }
        _ => {
            org.reactivate_user(&OktaOrg::user_id((n - 1) % 60))
                .unwrap();
            "reactivation"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_at_random_moments_reach_q_within_two_checks() {
    // 30 s and 15 min scaled by 1/15: 2 s and 60 s. The bound, 60 s with 30 s
    // checks, is two checks; here 4 s, plus 2 s for a pass of the debug build.
    let h = harness(&cadence("2s", "60s")).await;
    let served = h.serve_synced("", 60).await;
    until_q_matches(&h, &served, Duration::from_secs(10), "the start-up pass").await;
    let mut rng = rand::rng();
    let mut took = Vec::new();
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
        let what = h.okta.update(|o| change(o, n));
        let t = until_q_matches(&h, &served, Duration::from_secs(6), what).await;
        took.push(t);
    }
    took.sort();
    eprintln!("change -> Q, 10 changes: {took:?}");

    // A quiet org: each check lists the changed groups (one page) and the updated users (one
    // page), and reads no member list (once the overlap after the last change has passed).
    tokio::time::sleep(Duration::from_secs(6)).await;
    h.okta.reset_stats();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let stats = h.okta.stats();
    assert_eq!(stats.list_members.requests, 0, "{stats:?}");
    assert!(
        (2..=5).contains(&stats.list_groups.requests),
        "one groups listing per check: {stats:?}"
    );
    assert!(
        stats.list_users.requests <= stats.list_groups.requests + 1,
        "{stats:?}"
    );
    let listings: Vec<String> = h
        .okta
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/groups")
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert!(
        listings
            .iter()
            .all(|q| q.contains("lastUpdated%20gt") && q.contains("lastMembershipUpdated%20gt")),
        "light checks list only changed groups: {listings:?}"
    );
}

/// Okta's documentation leaves the stamps' precision open; the emulator stamps whole seconds
/// unless told otherwise (the test above). Under the other reading, changes a few hundred
/// milliseconds apart get stamps a `gt` filter tells apart, and each is found as soon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_q_as_soon_under_millisecond_stamps() {
    let mut o = org();
    o.stamp_precision = StampPrecision::Millis;
    let h = harness_of(o, &cadence("2s", "60s")).await;
    let served = h.serve_synced("", 60).await;
    until_q_matches(&h, &served, Duration::from_secs(10), "the start-up pass").await;
    let mut rng = rand::rng();
    for n in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
        let what = h.okta.update(|o| change(o, n));
        // Two changes in one second: the second one must be found as well.
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.okta.update(|o| change(o, n + 5));
        until_q_matches(&h, &served, Duration::from_secs(6), what).await;
    }
    assert!(
        h.okta
            .org()
            .groups
            .values()
            .any(|g| g.last_updated_ms != 0 || g.last_membership_updated_ms != 0),
        "the changes were stamped with milliseconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_in_okta_is_deleted_in_q_within_the_full_listing_cadence() {
    let h = harness(&cadence("1s", "8s")).await;
    let served = h.serve_synced("", 60).await;
    until_q_matches(&h, &served, Duration::from_secs(10), "the start-up pass").await;
    // After the overlap (4 s) and a check: within it a check reads the start-up's groups again, and the
    // read's 404 would delete the group before any full listing.
    let mut rng = rand::rng();
    tokio::time::sleep(Duration::from_millis(5_000 + rng.random_range(0..8000))).await;
    let gone = OktaOrg::group_id(7);
    assert!(h.okta.update(|o| o.remove_group(&gone)));
    // The next full listing (at most 8 s away) finds it gone; 3 s for the pass.
    let t = until_q_matches(&h, &served, Duration::from_secs(11), "the deletion").await;
    assert!(!h.q_state().contains_key("Team 07"));
    eprintln!("deleted group gone from Q after {t:?}");
    // Light checks alone never delete: the listing that found it was a full one.
    let full_listings = h
        .okta
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == "/api/v1/groups"
                && !r
                    .query
                    .as_deref()
                    .unwrap_or_default()
                    .contains("lastMembershipUpdated")
        })
        .count();
    assert!(full_listings >= 2, "the start-up and a cadence listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_cron_lists_every_group_on_every_pass() {
    let h = harness("\n[schedule]\ncron = \"*/2 * * * * *\"\n").await;
    let served = h.serve_synced("", 60).await;
    until_q_matches(&h, &served, Duration::from_secs(10), "the start-up pass").await;
    h.okta.reset_stats();
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.okta.update(|o| change(o, 0));
    until_q_matches(&h, &served, Duration::from_secs(6), "a change").await;
    let listings: Vec<String> = h
        .okta
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/groups")
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert!(listings.len() >= 2, "{listings:?}");
    assert!(
        listings.iter().all(|q| !q.contains("lastUpdated")),
        "every pass lists every group: {listings:?}"
    );
    let status = served.status().await;
    assert_eq!(status["schedule"], "*/2 * * * * *");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_defaults_bring_a_change_to_q_within_a_minute() {
    let h = harness("").await;
    let served = h.serve_synced("", 60).await;
    until_q_matches(&h, &served, Duration::from_secs(10), "the start-up pass").await;
    let status = served.status().await;
    assert_eq!(
        status["schedule"],
        "every 30s (every group listed every 15m, or as its pages allow at 2 requests a minute)"
    );
    assert!(status["next_full_listing"].is_string(), "{status}");
    let mut rng = rand::rng();
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..30_000))).await;
    h.okta.update(|o| change(o, 0));
    let t = until_q_matches(&h, &served, Duration::from_secs(60), "a change").await;
    eprintln!("change -> Q with the real defaults: {t:?}");
}
