//! `GET /api/v1/logs` and `GET /api/v1/users/{id}/groups` over real HTTP: polling semantics
//! (the `next` link is always there, empty pages, cursor continuity), filters, parameter errors,
//! the System Log's own rate-limit bucket, auth and fault injection.

mod common;

use std::time::Duration;

use common::{Reply, get, send};
use q_group_sync_emulator::{
    FaultAction, Matcher, OktaEmulator, OktaFault, OktaOptions, OktaOrg, QEmulator, QOptions,
};
use serde_json::{Value, json};

/// Users 0..5, groups 0..3; user 0 is in groups 0 and 2.
fn org() -> OktaOrg {
    let mut org = OktaOrg::default();
    for n in 0..5 {
        let login = format!("user.{n}@example.test");
        org.add_user(&OktaOrg::user_id(n), "ACTIVE", Some(&login), &login);
    }
    for n in 0..3 {
        org.add_group(&OktaOrg::group_id(n), &format!("Group {n}"), "OKTA_GROUP");
    }
    org.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(0));
    org.add_member(&OktaOrg::group_id(2), &OktaOrg::user_id(0));
    org
}

async fn start(options: OktaOptions) -> OktaEmulator {
    OktaEmulator::start(org(), options).await.expect("starts")
}

async fn okta_get(emu: &OktaEmulator, path_and_query: &str) -> Reply {
    let auth = format!("SSWS {}", emu.token());
    get(
        &format!("{}{path_and_query}", emu.url()),
        &[("authorization", &auth)],
    )
    .await
}

async fn follow(emu: &OktaEmulator, url: &str) -> Reply {
    let auth = format!("SSWS {}", emu.token());
    get(url, &[("authorization", &auth)]).await
}

fn event_types(reply: &Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn polling_query() -> String {
    let filter = "eventType sw \"group.\" or eventType sw \"user.\"";
    format!(
        "/api/v1/logs?sortOrder=ASCENDING&limit=2&since=2020-01-01T00:00:00.000Z&filter={}",
        filter.replace(' ', "%20").replace('"', "%22")
    )
}

#[tokio::test]
async fn seeding_is_not_logged_and_mutations_are() {
    let emu = start(OktaOptions::default()).await;
    let reply = okta_get(&emu, "/api/v1/logs").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!([]), "the org's seeding is history");
    emu.update(|o| {
        assert!(o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(3)));
        assert!(o.remove_member(&OktaOrg::group_id(0), &OktaOrg::user_id(0)));
        assert!(o.rename_group(&OktaOrg::group_id(1), "Renamed"));
        assert!(o.remove_group(&OktaOrg::group_id(2)));
        o.add_group("00gnew00000000000001", "New", "OKTA_GROUP");
        assert!(o.set_user_status(&OktaOrg::user_id(1), "DEPROVISIONED"));
        assert!(!o.set_user_status(&OktaOrg::user_id(1), "DEPROVISIONED"));
        assert!(o.set_user_status(&OktaOrg::user_id(2), "SUSPENDED"));
        assert!(o.set_user_email(&OktaOrg::user_id(3), Some("new@example.test")));
        o.add_user(
            "00unew00000000000001",
            "STAGED",
            None,
            "new.user@example.test",
        );
        assert!(o.remove_user(&OktaOrg::user_id(4)));
    });
    let reply = okta_get(&emu, "/api/v1/logs?limit=1000").await;
    assert_eq!(
        event_types(&reply),
        [
            "group.user_membership.add",
            "group.user_membership.remove",
            "group.profile.update",
            "group.lifecycle.delete",
            "group.lifecycle.create",
            "user.lifecycle.deactivate",
            "user.lifecycle.suspend",
            "user.account.update_profile",
            "user.lifecycle.create",
            "user.lifecycle.delete.initiated",
        ]
    );
    let events = reply.json();
    let add = &events[0];
    let user = OktaOrg::user_id(3);
    let group = OktaOrg::group_id(1);
    let target = |kind: &str| {
        add["target"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(target("User")["id"], user.as_str());
    assert_eq!(target("User")["alternateId"], "user.3@example.test");
    assert_eq!(target("UserGroup")["id"], group.as_str());
    assert_eq!(target("UserGroup")["displayName"], "Group 1");
    assert_eq!(add["outcome"]["result"], "SUCCESS");
    assert!(add["uuid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(add["published"].as_str().is_some_and(|p| p.ends_with('Z')));
}

#[tokio::test]
async fn polling_always_links_next_and_resumes_without_gaps_or_duplicates() {
    let emu = start(OktaOptions::default()).await;
    let reply = okta_get(&emu, &polling_query()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!([]));
    let mut next = reply.next_link().expect("next even on an empty first page");
    assert!(next.contains("after="), "{next}");
    assert!(!next.contains("since="), "after replaces since: {next}");
    assert!(
        next.contains("sortOrder=ASCENDING") && next.contains("filter="),
        "{next}"
    );
    let empty = follow(&emu, &next).await;
    assert_eq!(empty.json(), json!([]));
    next = empty.next_link().expect("next on an empty page");

    let mut seen = Vec::new();
    for round in 0..3 {
        emu.update(|o| {
            for u in 0..3 {
                o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(u));
                o.remove_member(&OktaOrg::group_id(1), &OktaOrg::user_id(u));
            }
            o.set_user_email(
                &OktaOrg::user_id(4),
                Some(&format!("r{round}@example.test")),
            );
        });
        loop {
            let reply = follow(&emu, &next).await;
            assert_eq!(reply.status, 200);
            let events = reply.json();
            let events = events.as_array().expect("array").clone();
            assert!(events.len() <= 2, "limit honoured");
            next = reply.next_link().expect("next is always present");
            if events.is_empty() {
                break;
            }
            seen.extend(
                events
                    .iter()
                    .map(|e| e["uuid"].as_str().unwrap_or("").to_owned()),
            );
        }
    }
    let logged: Vec<String> = emu
        .org()
        .log
        .events()
        .iter()
        .map(|e| e.uuid.clone())
        .collect();
    assert_eq!(logged.len(), 21);
    assert_eq!(seen, logged, "every event once, in order");
}

#[tokio::test]
async fn late_events_are_delivered_after_the_cursor() {
    let emu = start(OktaOptions::default()).await;
    let first = okta_get(&emu, "/api/v1/logs").await;
    let next = first.next_link().expect("next");
    emu.update(|o| {
        o.log.lag = Duration::from_millis(700);
        o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(1));
        o.log.lag = Duration::ZERO;
        o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(2));
    });
    let reply = follow(&emu, &next).await;
    let events = reply.json();
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    assert_eq!(
        events[0]["target"][0]["id"],
        OktaOrg::user_id(2).as_str(),
        "the prompt event first"
    );
    let next = reply.next_link().expect("next");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = follow(&emu, &next).await;
    let late = reply.json();
    assert_eq!(late.as_array().map(Vec::len), Some(1));
    assert_eq!(late[0]["target"][0]["id"], OktaOrg::user_id(1).as_str());
    assert!(
        late[0]["published"].as_str() <= events[0]["published"].as_str(),
        "persistence order differs from published order"
    );
}

#[tokio::test]
async fn filters_limits_and_parameter_errors() {
    let emu = start(OktaOptions::default()).await;
    emu.update(|o| {
        o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(1));
        o.set_user_status(&OktaOrg::user_id(1), "LOCKED_OUT");
        o.set_user_status(&OktaOrg::user_id(2), "SUSPENDED");
    });
    let reply = okta_get(
        &emu,
        "/api/v1/logs?filter=eventType%20eq%20%22group.user_membership.add%22%20or%20eventType%20sw%20%22user.lifecycle.%22",
    )
    .await;
    assert_eq!(
        event_types(&reply),
        ["group.user_membership.add", "user.lifecycle.suspend"]
    );
    let reply = okta_get(&emu, "/api/v1/logs?limit=0").await;
    assert_eq!((reply.status, reply.json()), (200, json!([])));
    assert!(reply.next_link().is_some());
    for (query, code) in [
        ("limit=1001", "E0000053"),
        ("limit=-1", "E0000053"),
        (
            "filter=published%20gt%20%222024-01-01T00%3A00%3A00.000Z%22",
            "E0000053",
        ),
        ("filter=eventType%20eq", "E0000053"),
        ("since=2024-01-01T00%3A00%3A00.000Z&after=1_1", "E0000053"),
        ("since=last%20week", "E0000030"),
        ("sortOrder=SIDEWAYS", "E0000053"),
    ] {
        let reply = okta_get(&emu, &format!("/api/v1/logs?{query}")).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json()["errorCode"], code, "{query}");
    }
}

#[tokio::test]
async fn bounded_mode_pages_end() {
    let emu = start(OktaOptions::default()).await;
    emu.update(|o| {
        for u in 0..5 {
            o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(u));
        }
    });
    // `since` defaults to 7 days before `until`: nothing is that far in the future.
    let far = okta_get(&emu, "/api/v1/logs?until=2999-01-01T00%3A00%3A00.000Z").await;
    assert_eq!(far.json(), json!([]));
    assert!(far.next_link().is_none(), "bounded pages end");
    let mut reply = okta_get(
        &emu,
        "/api/v1/logs?limit=2&since=2020-01-01T00%3A00%3A00.000Z&until=2999-01-01T00%3A00%3A00.000Z",
    )
    .await;
    let mut count = 0;
    loop {
        count += reply.json().as_array().map_or(0, Vec::len);
        match reply.next_link() {
            Some(next) => reply = follow(&emu, &next).await,
            None => break,
        }
    }
    assert_eq!(count, 5);
}

#[tokio::test]
async fn the_logs_bucket_is_separate_and_answers_429() {
    let emu = start(OktaOptions {
        logs_rate_limit: 2,
        rate_limit: 100,
        ..OktaOptions::default()
    })
    .await;
    for _ in 0..2 {
        let reply = okta_get(&emu, "/api/v1/logs").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header_num("x-rate-limit-limit"), 2);
    }
    let reply = okta_get(&emu, "/api/v1/logs").await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["errorCode"], "E0000047");
    assert_eq!(reply.header_num("x-rate-limit-remaining"), 0);
    assert!(reply.header("x-rate-limit-reset").is_some());
    let groups = okta_get(&emu, "/api/v1/groups").await;
    assert_eq!(groups.status, 200, "the groups bucket is untouched");
    assert_eq!(groups.header_num("x-rate-limit-limit"), 100);
    assert_eq!(groups.header_num("x-rate-limit-remaining"), 99);
    let user_groups = okta_get(
        &emu,
        &format!("/api/v1/users/{}/groups", OktaOrg::user_id(0)),
    )
    .await;
    assert_eq!(user_groups.status, 200);
    assert_eq!(user_groups.header_num("x-rate-limit-limit"), 10_000);
    let stats = emu.stats();
    assert_eq!((stats.logs.requests, stats.logs.rate_limited), (3, 1));
    assert_eq!(stats.user_groups.requests, 1);
}

#[tokio::test]
async fn faults_hit_the_log_and_user_groups() {
    let emu = start(OktaOptions::default()).await;
    emu.add_fault(OktaFault::times(
        Matcher::logs(),
        FaultAction::Status(503),
        1,
    ));
    let user = OktaOrg::user_id(0);
    emu.add_fault(OktaFault::times(
        Matcher::groups_of_user(&user),
        FaultAction::RateLimited,
        1,
    ));
    assert_eq!(okta_get(&emu, "/api/v1/groups").await.status, 200);
    assert_eq!(okta_get(&emu, "/api/v1/logs").await.status, 503);
    assert_eq!(okta_get(&emu, "/api/v1/logs").await.status, 200);
    let path = format!("/api/v1/users/{user}/groups");
    assert_eq!(okta_get(&emu, &path).await.status, 429);
    assert_eq!(okta_get(&emu, &path).await.status, 200);
}

#[tokio::test]
async fn user_groups_page_and_404() {
    let emu = start(OktaOptions::default()).await;
    let user = OktaOrg::user_id(0);
    let first = okta_get(&emu, &format!("/api/v1/users/{user}/groups?limit=1")).await;
    assert_eq!(first.json()[0]["id"], OktaOrg::group_id(0).as_str());
    let second = follow(&emu, &first.next_link().expect("a second page")).await;
    assert_eq!(second.json()[0]["id"], OktaOrg::group_id(2).as_str());
    assert!(second.next_link().is_none());
    let none = okta_get(
        &emu,
        &format!("/api/v1/users/{}/groups", OktaOrg::user_id(1)),
    )
    .await;
    assert_eq!((none.status, none.json()), (200, json!([])));
    let gone = okta_get(&emu, "/api/v1/users/00unobody/groups").await;
    assert_eq!(
        (gone.status, gone.json()["errorCode"].clone()),
        (404, json!("E0000007"))
    );
    let anonymous = get(&format!("{}/api/v1/logs", emu.url()), &[]).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn churn_over_http_is_logged() {
    let emu = start(OktaOptions::default()).await;
    let _q = QEmulator::start(QOptions::default()).await.expect("q");
    let body = json!({ "percent": 100.0, "seed": 3, "max_group_size": 10 });
    let reply = send(
        "POST",
        &format!("{}/_emulator/churn", emu.url()),
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200);
    let changes =
        reply.json()["added"].as_u64().unwrap_or(0) + reply.json()["removed"].as_u64().unwrap_or(0);
    assert!(changes > 0);
    let logged = okta_get(&emu, "/api/v1/logs?limit=1000").await;
    assert_eq!(logged.json().as_array().map_or(0, Vec::len) as u64, changes);
}
