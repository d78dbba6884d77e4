//! The real aws-sdk-qbusiness sink against the Q Business emulator over HTTP.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use figment::Figment;
use figment::providers::{Format, Toml};
use q_group_sync::clock::{Clock, SystemClock};
use q_group_sync::config::Config;
use q_group_sync::model::{GroupName, Members, UserId};
use q_group_sync::sink::{DeleteOutcome, GroupSink, QBusinessSink, SinkErrorKind};
use q_group_sync_emulator::{QEmulator, QFault, QFaultAction, QOptions};

async fn sink_for(q: &QEmulator, extra: &str) -> QBusinessSink {
    sink_with_app(q, &q.application_id(), extra).await
}

async fn sink_with_app(q: &QEmulator, application_id: &str, extra: &str) -> QBusinessSink {
    let toml = format!(
        r#"
[okta]
org_url = "http://127.0.0.1:1"
api_token = "unused"
[qbusiness]
application_id = "{}"
index_id = "{}"
region = "us-east-1"
endpoint_url = "{}"
retry_initial_backoff = "5ms"
{extra}
"#,
        application_id,
        q.index_id(),
        q.url()
    );
    let config = Config::from_figment(Figment::from(Toml::string(&toml))).expect("config");
    let creds =
        aws_sdk_qbusiness::config::Credentials::new("AKIDTEST", "secret", None, None, "test");
    QBusinessSink::with_credentials(&config.qbusiness, creds).await
}

fn members(ids: &[&str]) -> Members {
    ids.iter().map(|i| UserId::from_normalised(*i)).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn put_replaces_and_delete_removes_names_with_slashes_and_unicode() {
    let q = QEmulator::start(QOptions::default()).await.unwrap();
    let sink = sink_for(&q, "").await;
    let name = GroupName::new("Eng Team/α ü 研究");
    sink.put_group(&name, &members(&["a@x.test", "b@x.test"]), &[])
        .await
        .unwrap();
    assert_eq!(
        q.group(name.as_str()).unwrap().users,
        set(&["a@x.test", "b@x.test"])
    );
    sink.put_group(&name, &members(&["c@x.test"]), &[])
        .await
        .unwrap();
    assert_eq!(
        q.group(name.as_str()).unwrap().users,
        set(&["c@x.test"]),
        "PutGroup replaces membership"
    );
    sink.put_group(&GroupName::new("empty"), &Members::new(), &[])
        .await
        .unwrap();
    assert!(q.group("empty").unwrap().users.is_empty());

    assert_eq!(
        sink.delete_group(&name).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(q.group(name.as_str()).is_none());
    assert_eq!(
        sink.delete_group(&name).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    let call = q.calls().into_iter().find(|c| c.op == "PutGroup").unwrap();
    assert_eq!(call.group.as_deref(), Some(name.as_str()));
    assert_eq!(sink.check(SystemClock.now()).await.unwrap(), 1);
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let q = QEmulator::start(QOptions::default()).await.unwrap();
    let sink = sink_for(&q, "").await;
    q.add_fault(QFault::times(QFaultAction::Throttle, 2).on_op("PutGroup"));
    sink.put_group(&GroupName::new("g"), &members(&["a@x.test"]), &[])
        .await
        .unwrap();
    let attempts: Vec<Option<u32>> = q
        .calls()
        .iter()
        .filter(|c| c.op == "PutGroup")
        .map(|c| c.attempt)
        .collect();
    assert_eq!(attempts, [Some(1), Some(2), Some(3)]);
}

#[tokio::test]
async fn errors_are_classified() {
    let q = QEmulator::start(QOptions::default()).await.unwrap();
    let sink = sink_for(&q, "").await;
    let g = GroupName::new("g");
    let m = members(&["a@x.test"]);
    for (action, kind) in [
        (QFaultAction::Throttle, SinkErrorKind::Throttled),
        (QFaultAction::InternalError, SinkErrorKind::Server),
        (QFaultAction::Conflict, SinkErrorKind::Conflict),
        (QFaultAction::QuotaExceeded, SinkErrorKind::QuotaExceeded),
        (QFaultAction::AccessDenied, SinkErrorKind::AccessDenied),
    ] {
        q.clear_faults();
        q.add_fault(QFault::always(action));
        let err = sink.put_group(&g, &m, &[]).await.expect_err("fails");
        assert_eq!(err.kind, kind, "{err}");
        assert_eq!(err.operation, "PutGroup");
    }
    q.clear_faults();
    // The emulator enforces Q's rules: a control character in a user id is a validation error.
    let err = sink
        .put_group(&g, &members(&["bad\u{1}id@x.test"]), &[])
        .await
        .expect_err("invalid");
    assert_eq!(err.kind, SinkErrorKind::Validation, "{err}");
}

#[tokio::test]
async fn over_limit_is_refused_before_sending() {
    let q = QEmulator::start(QOptions::default()).await.unwrap();
    let sink = sink_for(&q, "inline_member_limit = 3").await;
    let err = sink
        .put_group(&GroupName::new("g"), &members(&["a", "b", "c", "d"]), &[])
        .await
        .expect_err("refused");
    assert_eq!(err.kind, SinkErrorKind::Validation);
    assert!(q.calls().is_empty(), "nothing sent");
    // And the emulator itself rejects more than 1000 members, as Q Business does.
    let big: Vec<String> = (0..1001).map(|i| format!("u{i}@x.test")).collect();
    let refs: Vec<&str> = big.iter().map(String::as_str).collect();
    let unchecked = sink_for(&q, "").await;
    let err = unchecked
        .put_group(&GroupName::new("g"), &members(&refs), &[])
        .await
        .expect_err("refused");
    assert_eq!(err.kind, SinkErrorKind::Validation, "{err}");
}

#[tokio::test]
async fn wrong_application_is_not_found_and_not_mistaken_for_a_missing_group() {
    let q = QEmulator::start(QOptions::default()).await.unwrap();
    let sink = sink_with_app(&q, "ffffffff-ffff-ffff-ffff-ffffffffffff", "").await;
    let err = sink
        .put_group(&GroupName::new("g"), &Members::new(), &[])
        .await
        .expect_err("wrong app");
    assert_eq!(err.kind, SinkErrorKind::NotFound, "{err}");
    let err = sink
        .delete_group(&GroupName::new("g"))
        .await
        .expect_err("wrong app is an error, not AlreadyGone");
    assert_eq!(err.kind, SinkErrorKind::NotFound, "{err}");
}
