//! The Okta emulator over real HTTP: paging, filters, auth, errors, rate limits, faults, control.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Reply, get, send};
use q_group_sync_emulator::{
    FaultAction, LinkStyle, Matcher, OktaEmulator, OktaFault, OktaOptions, OktaOrg,
};
use serde_json::{Value, json};

/// 2024-01-01T00:00:00Z.
const JAN1: i64 = 1_704_067_200;

/// Five groups (ids 0..5), five users; group 0 has all users.
fn org() -> OktaOrg {
    let mut org = OktaOrg::default();
    for n in 0..5 {
        let id = OktaOrg::user_id(n);
        let status = if n == 1 { "STAGED" } else { "ACTIVE" };
        let email = format!("User.{n}@example.test");
        let email = (n != 2).then_some(email.as_str());
        org.add_user(&id, status, email, &format!("user.{n}@example.test"));
    }
    for n in 0..5 {
        let id = OktaOrg::group_id(n);
        let group_type = if n == 4 { "APP_GROUP" } else { "OKTA_GROUP" };
        org.add_group(&id, &format!("group {n}"), group_type);
    }
    for n in 0..5 {
        org.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(n));
    }
    for (n, group) in org.groups.values_mut().enumerate() {
        group.created = JAN1 - 100;
        group.last_updated = JAN1 - 100;
        group.last_membership_updated = JAN1 + 10 * n as i64;
    }
    org
}

async fn start(options: OktaOptions) -> OktaEmulator {
    OktaEmulator::start(org(), options)
        .await
        .expect("emulator starts")
}

async fn okta_get(emu: &OktaEmulator, path_and_query: &str) -> Reply {
    okta_url(emu, &format!("{}{path_and_query}", emu.url())).await
}

async fn okta_url(emu: &OktaEmulator, url: &str) -> Reply {
    let auth = format!("SSWS {}", emu.token());
    get(
        url,
        &[("authorization", &auth), ("accept", "application/json")],
    )
    .await
}

fn ids(reply: &Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .expect("array body")
        .iter()
        .map(|g| g["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Follows `next` links from `first`, returning every page.
async fn all_pages(emu: &OktaEmulator, first: &str) -> Vec<Reply> {
    let mut pages = vec![okta_get(emu, first).await];
    while let Some(next) = pages.last().and_then(Reply::next_link) {
        assert!(
            next.starts_with(&emu.url()),
            "next link on our base: {next}"
        );
        pages.push(okta_url(emu, &next).await);
        assert!(pages.len() < 50, "runaway paging");
    }
    pages
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn groups_page_with_separate_link_lines() {
    let emu = start(OktaOptions::default()).await;
    let pages = all_pages(&emu, "/api/v1/groups?limit=2").await;
    assert_eq!(pages.len(), 3);
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let expected: Vec<String> = (0..5).map(OktaOrg::group_id).collect();
    assert_eq!(listed, expected);

    let first = &pages[0];
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header_all("link").len(),
        2,
        "self and next on separate lines"
    );
    let base = emu.url();
    assert_eq!(
        first.links(),
        vec![
            (format!("{base}/api/v1/groups?limit=2"), "self".to_owned()),
            (
                format!(
                    "{base}/api/v1/groups?limit=2&after={}",
                    OktaOrg::group_id(1)
                ),
                "next".to_owned()
            ),
        ]
    );
    let last = &pages[2];
    assert_eq!(last.header_all("link").len(), 1);
    assert_eq!(last.next_link(), None);

    let log = emu.requests();
    assert_eq!(
        log.iter().map(|r| r.page).collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
}

#[tokio::test]
async fn groups_page_with_comma_joined_links() {
    let emu = start(OktaOptions {
        link_style: LinkStyle::CommaJoined,
        ..OktaOptions::default()
    })
    .await;
    let pages = all_pages(&emu, "/api/v1/groups?limit=3").await;
    assert_eq!(pages.len(), 2);
    let line = pages[0].header_all("link");
    assert_eq!(line.len(), 1);
    assert!(line[0].contains(r#"; rel="self", <"#), "{}", line[0]);
    assert_eq!(pages.iter().flat_map(ids).count(), 5);
}

#[tokio::test]
async fn group_json_looks_like_the_recording() {
    let emu = start(OktaOptions::default()).await;
    let reply = okta_get(&emu, "/api/v1/groups").await;
    assert_eq!(
        reply.links(),
        vec![(
            format!("{}/api/v1/groups?limit=10000", emu.url()),
            "self".to_owned()
        )]
    );
    let groups = reply.json();
    let g = &groups[0];
    assert_eq!(g["id"], OktaOrg::group_id(0));
    assert_eq!(g["created"], "2023-12-31T23:58:20.000Z");
    assert_eq!(g["lastMembershipUpdated"], "2024-01-01T00:00:00.000Z");
    assert_eq!(g["objectClass"], json!(["okta:user_group"]));
    assert_eq!(g["type"], "OKTA_GROUP");
    assert_eq!(
        g["profile"],
        json!({ "name": "group 0", "description": null })
    );
    assert_eq!(
        g["_links"]["users"]["href"],
        format!("{}/api/v1/groups/{}/users", emu.url(), OktaOrg::group_id(0))
    );
    assert_eq!(g["_links"]["logo"].as_array().map(Vec::len), Some(2));
    assert_eq!(groups[4]["type"], "APP_GROUP");

    let one = okta_get(
        &emu,
        &format!("/api/v1/groups/{}?expand=stats", OktaOrg::group_id(0)),
    )
    .await;
    assert_eq!(one.json()["_embedded"]["stats"]["usersCount"], 5);

    let q = okta_get(&emu, "/api/v1/groups?q=GROUP%203").await;
    assert_eq!(ids(&q), vec![OktaOrg::group_id(3)]);
    assert!(q.header("link").is_none(), "q= is not paged");
}

#[tokio::test]
async fn members_page_and_look_like_the_recording() {
    let emu = start(OktaOptions::default()).await;
    let group = OktaOrg::group_id(0);
    let pages = all_pages(&emu, &format!("/api/v1/groups/{group}/users?limit=2")).await;
    assert_eq!(pages.len(), 3);
    let users: Vec<Value> = pages
        .iter()
        .flat_map(|p| p.json().as_array().cloned().unwrap_or_default())
        .collect();
    let listed: Vec<&str> = users
        .iter()
        .map(|u| u["id"].as_str().expect("id"))
        .collect();
    let expected: Vec<String> = (0..5).map(OktaOrg::user_id).collect();
    assert_eq!(listed, expected);
    assert_eq!(
        pages[0].next_link(),
        Some(format!(
            "{}/api/v1/groups/{group}/users?limit=2&after={}",
            emu.url(),
            OktaOrg::user_id(1)
        ))
    );

    let active = &users[0];
    assert_eq!(active["status"], "ACTIVE");
    assert_eq!(active["profile"]["email"], "User.0@example.test");
    assert_eq!(active["profile"]["login"], "user.0@example.test");
    assert_eq!(active["profile"]["mobilePhone"], Value::Null);
    assert!(
        active["profile"]
            .as_object()
            .expect("profile")
            .contains_key("secondEmail")
    );
    assert_eq!(
        active["credentials"]["emails"][0]["value"],
        "User.0@example.test"
    );
    assert_eq!(active["type"]["id"], "otyc04qb2rUDcq2YA4x6");
    assert_eq!(
        active["_links"]["self"]["href"],
        format!("{}/api/v1/users/{}", emu.url(), OktaOrg::user_id(0))
    );
    let staged = &users[1];
    assert_eq!(
        (staged["status"].as_str(), &staged["activated"]),
        (Some("STAGED"), &Value::Null)
    );
    assert!(
        !users[2]["profile"]
            .as_object()
            .expect("profile")
            .contains_key("email")
    );

    let default = okta_get(&emu, &format!("/api/v1/groups/{group}/users")).await;
    assert!(default.links()[0].0.ends_with("/users?limit=1000"));
    assert_eq!(ids(&default).len(), 5);
}

#[tokio::test]
async fn filters_select_groups_and_survive_paging() {
    let emu = start(OktaOptions::default()).await;
    let by_type = okta_get(&emu, "/api/v1/groups?filter=type%20eq%20%22APP_GROUP%22").await;
    assert_eq!(ids(&by_type), vec![OktaOrg::group_id(4)]);

    // Groups 2, 3, 4 changed after 00:00:15; 4 is an APP_GROUP.
    let filter = r#"lastMembershipUpdated gt "2024-01-01T00:00:15.000Z""#;
    let encoded = "lastMembershipUpdated%20gt%20%222024-01-01T00%3A00%3A15.000Z%22";
    let pages = all_pages(&emu, &format!("/api/v1/groups?limit=1&filter={encoded}")).await;
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(
        listed,
        vec![
            OktaOrg::group_id(2),
            OktaOrg::group_id(3),
            OktaOrg::group_id(4)
        ]
    );
    let next = pages[0].next_link().expect("next");
    assert!(next.contains(&format!("filter={encoded}&after=")), "{next}");
    assert!(!next.contains(filter));

    let combined = r#"type eq "OKTA_GROUP" and (lastMembershipUpdated gt "2024-01-01T00:00:25Z" or lastMembershipUpdated lt "2024-01-01T00:00:05.000Z")"#;
    let url = url::Url::parse_with_params(
        &format!("{}/api/v1/groups", emu.url()),
        [("filter", combined)],
    )
    .expect("url");
    let reply = okta_url(&emu, url.as_str()).await;
    assert_eq!(
        ids(&reply),
        vec![OktaOrg::group_id(0), OktaOrg::group_id(3)]
    );

    let not = url::Url::parse_with_params(
        &format!("{}/api/v1/groups", emu.url()),
        [("filter", r#"not (type eq "OKTA_GROUP") or id eq "nope""#)],
    )
    .expect("url");
    assert_eq!(
        ids(&okta_url(&emu, not.as_str()).await),
        vec![OktaOrg::group_id(4)]
    );
}

#[tokio::test]
async fn bad_filters_are_400_e0000031() {
    let emu = start(OktaOptions::default()).await;
    for bad in [
        "type%20eq%20OKTA_GROUP",
        "lastMembershipUpdated%20gt%20%22yesterday%22",
        "name%20eq%20%22x%22",
        "(type%20eq%20%22A%22",
    ] {
        let reply = okta_get(&emu, &format!("/api/v1/groups?filter={bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        let body = reply.json();
        assert_eq!(body["errorCode"], "E0000031");
        assert_eq!(body["errorSummary"], "Invalid search criteria.");
        assert_eq!(body["errorLink"], "E0000031");
        assert!(reply.header("x-rate-limit-remaining").is_some());
    }
    let reply = okta_get(&emu, "/api/v1/groups?limit=abc").await;
    assert_eq!(
        (reply.status, reply.json()["errorCode"].as_str()),
        (400, Some("E0000001"))
    );
}

#[tokio::test]
async fn bad_tokens_are_401_e0000011() {
    let emu = start(OktaOptions::default()).await;
    let url = format!("{}/api/v1/groups", emu.url());
    for headers in [
        vec![],
        vec![("authorization", "SSWS wrong")],
        vec![("authorization", "Bearer emulator-token")],
    ] {
        let reply = get(&url, &headers).await;
        assert_eq!(reply.status, 401);
        let body = reply.json();
        assert_eq!(body["errorCode"], "E0000011");
        assert_eq!(body["errorSummary"], "Invalid token provided");
        assert_eq!(body["errorCauses"], json!([]));
        assert!(body["errorId"].as_str().is_some_and(|id| !id.is_empty()));
        for header in [
            "date",
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
            "x-okta-request-id",
        ] {
            assert!(reply.header(header).is_some(), "{header}");
        }
    }
    assert_eq!(okta_get(&emu, "/api/v1/groups").await.status, 200);
}

#[tokio::test]
async fn unknown_groups_are_404_e0000007() {
    let emu = start(OktaOptions::default()).await;
    let reply = okta_get(&emu, "/api/v1/groups/00gmissing/users").await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["errorCode"], "E0000007");
    assert_eq!(
        body["errorSummary"],
        "Not found: Resource not found: 00gmissing (UserGroup)"
    );
    assert_eq!(
        okta_get(&emu, "/api/v1/groups/00gmissing").await.status,
        404
    );
}

#[tokio::test]
async fn rate_limit_headers_count_down_then_429() {
    let emu = start(OktaOptions {
        rate_limit: 3,
        ..OktaOptions::default()
    })
    .await;
    let before = now_secs();
    let group = OktaOrg::group_id(0);
    let a = okta_get(&emu, "/api/v1/groups").await;
    let b = okta_get(&emu, &format!("/api/v1/groups/{group}/users")).await; // same bucket
    let c = okta_get(&emu, "/api/v1/groups").await;
    let d = okta_get(&emu, "/api/v1/groups").await;
    let remaining: Vec<i64> = [&a, &b, &c, &d]
        .iter()
        .map(|r| r.header_num("x-rate-limit-remaining"))
        .collect();
    assert_eq!(remaining, vec![2, 1, 0, 0]);
    assert!(
        [&a, &b, &c, &d]
            .iter()
            .all(|r| r.header_num("x-rate-limit-limit") == 3)
    );
    let reset = a.header_num("x-rate-limit-reset");
    assert!(
        (before + 59..=before + 62).contains(&reset),
        "reset {reset} vs now {before}"
    );
    assert_eq!(d.header_num("x-rate-limit-reset"), reset);

    assert_eq!(d.status, 429);
    let body = d.json();
    assert_eq!(body["errorCode"], "E0000047");
    assert_eq!(
        body["errorSummary"],
        "API call exceeded rate limit due to too many requests."
    );
    assert_eq!(d.header("content-type"), Some("application/json"));
    let date = httpdate::parse_http_date(d.header("date").expect("date")).expect("HTTP-date");
    let date = date
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    assert!((before..=before + 2).contains(&date));
    assert!(
        d.header("x-okta-request-id")
            .is_some_and(|id| id.len() >= 20)
    );
    assert_eq!(emu.rate_limited_count(), 1);

    emu.reset_rate_limit();
    assert_eq!(okta_get(&emu, "/api/v1/groups").await.status, 200);
}

#[tokio::test]
async fn too_many_in_flight_is_a_concurrency_429() {
    let emu = start(OktaOptions {
        max_concurrent: 1,
        latency: Duration::from_millis(300),
        ..OktaOptions::default()
    })
    .await;
    let (a, b) = tokio::join!(okta_get(&emu, "/api/v1/groups"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        okta_get(&emu, "/api/v1/groups").await
    });
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 429);
    assert_eq!(b.json()["errorCode"], "E0000047");
    assert_eq!(b.header_num("x-rate-limit-limit"), 0);
    assert_eq!(b.header_num("x-rate-limit-remaining"), 0);
    assert_eq!(emu.max_in_flight(), 2);
}

#[tokio::test]
async fn status_faults_use_okta_error_bodies() {
    let emu = start(OktaOptions::default()).await;
    for (status, code) in [
        (500, "E0000009"),
        (503, "E0000010"),
        (403, "E0000006"),
        (504, "E0000009"),
    ] {
        emu.add_fault(OktaFault::times(
            Matcher::any(),
            FaultAction::Status(status),
            1,
        ));
        let reply = okta_get(&emu, "/api/v1/groups").await;
        assert_eq!(
            (reply.status, reply.json()["errorCode"].as_str()),
            (status, Some(code))
        );
        assert_eq!(
            okta_get(&emu, "/api/v1/groups").await.status,
            200,
            "used up after one"
        );
    }
}

#[tokio::test]
async fn rate_and_concurrency_faults() {
    let emu = start(OktaOptions::default()).await;
    emu.add_fault(OktaFault::times(
        Matcher::groups_listing(),
        FaultAction::RateLimited,
        1,
    ));
    let reply = okta_get(&emu, "/api/v1/groups").await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["errorCode"], "E0000047");
    assert_eq!(reply.header_num("x-rate-limit-limit"), 10_000);
    assert_eq!(reply.header_num("x-rate-limit-remaining"), 0);
    let wait = reply.header_num("x-rate-limit-reset") - now_secs();
    assert!((0..=2).contains(&wait), "reset in about a second: {wait}");

    emu.add_fault(OktaFault::times(
        Matcher::groups_listing(),
        FaultAction::ConcurrencyLimited,
        1,
    ));
    let reply = okta_get(&emu, "/api/v1/groups").await;
    assert_eq!(reply.status, 429);
    assert_eq!(
        (
            reply.header_num("x-rate-limit-limit"),
            reply.header_num("x-rate-limit-remaining")
        ),
        (0, 0)
    );
    assert_eq!(okta_get(&emu, "/api/v1/groups").await.status, 200);

    let stats = get(&format!("{}/_emulator/stats", emu.url()), &[])
        .await
        .json();
    assert_eq!(stats, json!({ "requests": 3, "rate_limited": 2 }));
}

#[tokio::test]
async fn body_faults() {
    let emu = start(OktaOptions::default()).await;
    let group = OktaOrg::group_id(0);
    let members = format!("/api/v1/groups/{group}/users?limit=2");

    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group),
        FaultAction::TruncatedBody,
        1,
    ));
    let reply = okta_get(&emu, &members).await;
    assert_eq!(reply.status, 200);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    assert!(reply.body.starts_with(b"[{"));

    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group),
        FaultAction::MalformedJson,
        1,
    ));
    let reply = okta_get(&emu, &members).await;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, br#"{"not": "an array""#.as_slice())
    );

    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group),
        FaultAction::ForeignNextLink,
        1,
    ));
    let reply = okta_get(&emu, &members).await;
    assert_eq!(ids(&reply).len(), 2);
    assert!(
        reply
            .next_link()
            .expect("next")
            .starts_with("https://evil.example/api/v1/groups/")
    );

    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group),
        FaultAction::EmptyList,
        1,
    ));
    let reply = okta_get(&emu, &members).await;
    assert_eq!((reply.status, reply.json()), (200, json!([])));
    assert_eq!(reply.next_link(), None);

    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group),
        FaultAction::Delay(Duration::from_millis(300)),
        1,
    ));
    let started = Instant::now();
    let reply = okta_get(&emu, &members).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(ids(&reply).len(), 2);

    // All used up: normal answers again.
    let reply = okta_get(&emu, &members).await;
    assert_eq!(ids(&reply).len(), 2);
    assert!(reply.next_link().expect("next").starts_with(&emu.url()));
}

#[tokio::test]
async fn faults_match_group_and_page() {
    let emu = start(OktaOptions::default()).await;
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing().on_page(2),
        FaultAction::Status(500),
    ));
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&OktaOrg::group_id(1)),
        FaultAction::Status(503),
    ));
    let first = okta_get(&emu, "/api/v1/groups?limit=2").await;
    assert_eq!(first.status, 200);
    let next = first.next_link().expect("next");
    assert_eq!(okta_url(&emu, &next).await.status, 500);
    assert_eq!(okta_url(&emu, &next).await.status, 500, "forever");
    assert_eq!(
        okta_get(
            &emu,
            &format!("/api/v1/groups/{}/users", OktaOrg::group_id(1))
        )
        .await
        .status,
        503
    );
    assert_eq!(
        okta_get(
            &emu,
            &format!("/api/v1/groups/{}/users", OktaOrg::group_id(0))
        )
        .await
        .status,
        200
    );
    emu.clear_faults();
    assert_eq!(okta_url(&emu, &next).await.status, 200);
}

#[tokio::test]
async fn request_log_records_retry_headers() {
    let emu = start(OktaOptions::default()).await;
    let auth = format!("SSWS {}", emu.token());
    let url = format!(
        "{}/api/v1/groups?limit=2&after={}",
        emu.url(),
        OktaOrg::group_id(1)
    );
    let headers = [
        ("authorization", auth.as_str()),
        ("x-okta-retry-for", "abc123"),
        ("x-okta-retry-count", "1"),
    ];
    let reply = get(&url, &headers).await;
    let log = emu.requests();
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(
        (entry.method.as_str(), entry.path.as_str()),
        ("GET", "/api/v1/groups")
    );
    assert_eq!(
        entry.query.as_deref(),
        Some(format!("limit=2&after={}", OktaOrg::group_id(1)).as_str())
    );
    assert_eq!((entry.status, entry.page), (200, Some(2)));
    assert_eq!(entry.retry_for.as_deref(), Some("abc123"));
    assert_eq!(entry.retry_count.as_deref(), Some("1"));
    assert_eq!(
        Some(entry.request_id.as_str()),
        reply.header("x-okta-request-id")
    );
    emu.reset_request_log();
    assert_eq!(emu.request_count(), 0);
}

#[tokio::test]
async fn membership_changes_show_up_in_listings_and_deltas() {
    let emu = start(OktaOptions::default()).await;
    let group = OktaOrg::group_id(3);
    let since = format!("{}.000Z", "2025-01-01T00:00:00");
    let delta = url::Url::parse_with_params(
        &format!("{}/api/v1/groups", emu.url()),
        [("filter", format!(r#"lastMembershipUpdated gt "{since}""#))],
    )
    .expect("url");
    assert!(ids(&okta_url(&emu, delta.as_str()).await).is_empty());

    emu.update(|org| org.add_member(&group, &OktaOrg::user_id(4)));
    assert_eq!(
        ids(&okta_url(&emu, delta.as_str()).await),
        vec![group.clone()]
    );

    let control = format!("{}/_emulator/members", emu.url());
    let body =
        json!({ "group_id": group, "add": [OktaOrg::user_id(0)], "remove": [OktaOrg::user_id(4)] });
    let reply = send(
        "POST",
        &control,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200);
    let members: BTreeSet<String> = emu.org().groups[&group].members.clone();
    assert_eq!(members, BTreeSet::from([OktaOrg::user_id(0)]));
    let reply = okta_get(&emu, &format!("/api/v1/groups/{group}/users")).await;
    assert_eq!(ids(&reply), vec![OktaOrg::user_id(0)]);

    let missing = json!({ "group_id": "00gnope", "add": [] });
    let reply = send("POST", &control, &[], Some(missing.to_string().as_bytes())).await;
    assert_eq!(reply.status, 404);
    assert_eq!(emu.request_count(), 3, "control calls are not logged");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let emu = start(OktaOptions::default()).await;
    let url = emu.url();
    emu.shutdown().await;
    let addr = url.trim_start_matches("http://");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
