//! Configuration from the environment, through the binary: stray variables with the prefix
//! (Kubernetes service links, test settings) are ignored, values are typed by their key, and
//! no secret or password is echoed in a configuration error.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Harness, org_with, text};

async fn harness() -> Harness {
    Harness::start(org_with(3, 6, |g| format!("team-{g}"), |u, g| u % 3 == g)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_prefixed_variables_are_ignored_and_values_follow_the_key_type() {
    let h = harness().await;
    let out = h
        .run_env(
            &["sync"],
            &[
                // What Kubernetes injects for a Service named q-group-sync, and a test setting.
                ("Q_GROUP_SYNC_PORT", "tcp://10.96.0.12:9090"),
                ("Q_GROUP_SYNC_PORT_9090_TCP", "tcp://10.96.0.12:9090"),
                ("Q_GROUP_SYNC_PORT_9090_TCP_ADDR", "10.96.0.12"),
                ("Q_GROUP_SYNC_SERVICE_HOST", "10.96.0.12"),
                ("Q_GROUP_SYNC_SERVICE_PORT", "9090"),
                (
                    "Q_GROUP_SYNC_TEST_POSTGRES_URL",
                    "postgres://u:p@127.0.0.1/db",
                ),
                // A string key: digits stay a string.
                ("Q_GROUP_SYNC_GROUPS__NAME_PREFIX", "0123"),
                // A list key: comma-separated.
                ("Q_GROUP_SYNC_GROUPS__EXCLUDE", "team-0, team-2"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let names: Vec<String> = h.q_state().into_keys().collect();
    assert_eq!(names, ["0123team-1"], "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_delay_alone_is_accepted() {
    let h = harness().await;
    let out = h
        .run_env(
            &["check-config"],
            &[
                ("Q_GROUP_SYNC_OKTA__EVENTS__ENABLED", "true"),
                ("Q_GROUP_SYNC_OKTA__EVENTS__MAX_DELAY", "5s"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("okta events: ok"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_unknown_variable_is_named() {
    let h = harness().await;
    let out = h
        .run_env(
            &["plan"],
            &[("Q_GROUP_SYNC_OKTA__ORG_ULR", "https://x.test")],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("Q_GROUP_SYNC_OKTA__ORG_ULR")
            && error.contains("Q_GROUP_SYNC_OKTA__ORG_URL"),
        "{error}"
    );
    let out = h
        .run_env(
            &["plan"],
            &[("Q_GROUP_SYNC_OKTA__PAGE_SIZE", "two hundred")],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("Q_GROUP_SYNC_OKTA__PAGE_SIZE") && error.contains("whole number"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unquoted_numeric_token_is_not_echoed() {
    let h = harness().await;
    let text_now = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text_now.replace("[okta]\n", "[okta]\napi_token = 98765432109876543\n"),
    )
    .unwrap();
    // An empty variable counts as unset, so the file's value is the one read.
    let out = h
        .run_env(&["check-config"], &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "")])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("98765432109876543"), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(error.contains("okta.api_token"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_in_a_url_is_refused_without_echoing_it() {
    let h = harness().await;
    for (var, url) in [
        (
            "Q_GROUP_SYNC_OKTA__ORG_URL",
            "https://admin:Hunter2Secret@acme.okta.com",
        ),
        (
            "Q_GROUP_SYNC_QBUSINESS__ENDPOINT_URL",
            "https://admin:Hunter2Secret@qbusiness.example.com",
        ),
    ] {
        let out = h.run_env(&["check-config"], &[(var, url)]).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(!text(&out).contains("Hunter2Secret"), "{}", text(&out));
        assert!(!text(&out).contains("admin:"), "{}", text(&out));
        let error = common::the_error(&out);
        assert!(error.contains("user name or password"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_endpoint_over_plain_http_to_another_host_is_refused() {
    let h = harness().await;
    let out = h
        .run_env(
            &["check-config"],
            &[
                ("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "s3"),
                ("Q_GROUP_SYNC_QBUSINESS__S3_BUCKET", "member-files"),
                (
                    "Q_GROUP_SYNC_QBUSINESS__ROLE_ARN",
                    "arn:aws:iam::123456789012:role/q-group-sync-members",
                ),
                (
                    "Q_GROUP_SYNC_QBUSINESS__S3_ENDPOINT_URL",
                    "http://s3.example.com",
                ),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("qbusiness.s3_endpoint_url") && error.contains("loopback"),
        "{error}"
    );
}
