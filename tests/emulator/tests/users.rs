//! Users over real HTTP: `GET /api/v1/users` (paging, `filter`, DEPROVISIONED omitted by
//! default), `GET /api/v1/users/{id}`, lifecycle transitions and the user controls.

mod common;

use std::collections::BTreeSet;

use common::{Reply, get, send};
use q_group_sync_emulator::generate::{OrgSpec, org};
use q_group_sync_emulator::{FaultAction, Matcher, OktaEmulator, OktaFault, OktaOptions, OktaOrg};
use serde_json::{Value, json};

/// 2024-01-01T00:00:00Z.
const JAN1: i64 = 1_704_067_200;
/// Between the seeded dates (January 2024) and any change a test makes (now).
const MID_2024: &str = "2024-06-01T00:00:00.000Z";

const STATUSES: [&str; 6] = [
    "ACTIVE",
    "STAGED",
    "DEPROVISIONED",
    "SUSPENDED",
    "LOCKED_OUT",
    "ACTIVE",
];

/// Six users (statuses above), dated `JAN1 + n` hours; group 0 holds them all, group 1 users 0-2.
fn users_org() -> OktaOrg {
    let mut org = OktaOrg::default();
    for (n, status) in STATUSES.iter().enumerate() {
        let id = OktaOrg::user_id(n);
        let email = format!("user.{n}@example.test");
        let user = org.add_user(&id, status, Some(&email), &format!("User.{n}@Example.test"));
        user.created = JAN1;
        user.last_updated = JAN1 + 3600 * n as i64;
        user.status_changed = (*status != "STAGED").then_some(JAN1 + 60);
    }
    org.add_group(&OktaOrg::group_id(0), "all", "OKTA_GROUP");
    org.add_group(&OktaOrg::group_id(1), "some", "OKTA_GROUP");
    for n in 0..STATUSES.len() {
        org.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(n));
        if n < 3 {
            org.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(n));
        }
    }
    for group in org.groups.values_mut() {
        group.last_membership_updated = JAN1;
    }
    org
}

async fn start() -> OktaEmulator {
    let options = OktaOptions {
        users_rate_limit: 500,
        ..OktaOptions::default()
    };
    OktaEmulator::start(users_org(), options)
        .await
        .expect("emulator starts")
}

async fn okta_url(emu: &OktaEmulator, url: &str) -> Reply {
    let auth = format!("SSWS {}", emu.token());
    get(url, &[("authorization", &auth)]).await
}

async fn okta_get(emu: &OktaEmulator, path_and_query: &str) -> Reply {
    okta_url(emu, &format!("{}{path_and_query}", emu.url())).await
}

/// `GET /api/v1/users` with `filter` (encoded here) and extra raw query parameters.
async fn list_users(emu: &OktaEmulator, filter: &str, extra: &[(&str, &str)]) -> Reply {
    let mut params: Vec<(&str, &str)> = vec![("filter", filter)];
    params.extend_from_slice(extra);
    let url =
        url::Url::parse_with_params(&format!("{}/api/v1/users", emu.url()), params).expect("url");
    okta_url(emu, url.as_str()).await
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

async fn control(emu: &OktaEmulator, path: &str, body: &Value) -> Reply {
    post(&format!("{}/_emulator/{path}", emu.url()), body).await
}

fn ids(reply: &Reply) -> Vec<String> {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
        .json()
        .as_array()
        .expect("array body")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect()
}

fn users(ns: &[usize]) -> Vec<String> {
    ns.iter().copied().map(OktaOrg::user_id).collect()
}

/// Follows `next` links from `first`.
async fn all_pages(emu: &OktaEmulator, first: &str) -> Vec<Reply> {
    let mut pages = vec![okta_get(emu, first).await];
    while let Some(next) = pages.last().and_then(Reply::next_link) {
        pages.push(okta_url(emu, &next).await);
        assert!(pages.len() < 20, "runaway paging");
    }
    pages
}

async fn user(emu: &OktaEmulator, n: usize) -> Value {
    let reply = okta_get(emu, &format!("/api/v1/users/{}", OktaOrg::user_id(n))).await;
    assert_eq!(reply.status, 200);
    reply.json()
}

/// Event types logged about user `n`, oldest first.
fn events_about(emu: &OktaEmulator, n: usize) -> Vec<String> {
    let id = OktaOrg::user_id(n);
    emu.org()
        .log
        .events()
        .iter()
        .filter(|e| {
            e.body["target"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["id"] == id.as_str()))
        })
        .map(|e| e.event_type.clone())
        .collect()
}

#[tokio::test]
async fn users_page_by_id_and_omit_deprovisioned() {
    let emu = start().await;
    let pages = all_pages(&emu, "/api/v1/users?limit=2").await;
    assert_eq!(pages.len(), 3);
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed, users(&[0, 1, 3, 4, 5]), "user 2 is DEPROVISIONED");
    let base = format!("{}/api/v1/users", emu.url());
    assert_eq!(
        pages[0].links(),
        vec![
            (format!("{base}?limit=2"), "self".to_owned()),
            (
                format!("{base}?limit=2&after={}", OktaOrg::user_id(1)),
                "next".to_owned()
            ),
        ]
    );
    assert_eq!(
        pages[1].links()[0].0,
        format!("{base}?limit=2&after={}", OktaOrg::user_id(1))
    );
    assert!(pages[2].next_link().is_none());
    assert_eq!(pages[0].header_num("x-rate-limit-limit"), 500);

    let default = okta_get(&emu, "/api/v1/users").await;
    assert_eq!(
        default.links(),
        vec![(format!("{base}?limit=200"), "self".to_owned())]
    );
    let clamped = okta_get(&emu, "/api/v1/users?limit=5000").await;
    assert_eq!(clamped.links()[0].0, format!("{base}?limit=200"));
    assert_eq!(ids(&clamped).len(), 5);
    let bad = okta_get(&emu, "/api/v1/users?limit=0").await;
    assert_eq!(
        (bad.status, bad.json()["errorCode"].as_str()),
        (400, Some("E0000001"))
    );

    // The user object carries the stored dates.
    let body = default.json();
    let active = &body[0];
    assert_eq!(active["status"], "ACTIVE");
    assert_eq!(active["created"], "2024-01-01T00:00:00.000Z");
    assert_eq!(active["activated"], "2024-01-01T00:00:00.000Z");
    assert_eq!(active["statusChanged"], "2024-01-01T00:01:00.000Z");
    assert_eq!(active["lastUpdated"], "2024-01-01T00:00:00.000Z");
    assert_eq!(active["profile"]["email"], "user.0@example.test");
    let staged = &body[1];
    assert_eq!(staged["status"], "STAGED");
    assert_eq!(staged["lastUpdated"], "2024-01-01T01:00:00.000Z");
    assert_eq!(
        (&staged["activated"], &staged["statusChanged"]),
        (&Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn last_updated_filter_selects_changed_users() {
    let emu = start().await;
    let since = format!("lastUpdated gt \"{MID_2024}\"");
    assert!(ids(&list_users(&emu, &since, &[]).await).is_empty());

    let email = control(
        &emu,
        &format!("users/{}/profile", OktaOrg::user_id(3)),
        &json!({ "email": "moved@example.test" }),
    )
    .await;
    assert_eq!(email.status, 200);
    let suspend = control(
        &emu,
        &format!("users/{}/lifecycle/suspend", OktaOrg::user_id(5)),
        &json!({}),
    )
    .await;
    assert_eq!(suspend.status, 200);

    // Paged one at a time, the filter travels in the links, encoded.
    let first = list_users(&emu, &since, &[("limit", "1")]).await;
    assert_eq!(ids(&first), users(&[3]));
    let next = first.next_link().expect("next");
    assert!(
        next.contains("filter=lastUpdated%20gt%20%222024-06-01T00%3A00%3A00.000Z%22&after="),
        "{next}"
    );
    let second = okta_url(&emu, &next).await;
    assert_eq!(ids(&second), users(&[5]));
    assert!(second.next_link().is_none());
    assert_eq!(second.json()[0]["status"], "SUSPENDED");

    // Operators are case-insensitive; dates with or without millis; and/or/parentheses.
    let cases = [
        (r#"lastUpdated GT "2024-01-01T02:00:00Z""#, vec![3, 4, 5]),
        (
            r#"lastUpdated ge "2024-01-01T01:00:00.000Z""#,
            vec![1, 3, 4, 5],
        ),
        (r#"lastUpdated lt "2024-01-01T01:00:00Z""#, vec![0]),
        (r#"lastUpdated le "2024-01-01T01:00:00.000Z""#, vec![0, 1]),
        (r#"lastUpdated eq "2024-01-01T04:00:00.000Z""#, vec![4]),
        (
            r#"status eq "ACTIVE" AND lastUpdated lt "2024-06-01T00:00:00.000Z""#,
            vec![0],
        ),
        (
            r#"(status eq "STAGED" or status eq "LOCKED_OUT") and lastUpdated gt "2024-01-01T00:30:00.000Z""#,
            vec![1, 4],
        ),
        (r#"profile.email eq "moved@example.test""#, vec![3]),
        (r#"profile.login eq "User.4@Example.test""#, vec![4]),
        (r#"profile.firstName eq "User""#, vec![0, 1, 3, 4, 5]),
        (r#"profile.lastName eq "0@Example.test""#, vec![]),
        (&format!("id eq \"{}\"", OktaOrg::user_id(1)), vec![1]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            ids(&list_users(&emu, filter, &[]).await),
            users(&expected),
            "{filter}"
        );
    }

    // The groups of the changed users did not move.
    for group in emu.org().groups.values() {
        assert_eq!(group.last_membership_updated, JAN1, "{}", group.id);
    }
}

#[tokio::test]
async fn deprovisioned_users_need_a_status_condition() {
    let emu = start().await;
    let deactivate = control(
        &emu,
        &format!("users/{}/lifecycle/deactivate", OktaOrg::user_id(0)),
        &json!({}),
    )
    .await;
    assert_eq!(deactivate.status, 200);
    assert_eq!(deactivate.json()["status"], "DEPROVISIONED");

    let since = format!("lastUpdated gt \"{MID_2024}\"");
    assert!(ids(&list_users(&emu, &since, &[]).await).is_empty());
    let with_status = format!(
        "(status eq \"ACTIVE\" or status eq \"DEPROVISIONED\") and lastUpdated gt \"{MID_2024}\""
    );
    let listed = list_users(&emu, &with_status, &[]).await;
    assert_eq!(ids(&listed), users(&[0]));
    assert_eq!(listed.json()[0]["status"], "DEPROVISIONED");
    assert_eq!(
        ids(&list_users(&emu, r#"status eq "DEPROVISIONED""#, &[]).await),
        users(&[0, 2])
    );
    assert_eq!(
        ids(&okta_get(&emu, "/api/v1/users").await),
        users(&[1, 3, 4, 5])
    );

    // Still a member of its groups, listed there as DEPROVISIONED.
    let members = okta_get(
        &emu,
        &format!("/api/v1/groups/{}/users", OktaOrg::group_id(1)),
    )
    .await;
    assert_eq!(ids(&members), users(&[0, 1, 2]));
    assert_eq!(members.json()[0]["status"], "DEPROVISIONED");
    assert_eq!(
        emu.org().groups[&OktaOrg::group_id(1)].last_membership_updated,
        JAN1
    );
}

#[tokio::test]
async fn lifecycle_transitions_move_the_dates_and_are_logged() {
    let emu = start().await;
    // (user, operation, status after, event)
    let cases = [
        (0, "suspend", "SUSPENDED", "user.lifecycle.suspend"),
        (3, "unsuspend", "ACTIVE", "user.lifecycle.unsuspend"),
        (
            1,
            "deactivate",
            "DEPROVISIONED",
            "user.lifecycle.deactivate",
        ),
        (2, "reactivate", "ACTIVE", "user.lifecycle.reactivate"),
        (4, "unlock", "ACTIVE", "user.account.unlock"),
        (
            0,
            "deactivate",
            "DEPROVISIONED",
            "user.lifecycle.deactivate",
        ),
    ];
    for (n, op, status, event) in cases {
        let before = user(&emu, n).await;
        let reply = control(
            &emu,
            &format!("users/{}/lifecycle/{op}", OktaOrg::user_id(n)),
            &json!({}),
        )
        .await;
        assert_eq!(
            reply.status,
            200,
            "{op}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()["status"], status, "{op}");
        let after = user(&emu, n).await;
        assert_eq!(after["status"], status, "{op}");
        let date = |u: &Value, key: &str| u[key].as_str().unwrap_or_default().to_owned();
        assert!(
            // `>=`: user 0's second transition may fall in the same second as its first.
            date(&after, "lastUpdated") >= date(&before, "lastUpdated")
                && date(&after, "lastUpdated").as_str() > MID_2024,
            "{op} moves lastUpdated"
        );
        assert!(
            date(&after, "statusChanged").as_str() > MID_2024,
            "{op} moves statusChanged"
        );
        assert_eq!(after["statusChanged"], after["lastUpdated"]);
        assert_eq!(after["created"], before["created"]);
        assert_eq!(
            events_about(&emu, n).last().map(String::as_str),
            Some(event),
            "{op}"
        );
    }
    assert_eq!(
        events_about(&emu, 0),
        ["user.lifecycle.suspend", "user.lifecycle.deactivate"]
    );
    // Memberships survive every transition.
    assert_eq!(emu.org().groups[&OktaOrg::group_id(0)].members.len(), 6);
}

#[tokio::test]
async fn refused_transitions_are_409_and_change_nothing() {
    let emu = start().await;
    let refused = [
        (3, "suspend", "SUSPENDED"),
        (0, "unsuspend", "ACTIVE"),
        (2, "deactivate", "DEPROVISIONED"),
        (0, "reactivate", "ACTIVE"),
        (5, "unlock", "ACTIVE"),
        (1, "suspend", "STAGED"),
    ];
    for (n, op, status) in refused {
        let before = user(&emu, n).await;
        let reply = control(
            &emu,
            &format!("users/{}/lifecycle/{op}", OktaOrg::user_id(n)),
            &json!({}),
        )
        .await;
        assert_eq!(reply.status, 409, "{op} from {status}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(op) && error.contains(status), "{error}");
        assert_eq!(user(&emu, n).await, before, "{op} from {status}");
    }
    assert!(emu.org().log.is_empty(), "nothing logged");

    let unknown_user = control(&emu, "users/00unobody/lifecycle/suspend", &json!({})).await;
    assert_eq!(unknown_user.status, 404);
    let unknown_op = control(
        &emu,
        &format!("users/{}/lifecycle/delete", OktaOrg::user_id(0)),
        &json!({}),
    )
    .await;
    assert_eq!(unknown_op.status, 404);

    // The in-process helpers give the same reasons.
    let reason = emu
        .update(|o| o.unlock_user(&OktaOrg::user_id(0)))
        .expect_err("ACTIVE is not LOCKED_OUT");
    assert!(reason.contains("LOCKED_OUT"), "{reason}");
}

#[tokio::test]
async fn profile_control_sets_and_removes_attributes() {
    let emu = start().await;
    let path = format!("users/{}/profile", OktaOrg::user_id(0));
    let reply = control(
        &emu,
        &path,
        &json!({ "email": "new.0@example.test", "department": "eng", "mobilePhone": null }),
    )
    .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let changed: BTreeSet<&str> = body["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        changed,
        BTreeSet::from(["email", "department", "mobilePhone"])
    );
    let after = user(&emu, 0).await;
    assert_eq!(after["profile"]["email"], "new.0@example.test");
    assert_eq!(
        after["credentials"]["emails"][0]["value"],
        "new.0@example.test"
    );
    assert_eq!(after["profile"]["department"], "eng");
    assert!(
        !after["profile"]
            .as_object()
            .expect("profile")
            .contains_key("mobilePhone")
    );
    assert!(after["lastUpdated"].as_str().unwrap_or_default() > MID_2024);
    assert_eq!(
        after["statusChanged"], "2024-01-01T00:01:00.000Z",
        "status untouched"
    );
    assert_eq!(
        events_about(&emu, 0),
        ["user.account.update_profile"; 3],
        "one event per attribute"
    );

    let same = control(&emu, &path, &json!({ "email": "new.0@example.test" })).await;
    assert_eq!(same.json()["changed"], json!([]));
    assert_eq!(control(&emu, &path, &json!(["email"])).await.status, 400);
    assert_eq!(
        control(&emu, "users/00unobody/profile", &json!({}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn touch_users_moves_last_updated_and_nothing_else() {
    let emu = start().await;
    let before = emu.org();
    let reply = control(&emu, "touch-users", &json!({})).await;
    assert_eq!((reply.status, reply.json()), (200, json!({ "touched": 6 })));
    let after = emu.org();
    for (id, old) in &before.users {
        let new = &after.users[id];
        assert!(new.last_updated > old.last_updated, "{id}");
        assert_eq!(
            (&new.status, &new.profile, new.status_changed, new.created),
            (&old.status, &old.profile, old.status_changed, old.created)
        );
    }
    assert_eq!(after.log.len(), 6);
    assert!(
        after
            .log
            .events()
            .iter()
            .all(|e| e.event_type == "user.account.update_profile")
    );
    let since = format!("lastUpdated gt \"{MID_2024}\"");
    assert_eq!(
        ids(&list_users(&emu, &since, &[]).await),
        users(&[0, 1, 3, 4, 5])
    );
    let groups = |o: &OktaOrg| -> Vec<(String, i64)> {
        o.groups
            .values()
            .map(|g| (g.id.clone(), g.last_membership_updated))
            .collect()
    };
    assert_eq!(groups(&after), groups(&before));
}

#[tokio::test]
async fn deactivate_share_is_deterministic_and_keeps_memberships() {
    let spec = OrgSpec {
        seed: 8,
        groups: 30,
        users: 400,
        max_group_size: 60,
        messy: true,
    };
    let generated = org(&spec);
    let mut picks = Vec::new();
    for seed in [3, 3, 4] {
        let emu = OktaEmulator::start(generated.clone(), OktaOptions::default())
            .await
            .expect("emulator starts");
        let reply = control(
            &emu,
            "deactivate",
            &json!({ "percent": 10.0, "seed": seed }),
        )
        .await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        let chosen: Vec<String> = body["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect();
        let after = emu.org();
        let candidates = generated
            .users
            .values()
            .filter(|u| u.status == "ACTIVE" && !generated.groups_of(&u.id).is_empty())
            .count();
        assert_eq!(chosen.len(), (candidates as f64 / 10.0).round() as usize);
        let groups: BTreeSet<&str> = chosen
            .iter()
            .flat_map(|u| after.groups_of(u))
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(body["groups"], groups.len());
        for id in &chosen {
            assert_eq!(generated.users[id].status, "ACTIVE");
            assert_eq!(after.users[id].status, "DEPROVISIONED");
        }
        for (id, group) in &generated.groups {
            assert_eq!(after.groups[id].members, group.members, "memberships kept");
            assert_eq!(
                after.groups[id].last_membership_updated,
                group.last_membership_updated
            );
        }
        // They all show up in a status-aware delta listing.
        let filter = format!("status eq \"DEPROVISIONED\" and lastUpdated gt \"{MID_2024}\"");
        let mut listed = Vec::new();
        let mut reply = list_users(&emu, &filter, &[("limit", "200")]).await;
        listed.extend(ids(&reply));
        while let Some(next) = reply.next_link() {
            reply = okta_url(&emu, &next).await;
            listed.extend(ids(&reply));
        }
        assert_eq!(listed, chosen);
        picks.push(chosen);
    }
    assert_eq!(picks[0], picks[1], "same seed, same users");
    assert_ne!(picks[0], picks[2], "another seed, other users");

    let emu = OktaEmulator::start(generated, OktaOptions::default())
        .await
        .expect("emulator starts");
    let bad = control(&emu, "deactivate", &json!({ "percent": 101.0, "seed": 1 })).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn invalid_user_filters_are_400_e0000031() {
    let emu = start().await;
    for bad in [
        r#"status sw "ACT""#,
        r#"profile.login sw "user""#,
        r#"profile.email co "example""#,
        r#"status gt "ACTIVE""#,
        r#"lastUpdated gt "yesterday""#,
        r#"lastUpdated gt "2024-01-01""#,
        r#"lastMembershipUpdated gt "2024-01-01T00:00:00.000Z""#,
        r#"profile.department eq "eng""#,
        r#"Status eq "ACTIVE""#,
        r#"status eq ACTIVE"#,
        r#"(status eq "ACTIVE""#,
        r#"status eq "ACTIVE" and"#,
        r#"not status eq "ACTIVE""#,
        "",
    ] {
        let reply = list_users(&emu, bad, &[]).await;
        assert_eq!(reply.status, 400, "{bad}");
        let body = reply.json();
        assert_eq!(body["errorCode"], "E0000031", "{bad}");
        assert_eq!(body["errorSummary"], "Invalid search criteria.");
        assert!(reply.header("x-rate-limit-remaining").is_some());
    }
}

#[tokio::test]
async fn users_listing_faults_hit_their_page() {
    let emu = start().await;
    emu.add_fault(OktaFault::always(
        Matcher::users_listing().on_page(2),
        FaultAction::Status(500),
    ));
    emu.add_fault(OktaFault::times(
        Matcher::users_listing().on_page(3),
        FaultAction::TruncatedBody,
        1,
    ));
    let first = okta_get(&emu, "/api/v1/users?limit=2").await;
    assert_eq!(first.status, 200);
    let second_url = first.next_link().expect("next");
    let second = okta_url(&emu, &second_url).await;
    assert_eq!(
        (second.status, second.json()["errorCode"].as_str()),
        (500, Some("E0000009"))
    );
    emu.clear_faults();
    emu.add_fault(OktaFault::times(
        Matcher::users_listing().on_page(3),
        FaultAction::TruncatedBody,
        1,
    ));
    let second = okta_url(&emu, &second_url).await;
    assert_eq!(ids(&second), users(&[3, 4]));
    let third_url = second.next_link().expect("next");
    let truncated = okta_url(&emu, &third_url).await;
    assert_eq!(truncated.status, 200);
    assert!(serde_json::from_slice::<Value>(&truncated.body).is_err());
    assert_eq!(ids(&okta_url(&emu, &third_url).await), users(&[5]));

    let pages: Vec<Option<u32>> = emu.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [Some(1), Some(2), Some(2), Some(3), Some(3)]);
    // Group listings are not hit.
    emu.add_fault(OktaFault::always(
        Matcher::users_listing(),
        FaultAction::Status(503),
    ));
    assert_eq!(okta_get(&emu, "/api/v1/groups").await.status, 200);
    assert_eq!(okta_get(&emu, "/api/v1/users").await.status, 503);
    assert_eq!(
        okta_get(&emu, &format!("/api/v1/users/{}", OktaOrg::user_id(0)))
            .await
            .status,
        200,
        "single-user reads are another endpoint"
    );

    let stats = get(&format!("{}/_emulator/stats?detail=true", emu.url()), &[])
        .await
        .json();
    assert_eq!(
        stats["list_users"],
        json!({ "requests": 6, "rate_limited": 0 })
    );
    assert_eq!(
        stats["get_user"],
        json!({ "requests": 1, "rate_limited": 0 })
    );
    assert_eq!(stats["list_groups"]["requests"], 1);
}

#[tokio::test]
async fn one_user_by_id_or_login() {
    let emu = start().await;
    let by_id = okta_get(&emu, &format!("/api/v1/users/{}", OktaOrg::user_id(4))).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.json()["status"], "LOCKED_OUT");
    assert!(by_id.header("link").is_none());
    assert_eq!(by_id.header_num("x-rate-limit-limit"), 500, "users bucket");
    let by_login = okta_get(&emu, "/api/v1/users/user.4%40example.test").await;
    assert_eq!(by_login.json(), by_id.json());
    let deprovisioned = okta_get(&emu, &format!("/api/v1/users/{}", OktaOrg::user_id(2))).await;
    assert_eq!(deprovisioned.json()["status"], "DEPROVISIONED");

    let missing = okta_get(&emu, "/api/v1/users/00unobody").await;
    assert_eq!(
        (missing.status, missing.json()["errorCode"].as_str()),
        (404, Some("E0000007"))
    );
    emu.add_fault(OktaFault::times(
        Matcher::user(&OktaOrg::user_id(4)),
        FaultAction::RateLimited,
        1,
    ));
    let limited = okta_get(&emu, &format!("/api/v1/users/{}", OktaOrg::user_id(4))).await;
    assert_eq!(limited.status, 429);
    let stats = emu.stats();
    assert_eq!(
        (stats.get_user.requests, stats.get_user.rate_limited),
        (5, 1)
    );
    assert_eq!(stats.list_users.requests, 0);
}

#[tokio::test]
async fn the_user_buckets_are_counted_apart_as_okta_documents_them() {
    let emu = start().await;
    let remaining = |reply: &Reply| reply.header_num("x-rate-limit-remaining");
    // Three calls to the listing, two to one user, one to a user's groups.
    for _ in 0..3 {
        okta_get(&emu, "/api/v1/users").await;
    }
    let user = format!("/api/v1/users/{}", OktaOrg::user_id(0));
    okta_get(&emu, &user).await;
    let one = okta_get(&emu, &user).await;
    let groups = okta_get(&emu, &format!("{user}/groups")).await;
    let listing = okta_get(&emu, "/api/v1/users").await;
    assert_eq!(remaining(&listing), 500 - 4, "the listing's own count");
    assert_eq!(remaining(&one), 500 - 2, "one user's own count");
    assert_eq!(remaining(&groups), 500 - 1, "a user's groups' own count");
}
