//! `serve` and a broken setup, through the binary: credentials or permissions refused on the
//! first pass at start-up end the process with exit 2 and one line naming the fix (so a
//! rollout fails), on SQLite and on whichever PostgreSQL replica runs that pass; an outage on
//! the first pass is retried as before, with `/readyz` and `/metrics` served.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Served, TOKEN, org_with};
use q_group_sync_emulator::{OktaOptions, QFault, QFaultAction};

async fn harness(extra: &str) -> Harness {
    Harness::start_with(
        org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g),
        OktaOptions {
            token: TOKEN.into(),
            ..OktaOptions::default()
        },
        extra,
    )
    .await
}

/// Waits for `served` to exit (at most `secs`), polling `/readyz` meanwhile; returns the exit
/// code and whether `/readyz` ever answered 200.
async fn exit_of(served: &mut Served, secs: u64) -> (Option<i32>, bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut was_ready = false;
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            return (status.code(), was_ready);
        }
        if Instant::now() > deadline {
            panic!("serve did not exit; logs:\n{}", served.logs());
        }
        if let Ok(r) = served.http.get(served.url("/readyz")).send().await {
            was_ready |= r.status() == 200;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ERROR lines `served` logged (JSON lines).
fn error_lines(served: &Served) -> Vec<serde_json::Value> {
    served
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "ERROR")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_okta_token_on_the_first_pass_exits_2_naming_the_fix() {
    let h = harness(common::YEARLY).await;
    let mut served = h
        .serve(&[("Q_GROUP_SYNC_OKTA__API_TOKEN", "00WrongToken-000000000000")])
        .await;
    let (code, was_ready) = exit_of(&mut served, 30).await;
    // Give the log reader a moment to take the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(code, Some(2), "logs:\n{}", served.logs());
    assert!(!was_ready, "/readyz never answered 200: {}", served.logs());
    let errors = error_lines(&served);
    assert_eq!(errors.len(), 1, "one error line: {}", served.logs());
    let line = errors[0].to_string();
    assert!(
        line.contains("the first pass was refused")
            && line.contains("Okta rejected the credentials")
            && line.contains("okta.api_token_file"),
        "{line}"
    );
    assert!(h.q.groups().is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_access_denied_on_the_first_pass_exits_2_naming_the_permission() {
    let h = harness(common::YEARLY).await;
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied));
    let mut served = h.serve(&[]).await;
    let (code, was_ready) = exit_of(&mut served, 30).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(code, Some(2), "logs:\n{}", served.logs());
    assert!(!was_ready, "{}", served.logs());
    let errors = error_lines(&served);
    assert_eq!(errors.len(), 1, "one error line: {}", served.logs());
    assert!(
        errors[0]
            .to_string()
            .contains("qbusiness:ListGroups, GetGroup, PutGroup"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_on_the_first_pass_is_retried_with_readyz_and_metrics_served() {
    let h = harness(&common::yearly_with_admin(common::DEFAULT_ADMIN)).await;
    // Q Business answers 500 to everything: the first pass fails, as an outage does.
    h.q.add_fault(QFault::always(QFaultAction::InternalError));
    let served = h.serve(&[]).await;
    let status = served
        .wait_status(30, "the first pass", |s| !s["last_pass"].is_null())
        .await;
    assert_ne!(status["last_pass"]["outcome"], "success", "{status:#}");
    let ready = served.get("/readyz").await;
    assert_eq!(
        ready.status(),
        200,
        "ready after an outage: {}",
        served.logs()
    );
    let metrics = served.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("q_group_sync_passes_total")
    );
    assert!(error_lines(&served).is_empty(), "{}", served.logs());

    // The outage ends: the next pass (asked for here) writes.
    h.q.clear_faults();
    let resp = served
        .http
        .post(served.url("/sync"))
        .bearer_auth(common::DEFAULT_ADMIN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    served
        .wait_status(30, "a pass that succeeds", |s| {
            s["last_pass"]["outcome"] == "success"
        })
        .await;
    assert_eq!(h.q.groups().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_whichever_replica_runs_the_first_pass_exits_2() {
    let Some(url) = common::postgres::url("serve_setup_postgres") else {
        return;
    };
    let schema = common::postgres::schema("serve_setup");
    let extra = format!(
        "{}{}",
        common::postgres::state_toml(&url, &schema, "4s"),
        common::YEARLY
    );
    let h = harness(&extra).await;
    let wrong = [("Q_GROUP_SYNC_OKTA__API_TOKEN", "00WrongToken-000000000000")];
    let mut a = h
        .serve(&[wrong[0], ("Q_GROUP_SYNC_STATE__REPLICA", "a")])
        .await;
    let mut b = h
        .serve(&[wrong[0], ("Q_GROUP_SYNC_STATE__REPLICA", "b")])
        .await;
    // One leads and is refused; the other then leads, runs its own first pass, and is refused.
    let (code_a, _) = exit_of(&mut a, 60).await;
    let (code_b, _) = exit_of(&mut b, 60).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(code_a, Some(2), "a:\n{}", a.logs());
    assert_eq!(code_b, Some(2), "b:\n{}", b.logs());
    for s in [&a, &b] {
        let errors = error_lines(s);
        assert_eq!(errors.len(), 1, "{}", s.logs());
        assert!(
            errors[0].to_string().contains("the first pass was refused"),
            "{}",
            errors[0]
        );
    }
    assert!(h.q.groups().is_empty());
}
