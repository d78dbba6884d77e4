//! The benchmark's controls over real HTTP: detailed stats and their reset, churn, the
//! background client sharing the rate-limit bucket, and the binary's flags.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Reply, get, send};
use q_group_sync_emulator::generate::{OrgSpec, Sizes, org_with_sizes};
use q_group_sync_emulator::{
    FaultAction, Matcher, OktaEmulator, OktaFault, OktaOptions, OktaOrg, QEmulator, QOptions,
};
use serde_json::{Value, json};

fn small_org() -> OktaOrg {
    org_with_sizes(
        &OrgSpec {
            seed: 5,
            groups: 40,
            users: 400,
            max_group_size: 60,
            messy: false,
        },
        Sizes::Heavy,
    )
}

async fn okta_get(emu: &OktaEmulator, path_and_query: &str) -> Reply {
    let auth = format!("SSWS {}", emu.token());
    get(
        &format!("{}{path_and_query}", emu.url()),
        &[("authorization", &auth)],
    )
    .await
}

async fn post(url: &str, body: &Value) -> Reply {
    send(
        "POST",
        url,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await
}

#[tokio::test]
async fn okta_stats_count_by_kind_and_reset() {
    let emu = OktaEmulator::start(small_org(), OktaOptions::default())
        .await
        .expect("emulator starts");
    let (a, b) = (OktaOrg::group_id(1), OktaOrg::group_id(2));
    assert_eq!(okta_get(&emu, "/api/v1/groups?limit=10").await.status, 200);
    for group in [&a, &a, &b] {
        let reply = okta_get(&emu, &format!("/api/v1/groups/{group}/users")).await;
        assert_eq!(reply.status, 200);
    }
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&b),
        FaultAction::RateLimited,
        1,
    ));
    assert_eq!(
        okta_get(&emu, &format!("/api/v1/groups/{b}/users"))
            .await
            .status,
        429
    );
    assert_eq!(
        okta_get(&emu, &format!("/api/v1/groups/{a}")).await.status,
        200
    );

    let url = format!("{}/_emulator/stats", emu.url());
    assert_eq!(
        get(&url, &[]).await.json(),
        json!({ "requests": 6, "rate_limited": 1 }),
        "the plain form is unchanged"
    );
    let detail = get(&format!("{url}?detail=true&groups=true"), &[])
        .await
        .json();
    assert_eq!(
        detail["list_groups"],
        json!({ "requests": 1, "rate_limited": 0 })
    );
    assert_eq!(
        detail["list_members"],
        json!({ "requests": 4, "rate_limited": 1 })
    );
    assert_eq!(detail["other"], json!({ "requests": 1, "rate_limited": 0 }));
    assert_eq!(detail["list_members_groups"], 2);
    assert_eq!(detail["list_members_group_ids"], json!([a, b]));
    assert_eq!(
        detail["bucket"],
        json!({ "limit": 10_000, "window_secs": 60.0 })
    );
    assert_eq!(detail["background"]["requests"], 0);
    let without_ids = get(&format!("{url}?detail=true"), &[]).await.json();
    assert!(without_ids.get("list_members_group_ids").is_none());
    assert_eq!(emu.stats().list_members.requests, 4);

    let reply = post(&format!("{}/_emulator/reset-stats", emu.url()), &json!({})).await;
    assert_eq!(reply.status, 200);
    let after = get(&format!("{url}?detail=true"), &[]).await.json();
    assert_eq!(
        (
            after["requests"].as_u64(),
            after["list_members_groups"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(emu.requests().is_empty(), "the request log is cleared too");
}

#[tokio::test]
async fn churn_changes_groups_and_reports_them() {
    let emu = OktaEmulator::start(small_org(), OktaOptions::default())
        .await
        .expect("emulator starts");
    let before = emu.org();
    let url = format!("{}/_emulator/churn", emu.url());
    let reply = post(
        &url,
        &json!({ "percent": 5.0, "seed": 3, "max_group_size": 60 }),
    )
    .await;
    assert_eq!(reply.status, 200);
    let churn = reply.json();
    let after = emu.org();
    let memberships: usize = before.groups.values().map(|g| g.members.len()).sum();
    assert_eq!(churn["memberships"].as_u64(), Some(memberships as u64));
    let changes = churn["added"].as_u64().unwrap_or(0) + churn["removed"].as_u64().unwrap_or(0);
    assert_eq!(changes, (memberships as f64 * 0.05).round() as u64);
    let changed: BTreeSet<String> = churn["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!changed.is_empty());
    for (id, old) in &before.groups {
        let new = &after.groups[id];
        assert_eq!(changed.contains(id), new.members != old.members, "{id}");
        assert!(new.members.len() <= 60);
    }
    // The changed groups show up in a delta listing, as q-group-sync's incremental read needs.
    let first = changed.iter().next().expect("one");
    let listed = okta_get(&emu, "/api/v1/groups?limit=200").await.json();
    let bumped = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|g| g["id"] == first.as_str())
        .expect("listed")["lastMembershipUpdated"]
        .as_str()
        .expect("date")
        .to_owned();
    assert!(bumped.as_str() > "2025-01-01", "bumped to now: {bumped}");

    // The same seed on the same org makes the same changes.
    let again = OktaEmulator::start(small_org(), OktaOptions::default())
        .await
        .expect("emulator starts");
    let reply = post(
        &format!("{}/_emulator/churn", again.url()),
        &json!({ "percent": 5.0, "seed": 3, "max_group_size": 60 }),
    )
    .await;
    assert_eq!(reply.json()["groups"], churn["groups"]);

    assert_eq!(post(&url, &json!({ "percent": 150.0 })).await.status, 400);
    assert_eq!(post(&url, &json!({ "seed": 1 })).await.status, 400);
}

#[tokio::test]
async fn background_client_spends_the_shared_bucket() {
    let options = OktaOptions {
        rate_limit: 30,
        background_rps: 100.0,
        ..OktaOptions::default()
    };
    let emu = OktaEmulator::start(small_org(), options)
        .await
        .expect("emulator starts");
    // 30 per minute, spent by the background client in about 0.3 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply = okta_get(&emu, "/api/v1/groups").await;
    assert_eq!(reply.status, 429, "the other client used up the bucket");
    assert_eq!(reply.header_num("x-rate-limit-limit"), 30);
    let stats = emu.stats();
    assert!(stats.background.requests >= 40, "{stats:?}");
    assert!(stats.background.rate_limited >= 10, "{stats:?}");
    assert_eq!(
        stats.background.requests - stats.background.rate_limited,
        30
    );
    assert_eq!(
        (stats.requests, stats.rate_limited),
        (1, 1),
        "only ours count here"
    );
    emu.reset_stats();
    assert_eq!(emu.stats().background.requests, 0);
}

#[tokio::test]
async fn q_stats_by_operation_and_reset() {
    let emu = QEmulator::start(QOptions::default()).await.expect("starts");
    let groups = format!(
        "{}/applications/{}/indices/{}/groups",
        emu.url(),
        emu.application_id(),
        emu.index_id()
    );
    let body = json!({
        "groupName": "eng",
        "type": "INDEX",
        "groupMembers": { "memberUsers": [{ "userId": "ana@example.test", "type": "INDEX" }] },
    });
    let put = send(
        "PUT",
        &groups,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(put.status, 200);
    assert_eq!(get(&format!("{groups}/eng"), &[]).await.status, 200);
    assert_eq!(get(&format!("{groups}/missing"), &[]).await.status, 404);

    let url = format!("{}/_emulator/stats", emu.url());
    assert_eq!(
        get(&url, &[]).await.json(),
        json!({ "calls": 3, "puts": 1, "deletes": 0, "throttled": 0 })
    );
    let detail = get(&format!("{url}?detail=true"), &[]).await.json();
    assert_eq!(detail["by_op"], json!({ "GetGroup": 2, "PutGroup": 1 }));
    assert_eq!(detail["groups"], 1);
    assert_eq!(emu.stats().by_op.get("GetGroup"), Some(&2));

    let reply = post(&format!("{}/_emulator/reset-stats", emu.url()), &json!({})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(get(&url, &[]).await.json()["calls"], 0);
    assert_eq!(emu.groups().len(), 1, "state is kept");
}

/// A group made by hand before the product's first sync, through the control endpoint: Q's
/// own APIs then show it like any other group (GetGroup SUCCEEDED, listed by ListGroups).
#[tokio::test]
async fn a_hand_made_group_is_seeded_over_http() {
    let emu = QEmulator::start(QOptions::default()).await.expect("starts");
    let url = format!("{}/_emulator/groups", emu.url());
    let reply = post(
        &url,
        &json!({ "name": "Sales & Marketing", "users": ["a@example.test", "b@example.test"] }),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(post(&url, &json!({ "name": "" })).await.status, 400);
    assert_eq!(post(&url, &json!({ "users": [] })).await.status, 400);
    let g = emu.group("Sales & Marketing").expect("seeded");
    assert_eq!(g.users.len(), 2);
    assert_eq!((g.status.as_str(), g.put_count), ("SUCCEEDED", 0));
    let groups = format!(
        "{}/applications/{}/indices/{}/groups",
        emu.url(),
        emu.application_id(),
        emu.index_id()
    );
    let state = get(&format!("{groups}/Sales%20%26%20Marketing"), &[]).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json()["status"]["status"], "SUCCEEDED");
    let listed = get(
        &format!("{groups}?updatedEarlierThan=2999-01-01T00%3A00%3A00Z&maxResults=10"),
        &[],
    )
    .await;
    assert_eq!(
        listed.json()["items"],
        json!([{ "groupName": "Sales & Marketing" }])
    );
    let before = get(
        &format!("{groups}?updatedEarlierThan=2000-01-01T00%3A00%3A00Z"),
        &[],
    )
    .await;
    assert_eq!(
        before.json()["items"],
        json!([]),
        "written after the cutoff"
    );
}

#[tokio::test]
async fn binary_takes_the_benchmark_flags() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync-emulator"))
        .args([
            "--groups",
            "30",
            "--users",
            "300",
            "--max-group-size",
            "100",
            "--sizes",
            "heavy",
            "--seed",
            "4",
            "--okta-rate-limit",
            "77",
            "--okta-rate-window",
            "30",
            "--okta-background-rps",
            "5",
            "--okta-users-rate-limit",
            "33",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("first line");
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    let expected = org_with_sizes(
        &OrgSpec {
            seed: 4,
            groups: 30,
            users: 300,
            max_group_size: 100,
            messy: false,
        },
        Sizes::Heavy,
    );
    let memberships: usize = expected.groups.values().map(|g| g.members.len()).sum();
    assert_eq!(info["memberships"].as_u64(), Some(memberships as u64));
    assert_eq!(info["groups"], 30);

    let okta = info["okta_url"].as_str().expect("okta_url");
    let auth = format!("SSWS {}", info["okta_token"].as_str().expect("token"));
    let reply = get(
        &format!("{okta}/api/v1/groups"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header_num("x-rate-limit-limit"), 77);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let reset_in = reply.header_num("x-rate-limit-reset") - now;
    assert!((0..=31).contains(&reset_in), "a 30 s window: {reset_in}");
    let stats = get(&format!("{okta}/_emulator/stats?detail=true"), &[])
        .await
        .json();
    assert_eq!(stats["bucket"], json!({ "limit": 77, "window_secs": 30.0 }));
    assert_eq!(stats["background"]["rps"], 5.0);

    let churn = post(
        &format!("{okta}/_emulator/churn"),
        &json!({ "percent": 1.0, "seed": 1 }),
    )
    .await;
    assert_eq!(churn.status, 200);
    assert!(
        churn.json()["groups"]
            .as_array()
            .is_some_and(|g| !g.is_empty())
    );

    let users = get(&format!("{okta}/api/v1/users"), &[("authorization", &auth)]).await;
    assert_eq!(users.status, 200);
    assert_eq!(users.header_num("x-rate-limit-limit"), 33);
    let touched = post(&format!("{okta}/_emulator/touch-users"), &json!({})).await;
    assert_eq!(touched.json(), json!({ "touched": 300 }));
    let deactivated = post(
        &format!("{okta}/_emulator/deactivate"),
        &json!({ "percent": 1.0, "seed": 2 }),
    )
    .await;
    assert_eq!(deactivated.status, 200);
    assert_eq!(
        deactivated.json()["users"].as_array().map(Vec::len),
        Some(3)
    );

    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after stdin closes")
        .expect("wait");
    assert!(status.success());
}
