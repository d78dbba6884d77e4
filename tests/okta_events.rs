//! The System Log change feed ([`OktaChangeFeed`]) against the Okta emulator over real HTTP:
//! what a poll sees, resuming from a saved cursor without gaps or duplicates (also when events
//! arrive late and out of order), 429s, malformed events, a user's groups, and secrets.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::TestKey;
use q_group_sync::clock::SystemClock;
use q_group_sync::model::OktaGroupId;
use q_group_sync::source::oauth::{ClientKey, OAuthSettings};
use q_group_sync::source::okta::events::{
    ChangeFeed, ChangeKind, FeedSettings, OktaChangeFeed, affected, drain,
};
use q_group_sync::source::okta::{OktaAuth, OktaSettings, OktaSource};
use q_group_sync::source::{DirectorySource, SourceError};
use q_group_sync_emulator::{
    FaultAction, Matcher, OAuthApp, OktaEmulator, OktaFault, OktaOptions, OktaOrg,
};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

const TOKEN: &str = "00events-SECRET-token-Qx7";

/// Users 0..8, groups 0..6; user 0 is in every group, users 1..4 in group 0.
fn org() -> OktaOrg {
    let mut org = OktaOrg::default();
    for u in 0..8 {
        let email = format!("user{u}@example.test");
        org.add_user(&OktaOrg::user_id(u), "ACTIVE", Some(&email), &email);
    }
    for g in 0..6 {
        let id = OktaOrg::group_id(g);
        org.add_group(&id, &format!("team-{g}"), "OKTA_GROUP");
        org.add_member(&id, &OktaOrg::user_id(0));
    }
    for u in 1..4 {
        org.add_member(&OktaOrg::group_id(0), &OktaOrg::user_id(u));
    }
    org
}

async fn emulator(options: OktaOptions) -> OktaEmulator {
    common::okta_emulator(org(), TOKEN, options).await
}

fn settings(emu: &OktaEmulator) -> OktaSettings {
    common::okta_settings(emu, 2)
}

fn feed_with(source: OktaSource, page_size: u32) -> OktaChangeFeed {
    OktaChangeFeed::new(
        Arc::new(source),
        FeedSettings {
            lookback: Duration::from_secs(300),
            page_size,
        },
        Arc::new(SystemClock),
    )
}

fn feed(emu: &OktaEmulator, page_size: u32) -> OktaChangeFeed {
    feed_with(OktaSource::new(settings(emu)).unwrap(), page_size)
}

fn gid(n: usize) -> OktaGroupId {
    OktaGroupId::new(OktaOrg::group_id(n))
}

/// Every event the emulator logged that the feed asks for, by uuid.
fn relevant_uuids(emu: &OktaEmulator) -> Vec<String> {
    emu.org()
        .log
        .events()
        .iter()
        .filter(|e| ChangeKind::parse(&e.event_type).is_some())
        .map(|e| e.uuid.clone())
        .collect()
}

#[tokio::test]
async fn a_poll_sees_membership_lifecycle_and_profile_changes() {
    let emu = emulator(OktaOptions::default()).await;
    let feed = feed(&emu, 1000);
    let first = feed.poll(None).await.unwrap();
    assert!(
        first.events.is_empty(),
        "the org's seeding is not in the log"
    );
    assert!(!first.full);

    emu.update(|o| {
        o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(5));
        o.remove_member(&OktaOrg::group_id(0), &OktaOrg::user_id(1));
        o.remove_group(&OktaOrg::group_id(2));
        o.add_group("00gnewgroup000000001", "team-new", "OKTA_GROUP");
        o.rename_group(&OktaOrg::group_id(3), "team-3-renamed");
        o.set_user_status(&OktaOrg::user_id(2), "DEPROVISIONED");
        o.set_user_email(&OktaOrg::user_id(3), Some("renamed3@example.test"));
        // Not asked for: Okta's filter drops it.
        o.set_user_status(&OktaOrg::user_id(4), "LOCKED_OUT");
    });
    let page = feed.poll(Some(&first.next)).await.unwrap();
    let kinds: Vec<ChangeKind> = page.events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::MembershipAdd,
            ChangeKind::MembershipRemove,
            ChangeKind::GroupLifecycle("delete".into()),
            ChangeKind::GroupLifecycle("create".into()),
            ChangeKind::GroupProfileUpdate,
            ChangeKind::UserLifecycle("deactivate".into()),
            ChangeKind::UserProfileUpdate,
        ]
    );
    assert_eq!((page.malformed, page.ignored), (0, 0));
    let add = &page.events[0];
    assert_eq!(add.user_id.as_deref(), Some(OktaOrg::user_id(5).as_str()));
    assert_eq!(add.group_id, Some(gid(1)));
    assert!(add.uuid.len() == 36);

    let dirty = affected(&page.events);
    let expected: BTreeSet<OktaGroupId> = [
        gid(0),
        gid(1),
        gid(2),
        gid(3),
        OktaGroupId::new("00gnewgroup000000001"),
    ]
    .into();
    assert_eq!(dirty.groups, expected);
    assert_eq!(
        dirty.users,
        [OktaOrg::user_id(2), OktaOrg::user_id(3)].into()
    );
    assert!(dirty.relist);

    // The first request: polling mode from the lookback, with the filter and limit.
    let requests: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/logs")
        .collect();
    let first_query = requests[0].query.clone().unwrap();
    for part in [
        "since=",
        "sortOrder=ASCENDING",
        "limit=1000",
        "filter=eventType%20eq%20%22group.user_membership.add%22",
    ] {
        assert!(first_query.contains(part), "{part} in {first_query}");
    }
    let second_query = requests[1].query.clone().unwrap();
    assert!(
        second_query.contains("after=") && !second_query.contains("since="),
        "{second_query}"
    );
}

#[tokio::test]
async fn resuming_from_a_saved_cursor_has_no_gaps_or_duplicates_even_out_of_order() {
    let emu = emulator(OktaOptions {
        // Events become visible up to 300 ms late, so persistence order is not published order.
        log_lag_jitter: Duration::from_millis(300),
        ..OktaOptions::default()
    })
    .await;
    let mut saved: Option<String> = None;
    let mut seen = Vec::new();
    for round in 0..4 {
        emu.update(|o| {
            for u in 1..6 {
                // Groups 1..=5 hold only user 0: every change is real and logged.
                let group = OktaOrg::group_id(1 + (round + u) % 5);
                o.add_member(&group, &OktaOrg::user_id(u));
                o.remove_member(&group, &OktaOrg::user_id(u));
            }
        });
        // A fresh client each round, resuming from the cursor as text: a restart in between.
        let feed = feed(&emu, 3);
        let cursor = saved.as_deref().map(|s| Url::parse(s).unwrap());
        let (events, next) = drain(&feed, cursor.as_ref(), 100).await.unwrap();
        seen.extend(events.into_iter().map(|e| e.uuid));
        saved = next.map(|u| u.to_string());
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let feed = feed(&emu, 3);
    let cursor = Url::parse(saved.as_deref().unwrap()).unwrap();
    let (late, _) = drain(&feed, Some(&cursor), 100).await.unwrap();
    seen.extend(late.into_iter().map(|e| e.uuid));

    let logged = relevant_uuids(&emu);
    assert_eq!(logged.len(), 40);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    assert_eq!(
        unique,
        logged.iter().collect::<BTreeSet<_>>(),
        "every event once"
    );
}

#[tokio::test]
async fn a_late_event_still_marks_its_group() {
    let emu = emulator(OktaOptions::default()).await;
    let feed = feed(&emu, 1000);
    let start = feed.poll(None).await.unwrap().next;
    emu.update(|o| {
        o.log.lag = Duration::from_millis(500);
        o.add_member(&OktaOrg::group_id(4), &OktaOrg::user_id(6));
        o.log.lag = Duration::ZERO;
        o.remove_member(&OktaOrg::group_id(5), &OktaOrg::user_id(0));
    });
    let page = feed.poll(Some(&start)).await.unwrap();
    assert_eq!(affected(&page.events).groups, [gid(5)].into());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = feed.poll(Some(&page.next)).await.unwrap();
    assert_eq!(affected(&late.events).groups, [gid(4)].into());
    assert!(late.events[0].published <= page.events[0].published);
}

#[tokio::test]
async fn a_429_on_the_logs_bucket_is_waited_out() {
    let emu = emulator(OktaOptions::default()).await;
    emu.add_fault(OktaFault::times(
        Matcher::logs(),
        FaultAction::RateLimited,
        2,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::logs(),
        FaultAction::Status(503),
        1,
    ));
    let feed = feed(&emu, 100);
    let page = feed.poll(None).await.unwrap();
    assert!(page.events.is_empty());
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 503, 200]);
    let last = emu.requests().pop().unwrap();
    assert_eq!(last.retry_count.as_deref(), Some("3"));

    // Retries run out: the cursor stays with the caller, and the error names the endpoint.
    emu.add_fault(OktaFault::always(Matcher::logs(), FaultAction::Status(500)));
    let err = feed.poll(Some(&page.next)).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Server { path, status: 500 } if path == "/api/v1/logs"),
        "{err}"
    );
}

#[tokio::test]
async fn polls_are_paced_within_the_logs_bucket_without_touching_the_groups_bucket() {
    let emu = emulator(OktaOptions {
        logs_rate_limit: 4,
        rate_window: Duration::from_secs(1),
        ..OktaOptions::default()
    })
    .await;
    let source = Arc::new(
        OktaSource::new(OktaSettings {
            rate_limit_share: 1.0,
            ..settings(&emu)
        })
        .unwrap(),
    );
    let feed = OktaChangeFeed::new(
        source.clone(),
        FeedSettings {
            lookback: Duration::from_secs(60),
            page_size: 10,
        },
        Arc::new(SystemClock),
    );
    let mut cursor = feed.poll(None).await.unwrap().next;
    for _ in 0..5 {
        cursor = feed.poll(Some(&cursor)).await.unwrap().next;
    }
    // The directory reads share the client (and its budget) but not the bucket.
    assert_eq!(source.list_groups().await.unwrap().len(), 6);
    let stats = emu.stats();
    assert_eq!(stats.logs.requests, 6);
    assert_eq!(stats.logs.rate_limited, 0, "paced, not refused");
    assert_eq!(stats.list_groups.rate_limited, 0);
}

#[tokio::test]
async fn a_malformed_event_is_skipped_with_a_warning_naming_it() {
    let (captured, _guard) = common::capture_logs(tracing::Level::WARN);

    let emu = emulator(OktaOptions::default()).await;
    let feed = feed(&emu, 1000);
    emu.update(|o| {
        o.log.append_raw(json!({
            "uuid": "bad-event-0001",
            "published": "not a date",
            "eventType": "group.user_membership.add",
            "target": [],
        }));
        o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(7));
    });
    let page = feed.poll(None).await.unwrap();
    assert_eq!(page.malformed, 1);
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].group_id, Some(gid(1)));
    let logs = captured.text();
    assert!(logs.contains("bad-event-0001"), "{logs}");
}

#[tokio::test]
async fn user_groups_reads_every_page() {
    // Okta pages a user's groups by itself (the endpoint documents no `limit`): two a page.
    let emu = emulator(OktaOptions {
        default_user_groups_limit: 2,
        ..OktaOptions::default()
    })
    .await;
    let feed = feed(&emu, 100);
    let groups = feed.user_groups(&OktaOrg::user_id(0)).await.unwrap();
    assert_eq!(groups, (0..6).map(gid).collect::<Vec<_>>());
    let requests: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/v1/users/{}/groups", OktaOrg::user_id(0)))
        .collect();
    assert_eq!(requests.len(), 3, "three pages, following next");
    assert_eq!(requests[0].query, None, "no limit asked: {requests:?}");
    assert_eq!(
        feed.user_groups(&OktaOrg::user_id(1)).await.unwrap(),
        [gid(0)]
    );
    assert!(
        feed.user_groups(&OktaOrg::user_id(7))
            .await
            .unwrap()
            .is_empty()
    );
    emu.update(|o| o.remove_user(&OktaOrg::user_id(1)));
    assert!(
        feed.user_groups(&OktaOrg::user_id(1))
            .await
            .unwrap()
            .is_empty(),
        "a deleted user is in no group"
    );
    emu.add_fault(OktaFault::always(
        Matcher::groups_of_user(&OktaOrg::user_id(0)).on_page(2),
        FaultAction::Status(500),
    ));
    let err = feed.user_groups(&OktaOrg::user_id(0)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        "server",
        "a failed page fails the whole listing"
    );
    assert_eq!(
        feed.user_groups("..").await.unwrap_err().kind(),
        "malformed"
    );
}

#[tokio::test]
async fn odd_saved_cursors_are_refused_before_any_request() {
    let emu = emulator(OktaOptions::default()).await;
    let feed = feed(&emu, 100);
    let org = emu.url();
    let port = Url::parse(&org).unwrap().port().unwrap();
    let foreign = Url::parse("https://evil.example/api/v1/logs?after=1_1").unwrap();
    let err = feed.poll(Some(&foreign)).await.unwrap_err();
    assert!(matches!(err, SourceError::ForeignLink { .. }), "{err}");
    for odd in [
        format!("{org}/api/v1/groups?after=1_1"),
        format!("http://user:pw@127.0.0.1:{port}/api/v1/logs?after=1_1"),
        format!("{org}/api/v1/logs?after=1_1#x"),
    ] {
        let err = feed
            .poll(Some(&Url::parse(&odd).unwrap()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "malformed", "{odd}: {err}");
    }
    assert_eq!(emu.request_count(), 0);
    // A cursor Okta no longer accepts is a 400: the caller drops it and starts afresh.
    let stale = Url::parse(&format!("{org}/api/v1/logs?after=garbage")).unwrap();
    let err = feed.poll(Some(&stale)).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::BadRequest { code, .. } if code == "E0000053"),
        "{err}"
    );
}

#[tokio::test]
async fn oauth_needs_the_logs_scope_and_says_so() {
    let key = TestKey::ec();
    let app = OAuthApp {
        public_keys: vec![key.registered(None)],
        ..OAuthApp::default()
    };
    let emu = emulator(OktaOptions {
        oauth: Some(app.clone()),
        ..OktaOptions::default()
    })
    .await;
    let oauth = |scopes: &[&str]| {
        OktaSource::new(OktaSettings {
            auth: OktaAuth::OAuth(OAuthSettings {
                client_id: app.client_id.clone(),
                key: ClientKey::from_pem(&key.private_pem).unwrap(),
                key_id: None,
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                dpop: true,
            }),
            ..settings(&emu)
        })
        .unwrap()
    };
    let all = feed_with(
        oauth(&["okta.groups.read", "okta.logs.read", "okta.users.read"]),
        100,
    );
    all.poll(None).await.unwrap();
    assert_eq!(
        all.user_groups(&OktaOrg::user_id(1)).await.unwrap(),
        [gid(0)]
    );

    let groups_only = feed_with(oauth(&["okta.groups.read"]), 100);
    let err = groups_only.poll(None).await.unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(err.to_string().contains("okta.logs.read"), "{err}");
    let err = groups_only
        .user_groups(&OktaOrg::user_id(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("okta.users.read"), "{err}");
}

#[tokio::test]
async fn the_token_never_appears_in_trace_logs_or_errors() {
    let (captured, _guard) = common::capture_logs(tracing::Level::TRACE);

    let emu = emulator(OktaOptions::default()).await;
    emu.add_fault(OktaFault::times(
        Matcher::logs(),
        FaultAction::RateLimited,
        1,
    ));
    let feed = feed(&emu, 2);
    emu.update(|o| {
        for u in 1..6 {
            o.add_member(&OktaOrg::group_id(3), &OktaOrg::user_id(u));
        }
    });
    let (events, _) = drain(&feed, None, 10).await.unwrap();
    assert_eq!(events.len(), 5);
    feed.user_groups(&OktaOrg::user_id(0)).await.unwrap();
    let mut s = settings(&emu);
    s.auth = OktaAuth::Ssws(SecretString::from(format!("{TOKEN}-but-wrong")));
    let err = feed_with(OktaSource::new(s).unwrap(), 2)
        .poll(None)
        .await
        .unwrap_err();

    let logs = captured.text();
    assert!(
        logs.contains("/api/v1/logs"),
        "the client logged at trace: {logs}"
    );
    assert!(logs.contains("retrying Okta request"), "{logs}");
    assert!(!logs.contains(TOKEN), "token in logs:\n{logs}");
    assert!(!logs.contains("SSWS"), "auth header in logs:\n{logs}");
    let shown = format!(
        "{err} {err:?} {:?} {feed:?}",
        std::error::Error::source(&err)
    );
    assert!(!shown.contains(TOKEN), "{shown}");
}
