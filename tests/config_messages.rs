//! Configuration messages that name the fix, through the binary: a URL without its scheme, an
//! unknown key's nearest neighbour, the cron forms that work, the documented ranges, and a
//! variable written with one underscore where two belong.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{Harness, org_with, text};

const APP: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const INDEX: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

/// A valid configuration with `okta` and `extra` lines in place.
fn config(org_url: &str, okta_extra: &str, extra: &str) -> String {
    format!(
        "[okta]\norg_url = \"{org_url}\"\n{okta_extra}\n[qbusiness]\napplication_id = \"{APP}\"\nindex_id = \"{INDEX}\"\nregion = \"us-east-1\"\n{extra}\n"
    )
}

/// Runs `check-config` on `toml` and returns its one error line, after checking exit 2.
async fn error_of(dir: &Path, toml: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let out = common::run_binary(&path, &["check-config"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    common::the_error(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let error = error_of(dir.path(), &config("acme.okta.com", "", "")).await;
    assert!(
        error.contains("okta.org_url") && error.contains("https://acme.okta.com"),
        "{error}"
    );
    // A value that could hold a password is not echoed.
    let error = error_of(dir.path(), &config("me:pw@acme.okta.com", "", "")).await;
    assert!(
        error.contains("okta.org_url") && !error.contains("pw"),
        "{error}"
    );

    let error = error_of(
        dir.path(),
        &config("https://acme.okta.com", "grup_filter = \"x\"", ""),
    )
    .await;
    assert!(
        error.contains("okta.grup_filter") && error.contains("did you mean `group_filter`?"),
        "{error}"
    );
    let error = error_of(
        dir.path(),
        &config("https://acme.okta.com", "", "[state]\npaht = \"x.db\""),
    )
    .await;
    assert!(error.contains("did you mean `path`?"), "{error}");

    let error = error_of(
        dir.path(),
        &config(
            "https://acme.okta.com",
            "",
            "[schedule]\ncron = \"every 15 minutes\"",
        ),
    )
    .await;
    assert!(
        error.contains("schedule.cron")
            && error.contains("5 fields")
            && error.contains("*/15 * * * *"),
        "{error}"
    );

    for (okta_extra, extra, key, range) in [
        ("max_retries = 50", "", "okta.max_retries", "0 to 20"),
        (
            "rate_limit_share = 1.5",
            "",
            "okta.rate_limit_share",
            "at most 1",
        ),
        (
            "",
            "max_writes_per_second = 0",
            "qbusiness.max_writes_per_second",
            "1 to 10000",
        ),
    ] {
        let toml = config("https://acme.okta.com", okta_extra, "").replace(
            "region = \"us-east-1\"\n",
            &format!("region = \"us-east-1\"\n{extra}\n"),
        );
        let error = error_of(dir.path(), &toml).await;
        assert!(
            error.contains(key) && error.contains(range),
            "{key}: {error}"
        );
        assert!(
            documented(key, range),
            "{key}'s range ({range}) is documented"
        );
    }
}

/// Whether a Markdown table row of README.md or docs/ names `key` and `range`.
fn documented(key: &str, range: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    let cell = format!("| `{key}` |");
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|text| {
            text.lines()
                .any(|l| l.starts_with(&cell) && l.to_lowercase().contains(range))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_with_one_underscore_is_reported_at_info_with_the_two_underscore_form() {
    let h = Harness::start(org_with(1, 2, |g| format!("team-{g}"), |_, _| true)).await;
    let out = h
        .run_env(
            &["--log-format", "json", "plan"],
            &[("Q_GROUP_SYNC_OKTA_ORG_URL", "https://other.okta.com")],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("Q_GROUP_SYNC_OKTA_ORG_URL"))
        })
        .unwrap_or_else(|| panic!("a line about the variable: {}", text(&out)));
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("set Q_GROUP_SYNC_OKTA__ORG_URL"),
        "{line}"
    );
}
