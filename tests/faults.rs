//! Fault-injection suite: the real binary against the emulators with Okta and Q Business faults
//! and SIGKILL at seeded points. After each scenario, Q must hold for every group either its
//! old or its new membership, never a mix or a truncation; after a recovery run Q must equal
//! Okta's truth and the snapshot must match Q (the next plan is empty).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Harness, TOKEN, expected, text};
use q_group_sync_emulator::{
    FaultAction, Matcher, OktaFault, OktaOptions, OktaOrg, QFault, QFaultAction,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Truth = BTreeMap<String, BTreeSet<String>>;

const GROUPS: usize = 30;
const USERS: usize = 60;

fn org(rng: &mut StdRng) -> OktaOrg {
    // User g is always in group g: never empty (an emptied group is a breaker case of its own).
    common::org_with(
        GROUPS,
        USERS,
        |g| format!("group {g:02}"),
        |u, g| u == g || rng.random_bool(0.3),
    )
}

/// A modest change: members in and out of six groups, one group deleted, one created.
fn mutate(h: &Harness, rng: &mut StdRng) {
    h.okta.update(|o| {
        for _ in 0..6 {
            let gid = OktaOrg::group_id(rng.random_range(1..GROUPS));
            let uid = OktaOrg::user_id(rng.random_range(GROUPS..USERS));
            if !o.remove_member(&gid, &uid) {
                o.add_member(&gid, &uid);
            }
        }
        o.groups.remove(&OktaOrg::group_id(0));
        let new = OktaOrg::group_id(GROUPS + 1);
        o.add_group(&new, "group new", "OKTA_GROUP");
        o.add_member(&new, &OktaOrg::user_id(1));
    });
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Okta429Storm,
    OktaConcurrency429,
    Okta5xxOnPages,
    OktaTimeouts,
    OktaTruncatedBodies,
    OktaEmptyListing,
    /// A listed group is gone (404 E0000007) by the time its members are read.
    OktaGroupVanishes,
    QThrottling,
    Q500s,
    QConflict,
    QFailedAsync,
    KillDuringApply,
    KillDuringRead,
}

const SCENARIOS: [Scenario; 13] = [
    Scenario::Okta429Storm,
    Scenario::OktaConcurrency429,
    Scenario::Okta5xxOnPages,
    Scenario::OktaTimeouts,
    Scenario::OktaTruncatedBodies,
    Scenario::OktaEmptyListing,
    Scenario::OktaGroupVanishes,
    Scenario::QThrottling,
    Scenario::Q500s,
    Scenario::QConflict,
    Scenario::QFailedAsync,
    Scenario::KillDuringApply,
    Scenario::KillDuringRead,
];

#[derive(Default)]
struct Tally {
    scenarios: usize,
    faults: usize,
    recovered: usize,
    wrong: usize,
}

/// Memberships in Q that are neither the group's old nor its new truth.
fn wrong_memberships(q: &Truth, before: &Truth, after: &Truth) -> usize {
    let mut wrong = 0;
    for (name, members) in q {
        if name == "made by hand" {
            continue;
        }
        let ok = before.get(name) == Some(members) || after.get(name) == Some(members);
        if !ok {
            let reference = after
                .get(name)
                .or(before.get(name))
                .cloned()
                .unwrap_or_default();
            wrong += members.symmetric_difference(&reference).count().max(1);
        }
    }
    wrong
}

async fn run_scenario(scenario: Scenario, seed: u64, tally: &mut Tally) {
    let mut rng = StdRng::seed_from_u64(seed);
    let okta_options = OktaOptions {
        token: TOKEN.into(),
        ..OktaOptions::default()
    };
    let h = Harness::start_with(org(&mut rng), okta_options, "").await;
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config)
            .unwrap()
            .replace("max_retries = 3", "max_retries = 2")
            .replace("max_retry_wait = \"5s\"", "max_retry_wait = \"2s\"")
            .replace("request_timeout = \"5s\"", "request_timeout = \"1s\"")
            .replace(
                "[qbusiness]",
                "[qbusiness]\nmax_attempts = 2\nmax_concurrency = 3",
            ),
    )
    .unwrap();
    h.q.seed_group("made by hand", &["someone@example.test"]);
    let out = h.run(&["sync"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{scenario:?} baseline: {}",
        text(&out)
    );
    let before = expected(&h.okta.org());
    mutate(&h, &mut rng);
    let after = expected(&h.okta.org());
    h.q.reset_calls();

    let victim = OktaOrg::group_id(rng.random_range(1..GROUPS));
    let mut injected = 0;
    match scenario {
        Scenario::Okta429Storm => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::any(),
                action: FaultAction::RateLimited,
                times: Some(6),
            });
        }
        Scenario::OktaConcurrency429 => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::any(),
                action: FaultAction::ConcurrencyLimited,
                times: Some(4),
            });
        }
        Scenario::Okta5xxOnPages => {
            // One group fails for good (unread), another recovers after one retry.
            h.okta.add_fault(OktaFault {
                matcher: Matcher::members_of(&victim),
                action: FaultAction::Status(500),
                times: None,
            });
            let other = OktaOrg::group_id(if victim == OktaOrg::group_id(1) { 2 } else { 1 });
            h.okta.add_fault(OktaFault {
                matcher: Matcher::members_of(&other),
                action: FaultAction::Status(503),
                times: Some(1),
            });
        }
        Scenario::OktaTimeouts => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::members_of(&victim),
                action: FaultAction::Delay(Duration::from_millis(1500)),
                times: Some(2),
            });
        }
        Scenario::OktaTruncatedBodies => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::members_of(&victim),
                action: FaultAction::TruncatedBody,
                times: Some(2),
            });
            h.okta.add_fault(OktaFault {
                matcher: Matcher::groups_listing(),
                action: FaultAction::TruncatedBody,
                times: Some(1),
            });
        }
        Scenario::OktaEmptyListing => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::groups_listing(),
                action: FaultAction::EmptyList,
                times: None,
            });
        }
        Scenario::OktaGroupVanishes => {
            h.okta.add_fault(OktaFault {
                matcher: Matcher::members_of(&victim),
                action: FaultAction::Status(404),
                times: None,
            });
        }
        Scenario::QThrottling => h.q.add_fault(QFault::times(QFaultAction::Throttle, 6)),
        Scenario::Q500s => {
            h.q.add_fault(QFault::times(QFaultAction::InternalError, 5).on_op("PutGroup"))
        }
        Scenario::QConflict => {
            h.q.add_fault(QFault::times(QFaultAction::Conflict, 3).on_op("PutGroup"))
        }
        Scenario::QFailedAsync => h.q.add_fault(
            QFault::times(
                QFaultAction::FailAsync {
                    error_code: "InternalError".into(),
                    message: "injected".into(),
                },
                2,
            )
            .on_op("PutGroup"),
        ),
        Scenario::KillDuringApply | Scenario::KillDuringRead => {}
    }

    let code = match scenario {
        Scenario::KillDuringApply | Scenario::KillDuringRead => {
            if matches!(scenario, Scenario::KillDuringApply) {
                h.q.add_fault(
                    QFault::always(QFaultAction::Delay(Duration::from_millis(40)))
                        .on_op("PutGroup"),
                );
            }
            let kill_after_puts = rng.random_range(0..4);
            let kill_after_ms = rng.random_range(5..60);
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"))
                .arg("--config")
                .arg(&h.config)
                .arg("sync")
                .env_clear()
                .env("Q_GROUP_SYNC_OKTA__API_TOKEN", TOKEN)
                .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
                .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let started = Instant::now();
            loop {
                let due = match scenario {
                    Scenario::KillDuringApply => h.q.put_count() >= kill_after_puts,
                    _ => started.elapsed() >= Duration::from_millis(kill_after_ms),
                };
                if due || started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            child.start_kill().unwrap(); // SIGKILL
            let status = child.wait().await.unwrap();
            injected += 1;
            status.code()
        }
        _ => h.run(&["sync"]).await.status.code(),
    };
    // Okta faults: error answers, or (for broken bodies and timeouts) the retries they caused.
    let okta_log = h.okta.requests();
    let errors = okta_log.iter().filter(|r| r.status >= 400).count();
    let retries = okta_log.iter().filter(|r| r.retry_count.is_some()).count();
    injected += errors.max(retries);
    injected += h.q.calls().iter().filter(|c| c.status >= 400).count();
    injected += match scenario {
        Scenario::OktaEmptyListing => 1,
        Scenario::QFailedAsync => 2,
        _ => 0,
    };
    if matches!(scenario, Scenario::QFailedAsync) {
        assert_eq!(code, Some(1), "{scenario:?}: a FAILED put is a failure");
    }
    assert!(injected > 0, "{scenario:?}: no fault was injected");
    if matches!(scenario, Scenario::OktaEmptyListing) {
        assert_eq!(code, Some(3), "{scenario:?}: an empty listing is held");
    }
    let mut after = after;
    if matches!(scenario, Scenario::OktaGroupVanishes) {
        // It really is gone: Okta's truth loses it too.
        let name = h
            .okta
            .update(|o| o.groups.remove(&victim).map(|g| g.name))
            .unwrap_or_default();
        after.remove(&name);
        assert!(
            !h.q_state().contains_key(&name),
            "{scenario:?}: a vanished group is deleted"
        );
    }
    let wrong = wrong_memberships(&h.q_state(), &before, &after);

    // Recovery: faults gone, one more pass converges, and the snapshot matches Q.
    h.okta.clear_faults();
    h.q.clear_faults();
    let out = h.run(&["sync"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{scenario:?} seed {seed}: recovery run: {}",
        text(&out)
    );
    let mut q = h.q_state();
    assert!(
        q.remove("made by hand").is_some(),
        "{scenario:?}: a group we did not create was touched"
    );
    let diff: usize = after
        .iter()
        .map(|(g, m)| {
            q.get(g)
                .map_or(m.len().max(1), |have| have.symmetric_difference(m).count())
        })
        .sum::<usize>()
        + q.keys().filter(|g| !after.contains_key(*g)).count();
    let out = h.run(&["plan", "--output", "json"]).await;
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(
        plan["changes"],
        serde_json::json!([]),
        "{scenario:?}: snapshot matches Q: {plan:#}"
    );

    eprintln!(
        "{scenario:?} seed {seed}: exit {code:?}, {injected} faults, {wrong} wrong during, {diff} wrong after"
    );
    tally.scenarios += 1;
    tally.faults += injected;
    tally.recovered += 1;
    tally.wrong += wrong + diff;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_suite() {
    let mut tally = Tally::default();
    let mut runs: Vec<(Scenario, u64)> = SCENARIOS
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, 100 + i as u64))
        .collect();
    // SIGKILL at more points: extra seeds.
    for seed in [7, 8, 9] {
        runs.push((Scenario::KillDuringApply, seed));
    }
    runs.push((Scenario::KillDuringRead, 11));
    for (scenario, seed) in runs {
        run_scenario(scenario, seed, &mut tally).await;
    }
    let summary = format!(
        "fault suite: {} scenarios run, {} faults injected, {} runs recovered, {} memberships wrong",
        tally.scenarios, tally.faults, tally.recovered, tally.wrong
    );
    eprintln!("{summary}");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-suite-summary.txt");
    std::fs::write(&target, format!("{summary}\n")).unwrap();
    assert_eq!(tally.wrong, 0, "{summary}");
}
