//! The process under hostile clients and hostile answers, through the real binary: the HTTP
//! port's timeouts and caps, what `/status` tells strangers, member data at rest, and odd
//! answers from Okta.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Harness, TOKEN, TestKey, YEARLY, expected, text, yearly_with_admin};
use q_group_sync_emulator::{OAuthApp, OktaOptions, OktaOrg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn org(groups: usize, members: usize) -> OktaOrg {
    common::org_with(
        groups,
        members,
        |g| format!("Secret Project {g}"),
        |u, g| (u + g) % 2 == 0,
    )
}

/// Reads until the server closes the connection; what it sent, and how long that took.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// The first answer on `stream` (up to 5 s).
async fn read_to_close_or_answer(stream: &mut TcpStream) -> (String, usize) {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_within_the_header_timeout() {
    let h = Harness::start(org(2, 4)).await;
    h.add_config(
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n[server]\nheader_read_timeout = \"1s\"\nmax_connections = 8\n",
    );
    let s = h.serve(&[]).await;

    // Twice the connection cap of half-sent requests: the first 8 are closed by the timer, the
    // rest are accepted as slots free and closed in turn.
    let mut streams = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        streams.push(stream);
    }
    let started = Instant::now();
    for stream in &mut streams {
        read_to_close(stream, Duration::from_secs(10)).await;
    }
    let all_closed = started.elapsed();
    assert!(
        all_closed < Duration::from_secs(6),
        "16 half-sent requests took {all_closed:?} to be closed"
    );

    // The port still answers.
    assert_eq!(s.get("/livez").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_connections_do_not_keep_the_probes_out() {
    let h = Harness::start(org(2, 4)).await;
    h.add_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n");
    let s = h.serve(&[]).await;

    // 200 connections from one address, half of them silent, half stuck in their headers:
    // three times the port's cap, each held open for longer than the header timeout allows.
    let mut held = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 1 {
            stream
                .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    // A fresh connection for each probe, as the kubelet makes them.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for path in ["/livez", "/readyz", "/livez", "/status", "/readyz"] {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), fresh.get(s.url(path)).send())
            .await
            .unwrap_or_else(|_| panic!("{path} did not answer within 1 s; logs:\n{}", s.logs()))
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("slowest probe with 200 idle connections open: {slowest:?}");

    // The connections beyond the cap were closed to make room, oldest first.
    let mut closed = 0;
    for stream in &mut held {
        let mut buf = [0u8; 1];
        // Closed (FIN), or reset (RST: closed with its half-sent request unread).
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 200 - 32, "{closed} of 200 closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_are_refused_without_being_read() {
    let h = Harness::start(org(2, 4)).await;
    h.add_config(&format!(
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n[server]\nadmin_token = \"{ADMIN}\"\n"
    ));
    let s = h.serve(&[]).await;

    // Headers announcing 100 MB, and none of it sent: the answer comes anyway.
    let head = |auth: &str| {
        format!(
            "POST /sync HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
    };
    for (auth, status) in [
        (String::new(), "401"),
        (
            "Authorization: Bearer wrong-wrong-wrong-wrong\r\n".to_owned(),
            "401",
        ),
        (format!("Authorization: Bearer {ADMIN}\r\n"), "413"),
    ] {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(head(&auth).as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 1000]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answered before the body was sent")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{auth:?}: {answer}"
        );
    }

    // A chunked body (no declared length) over the cap: 413 too.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut request = format!(
        "POST /sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..10 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b' '; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let (answer, _) = read_to_close_or_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A small body is read as before.
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_the_token_names_no_group() {
    let h = Harness::start(org(3, 6)).await;
    let s = h.serve_synced(&yearly_with_admin(ADMIN), 30).await;
    // A one-group pass leaves a trace naming the group, and a failure with an error text.
    let resp = s
        .http
        .post(s.url("/sync?group=Secret%20Project%201"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let detail = s
        .wait_status(30, "the one-group pass", |st| {
            st["last_pass"]["trigger"] == "admin" && st["last_pass"]["outcome"] == "success"
        })
        .await;
    let detail_text = detail.to_string();
    assert!(detail_text.contains("Secret Project 1"), "{detail:#}");
    assert!(detail["last_pass"]["trace"].is_object());

    let public = s.public_status().await;
    let public_text = public.to_string();
    let org = h.okta.org();
    for g in org.groups.values() {
        assert!(!public_text.contains(&g.name), "{} in {public:#}", g.name);
        assert!(!public_text.contains(&g.id), "{} in {public:#}", g.id);
    }
    assert!(!public_text.contains("@example.test"), "{public:#}");
    assert_eq!(public["last_pass"]["outcome"], "success");
    assert_eq!(public["last_pass"]["one_group"], true);
    assert_eq!(public["leader"]["role"], "leader");
    assert!(public["last_pass"].get("trace").is_none());
    assert!(public["last_pass"].get("error").is_none());
    assert!(public["leader"].get("replica").is_none());
    assert!(public["last_pass"]["groups_in_scope"].as_u64().unwrap() >= 1);

    // A wrong token is refused, not answered with less.
    let resp = s
        .http
        .get(s.url("/status"))
        .bearer_auth("wrong-wrong-wrong-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // /metrics labels name no group either.
    let metrics = s.get("/metrics").await.text().await.unwrap();
    for g in org.groups.values() {
        assert!(!metrics.contains(&g.name), "{} in /metrics", g.name);
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_is_readable_by_its_owner_only() {
    let org = org(3, 6);
    let h = Harness::start(org.clone()).await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&org));
    let db = h.snapshot_path();
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }

    // A snapshot left 0644 (an older version) is tightened, and says so.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(mode(&db), 0o600);
    assert!(text(&out).contains("now 0600"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_readable_by_others_are_warned_about() {
    let org = org(2, 4);
    let h = Harness::start_with_okta(
        org.clone(),
        OktaOptions {
            token: TOKEN.into(),
            ..OktaOptions::default()
        },
        |dir| {
            let path = dir.join("okta-token");
            std::fs::write(&path, TOKEN).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            format!("api_token_file = {:?}\n", path.display().to_string())
        },
        "",
    )
    .await;
    let token_file = h.dir.path().join("okta-token");
    let out = common::run_binary(
        &h.config,
        &["plan"],
        &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "")],
    )
    .await;
    let log = text(&out);
    assert!(
        log.contains("readable by group or others") && log.contains("okta.api_token_file"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is never logged");

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = common::run_binary(
        &h.config,
        &["plan"],
        &[("Q_GROUP_SYNC_OKTA__API_TOKEN", "")],
    )
    .await;
    assert!(
        !text(&out).contains("readable by group or others"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_expires_in_runs_the_pass_normally() {
    let key = TestKey::ec();
    let org = org(4, 6);
    let app = OAuthApp {
        public_keys: vec![key.registered(None)],
        advertised_expires_in: Some(serde_json::Number::from(10_000_000_000_000u64)),
        ..OAuthApp::default()
    };
    let h = Harness::start_oauth(
        org.clone(),
        OktaOptions {
            oauth: Some(app),
            ..OktaOptions::default()
        },
        &key,
        "",
    )
    .await;
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&org));

    // In `serve`: the pass succeeds and the process stays live.
    let s = h.serve_synced(YEARLY, 30).await;
    assert_eq!(s.get("/livez").await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Hostile answers from Okta: the body cap and the page cap (the client against the emulator)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_okta_bodies_and_endless_listings_are_cut_off() {
    use q_group_sync::source::{DirectorySource, SourceError};
    use q_group_sync_emulator::{FaultAction, Matcher, OktaFault};

    let emu = common::okta_emulator(org(6, 4), TOKEN, OktaOptions::default()).await;
    let client = || {
        q_group_sync::source::okta::OktaSource::new(common::okta_settings(&emu, 2))
            .unwrap()
            .with_response_limits(64 * 1024, 5)
    };

    // A page padded past the cap: refused, naming the path, and not retried.
    emu.add_fault(OktaFault::times(
        Matcher::groups_listing(),
        FaultAction::OversizedBody(200 * 1024),
        1,
    ));
    let okta = client();
    let err = okta.list_groups().await.unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.kind(), "too_large");
    assert!(err.to_string().contains("/api/v1/groups"), "{err}");
    assert_eq!(okta.stats().retries, 0);
    // Under the cap, the same padding is read.
    emu.add_fault(OktaFault::times(
        Matcher::groups_listing(),
        FaultAction::OversizedBody(32 * 1024),
        1,
    ));
    assert_eq!(client().list_groups().await.unwrap().len(), 6);

    // A next link chain that never ends: stopped at the page cap.
    emu.clear_faults();
    emu.reset_request_log();
    emu.add_fault(OktaFault::always(
        Matcher::groups_listing(),
        FaultAction::EndlessNext,
    ));
    let err = client().list_groups().await.unwrap_err();
    assert!(
        matches!(err, SourceError::TooManyPages { pages: 5, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/api/v1/groups"), "{err}");
    assert_eq!(emu.request_count(), 5);
}

// ---------------------------------------------------------------------------------------------
// Secrets in messages: AWS errors and dependency logs
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_carry_code_and_message_only() {
    use q_group_sync_emulator::{PROXY_MARKER, QFault, QFaultAction};

    let h = Harness::start(org(2, 4)).await;
    // A proxy's HTML page with a cookie, on every write: no raw header or body in any message.
    h.q.add_fault(QFault::always(QFaultAction::ProxyPage(502)).on_op("PutGroup"));
    let out = h
        .run(&["--log-format", "json", "sync", "--output", "json"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains(PROXY_MARKER), "{all}");
    assert!(
        !all.contains("set-cookie") && !all.contains("<html>"),
        "{all}"
    );
    assert!(all.contains("HTTP 502"), "{all}");

    // A modelled error keeps its code and message.
    h.q.clear_faults();
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied).on_op("PutGroup"));
    let out = h.run(&["sync"]).await;
    // A permission refused: setup, exit 2.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out)
            .contains("AccessDeniedException: User is not authorized to perform this action."),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("x-amzn-requestid"), "{}", text(&out));
}

/// The targets of the JSON log lines at `level`.
fn targets_at(out: &std::process::Output, level: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == level)
        .filter_map(|v| v["target"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logging_leaves_dependencies_at_info() {
    let h = Harness::start(org(2, 4)).await;
    let out = h
        .run(&["--log-level", "trace", "--log-format", "json", "sync"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for level in ["DEBUG", "TRACE"] {
        let targets = targets_at(&out, level);
        let foreign: Vec<&String> = targets
            .iter()
            .filter(|t| !t.starts_with("q_group_sync"))
            .collect();
        assert!(foreign.is_empty(), "{level} from dependencies: {foreign:?}");
    }
    assert!(
        targets_at(&out, "DEBUG")
            .iter()
            .any(|t| t.starts_with("q_group_sync")),
        "our own debug lines are there"
    );

    // An explicit filter raises a dependency (a first sync again, so the SDK has calls to log).
    let h = Harness::start(org(2, 4)).await;
    let out = h
        .run(&[
            "--log-level",
            "debug",
            "--log-filter",
            "aws_smithy_runtime=debug",
            "--log-format",
            "json",
            "sync",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let targets = targets_at(&out, "DEBUG");
    assert!(
        targets.iter().any(|t| t.starts_with("aws_smithy_runtime")),
        "{targets:?}"
    );
    assert!(
        !targets.iter().any(|t| t.starts_with("hyper")),
        "{targets:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// S3 member files: the expected bucket owner, and deletion with the group
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_files_name_the_bucket_owner_and_go_with_their_group() {
    // One group over the inline limit of 2, one within it.
    let mut org = common::org_with(2, 6, |g| format!("Secret Project {g}"), |_, g| g == 0);
    org.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(0));
    let h = Harness::start(org.clone()).await;
    let s3_url = h.q.s3_url();
    let s3 = |owner: Option<&'static str>| {
        let mut env = vec![
            ("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "s3".to_owned()),
            (
                "Q_GROUP_SYNC_QBUSINESS__INLINE_MEMBER_LIMIT",
                "2".to_owned(),
            ),
            (
                "Q_GROUP_SYNC_QBUSINESS__S3_BUCKET",
                "qgs-members".to_owned(),
            ),
            ("Q_GROUP_SYNC_QBUSINESS__S3_PREFIX", "groups/".to_owned()),
            (
                "Q_GROUP_SYNC_QBUSINESS__ROLE_ARN",
                "arn:aws:iam::123456789012:role/q-group-sync-members".to_owned(),
            ),
            ("Q_GROUP_SYNC_QBUSINESS__S3_ENDPOINT_URL", s3_url.clone()),
        ];
        if let Some(owner) = owner {
            env.push(("Q_GROUP_SYNC_QBUSINESS__S3_BUCKET_OWNER", owner.to_owned()));
        }
        env
    };
    let run = |env: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.run_env(&["sync"], &env).await
        }
    };

    // A bucket owned by another account: S3 refuses, nothing is recorded.
    let out = run(s3(Some("999999999999"))).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AccessDenied"), "{}", text(&out));
    assert!(
        text(&out).contains("qbusiness.s3_bucket_owner"),
        "{}",
        text(&out)
    );
    assert!(h.q.s3_keys("qgs-members").is_empty());

    // The owner from role_arn's account: written, and every call names it.
    let out = run(s3(None)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let keys = h.q.s3_keys("qgs-members");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let calls = h.q.s3_calls();
    assert!(
        calls.iter().all(|c| c.expected_owner.as_deref().is_some()),
        "{calls:?}"
    );
    assert!(calls.iter().any(|c| c.method == "PUT" && c.status == 200));

    // The group goes from Okta: its member file goes with it.
    h.okta.update(|o| {
        o.remove_group(&OktaOrg::group_id(0));
    });
    let mut env = s3(None);
    for key in [
        "Q_GROUP_SYNC_SAFETY__MAX_GROUP_DELETES_PERCENT",
        "Q_GROUP_SYNC_SAFETY__MAX_GROUP_COUNT_DROP_PERCENT",
    ] {
        env.push((key, "100".to_owned()));
    }
    let out = run(env).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(h.q.group("Secret Project 0").is_none());
    assert!(h.q.s3_keys("qgs-members").is_empty(), "the file is deleted");
    let deletes: Vec<_> =
        h.q.s3_calls()
            .into_iter()
            .filter(|c| c.method == "DELETE")
            .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].expected_owner.as_deref(), Some("123456789012"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_with_control_characters_are_printed_escaped() {
    let mut o = org(1, 2);
    // A name that would clear the terminal and forge a log line if printed raw.
    o.add_group(
        "00gevil0000000000001",
        "Eng\u{1b}[2J\nINFO forged line\u{202e}",
        "OKTA_GROUP",
    );
    o.add_member("00gevil0000000000001", &OktaOrg::user_id(0));
    let h = Harness::start(o).await;
    for args in [&["plan"][..], &["--log-format", "text", "sync"][..]] {
        let out = h.run(args).await;
        let all = text(&out);
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{202e}') && !all.contains("\nINFO forged"),
            "{all}"
        );
        assert!(
            all.contains("Eng\\u{1b}[2J\\u{a}INFO forged line\\u{202e}"),
            "{all}"
        );
    }
}
