//! Near-real-time updates: `serve` with `okta.events` polls the emulated System Log and syncs a
//! changed group within `okta.events.max_delay`, with no scheduled pass.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, expected, org_with};
use q_group_sync_emulator::OktaOrg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_reaches_q_within_the_delay_without_a_scheduled_pass() {
    let org = org_with(20, 60, |g| format!("team-{g}"), |u, g| u % 20 == g);
    let h = Harness::start(org).await;
    // No scheduled pass for a year: only the start-up pass and events can sync anything.
    h.add_config(
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\n\n[okta.events]\nenabled = true\npoll_interval = \"1s\"\nmax_delay = \"5s\"\n",
    );
    let s = h.serve(&[]).await;
    s.wait_status(30, "start-up pass", |st| {
        st["last_pass"]["outcome"] == "success"
    })
    .await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    h.q.reset_calls();

    // One user joins team-3, another leaves team-7 (Okta logs both).
    let (team3, team7) = (OktaOrg::group_id(3), OktaOrg::group_id(7));
    let joiner = OktaOrg::user_id(0);
    let leaver = OktaOrg::user_id(7);
    let changed = Instant::now();
    h.okta.update(|o| {
        o.add_member(&team3, &joiner);
        o.remove_member(&team7, &leaver);
    });
    let want = expected(&h.okta.org());
    loop {
        let q = h.q_state();
        if q["team-3"] == want["team-3"] && q["team-7"] == want["team-7"] {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "not synced within okta.events.max_delay (5 s); logs:\n{}",
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delay = changed.elapsed();
    let st = s
        .wait_status(10, "the events pass recorded", |st| {
            st["last_pass"]["trigger"] == "events"
        })
        .await;
    assert_eq!(st["last_pass"]["outcome"], "success", "{st:#}");
    assert_eq!(h.q_state(), want, "everything else unchanged");
    // Only the two changed groups were written.
    let mut written: Vec<String> =
        h.q.calls()
            .into_iter()
            .filter(|c| c.op == "PutGroup")
            .filter_map(|c| c.group)
            .collect();
    written.sort();
    written.dedup();
    assert_eq!(written, ["team-3", "team-7"]);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    // The series exists at 0 from start-up; polls have counted since.
    let ok_polls = metrics
        .lines()
        .find_map(|l| l.strip_prefix("q_group_sync_event_polls_total{outcome=\"ok\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(ok_polls.is_some_and(|n| n > 0.0), "{metrics}");
    assert!(
        metrics.contains("q_group_sync_triggers_total{source=\"events\",result=\"started\"}"),
        "{metrics}"
    );
    // max_delay is checked at run time: the events pass says it met it.
    assert!(
        metrics.contains("q_group_sync_event_deadlines_total{outcome=\"met\"} 1"),
        "{metrics}"
    );
    println!("change to Q: {:.2} s", delay.as_secs_f64());

    // The position is recorded: after a restart the same events do not trigger a pass again.
    s.signal("-TERM");
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.q.reset_calls();
    let s = h
        .serve(&[("Q_GROUP_SYNC_SCHEDULE__RUN_ON_START", "false")])
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = s.status().await;
    assert!(
        st["last_pass"].is_null(),
        "no pass after the restart: {st:#}"
    );
    assert!(h.q.calls().iter().all(|c| c.op != "PutGroup"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reads_the_system_log_when_events_are_on() {
    use q_group_sync_emulator::{FaultAction, Matcher, OktaFault};
    let org = org_with(2, 4, |g| format!("team-{g}"), |u, g| u % 2 == g);
    let h = Harness::start(org).await;
    h.add_config("\n[okta.events]\nenabled = true\n");
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("okta events: ok (System Log readable"),
        "{}",
        common::text(&out)
    );
    // An admin role without System Log access: a configuration error, exit 2.
    h.okta
        .add_fault(OktaFault::always(Matcher::logs(), FaultAction::Status(403)));
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("okta events: FAILED"),
        "{}",
        common::text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_synced_after_max_delay_is_reported_in_logs_and_metrics() {
    use q_group_sync_emulator::OktaOptions;
    let org = org_with(4, 8, |g| format!("team-{g}"), |u, g| u % 4 == g);
    // The System Log shows each event 3 s after it happened: more than max_delay.
    let h = Harness::start_with(
        org,
        OktaOptions {
            token: common::TOKEN.into(),
            log_lag: Duration::from_secs(3),
            ..OktaOptions::default()
        },
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\n\n[okta.events]\nenabled = true\nmax_delay = \"2s\"\n",
    )
    .await;
    let s = h.serve(&[]).await;
    s.wait_status(30, "start-up pass", |st| {
        st["last_pass"]["outcome"] == "success"
    })
    .await;
    h.okta
        .update(|o| o.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(0)));
    s.wait_status(20, "the events pass", |st| {
        st["last_pass"]["trigger"] == "events"
    })
    .await;
    assert_eq!(h.q_state(), expected(&h.okta.org()), "synced, late");
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("q_group_sync_event_deadlines_total{outcome=\"missed\"} 1"),
        "{metrics}"
    );
    let logs = s.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"WARN\"") && l.contains("okta.events.max_delay missed")),
        "{logs}"
    );
}
