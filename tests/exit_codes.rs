//! One meaning per exit code, in every command, through the binary: `--help` and the
//! documentation list the same codes; credentials or permissions refused are 2 in `sync`,
//! `plan` and `reconcile` as in `check-config`; an outage is 1; `plan --output json` on a
//! failed pass says so.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{Harness, org_with, text};
use q_group_sync_emulator::{QFault, QFaultAction};

async fn harness() -> Harness {
    Harness::start(org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g)).await
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The codes of the first Markdown table after the "Exit codes" heading of `text`.
fn table_codes(text: &str) -> Vec<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "### Exit codes" && l.trim() != "## Exit codes")
        .skip(1);
    let mut codes = Vec::new();
    let mut in_table = false;
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('|') {
            in_table = true;
            let first = line.trim_matches('|').split('|').next().unwrap().trim();
            if first.chars().all(|c| c.is_ascii_digit()) && !first.is_empty() {
                codes.push(first.to_owned());
            }
        } else if in_table || line.starts_with('#') {
            break;
        }
    }
    codes
}

/// Every Markdown file that may hold the exit code table: README.md and docs/ (any depth).
fn documentation() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_the_codes_of_the_documented_table() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = stdout(&out);
    let help_codes: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Exit codes"))
        .skip(1)
        .map_while(|l| {
            let code = l.split_whitespace().next()?;
            code.chars()
                .all(|c| c.is_ascii_digit())
                .then(|| code.to_owned())
        })
        .collect();
    assert!(
        !help_codes.is_empty(),
        "--help has an exit code list: {help}"
    );

    let tables: Vec<(PathBuf, Vec<String>)> = documentation()
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let codes = table_codes(&text);
            (!codes.is_empty()).then_some((path, codes))
        })
        .collect();
    assert_eq!(
        tables.len(),
        1,
        "exactly one `## Exit codes` table in README.md or docs/: {tables:?}"
    );
    let (path, codes) = &tables[0];
    assert_eq!(
        &help_codes,
        codes,
        "--help and {} list the same exit codes",
        path.display()
    );
    for code in ["0", "1", "2", "3", "4", "130"] {
        assert!(help_codes.iter().any(|c| c == code), "code {code}: {help}");
    }

    // What only one command does is said in its own --help.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .args(["reconcile", "--help"])
        .output()
        .await
        .unwrap();
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("Exits 1 when it finds such groups"), "{help}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .args(["explain", "--help"])
        .output()
        .await
        .unwrap();
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("4 for an unknown user or document"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_okta_token_is_2_in_sync_and_plan_and_names_the_fix() {
    let h = harness().await;
    let wrong = [(
        "Q_GROUP_SYNC_OKTA__API_TOKEN",
        "00WrongTokenValue-0000000000",
    )];
    let out = h.run_env(&["sync"], &wrong).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains("Okta rejected the credentials")
            && report.contains("To fix: check the token (okta.api_token_file"),
        "{}",
        text(&out)
    );
    assert!(h.q.groups().is_empty(), "nothing written");

    let out = h.run_env(&["plan"], &wrong).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = h.run_env(&["plan", "--output", "json"], &wrong).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(json["outcome"], "failed", "{json:#}");
    assert_eq!(json["error_kind"], "okta", "{json:#}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("Okta rejected the credentials"),
        "{json:#}"
    );
    assert!(
        json["fix"]
            .as_str()
            .unwrap()
            .contains("okta.api_token_file"),
        "{json:#}"
    );

    let out = h.run_env(&["sync", "--output", "json"], &wrong).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "failed", "{json:#}");
    assert!(json["fix"].is_string(), "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_okta_is_1_and_plan_json_says_failed_not_an_empty_plan() {
    let h = harness().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = [
        ("Q_GROUP_SYNC_OKTA__ORG_URL", url.as_str()),
        ("Q_GROUP_SYNC_OKTA__MAX_RETRIES", "0"),
    ];
    let out = h.run_env(&["plan", "--output", "json"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(json["outcome"], "failed", "{json:#}");
    assert_eq!(json["error_kind"], "okta", "{json:#}");
    assert!(json["error"].as_str().unwrap().contains("Okta"), "{json:#}");
    assert!(json.get("fix").is_none(), "an outage has no fix: {json:#}");

    // A plan that ran carries its outcome too.
    let out = h.run(&["plan", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "success", "{json:#}");
    assert!(json.get("error").is_none(), "{json:#}");
    assert_eq!(json["changes"].as_array().unwrap().len(), 2, "{json:#}");

    let out = h.run_env(&["sync"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!stdout(&out).contains("To fix"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_access_denied_is_2_in_sync_and_reconcile() {
    let h = harness().await;
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stdout(&out).contains("To fix: allow qbusiness:ListGroups"),
        "{}",
        text(&out)
    );
    let out = h.run(&["reconcile"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    common::the_error(&out);

    // Throttled: retried by the next run, 1.
    h.q.clear_faults();
    h.q.add_fault(QFault::always(QFaultAction::Throttle));
    let out = h.run(&["reconcile"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// Runs the binary with `args` and no AWS credentials anywhere the default chain looks.
async fn run_without_aws(h: &Harness, args: &[&str]) -> std::process::Output {
    let empty = h.dir.path().join("no-aws");
    std::fs::create_dir_all(&empty).unwrap();
    let (config, credentials) = (empty.join("config"), empty.join("credentials"));
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
        .arg("--config")
        .arg(&h.config)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("Q_GROUP_SYNC_OKTA__API_TOKEN", common::TOKEN)
        .env("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0")
        .env("HOME", &empty)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_aws_credentials_is_2_in_every_command_that_asks_aws() {
    let h = harness().await;
    for args in [
        &["check-config"][..],
        &["reconcile"],
        &["sync"],
        &["--log-format", "json", "serve"],
    ] {
        let out = run_without_aws(&h, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("no AWS credentials") && all.contains("IAM role"),
            "{args:?}: {all}"
        );
        assert!(!all.contains("CredentialsNotLoaded"), "{args:?}: {all}");
    }
    assert!(h.q.calls().is_empty(), "no call reached Q Business");
}
