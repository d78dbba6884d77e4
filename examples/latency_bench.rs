//! The latency and quiet-cost benchmark of `serve`'s Okta cadence (docs/polling.md), against the
//! real release binary and the emulators (in this process).
//!
//! ```sh
//! cargo build --release --locked --bin q-group-sync --example latency_bench
//! target/release/examples/latency_bench                 # both parts (about 25 minutes)
//! target/release/examples/latency_bench --no-latency    # the quiet cost only
//! target/release/examples/latency_bench --no-cost       # the latency only
//! ```
//!
//! 1. **Change -> Q latency** (`--latency-groups`, default 1,000 groups of an org of 5,000
//!    users): `serve` with the default cadence (no `[schedule]`, no `[sync]`; only
//!    `qbusiness.max_writes_per_second` raised so the start-up pass is quick), then `--changes`
//!    single changes (a member added, a member removed, a group renamed, a user deactivated, a
//!    user reactivated, in turn), each at a random moment 0-30 s after the previous one was in
//!    Q, timed from the change in the emulator until Q holds what Okta says. Then the same with
//!    `[okta.events] enabled = true` (its defaults), moments 0-5 s apart.
//! 2. **Okta requests per quiet minute** at `--sizes` groups (default 300, 5,000, 50,000; two
//!    members each): after the start-up pass, every Okta request `serve` makes in `--window`
//!    (the emulator's counters), with time scaled down by 15 (so 60 s of the run is 15 minutes
//!    of a deployment): the default cadence (`poll_every` 30 s -> 2 s, `full_listing_every`
//!    15 min -> 60 s, `overlap` 2 min -> 8 s, `stamp_margin` 5 s -> 333 ms), and, against the
//!    same snapshot, the cadence before it (`schedule.cron` every 15 minutes -> every minute,
//!    each pass listing every group). Per minute figures are per scaled minute.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use q_group_sync::clock::{Clock, SystemClock};
use q_group_sync_emulator::{OktaEmulator, OktaOptions, OktaOrg, QEmulator, QOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKEN: &str = "latency-bench-okta-token-0123456789";
/// Time in the cost runs passes 15 times faster than in a deployment.
const SCALE: u32 = 15;

#[derive(Debug, Parser)]
#[command(name = "latency_bench")]
struct Cli {
    /// Changes timed per configuration (default cadence, then with events).
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Groups of the org the latency is measured on.
    #[arg(long, default_value_t = 1_000)]
    latency_groups: usize,
    /// Org sizes (groups) of the quiet-cost runs.
    #[arg(long, value_delimiter = ',', default_values_t = [300usize, 5_000, 50_000])]
    sizes: Vec<usize>,
    /// Seconds each quiet-cost run counts requests (scaled: 60 s is 15 minutes).
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Skip the latency part.
    #[arg(long)]
    no_latency: bool,
    /// Skip the quiet-cost part.
    #[arg(long)]
    no_cost: bool,
    /// The q-group-sync binary (default: next to this example, target/release/q-group-sync).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Random seed (the changes and their moments).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latency_bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latency_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Res<()> {
    let binary = match &cli.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("q-group-sync"))
            .ok_or("cannot locate target/release/q-group-sync")?,
    };
    let mut rng = StdRng::seed_from_u64(cli.seed);
    if !cli.no_latency {
        for events in [false, true] {
            latency(&binary, &cli, events, &mut rng).await?;
        }
    }
    if !cli.no_cost {
        println!(
            "Okta requests per quiet minute (time scaled 1/{SCALE}: {} s of run = {} minutes)",
            cli.window,
            cli.window * u64::from(SCALE) / 60
        );
        println!(
            "| groups | cadence | requests/min | groups bucket/min | users bucket/min | full listings | member reads |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|");
        for &groups in &cli.sizes {
            cost(&binary, &cli, groups).await?;
        }
    }
    Ok(())
}

/// An org of `groups` OKTA_GROUPs and `users` ACTIVE users; group `g` holds users `g % users`
/// and `(g * 7 + 3) % users`. Every group and user was last changed between a day and a year
/// ago, spread out (the emulator stamps what it creates "now"; an org made in one second would
/// have every group within the look-back of a listing of changes).
fn org(groups: usize, users: usize) -> OktaOrg {
    let now = SystemClock.now().timestamp();
    let ago = |n: usize| now - 86_400 - (n as i64 * 7_919) % 31_536_000;
    let mut o = built(groups, users);
    for (n, g) in o.groups.values_mut().enumerate() {
        g.created = ago(n);
        g.last_updated = ago(n);
        g.last_membership_updated = ago(n);
    }
    for (n, u) in o.users.values_mut().enumerate() {
        u.last_updated = ago(n);
    }
    o
}

fn built(groups: usize, users: usize) -> OktaOrg {
    let mut o = OktaOrg::default();
    for u in 0..users {
        let email = format!("user{u}@example.test");
        o.add_user(&OktaOrg::user_id(u), "ACTIVE", Some(&email), &email);
    }
    for g in 0..groups {
        let gid = OktaOrg::group_id(g);
        o.add_group(&gid, &format!("Group {g:05}"), "OKTA_GROUP");
        o.add_member(&gid, &OktaOrg::user_id(g % users));
        o.add_member(&gid, &OktaOrg::user_id((g * 7 + 3) % users));
    }
    o
}

/// What Q must hold under the default `users.*` rules: eligible members by lowercased email.
fn expected(org: &OktaOrg) -> BTreeMap<String, BTreeSet<String>> {
    let entitled = ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"];
    org.groups
        .values()
        .filter(|g| g.group_type == "OKTA_GROUP")
        .map(|g| {
            let members = g
                .members
                .iter()
                .filter_map(|id| org.users.get(id))
                .filter(|u| entitled.contains(&u.status.as_str()))
                .filter_map(|u| u.profile.get("email").and_then(|v| v.as_str()))
                .map(str::to_lowercase)
                .collect();
            (g.name.clone(), members)
        })
        .collect()
}

fn q_state(q: &QEmulator) -> BTreeMap<String, BTreeSet<String>> {
    q.groups().into_iter().map(|(n, g)| (n, g.users)).collect()
}

/// Waits until Q holds what Okta says; returns how long it took.
async fn until_in_q(okta: &OktaEmulator, q: &QEmulator, within: Duration) -> Res<Duration> {
    let start = Instant::now();
    loop {
        if q_state(q) == expected(&okta.org()) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!("Q did not match Okta within {within:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(dir: &Path, okta: &OktaEmulator, q: &QEmulator, extra: &str) -> Res<PathBuf> {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[okta]
org_url = "{okta}"
{extra_okta}

[qbusiness]
application_id = "{app}"
index_id = "{idx}"
region = "us-east-1"
endpoint_url = "{q}"
max_writes_per_second = 2000

[state]
path = "{state}"
{extra}
"#,
            okta = okta.url(),
            extra_okta = "",
            app = q.application_id(),
            idx = q.index_id(),
            q = q.url(),
            state = dir.join("snapshot.db").display(),
        ),
    )?;
    Ok(path)
}

struct Serve {
    _child: tokio::process::Child,
    _logs: Arc<Mutex<Vec<String>>>,
}

async fn start_serve(binary: &Path, config: &Path, home: &Path) -> Res<Serve> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "serve"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("Q_GROUP_SYNC_OKTA__API_TOKEN", TOKEN)
        .env("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0")
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let sink = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
                && let Some(addr) = v["addr"].as_str().and_then(|a| a.parse().ok())
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr);
            }
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .map_err(|_| "serve did not start listening within 60 s")??;
    Ok(Serve {
        _child: child,
        _logs: logs,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One change of each kind in turn; returns what it was.
fn change(
    org: &mut OktaOrg,
    n: usize,
    rng: &mut StdRng,
    groups: usize,
    users: usize,
) -> &'static str {
    let g = OktaOrg::group_id(rng.random_range(0..groups));
    match n % 5 {
        0 => {
            let u = OktaOrg::user_id(rng.random_range(0..users));
            if !org.add_member(&g, &u) {
                org.remove_member(&g, &u);
            }
            "add"
        }
        1 => {
            let first = org.groups[&g].members.iter().next().cloned();
            if let Some(u) = first {
                org.remove_member(&g, &u);
            }
            "remove"
        }
        2 => {
            org.rename_group(&g, &format!("Group renamed {n}"));
            "rename"
        }
        3 => {
            let u = OktaOrg::user_id(n % users);
            let _ = org.deactivate_user(&u);
            "deactivate"
        }
        _ => {
            let u = OktaOrg::user_id((n - 1) % users);
            let _ = org.reactivate_user(&u);
            "reactivate"
        }
    }
}

async fn latency(binary: &Path, cli: &Cli, events: bool, rng: &mut StdRng) -> Res<()> {
    let users = 5_000;
    let okta = OktaEmulator::start(
        org(cli.latency_groups, users),
        OktaOptions {
            token: TOKEN.into(),
            system_log: events,
            ..OktaOptions::default()
        },
    )
    .await?;
    let q = QEmulator::start(QOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let extra = if events {
        "\n[okta.events]\nenabled = true\n"
    } else {
        ""
    };
    // [okta.events] is a subtable of [okta]: it goes last.
    let path = config(dir.path(), &okta, &q, extra)?;
    let _serve = start_serve(binary, &path, dir.path()).await?;
    until_in_q(&okta, &q, Duration::from_secs(600)).await?;
    let (gap, label) = if events {
        (5_000, "with [okta.events] (default poll_interval 5 s)")
    } else {
        (30_000, "default cadence (poll_every 30 s)")
    };
    let mut took = Vec::new();
    for n in 0..cli.changes {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..gap))).await;
        let groups = cli.latency_groups;
        let mut local = StdRng::seed_from_u64(rng.random());
        let what = okta.update(|o| change(o, n, &mut local, groups, users));
        let t = until_in_q(&okta, &q, Duration::from_secs(180)).await?;
        eprintln!(
            "  {label}: change {n} ({what}) in Q after {:.2} s",
            t.as_secs_f64()
        );
        took.push(t);
    }
    took.sort();
    println!(
        "change -> Q, {label}, {} changes, {} groups: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        took.len(),
        cli.latency_groups,
        percentile(&took, 50.0).as_secs_f64(),
        percentile(&took, 95.0).as_secs_f64(),
        took.last().copied().unwrap_or_default().as_secs_f64()
    );
    Ok(())
}

/// Counts the requests of one cadence over the window; returns nothing, prints a row.
async fn count(okta: &OktaEmulator, cli: &Cli, groups: usize, cadence: &str) {
    okta.reset_stats();
    tokio::time::sleep(Duration::from_secs(cli.window)).await;
    let stats = okta.stats();
    let full_listings = okta
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == "/api/v1/groups"
                && r.page == Some(1)
                && !r
                    .query
                    .as_deref()
                    .unwrap_or_default()
                    .contains("lastMembershipUpdated")
        })
        .count();
    let minutes = cli.window as f64 * f64::from(SCALE) / 60.0;
    let per_min = |n: usize| n as f64 / minutes;
    println!(
        "| {groups} | {cadence} | {:.1} | {:.1} | {:.1} | {full_listings} | {} |",
        per_min(stats.requests),
        per_min(stats.list_groups.requests + stats.list_members.requests),
        per_min(stats.list_users.requests),
        stats.list_members.requests
    );
}

async fn cost(binary: &Path, cli: &Cli, groups: usize) -> Res<()> {
    let users = (groups * 2).clamp(1_000, 20_000);
    let okta = OktaEmulator::start(
        org(groups, users),
        OktaOptions {
            token: TOKEN.into(),
            default_groups_limit: 200,
            max_limit: 200,
            ..OktaOptions::default()
        },
    )
    .await?;
    let q = QEmulator::start(QOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let scaled = |secs: f64| format!("{}ms", (secs * 1000.0 / f64::from(SCALE)).round());
    let polling = format!(
        // full_listing_rate = 0: every group every (scaled) 15 minutes at any size; the
        // default's stretch above 6,000 groups is its pages over 2 a minute (docs/polling.md).
        "\n[sync]\npoll_every = \"{}\"\nfull_listing_every = \"{}\"\nfull_listing_rate = 0\noverlap = \"{}\"\nstamp_margin = \"{}\"\n",
        scaled(30.0),
        scaled(900.0),
        scaled(120.0),
        scaled(5.0)
    );
    let path = config(dir.path(), &okta, &q, &polling)?;
    {
        let _serve = start_serve(binary, &path, dir.path()).await?;
        until_in_q(&okta, &q, Duration::from_secs(1800)).await?;
        count(
            &okta,
            cli,
            groups,
            "changes every 30 s, all every 15 min (full_listing_rate = 0)",
        )
        .await;
    }
    // The same snapshot under the cadence before: a pass listing every group every 15 minutes.
    let cron = format!("{polling}\n[schedule]\ncron = \"0 * * * * *\"\nrun_on_start = false\n");
    let path = config(dir.path(), &okta, &q, &cron)?;
    let _serve = start_serve(binary, &path, dir.path()).await?;
    count(&okta, cli, groups, "before: cron every 15 min").await;
    Ok(())
}
