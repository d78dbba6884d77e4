//! A snapshot that cannot be opened where `state.path` says is an error naming `state.path`
//! and the fix, exit 2, in every command; never "no snapshot" (which would plan every group
//! as new). Through the binary.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Harness, org_with, text};

async fn harness() -> Harness {
    Harness::start(org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g)).await
}

/// Every command, with the arguments it needs; `serve` on a loopback port.
const COMMANDS: &[&[&str]] = &[
    &["plan"],
    &["plan", "--output", "json"],
    &["sync"],
    &["approve", "20261201T000000Z-1"],
    &["reconcile"],
    &["reconcile", "--adopt"],
    &[
        "explain",
        "--user",
        "user0@example.test",
        "--document",
        "doc",
    ],
    &["serve"],
];

/// Runs each command with `state.path = path` and checks it exits 2 with one error line naming
/// `state.path` and `what`; `check-config` prints a FAILED snapshot line and exits 2 too.
async fn every_command_refuses(h: &Harness, path: &std::path::Path, what: &str) {
    let env = [
        ("Q_GROUP_SYNC_STATE__PATH", path.to_str().unwrap()),
        ("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0"),
    ];
    let before = h.q_state();
    for args in COMMANDS {
        let out = tokio::time::timeout(Duration::from_secs(60), h.run_env(args, &env))
            .await
            .unwrap_or_else(|_| panic!("{args:?} did not end"));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let error = common::the_error(&out);
        assert!(
            error.contains("state.path") && error.contains(what),
            "{args:?}: {error}"
        );
        assert!(!error.contains("Error code 14"), "{args:?}: {error}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("\"op\""),
            "{args:?} printed no plan: {}",
            text(&out)
        );
    }
    let out = h.run_env(&["check-config"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("snapshot: "))
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(
        line.starts_with("snapshot: FAILED") && line.contains(what),
        "{line}"
    );
    // The other checks still ran.
    assert!(stdout.contains("okta: ok"), "{}", text(&out));
    assert!(stdout.contains("qbusiness: ok"), "{}", text(&out));
    assert_eq!(h.q_state(), before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_the_directory_should_be_is_refused_by_every_command() {
    let h = harness().await;
    let blocker = h.dir.path().join("state");
    std::fs::write(&blocker, b"not a directory").unwrap();
    every_command_refuses(
        &h,
        &blocker.join("snapshot.db"),
        "is a file, not a directory",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_where_the_file_should_be_is_refused_by_every_command() {
    let h = harness().await;
    let dir = h.dir.path().join("snapshot.db.d");
    std::fs::create_dir(&dir).unwrap();
    every_command_refuses(&h, &dir, "is a directory, not a snapshot file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_without_permission_is_refused_not_read_as_no_snapshot() {
    let h = harness().await;
    // A snapshot with both groups in it, then its directory closed.
    let dir = h.dir.path().join("closed");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("snapshot.db");
    let env = [("Q_GROUP_SYNC_STATE__PATH", path.to_str().unwrap())];
    let out = h.run_env(&["sync"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&dir).is_ok() {
        // Running as root (uid 0): permissions do not bite; the file-where-a-directory-should-
        // be test covers the path that does.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        eprintln!("skipped: permissions do not apply to this user (root)");
        return;
    }
    let out = h.run_env(&["plan", "--output", "json"], &env).await;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = common::the_error(&out);
    assert!(
        error.contains("state.path") && error.contains("cannot be reached"),
        "{error}"
    );
    // Re-closed: every command says the same.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let guard = Reopen(dir.clone());
    every_command_refuses(&h, &path, "cannot be reached").await;
    drop(guard);
}

/// Opens the directory again when the test ends, so the temp dir can be removed.
struct Reopen(std::path::PathBuf);

impl Drop for Reopen {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
    }
}
