//! `serve` as ops run it: the real binary, its HTTP port, the schedule and signals, against the
//! emulators.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Harness, TOKEN, expected, text, yearly_with_admin};
use q_group_sync::clock::{Clock, SystemClock};
use q_group_sync_emulator::{OktaOptions, OktaOrg, QFault, QFaultAction};

const ADMIN: &str = "admin-token-0123456789abcdef";

fn org(groups: usize, members: usize) -> OktaOrg {
    common::org_with(
        groups,
        members,
        |g| format!("group {g}"),
        |u, g| (u + g) % 3 != 0,
    )
}

/// An Okta emulator slow enough that a pass takes about a second.
async fn slow_harness(groups: usize) -> Harness {
    let options = OktaOptions {
        token: TOKEN.into(),
        latency: Duration::from_millis(250),
        ..OktaOptions::default()
    };
    Harness::start_with(org(groups, 12), options, "").await
}

fn passes_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("q_group_sync_passes_total{") && l.contains("mode=\"sync\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_trigger_auth_coalescing_and_dry_run() {
    let h = slow_harness(12).await;
    // Not ready until the start-up pass was attempted; then ready for good.
    let s = h.serve_synced(&yearly_with_admin(ADMIN), 30).await;
    let st = s.status().await;
    assert_eq!(st["last_pass"]["trigger"], "startup");
    assert_eq!(s.get("/readyz").await.status(), 200);
    assert_eq!(s.get("/livez").await.status(), 200);
    assert!(
        st["next_scheduled_pass"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}-01-01T00:00:00", chrono_year() + 1))
    );
    assert_eq!(h.q_state(), expected(&h.okta.org()));

    // Without or with a wrong token: 401 and nothing starts.
    let before = s.status().await["last_pass"]["pass_id"].clone();
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some("Basic abc"),
    ] {
        let mut req = s.http.post(s.url("/sync"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let st = s.status().await;
    assert_eq!(st["pass_running"], false);
    assert_eq!(st["queued_passes"], serde_json::json!([]));
    assert_eq!(st["last_pass"]["pass_id"], before);

    // A trigger starts a pass; 20 more during it make exactly one follow-up pass.
    let metrics_before = passes_total(&s.get("/metrics").await.text().await.unwrap());
    let first: serde_json::Value = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_id = first["pass_id"].as_str().unwrap().to_owned();
    s.wait_status(10, "the triggered pass to run", |st| {
        st["current_pass"]["pass_id"] == first_id.as_str()
    })
    .await;
    let calls = (0..20).map(|_| {
        let req = s.http.post(s.url("/sync?dry_run=false")).bearer_auth(ADMIN);
        async move { req.send().await.unwrap() }
    });
    let responses = futures::future::join_all(calls).await;
    let mut ids = BTreeSet::new();
    let mut coalesced = 0;
    for r in responses {
        assert_eq!(r.status(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        ids.insert(v["pass_id"].as_str().unwrap().to_owned());
        coalesced += usize::from(v["coalesced"] == true);
    }
    assert_eq!(
        ids.len(),
        1,
        "all 20 requests name one follow-up pass: {ids:?}"
    );
    assert!(!ids.contains(&first_id));
    assert_eq!(coalesced, 19);
    let follow_up = ids.into_iter().next().unwrap();
    s.wait_status(30, "the follow-up pass", |st| {
        st["last_pass"]["pass_id"] == follow_up.as_str() && st["pass_running"] == false
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics_after = passes_total(&s.get("/metrics").await.text().await.unwrap());
    assert_eq!(
        metrics_after - metrics_before,
        2.0,
        "exactly the triggered pass and one follow-up"
    );

    // A dry run returns the plan and writes nothing.
    h.okta.update(|o| {
        o.remove_member(&OktaOrg::group_id(1), &OktaOrg::user_id(1));
    });
    let snapshot_before = std::fs::read(h.snapshot_path()).unwrap();
    h.q.reset_calls();
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["plan"]["changes"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(
        v["plan"]["changes"][0]["removed"],
        serde_json::json!(["user1@example.test"])
    );
    assert!(
        h.q.calls()
            .iter()
            .all(|c| c.op != "PutGroup" && c.op != "DeleteGroup")
    );
    assert_eq!(std::fs::read(h.snapshot_path()).unwrap(), snapshot_before);

    // A single-group trigger pushes just that group.
    let resp = s
        .http
        .post(s.url("/sync?group=group%201"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<serde_json::Value>().await.unwrap()["pass_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let st = s
        .wait_status(30, "the group pass", |st| {
            st["last_pass"]["pass_id"] == id.as_str()
        })
        .await;
    assert_eq!(st["last_pass"]["group"], "group 1");
    assert_eq!(st["last_pass"]["puts_applied"], 1);
    assert_eq!(h.q_state(), expected(&h.okta.org()));

    // Bad request bodies are refused with a reason.
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .body("{\"bogus\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("bogus"));
}

fn chrono_year() -> i32 {
    use chrono::Datelike;
    SystemClock.now().year()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_is_disabled_without_an_admin_token() {
    let h = Harness::start(org(2, 3)).await;
    let s = h.serve_no_default_admin(&[]).await;
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_fire_on_schedule_and_metrics_are_clean() {
    let h = Harness::start(org(3, 5)).await;
    h.add_config("\n[schedule]\ncron = \"*/2 * * * * *\"\nrun_on_start = false\n");
    let s = h.serve(&[]).await;
    assert_eq!(
        s.get("/readyz").await.status(),
        200,
        "ready at once without a start-up pass"
    );
    let st = s
        .wait_status(10, "two scheduled passes", |st| {
            st["last_pass"]["trigger"] == "schedule"
                && st["last_pass"]["run_id"].as_i64() >= Some(2)
        })
        .await;
    assert_eq!(st["last_pass"]["outcome"], "success");
    assert!(st["snapshot_age_seconds"].as_f64().unwrap() < 10.0);
    let next = st["next_scheduled_pass"].as_str().unwrap();
    assert!(next.ends_with('Z') || next.contains("+00:00"), "{next}");

    let metrics = s.get("/metrics").await.text().await.unwrap();
    for name in [
        "q_group_sync_passes_total",
        "q_group_sync_pass_duration_seconds_bucket",
        "q_group_sync_phase_duration_seconds_bucket{phase=\"okta_read\"",
        "q_group_sync_phase_duration_seconds_bucket{phase=\"plan\"",
        "q_group_sync_phase_duration_seconds_bucket{phase=\"apply\"",
        "q_group_sync_pass_in_progress",
        "q_group_sync_groups_in_scope 3",
        "q_group_sync_membership_changes_total{change=\"added\"}",
        "q_group_sync_group_writes_total{op=\"put\",result=\"ok\"} 3",
        "q_group_sync_api_requests_total{service=\"okta\",operation=\"list_groups\",status_class=\"2xx\"}",
        "q_group_sync_api_requests_total{service=\"qbusiness\",operation=\"PutGroup\",status_class=\"2xx\"} 3",
        "q_group_sync_okta_rate_limit_remaining{bucket=\"groups\"}",
        "q_group_sync_okta_rate_limit_limit{bucket=\"groups\"}",
        "q_group_sync_last_success_timestamp_seconds",
        "q_group_sync_snapshot_age_seconds",
        "q_group_sync_users_skipped{reason=\"status\"}",
        "q_group_sync_triggers_total{source=\"schedule\",result=\"started\"}",
        "# HELP q_group_sync_passes_total",
        "# TYPE q_group_sync_pass_duration_seconds histogram",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    // promtool is installed by scripts/ci (Debian's prometheus package); where it exists, it
    // must find nothing to complain about.
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics:\n{said}"
        );
    } else {
        eprintln!("promtool not installed: skipped `promtool check metrics`");
    }
}

/// The counters the alerts count with `increase()` exist at 0 before anything happened, for
/// every outcome and kind, so that Prometheus sees the first failure as an increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_serve_exports_every_alerted_series_at_zero() {
    let h = Harness::start(org(2, 3)).await;
    h.add_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = false\n");
    let s = h.serve(&[]).await;
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let mut want = Vec::new();
    for outcome in ["success", "partial", "held", "failed"] {
        for mode in ["sync", "plan"] {
            want.push(format!(
                "q_group_sync_passes_total{{outcome=\"{outcome}\",mode=\"{mode}\"}} 0"
            ));
        }
    }
    for kind in q_group_sync::metrics::PASS_FAILURE_KINDS {
        want.push(format!(
            "q_group_sync_pass_failures_total{{kind=\"{kind}\"}} 0"
        ));
    }
    for service in ["okta", "qbusiness"] {
        want.push(format!(
            "q_group_sync_rate_limited_total{{service=\"{service}\"}} 0"
        ));
    }
    for event in ["acquired", "lost"] {
        want.push(format!(
            "q_group_sync_leadership_changes_total{{event=\"{event}\"}} 0"
        ));
    }
    for outcome in ["ok", "error", "reset"] {
        want.push(format!(
            "q_group_sync_event_polls_total{{outcome=\"{outcome}\"}} 0"
        ));
    }
    for outcome in ["met", "missed"] {
        want.push(format!(
            "q_group_sync_event_deadlines_total{{outcome=\"{outcome}\"}} 0"
        ));
    }
    for change in ["added", "removed"] {
        want.push(format!(
            "q_group_sync_membership_changes_total{{change=\"{change}\"}} 0"
        ));
    }
    for result in ["listing", "full_read", "failed"] {
        want.push(format!(
            "q_group_sync_user_checks_total{{result=\"{result}\"}} 0"
        ));
    }
    for kind in [
        "unread",
        "over_member_limit",
        "name_conflict",
        "invalid_name",
        "reserved_name",
        "not_owned",
        "ownership_unchecked",
    ] {
        want.push(format!("q_group_sync_group_issues{{kind=\"{kind}\"}} 0"));
    }
    want.push("q_group_sync_events_total 0".into());
    want.push("q_group_sync_event_groups_total 0".into());
    let lines: BTreeSet<&str> = metrics.lines().collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !lines.contains(w.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{metrics}");
    let st = s.status().await;
    assert!(st["last_pass"].is_null(), "no pass ran: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_stays_up_while_okta_is_down_and_status_names_the_failure() {
    let h = Harness::start(org(2, 3)).await;
    let s = h.serve_synced(&yearly_with_admin(ADMIN), 20).await;
    let Harness {
        okta,
        q,
        dir,
        config,
    } = h;
    okta.shutdown().await;
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let st = s
        .wait_status(60, "a failed pass", |st| {
            st["last_pass"]["outcome"] == "failed"
        })
        .await;
    assert_eq!(st["last_pass"]["error_kind"], "okta");
    assert_eq!(st["last_pass"]["errors_by_kind"]["okta"], 1);
    assert_eq!(s.get("/livez").await.status(), 200);
    assert_eq!(s.get("/readyz").await.status(), 200);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("q_group_sync_pass_failures_total{kind=\"okta\"} 1"),
        "{metrics}"
    );
    drop((q, dir, config));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_pass_exits_in_grace_and_keeps_every_applied_write() {
    let h = Harness::start(org(30, 6)).await;
    h.add_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\n[server]\nshutdown_grace = \"10s\"\n");
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("[qbusiness]", "[qbusiness]\nmax_concurrency = 2"),
    )
    .unwrap();
    h.q.add_fault(
        QFault::always(QFaultAction::Delay(Duration::from_millis(300))).on_op("PutGroup"),
    );
    let mut s = h.serve(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.q.put_count() < 4 {
        assert!(Instant::now() < deadline, "no puts; logs:\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal("-TERM");
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(12), s.child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?}",
        stopped.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", s.logs());
    let accepted = h.q.put_count();
    assert!(accepted < 30, "the pass stopped early ({accepted} puts)");

    // Every group Q accepted is in the snapshot: the next plan puts only the others.
    h.q.clear_faults();
    let out = h.run(&["plan", "--output", "json"]).await;
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let to_put: BTreeSet<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["group"].as_str().unwrap().to_owned())
        .collect();
    let in_q: BTreeSet<String> = h.q_state().into_keys().collect();
    assert_eq!(in_q.len(), accepted);
    assert!(
        to_put.is_disjoint(&in_q),
        "applied groups are recorded: {:?}",
        to_put.intersection(&in_q).collect::<Vec<_>>()
    );
    assert_eq!(to_put.len() + in_q.len(), 30);
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_confirming_accepted_puts_within_the_grace() {
    let h = Harness::start(org(6, 6)).await;
    // A grace of 6 s: puts already sent are confirmed for 4.5 s after the signal.
    h.add_config("\n[schedule]\ncron = \"0 0 0 1 1 *\"\n[server]\nshutdown_grace = \"6s\"\n");
    // "group 1" is confirmed 2 s after its put; "group 2" only after a minute.
    h.q.add_fault(
        QFault::times(QFaultAction::Processing(Duration::from_secs(2)), 1)
            .on_op("PutGroup")
            .on_group("group 1"),
    );
    h.q.add_fault(
        QFault::times(QFaultAction::Processing(Duration::from_secs(60)), 1)
            .on_op("PutGroup")
            .on_group("group 2"),
    );
    let mut s = h.serve(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.q.put_count() < 6 {
        assert!(Instant::now() < deadline, "no puts; logs:\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let processing = |name: &str| h.q.group(name).map(|g| g.status) == Some("PROCESSING".into());
    assert!(processing("group 1") && processing("group 2"));
    s.signal("-TERM");
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(8), s.child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "took {:?}",
        stopped.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", s.logs());
    assert!(
        stopped.elapsed() >= Duration::from_secs(4),
        "it waited for the slow confirmation until the grace's end ({:?})",
        stopped.elapsed()
    );

    // "group 1" was confirmed after the signal and recorded; "group 2" was not confirmed in
    // time, so it is not recorded as applied and the next pass writes it again.
    let out = h.run(&["plan", "--output", "json"]).await;
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let to_put: BTreeSet<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["group"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        to_put,
        BTreeSet::from(["group 2".to_owned()]),
        "{}",
        s.logs()
    );
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    assert_eq!(h.q.group("group 1").unwrap().put_count, 1, "not put again");
    assert_eq!(h.q.group("group 2").unwrap().put_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_the_environment_are_taken_verbatim() {
    // All digits with leading zeros: must not be read as the number 12345678901234567.
    let token = "0012345678901234567";
    let h = Harness::start(org(1, 2)).await;
    let s = h
        .serve(&[("Q_GROUP_SYNC_SERVER__ADMIN_TOKEN", token)])
        .await;
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth("12345678901234567")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = s
        .http
        .post(s.url("/sync"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(!s.logs().contains(token), "the admin token is never logged");
}
