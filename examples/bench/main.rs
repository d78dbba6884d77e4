//! The throughput benchmark: q-group-sync against a naive full sync, on an emulated org with an
//! emulated Okta rate limit. See BENCHMARKS.md for what it measures and the last results.
//!
//! ```sh
//! cargo build --release --workspace --examples --bins
//! cargo run --release --example bench -- [--quick] [options]
//! ```
//!
//! It runs the release binaries next to itself (`target/release/q-group-sync`,
//! `target/release/q-group-sync-emulator`, `target/release/examples/naive_sync`), prints one
//! table and the target checks, and exits 1 if a sync process failed (with `--strict`, also if
//! a target was missed).

mod harness;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Benchmark q-group-sync (initial, no-change, 1% churn, 1% deactivated and profile-touch syncs,
/// and an initial sync sharing the Okta budget) against a naive read-everything, put-everything
/// sync.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    /// Smoke run: 500 groups, 5,000 users, a 30,000/min bucket (well under a minute).
    #[arg(long)]
    quick: bool,
    /// Okta groups (default 5,000; --quick 500).
    #[arg(long)]
    groups: Option<usize>,
    /// Okta users (default 50,000; --quick 5,000).
    #[arg(long)]
    users: Option<usize>,
    /// Largest group.
    #[arg(long, default_value_t = 1000)]
    max_group_size: usize,
    /// Org generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Emulated /api/v1/groups bucket, requests per window (default 9,000: Okta Workforce's
    /// 500/min scaled 18x; --quick 30,000).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Emulated rate-limit window, seconds.
    #[arg(long, default_value_t = 60.0)]
    rate_window: f64,
    /// okta.rate_limit_share written to the config (also used to compute the floor).
    #[arg(long, default_value_t = 0.5)]
    share: f64,
    /// okta.page_size written to the config.
    #[arg(long, default_value_t = 200)]
    page_size: u32,
    /// qbusiness.max_writes_per_second written to the config (default: the product's 20).
    #[arg(long)]
    q_writes_per_second: Option<u32>,
    /// okta.member_page_size written to q-group-sync's config (default: the product's 1000).
    #[arg(long)]
    member_page_size: Option<u32>,
    /// Also run q-group-sync's initial sync against an org that returns at most this many
    /// members per page.
    #[arg(long)]
    member_page_cap: Option<usize>,
    /// Run only the naive strategy's initial pass (the request baseline).
    #[arg(long)]
    naive_initial_only: bool,
    /// `--output` of the measured q-group-sync runs: json (the report the harness reads the
    /// client's own Okta counters from) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    sync_output: String,
    /// Membership churn before the churn passes, percent.
    #[arg(long, default_value_t = 1.0)]
    churn: f64,
    /// Share of the ACTIVE group members deactivated before the deactivation passes, percent.
    #[arg(long, default_value_t = 1.0)]
    deactivate: f64,
    /// sync.overlap written to the config, seconds (the product's default is 120; the emulator
    /// has no lag, and a smaller overlap lets passes run seconds apart).
    #[arg(long, default_value_t = 2)]
    overlap: u64,
    /// Emulated /api/v1/users bucket (the users listing and a user's groups), requests per
    /// window.
    #[arg(long, default_value_t = 10_000)]
    users_rate_limit: u32,
    /// Share of the bucket the background client takes in the shared-budget run.
    #[arg(long, default_value_t = 0.4)]
    background: f64,
    /// Skip the naive strategy.
    #[arg(long)]
    no_naive: bool,
    /// Skip the shared-budget run.
    #[arg(long)]
    no_shared: bool,
    /// Plan micro-benchmark repetitions (0 skips it).
    #[arg(long, default_value_t = 5)]
    plan_reps: usize,
    /// Kill a sync process (and fail the run) after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Keep configs, snapshots and every process's output here (default: a temp dir, removed).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also exit 1 when a target is missed.
    #[arg(long)]
    strict: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir()?;
    let work_dir = cli
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let mut opts = if cli.quick {
        harness::Options::quick(work_dir)
    } else {
        harness::Options::full(work_dir)
    };
    opts.groups = cli.groups.unwrap_or(opts.groups);
    opts.users = cli.users.unwrap_or(opts.users);
    opts.rate_limit = cli.rate_limit.unwrap_or(opts.rate_limit);
    opts.max_group_size = cli.max_group_size;
    opts.seed = cli.seed;
    opts.rate_window_secs = cli.rate_window;
    opts.share = cli.share;
    opts.page_size = cli.page_size;
    opts.churn_percent = cli.churn;
    opts.deactivate_percent = cli.deactivate;
    opts.users_rate_limit = cli.users_rate_limit;
    opts.overlap_secs = cli.overlap;
    opts.background_fraction = cli.background;
    opts.naive = !cli.no_naive;
    opts.shared = !cli.no_shared;
    opts.plan_reps = cli.plan_reps;
    opts.q_writes = cli.q_writes_per_second;
    opts.member_page_size = cli.member_page_size;
    opts.member_page_cap = cli.member_page_cap;
    opts.naive_initial_only = cli.naive_initial_only;
    opts.sync_output = cli.sync_output.clone();
    if let Some(secs) = cli.timeout {
        opts.run_timeout = Duration::from_secs(secs);
    }
    let bins = harness::Binaries::next_to_current_exe()?;

    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(harness::run(&opts, &bins, &|line| {
        eprintln!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
    }))?;
    drop(runtime);

    println!("{}", harness::render(&report));
    let checks = harness::checks(&report);
    println!("{}", harness::render_checks(&checks));
    let failed_runs = report.rows.iter().filter(|r| !r.ok).count();
    let missed = checks.iter().filter(|c| !c.met).count();
    println!(
        "{} runs, {failed_runs} failed; {} of {} targets met; {:.0} s in all.",
        report.rows.len(),
        checks.len() - missed,
        checks.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if !report.all_ok() || (cli.strict && missed > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
