//! The real Okta client against the Okta emulator: paging, filters, errors, retries, logging.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use q_group_sync::source::okta::{OktaAuth, OktaSettings, OktaSource};
use q_group_sync::source::{DirectorySource, GroupType, MemberRead, OktaMember, SourceError};
use q_group_sync_emulator::{
    FaultAction, LinkStyle, Matcher, OktaEmulator, OktaFault, OktaOptions, OktaOrg, OktaRequest,
};
use secrecy::SecretString;

const TOKEN: &str = "00emulator-SECRET-token-Zq9";

async fn emulator(options: OktaOptions) -> OktaEmulator {
    common::okta_emulator(common::messy_org::org(), TOKEN, options).await
}

fn settings(emu: &OktaEmulator) -> OktaSettings {
    common::okta_settings(emu, 4)
}

fn client(emu: &OktaEmulator) -> OktaSource {
    OktaSource::new(settings(emu)).unwrap()
}

fn members(read: MemberRead) -> Vec<OktaMember> {
    match read {
        MemberRead::Members(m) => m,
        MemberRead::GroupGone => panic!("group reported gone"),
    }
}

/// Requests for one group's member listing, in order.
fn requests_for(emu: &OktaEmulator, group: usize) -> Vec<OktaRequest> {
    let path = format!("/api/v1/groups/{}/users", OktaOrg::group_id(group));
    emu.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn expected_group_one() -> Vec<(String, &'static str, Option<&'static str>)> {
    vec![
        (
            OktaOrg::user_id(1),
            "ACTIVE",
            Some("Ana.Lopez@Example.test"),
        ),
        (
            OktaOrg::user_id(2),
            "DEPROVISIONED",
            Some("bo@example.test"),
        ),
        (OktaOrg::user_id(3), "STAGED", Some("cy@example.test")),
        (OktaOrg::user_id(4), "ACTIVE", None),
        (
            OktaOrg::user_id(5),
            "SOMETHING_NEW",
            Some("ed@example.test"),
        ),
        (
            OktaOrg::user_id(6),
            "PASSWORD_EXPIRED",
            Some("fay+tag@example.test"),
        ),
        (OktaOrg::user_id(7), "ACTIVE", Some("gus@example.test")),
    ]
}

fn simplify(members: &[OktaMember]) -> Vec<(String, &str, Option<&str>)> {
    members
        .iter()
        .map(|m| (m.id.clone(), m.status.as_str(), m.attribute.as_deref()))
        .collect()
}

#[tokio::test]
async fn pages_through_groups_and_members_in_both_link_styles() {
    for style in [LinkStyle::SeparateHeaders, LinkStyle::CommaJoined] {
        let emu = emulator(OktaOptions {
            link_style: style,
            ..OktaOptions::default()
        })
        .await;
        let okta = client(&emu);

        let groups = okta.list_groups().await.unwrap();
        let ids: Vec<_> = groups.iter().map(|g| g.id.clone()).collect();
        assert_eq!(
            ids,
            (1..=5).map(OktaOrg::group_id).collect::<Vec<_>>(),
            "{style:?}"
        );
        assert!(groups.iter().all(|g| g.kind == GroupType::Okta));
        assert_eq!(groups[2].name, "Team 3");
        assert!(groups[0].last_membership_updated.is_some());
        // 5 groups at 2 per page: 3 pages, the filter on each.
        let listing: Vec<_> = emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v1/groups")
            .collect();
        assert_eq!(
            listing.iter().map(|r| r.page).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)],
            "{style:?}"
        );
        assert!(listing.iter().all(|r| r.status == 200));

        let got = members(okta.list_members(&OktaOrg::group_id(1)).await.unwrap());
        assert_eq!(simplify(&got), expected_group_one(), "{style:?}");
        assert_eq!(requests_for(&emu, 1).len(), 4, "7 members at 2 per page");
        assert!(
            requests_for(&emu, 1).iter().all(|r| r
                .query
                .as_deref()
                .unwrap_or("")
                .contains("limit=2"))
        );

        // An empty group is one page and an empty list; login as the id attribute.
        assert_eq!(
            members(okta.list_members(&OktaOrg::group_id(3)).await.unwrap()),
            []
        );
        let mut s = settings(&emu);
        s.id_attribute = "login".into();
        let by_login = members(
            OktaSource::new(s)
                .unwrap()
                .list_members(&OktaOrg::group_id(1))
                .await
                .unwrap(),
        );
        assert_eq!(by_login[3].attribute.as_deref(), Some("dee@example.test"));

        let stats = okta.stats();
        assert_eq!(stats.requests, 3 + 4 + 1);
        assert_eq!((stats.rate_limited, stats.retries), (0, 0));
    }
}

#[tokio::test]
async fn filter_is_passed_through_and_a_bad_one_is_a_bad_request() {
    let emu = emulator(OktaOptions::default()).await;
    let mut s = settings(&emu);
    s.group_filter = r#"type eq "APP_GROUP" or type eq "BUILT_IN""#.into();
    let groups = OktaSource::new(s).unwrap().list_groups().await.unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| (g.name.as_str(), g.kind.clone()))
            .collect::<Vec<_>>(),
        [
            ("AD Admins", GroupType::App),
            ("Everyone", GroupType::BuiltIn)
        ]
    );
    let query = emu.requests()[0].query.clone().unwrap();
    assert!(
        query.contains("filter=type%20eq%20%22APP_GROUP%22%20or%20type%20eq%20%22BUILT_IN%22"),
        "{query}"
    );

    let mut s = settings(&emu);
    s.group_filter = "name sw \"Team\" and (".into();
    let err = OktaSource::new(s).unwrap().list_groups().await.unwrap_err();
    match err {
        SourceError::BadRequest { code, path, .. } => {
            assert_eq!(code, "E0000031");
            assert_eq!(path, "/api/v1/groups");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn check_sends_one_limit_1_request() {
    let emu = emulator(OktaOptions::default()).await;
    assert_eq!(client(&emu).check().await.unwrap(), 1);
    let requests = emu.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].query.as_deref().unwrap().contains("limit=1&"),
        "{:?}",
        requests[0].query
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized_without_retries() {
    let emu = emulator(OktaOptions::default()).await;
    let mut s = settings(&emu);
    s.auth = OktaAuth::Ssws(SecretString::from("00wrong-token"));
    let okta = OktaSource::new(s).unwrap();
    let err = okta.list_groups().await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unauthorized { code } if code == "E0000011"),
        "{err:?}"
    );
    assert!(err.is_fatal());
    let err = okta.list_members(&OktaOrg::group_id(1)).await.unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
    assert_eq!(emu.request_count(), 2);
    assert_eq!(okta.stats().retries, 0);
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let emu = emulator(OktaOptions::default()).await;
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing(),
        FaultAction::Status(403),
    ));
    let okta = client(&emu);
    let err = okta.list_groups().await.unwrap_err();
    assert_eq!(err.kind(), "forbidden", "{err:?}");
    assert!(err.is_fatal());
    assert_eq!(emu.request_count(), 1);
}

#[tokio::test]
async fn a_429_burst_mid_pagination_is_waited_out_with_retry_headers() {
    let emu = emulator(OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(2),
        FaultAction::RateLimited,
        2,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(3),
        FaultAction::ConcurrencyLimited,
        1,
    ));
    let okta = client(&emu);

    let started = std::time::Instant::now();
    let got = members(okta.list_members(&group).await.unwrap());
    assert_eq!(simplify(&got), expected_group_one());
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three waits of at least 1 s each"
    );

    let log = requests_for(&emu, 1);
    let summary: Vec<_> = log
        .iter()
        .map(|r| (r.page, r.status, r.retry_count.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(1), 200, None),
            (Some(2), 429, None),
            (Some(2), 429, Some("1")),
            (Some(2), 200, Some("2")),
            (Some(3), 429, None),
            (Some(3), 200, Some("1")),
            (Some(4), 200, None),
        ]
    );
    // Each retry names the request id of the 429 it answers.
    assert_eq!(
        log[2].retry_for.as_deref(),
        Some(log[1].request_id.as_str())
    );
    assert_eq!(
        log[3].retry_for.as_deref(),
        Some(log[2].request_id.as_str())
    );
    assert_eq!(
        log[5].retry_for.as_deref(),
        Some(log[4].request_id.as_str())
    );
    assert_eq!(log[0].retry_for, None);

    let stats = okta.stats();
    assert_eq!(
        (stats.requests, stats.rate_limited, stats.retries),
        (7, 3, 3)
    );
    assert!(stats.rate_limit_wait_secs >= 3.0, "{stats:?}");
}

#[tokio::test]
async fn the_real_rate_limit_bucket_is_paced_without_429s() {
    // 3 requests per 1 s window; 5 group pages + 4 member pages need several windows.
    let emu = emulator(OktaOptions {
        rate_limit: 3,
        rate_window: Duration::from_secs(1),
        ..OktaOptions::default()
    })
    .await;
    let mut s = settings(&emu);
    s.max_retries = 10;
    s.max_retry_wait = Duration::from_secs(3);
    let okta = OktaSource::new(s).unwrap();
    let mut s = settings(&emu);
    s.max_retries = 10;
    s.group_filter = r#"type eq "OKTA_GROUP" or type eq "APP_GROUP" or type eq "BUILT_IN""#.into();
    s.page_size = 1;
    let one_per_page = OktaSource::new(s).unwrap();

    assert_eq!(one_per_page.list_groups().await.unwrap().len(), 7);
    assert_eq!(
        simplify(&members(
            okta.list_members(&OktaOrg::group_id(1)).await.unwrap()
        )),
        expected_group_one()
    );
    // The clients learn the bucket from the headers and pace themselves to half of it: the
    // listings take several windows and never trip the limit.
    assert_eq!(emu.rate_limited_count(), 0, "paced, not throttled");
    assert_eq!(
        one_per_page.stats().rate_limited + okta.stats().rate_limited,
        0
    );
}

#[tokio::test]
async fn persistent_500_on_page_3_fails_the_whole_listing() {
    let emu = emulator(OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&group).on_page(3),
        FaultAction::Status(500),
    ));
    let mut s = settings(&emu);
    s.max_retries = 2;
    let okta = OktaSource::new(s).unwrap();

    let err = okta.list_members(&group).await.unwrap_err();
    match &err {
        SourceError::Server { status, path } => {
            assert_eq!(*status, 500);
            assert_eq!(path, &format!("/api/v1/groups/{group}/users"));
        }
        other => panic!("expected Server, got {other:?}"),
    }
    let pages: Vec<_> = requests_for(&emu, 1)
        .iter()
        .map(|r| (r.page, r.status))
        .collect();
    assert_eq!(
        pages,
        [
            (Some(1), 200),
            (Some(2), 200),
            (Some(3), 500),
            (Some(3), 500),
            (Some(3), 500)
        ]
    );
    assert_eq!(okta.stats().retries, 2);

    // The same for the group listing.
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing().on_page(3),
        FaultAction::Status(503),
    ));
    assert!(matches!(
        okta.list_groups().await,
        Err(SourceError::Server { status: 503, .. })
    ));
}

#[tokio::test]
async fn transient_5xx_and_timeouts_are_retried() {
    let emu = emulator(OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(2),
        FaultAction::Status(503),
        1,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(3),
        FaultAction::Status(502),
        1,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(4),
        FaultAction::Delay(Duration::from_secs(3)),
        1,
    ));
    let mut s = settings(&emu);
    s.request_timeout = Duration::from_millis(700);
    let okta = OktaSource::new(s).unwrap();
    assert_eq!(
        simplify(&members(okta.list_members(&group).await.unwrap())),
        expected_group_one()
    );
    assert_eq!(okta.stats().retries, 3);
    assert_eq!(okta.stats().rate_limited, 0);

    // A timeout on every attempt is a transport error after the retries.
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing(),
        FaultAction::Delay(Duration::from_secs(3)),
    ));
    let mut s = settings(&emu);
    s.request_timeout = Duration::from_millis(200);
    s.max_retries = 1;
    let err = OktaSource::new(s).unwrap().list_groups().await.unwrap_err();
    assert_eq!(err.kind(), "transport", "{err:?}");
}

#[tokio::test]
async fn deleted_group_is_gone_even_mid_listing() {
    let emu = emulator(OktaOptions::default()).await;
    let okta = client(&emu);
    assert_eq!(
        okta.list_members("00gDOESNOTEXIST0x4x6").await.unwrap(),
        MemberRead::GroupGone
    );

    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&group).on_page(3),
        FaultAction::Status(404),
    ));
    assert_eq!(
        okta.list_members(&group).await.unwrap(),
        MemberRead::GroupGone
    );
    assert_eq!(okta.stats().retries, 0);
}

#[tokio::test]
async fn truncated_body_is_retried_then_succeeds() {
    let emu = emulator(OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(2),
        FaultAction::TruncatedBody,
        2,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::groups_listing().on_page(1),
        FaultAction::MalformedJson,
        1,
    ));
    let okta = client(&emu);
    assert_eq!(
        simplify(&members(okta.list_members(&group).await.unwrap())),
        expected_group_one()
    );
    assert_eq!(okta.list_groups().await.unwrap().len(), 5);
    assert_eq!(okta.stats().retries, 3);
}

#[tokio::test]
async fn a_body_that_stays_broken_is_malformed() {
    let emu = emulator(OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&group).on_page(2),
        FaultAction::TruncatedBody,
    ));
    let mut s = settings(&emu);
    s.max_retries = 1;
    let err = OktaSource::new(s)
        .unwrap()
        .list_members(&group)
        .await
        .unwrap_err();
    match &err {
        SourceError::Malformed { path, detail } => {
            assert_eq!(path, &format!("/api/v1/groups/{group}/users"));
            assert!(detail.contains("EOF"), "{detail}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_next_link_fails_the_listing() {
    let emu = emulator(OktaOptions::default()).await;
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing().on_page(1),
        FaultAction::ForeignNextLink,
    ));
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&group).on_page(2),
        FaultAction::ForeignNextLink,
    ));
    let okta = client(&emu);

    let err = okta.list_groups().await.unwrap_err();
    match &err {
        SourceError::ForeignLink { link_origin, .. } => {
            assert_eq!(link_origin, "https://evil.example")
        }
        other => panic!("expected ForeignLink, got {other:?}"),
    }
    let err = okta.list_members(&group).await.unwrap_err();
    assert_eq!(err.kind(), "foreign_link");
    assert_eq!(okta.stats().retries, 0);
    // Nothing but the two listings' own pages was requested.
    assert_eq!(emu.request_count(), 1 + 2);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let emu = emulator(OktaOptions {
        latency: Duration::from_millis(50),
        max_concurrent: 2,
        ..OktaOptions::default()
    })
    .await;
    let mut s = settings(&emu);
    s.max_concurrency = 2;
    let okta = OktaSource::new(s).unwrap();
    let okta = &okta;
    let reads = futures::future::join_all(
        (1..=7).map(|n| async move { okta.list_members(&OktaOrg::group_id(n)).await }),
    )
    .await;
    for read in reads {
        read.unwrap();
    }
    assert!(emu.max_in_flight() <= 2, "{}", emu.max_in_flight());
    assert_eq!(emu.rate_limited_count(), 0);
}

/// The `limit` each request for group `group`'s members asked for, in order.
fn member_limits(emu: &OktaEmulator, group: usize) -> Vec<String> {
    requests_for(emu, group)
        .into_iter()
        .map(|r| {
            let query = r.query.unwrap_or_default();
            query
                .split('&')
                .find_map(|p| p.strip_prefix("limit="))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn member_pages_follow_what_an_org_that_caps_them_returns() {
    let emu = emulator(OktaOptions {
        max_members_limit: 3,
        ..OktaOptions::default()
    })
    .await;
    let mut s = settings(&emu);
    s.member_page_size = 1000;
    let okta = OktaSource::new(s).unwrap();
    assert_eq!(
        simplify(&members(
            okta.list_members(&OktaOrg::group_id(1)).await.unwrap()
        )),
        expected_group_one()
    );
    // Asked for 1000, got 3 per page: the next links (limit 3) are followed to the end.
    assert_eq!(member_limits(&emu, 1), ["1000", "3", "3"]);
    assert_eq!(okta.stats().retries, 0);
}

#[tokio::test]
async fn a_large_member_page_that_fails_is_asked_again_smaller_for_the_rest_of_the_pass() {
    let (captured, _guard) = common::capture_logs(tracing::Level::WARN);
    let emu = emulator(OktaOptions::default()).await;
    // The org fails every page of more than 200 members; smaller pages work.
    emu.add_fault(OktaFault::always(
        Matcher::any().limit_at_least(201),
        FaultAction::Status(503),
    ));
    let mut s = settings(&emu);
    s.member_page_size = 1000;
    let okta = OktaSource::new(s).unwrap();
    okta.list_groups().await.unwrap();
    assert_eq!(
        simplify(&members(
            okta.list_members(&OktaOrg::group_id(1)).await.unwrap()
        )),
        expected_group_one()
    );
    assert_eq!(member_limits(&emu, 1), ["1000", "200"]);
    // Remembered: the next group starts at 200.
    let two = members(okta.list_members(&OktaOrg::group_id(2)).await.unwrap());
    assert_eq!(two.len(), 3);
    assert_eq!(member_limits(&emu, 2), ["200"]);
    assert_eq!(okta.stats().retries, 0, "the smaller page is not a retry");
    let logs = captured.text();
    let warned = logs.matches("member reads ask for smaller pages").count();
    assert_eq!(warned, 1, "logged once: {logs}");

    // A new pass (the groups listing) tries the configured size again.
    okta.list_groups().await.unwrap();
    okta.list_members(&OktaOrg::group_id(2)).await.unwrap();
    assert_eq!(member_limits(&emu, 2), ["200", "1000", "200"]);
}

#[tokio::test]
async fn a_large_member_page_that_times_out_is_asked_again_smaller() {
    let emu = emulator(OktaOptions::default()).await;
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&OktaOrg::group_id(1)).limit_at_least(201),
        FaultAction::Delay(Duration::from_secs(3)),
    ));
    let mut s = settings(&emu);
    s.member_page_size = 500;
    s.request_timeout = Duration::from_millis(300);
    let okta = OktaSource::new(s).unwrap();
    assert_eq!(
        simplify(&members(
            okta.list_members(&OktaOrg::group_id(1)).await.unwrap()
        )),
        expected_group_one()
    );
    // The request of 500 timed out (the emulator logs only what it answered): two requests,
    // no retry.
    assert_eq!(member_limits(&emu, 1), ["200"]);
    assert_eq!((okta.stats().requests, okta.stats().retries), (2, 0));

    // A page at the smaller size that keeps failing is an error after the usual retries.
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&OktaOrg::group_id(2)),
        FaultAction::Status(500),
    ));
    let err = okta.list_members(&OktaOrg::group_id(2)).await.unwrap_err();
    assert_eq!(err.kind(), "server", "{err:?}");
    assert_eq!(member_limits(&emu, 2).len(), 1 + 3, "200, then 3 retries");
}

#[tokio::test]
async fn pages_sent_in_chunks_without_a_length_are_read_whole_and_still_capped() {
    let emu = emulator(OktaOptions::default()).await;
    // Every answer chunked, in pieces smaller than one user's JSON, with no Content-Length.
    emu.add_fault(OktaFault::always(
        Matcher::any(),
        FaultAction::ChunkedBody(7),
    ));
    let raw = reqwest::Client::new()
        .get(format!("{}/api/v1/groups?limit=2", emu.url()))
        .header("Authorization", format!("SSWS {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert!(raw.headers().get("content-length").is_none());
    assert_eq!(
        raw.headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );

    let okta = client(&emu);
    let group = OktaOrg::group_id(1);
    assert_eq!(
        simplify(&members(okta.list_members(&group).await.unwrap())),
        expected_group_one()
    );
    let chunked: Vec<String> = okta
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(okta.stats().retries, 0);

    // Over the cap with no declared length: cut off while reading, named, not retried.
    let capped = OktaSource::new(settings(&emu))
        .unwrap()
        .with_response_limits(256, 50);
    let err = capped.list_members(&group).await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err}");
    assert!(err.to_string().contains(&group), "{err}");
    assert_eq!(capped.stats().retries, 0);

    // The listing read in chunks is the listing read whole.
    emu.clear_faults();
    let whole: Vec<String> = client(&emu)
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert!(!whole.is_empty());
    assert_eq!(chunked, whole);
}
