//! The benchmark harness (`examples/bench`) at a tiny size, so it cannot rot: the real
//! `q-group-sync` binary, the emulator and the naive strategy as separate, measured processes,
//! the table and the target checks.
//!
//! Integration tests cannot run example binaries, so this test binary (`harness = false`) plays
//! them itself: started with `--bench-role emulator|naive ARGS`, it runs the emulator CLI or the
//! naive strategy, exactly the code behind `q-group-sync-emulator` and `naive_sync`. It checks
//! that every run succeeds and that the numbers hang together, not the product's performance
//! targets (the benchmark itself reports those).

#[path = "../examples/bench/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../examples/bench/naive.rs"]
mod naive;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use harness::{Binaries, Options, Pass, Program, Strategy};

const ROLE: &str = "--bench-role";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match (
        args.get(1).map(String::as_str),
        args.get(2).map(String::as_str),
    ) {
        (Some(ROLE), Some("emulator")) => emulator(&args[3..]),
        (Some(ROLE), Some("naive")) => naive::main_with_args(args[3..].iter().cloned()),
        _ if args.iter().any(|a| a == "--list") => ExitCode::SUCCESS,
        _ => smoke(),
    }
}

fn emulator(args: &[String]) -> ExitCode {
    let cli = q_group_sync_emulator::cli::Cli::parse_from(
        std::iter::once("q-group-sync-emulator".to_owned()).chain(args.iter().cloned()),
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(q_group_sync_emulator::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("emulator: {err}");
            ExitCode::FAILURE
        }
    }
}

fn role(name: &str) -> Program {
    Program {
        path: std::env::current_exe().expect("own path"),
        args: vec![ROLE.to_owned(), name.to_owned()],
    }
}

fn churn_oracle_equal(report: &harness::Report) -> bool {
    report
        .row(Strategy::Product, Pass::Churn)
        .and_then(|r| r.oracle.as_ref())
        .is_some_and(|m| m.equal())
}

fn smoke() -> ExitCode {
    print!("test bench_smoke ... ");
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        groups: 60,
        users: 600,
        max_group_size: 150,
        rate_limit: 12_000,
        page_size: 20,
        member_page_cap: Some(10),
        q_writes: Some(480),
        churn_percent: 2.0,
        run_timeout: Duration::from_secs(60),
        plan_reps: 1,
        ..Options::quick(dir.path().to_owned())
    };
    let bins = Binaries {
        product: Program::new(env!("CARGO_BIN_EXE_q-group-sync")),
        emulator: role("emulator"),
        naive: role("naive"),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = runtime
        .block_on(harness::run(&opts, &bins, &|_| {}))
        .expect("the benchmark runs");
    let table = harness::render(&report);
    let checks = harness::checks(&report);

    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(
        report.rows.len() == 12,
        format!("12 runs, got {}", report.rows.len()),
    );
    expect(
        report.memberships > 1000,
        format!("org of {} memberships", report.memberships),
    );
    for row in &report.rows {
        let name = row.name();
        expect(row.ok, format!("{name} failed (exit {:?})", row.exit));
        expect(
            row.okta_requests > 0,
            format!("{name}: no Okta requests counted"),
        );
        expect(
            row.max_rss_bytes > 0 && !row.cpu.is_zero(),
            format!("{name}: no rusage"),
        );
        expect(!row.floor.is_zero(), format!("{name}: no floor"));
        expect(
            table.contains(&name),
            format!("{name} missing from the table"),
        );
    }
    let get = |strategy, pass| report.row(strategy, pass).expect("run present");
    let groups = opts.groups;
    for (strategy, pass) in [
        (Strategy::Product, Pass::Initial),
        (Strategy::Product, Pass::SharedInitial),
        (Strategy::Product, Pass::CappedInitial),
        (Strategy::Naive, Pass::Initial),
        (Strategy::Naive, Pass::NoChange),
        (Strategy::Naive, Pass::Churn),
        (Strategy::Naive, Pass::Deactivated),
        (Strategy::Naive, Pass::Touch),
    ] {
        let row = get(strategy, pass);
        expect(
            row.q_puts == groups,
            format!("{}: {} puts for {groups} groups", row.name(), row.q_puts),
        );
    }
    let naive_initial = get(Strategy::Naive, Pass::Initial);
    expect(
        naive_initial.groups_read.len() == groups && naive_initial.q_requests == groups,
        "naive: reads every group, puts each once, never verifies".to_owned(),
    );
    let no_change = get(Strategy::Product, Pass::NoChange);
    expect(
        no_change.q_writes() == 0,
        "no-change pass wrote to Q".to_owned(),
    );
    expect(
        no_change.list_users_requests == 1 && no_change.list_members_requests == 0,
        format!(
            "no change: {} users-listing pages, {} member pages",
            no_change.list_users_requests, no_change.list_members_requests
        ),
    );
    let touch = get(Strategy::Product, Pass::Touch);
    let listed = touch
        .users
        .as_ref()
        .map(|u| (u.users_listed, u.users_changed));
    expect(
        touch.list_members_requests == 0
            && touch.groups_read.is_empty()
            && touch.q_writes() == 0
            && listed == Some((opts.users, 0))
            && touch.touched == Some(opts.users),
        format!(
            "profile touch: {} member pages, {} writes, users (listed, changed) {listed:?}",
            touch.list_members_requests,
            touch.q_writes()
        ),
    );
    let deactivated = get(Strategy::Product, Pass::Deactivated);
    let affected = deactivated
        .deactivated
        .as_ref()
        .map(|d| d.in_scope.clone())
        .unwrap_or_default();
    expect(
        !affected.is_empty() && deactivated.groups_read == affected,
        format!(
            "deactivation: read {} groups, {} were affected",
            deactivated.groups_read.len(),
            affected.len()
        ),
    );
    expect(
        deactivated.oracle.as_ref().is_some_and(|m| m.equal()) && churn_oracle_equal(&report),
        "Q differs from the oracle after the churn or the deactivation".to_owned(),
    );
    expect(
        report.same_deactivation == Some(true),
        "strategies saw different deactivations".to_owned(),
    );
    let churn = get(Strategy::Product, Pass::Churn);
    let churned = churn.churned.clone().unwrap_or_default();
    expect(
        !churned.is_empty() && churn.q_puts == churned.len(),
        format!(
            "churn: {} puts for {} changed groups",
            churn.q_puts,
            churned.len()
        ),
    );
    expect(
        report.same_churn == Some(true),
        "strategies saw different churns".to_owned(),
    );
    let shared = get(Strategy::Product, Pass::SharedInitial);
    expect(
        shared.background.is_some_and(|(requests, _)| requests > 0),
        "the background client made no requests".to_owned(),
    );
    let plan = report.plan.as_ref().expect("plan timings");
    expect(
        plan.churn_puts == plan.churned_groups && plan.churned_groups > 0,
        format!(
            "plan: {} puts for {} churned groups",
            plan.churn_puts, plan.churned_groups
        ),
    );
    expect(
        checks.len() >= 16,
        format!("{} target checks", checks.len()),
    );
    expect(
        started.elapsed() < Duration::from_secs(120),
        format!("took {:?}", started.elapsed()),
    );

    let secs = started.elapsed().as_secs_f64();
    if problems.is_empty() {
        println!(
            "ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; finished in {secs:.2}s\n"
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; finished in {secs:.2}s\n"
        );
        eprintln!("{table}\n{}", harness::render_checks(&checks));
        for problem in problems {
            eprintln!("bench_smoke: {problem}");
        }
        ExitCode::FAILURE
    }
}
