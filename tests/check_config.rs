//! `check-config` through the binary: an honest snapshot check, one line for missing AWS
//! credentials, the write probe against the Q emulator (and its faults), and one error line.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Harness, org_with, text};
use q_group_sync_emulator::{EmptyMembers, QFault, QFaultAction, QModes};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn harness() -> Harness {
    Harness::start(org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_a_missing_directory_is_not_ok_and_sync_does_not_call_it_corrupt() {
    let h = harness().await;
    let missing = h.dir.path().join("no-such-dir");
    let path = missing.join("snapshot.db");
    let env = [("Q_GROUP_SYNC_STATE__PATH", path.to_str().unwrap())];
    let out = h.run_env(&["check-config"], &env).await;
    // A location the configuration names that cannot be used: setup, exit 2.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let lines = stdout(&out);
    assert!(!lines.contains("snapshot: ok"), "{}", text(&out));
    let snapshot = lines
        .lines()
        .find(|l| l.starts_with("snapshot: "))
        .unwrap_or_else(|| panic!("a snapshot line: {}", text(&out)));
    assert!(
        snapshot.starts_with("snapshot: FAILED: directory")
            && snapshot.contains(missing.to_str().unwrap())
            && snapshot.contains("state.path"),
        "{snapshot}"
    );
    // The rest is still checked.
    assert!(lines.contains("okta: ok"), "{}", text(&out));

    let out = h.run_env(&["sync"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(!error.contains("corrupt"), "{error}");
    assert!(
        error.contains("cannot open snapshot")
            && error.contains(missing.to_str().unwrap())
            && error.contains("state.path"),
        "{error}"
    );

    // A read-only directory: the file could not be created either.
    let ro = h.dir.path().join("read-only");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let probe = ro.join("x");
    if std::fs::write(&probe, b"").is_ok() {
        // Running as root: permissions do not apply; nothing more to prove here.
        return;
    }
    let path = ro.join("snapshot.db");
    let out = h
        .run_env(
            &["check-config"],
            &[("Q_GROUP_SYNC_STATE__PATH", path.to_str().unwrap())],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stdout(&out).contains("does not take new files"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_aws_credentials_is_one_line_naming_the_chain() {
    let h = harness().await;
    let empty = h.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (config, credentials) = (empty.join("config"), empty.join("credentials"));
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .arg("--config")
        .arg(&h.config)
        .arg("check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("Q_GROUP_SYNC_OKTA__API_TOKEN", common::TOKEN)
        .env("HOME", &empty)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let lines = stdout(&out);
    let aws: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with("aws credentials"))
        .collect();
    assert_eq!(aws.len(), 1, "{}", text(&out));
    assert!(
        aws[0].starts_with("aws credentials: FAILED: no AWS credentials found")
            && aws[0].contains("AWS_ACCESS_KEY_ID")
            && aws[0].contains("IAM role"),
        "{}",
        aws[0]
    );
    // Short: no SDK debug dump anywhere.
    assert!(
        out.stdout.len() + out.stderr.len() < 3000,
        "{} bytes: {}",
        out.stdout.len() + out.stderr.len(),
        text(&out)
    );
    assert!(
        !text(&out).contains("CredentialsNotLoaded"),
        "{}",
        text(&out)
    );
    common::the_error(&out);
    // No call reached Q Business.
    assert!(h.q.calls().is_empty());
}

fn canary_calls(h: &Harness) -> Vec<(String, String)> {
    h.q.calls()
        .into_iter()
        .filter_map(|c| {
            let g = c.group?;
            g.starts_with("q-group-sync-write-probe-")
                .then_some((c.op, g))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_probe_puts_confirms_and_deletes_a_canary() {
    let h = harness().await;
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = stdout(&out);
    for want in [
        "write probe: PutGroup ok (canary group q-group-sync-write-probe-",
        "write probe: GetGroup ok (SUCCEEDED",
        // One line per open question, as the default emulator answers them.
        "write probe: PROCESSING visible right after a put: ",
        "write probe: status moves on a put that changes nothing: yes",
        "write probe: empty member list (memberUsers: []) accepted: yes",
        "write probe: empty group (groupMembers without a list) accepted: yes",
        "write probe: so an emptied group is put with memberUsers: []",
        "write probe: future ListGroups cutoff accepted: yes",
        "write probe: DeleteGroup ok",
        "write probe: findings recorded in the snapshot; passes use them",
        "write probe: ok (PutGroup, GetGroup and DeleteGroup allowed)",
    ] {
        assert!(lines.contains(want), "{want}: {}", text(&out));
    }
    let calls = canary_calls(&h);
    let ops: Vec<&str> = calls.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(ops[..3], ["GetGroup", "PutGroup", "GetGroup"], "{calls:?}");
    assert_eq!(ops.last(), Some(&"DeleteGroup"), "{calls:?}");
    // The canary's puts: the member, the same again, an empty list, the member back, no
    // list, the member back.
    assert_eq!(ops.iter().filter(|op| **op == "PutGroup").count(), 6);
    assert!(calls.windows(2).all(|w| w[0].1 == w[1].1), "one canary");
    assert!(h.q.groups().is_empty(), "nothing left: {:?}", h.q.groups());
    // Without the flag nothing is written.
    h.q.reset_calls();
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(h.q.calls().iter().all(|c| c.op == "ListGroups"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_probe_reports_each_reading_the_service_takes() {
    let h = harness().await;
    h.q.set_modes(QModes {
        status_lag: std::time::Duration::from_millis(1200),
        noop_moves_status: false,
        empty_members: EmptyMembers::Refuse,
        future_cutoff: false,
        ..QModes::default()
    });
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = stdout(&out);
    for want in [
        "write probe: PROCESSING visible right after a put: no (GetGroup answered the status from before the put; the put showed after 1.",
        "write probe: status moves on a put that changes nothing: no (no newer status within 10s); such a put is confirmed when no newer status shows within",
        "write probe: empty member list (memberUsers: []) accepted: no (ValidationException",
        "write probe: empty group (groupMembers without a list) accepted: no (ValidationException",
        "write probe: so an emptied group is deleted in Q Business",
        "write probe: future ListGroups cutoff accepted: no; listings ask with the service's own time",
        "write probe: findings recorded in the snapshot; passes use them",
        "write probe: ok (PutGroup, GetGroup and DeleteGroup allowed)",
    ] {
        assert!(lines.contains(want), "{want}: {}", text(&out));
    }
    assert!(h.q.groups().is_empty(), "nothing left: {:?}", h.q.groups());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_probe_says_what_to_do_and_leaves_no_canary() {
    let h = harness().await;
    // Accepted, then FAILED in processing: exit 1, canary deleted all the same.
    h.q.add_fault(
        QFault::always(QFaultAction::FailAsync {
            error_code: "InternalError".into(),
            message: "index is updating".into(),
        })
        .on_op("PutGroup"),
    );
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = stdout(&out);
    assert!(
        lines.contains("write probe: FAILED: Q Business accepted the PutGroup but processing FAILED (InternalError: index is updating)"),
        "{}",
        text(&out)
    );
    assert!(
        lines.contains("write probe: DeleteGroup ok"),
        "{}",
        text(&out)
    );
    assert!(h.q.groups().is_empty(), "{:?}", h.q.groups());
    assert_eq!(
        canary_calls(&h).last().map(|(op, _)| op.as_str()),
        Some("DeleteGroup")
    );

    // PutGroup not allowed: exit 2, the IAM action named, nothing left behind.
    h.q.clear_faults();
    h.q.reset_calls();
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied).on_op("PutGroup"));
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stdout(&out).contains("qbusiness:PutGroup"),
        "{}",
        text(&out)
    );
    assert!(h.q.groups().is_empty(), "{:?}", h.q.groups());

    // DeleteGroup not allowed: exit 2, and the command that deletes the canary by hand.
    h.q.clear_faults();
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied).on_op("DeleteGroup"));
    let out = h.run(&["check-config", "--write-probe"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let lines = stdout(&out);
    assert!(
        lines.contains("qbusiness:DeleteGroup") && lines.contains("aws qbusiness delete-group"),
        "{}",
        text(&out)
    );
    assert_eq!(h.q.groups().len(), 1, "the canary stays, and is named");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_error_is_exactly_one_line() {
    let h = harness().await;
    h.add_config("\n[safety]\nmax_group_deletes_percent = 120.0\n");
    let out = h.run(&["--log-format", "json", "check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", text(&out));
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("safety.max_group_deletes_percent"),
        "{line}"
    );
    let out = h.run(&["--log-format", "text", "check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", text(&out));
    assert!(
        stderr.contains("safety.max_group_deletes_percent"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_config_at_all_says_how_to_give_one() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .arg("check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("--config") && error.contains("Q_GROUP_SYNC_CONFIG"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_takes_only_its_flags() {
    // The exit codes of --help against the documentation: tests/exit_codes.rs.
    let bin = env!("CARGO_BIN_EXE_q-group-sync");
    for flag in ["--full", "--group"] {
        let out = tokio::process::Command::new(bin)
            .args(["approve", "abc", flag, "x"])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "approve {flag} is a usage error"
        );
    }
}

/// The lines of `out`'s stdout that start with `prefix`.
fn lines_of(out: &std::process::Output, prefix: &str) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_the_config_names_is_read_and_every_line_printed() {
    let h = harness().await;
    let admin = h.dir.path().join("admin-token");
    std::fs::write(&admin, "an-admin-token-of-32-characters-x\n").unwrap();
    std::fs::set_permissions(&admin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    h.add_config(&format!(
        "\n[server]\nadmin_token_file = {:?}\n",
        admin.display().to_string()
    ));
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        lines_of(&out, "server.admin_token_file: "),
        [format!("server.admin_token_file: ok ({})", admin.display())],
        "{}",
        text(&out)
    );

    // Gone: `serve` would exit 2 on it, so check-config does not say ok, and still checks the
    // rest.
    std::fs::remove_file(&admin).unwrap();
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let line = lines_of(&out, "server.admin_token_file: ");
    assert_eq!(line.len(), 1, "{}", text(&out));
    assert!(
        line[0].starts_with("server.admin_token_file: FAILED: ")
            && line[0].contains(&admin.display().to_string())
            && line[0].contains("cannot read"),
        "{}",
        line[0]
    );
    for want in [
        "config: ok",
        "snapshot: ok",
        "okta: ok",
        "okta users: ok",
        "qbusiness: ok",
    ] {
        assert!(stdout(&out).contains(want), "{want}: {}", text(&out));
    }
    let error = common::the_error(&out);
    assert_eq!(
        error.matches("server.admin_token_file").count(),
        1,
        "{error}"
    );
    let serve = h
        .run_env(
            &["serve"],
            &[("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0")],
        )
        .await;
    assert_eq!(serve.status.code(), Some(2), "{}", text(&serve));

    // The Okta token file unreadable too: both named, Okta not asked, Q Business still checked.
    let token = h.dir.path().join("no-such-okta-token");
    h.okta.reset_request_log();
    let out = h
        .run_env(
            &["check-config"],
            &[
                ("Q_GROUP_SYNC_OKTA__API_TOKEN", ""),
                ("Q_GROUP_SYNC_OKTA__API_TOKEN_FILE", token.to_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        lines_of(&out, "okta.api_token_file: FAILED: ").len(),
        1,
        "{}",
        text(&out)
    );
    assert_eq!(
        lines_of(&out, "okta: "),
        ["okta: not checked (its credentials could not be read; see above)"],
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("qbusiness: ok"), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("okta.api_token_file") && error.contains("server.admin_token_file"),
        "{error}"
    );
    assert!(h.okta.requests().is_empty(), "Okta not asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_named_once_without_a_reachability_hint() {
    let h = harness().await;
    let out = h
        .run_env(
            &["check-config"],
            &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "00WrongToken-000000000000")],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = stdout(&out);
    let okta = lines_of(&out, "okta: ");
    assert_eq!(okta.len(), 1, "{all}");
    assert!(
        okta[0].contains("Okta rejected the credentials")
            && okta[0].contains("okta.api_token_file"),
        "{}",
        okta[0]
    );
    assert!(!all.contains("reachable from here"), "{all}");
    assert!(all.contains("okta users: not checked"), "{all}");
    assert!(all.contains("qbusiness: ok"), "{all}");
    let error = common::the_error(&out);
    assert_eq!(
        error.matches("Okta rejected the credentials").count(),
        1,
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_oauth_client_is_named_once_in_a_short_error() {
    use q_group_sync_emulator::{OAuthApp, OktaOptions};
    let key = common::TestKey::ec();
    let app = OAuthApp {
        public_keys: vec![key.registered(None)],
        ..OAuthApp::default()
    };
    let h = Harness::start_oauth(
        org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g),
        OktaOptions {
            oauth: Some(app),
            ..OktaOptions::default()
        },
        &key,
        "client_id = \"0oaSomeOtherApp\"\nscopes = [\"okta.groups.read\", \"okta.users.read\"]",
    )
    .await;
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = stdout(&out);
    assert!(all.contains("okta.private_key_file: ok"), "{all}");
    assert!(!all.contains("reachable from here"), "{all}");
    assert!(all.contains("okta users: not checked"), "{all}");
    let error = common::the_error(&out);
    assert_eq!(error.matches("invalid_client").count(), 1, "{error}");
    assert!(error.len() < 630, "{} characters: {error}", error.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_is_its_own_line_and_the_rest_is_checked() {
    let ca = "/nonexistent/q-group-sync-test/ca.pem";
    let h = Harness::start_with(
        org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g),
        q_group_sync_emulator::OktaOptions {
            token: common::TOKEN.into(),
            ..q_group_sync_emulator::OktaOptions::default()
        },
        &format!(
            "backend = \"postgres\"\nurl = \"postgres://qgs:secret@127.0.0.1:1/postgres\"\ntls = \"verify-full\"\ntls_ca_file = \"{ca}\"\n"
        ),
    )
    .await;
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let line = lines_of(&out, "state.tls_ca_file: ");
    assert_eq!(line.len(), 1, "{}", text(&out));
    assert!(
        line[0].starts_with("state.tls_ca_file: FAILED") && line[0].contains(ca),
        "{}",
        line[0]
    );
    let all = stdout(&out);
    assert!(all.contains("snapshot: not checked"), "{all}");
    assert!(
        all.contains("okta: ok") && all.contains("qbusiness: ok"),
        "{all}"
    );
    assert!(
        !all.contains("secret"),
        "the URL's password is never shown: {all}"
    );
}
