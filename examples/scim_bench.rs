//! The SCIM source benchmark: an IdP's initial push from empty, then single changes at random
//! moments, against the real `serve` binary with `[scim]` and the Q Business emulator.
//!
//! ```sh
//! cargo build --release --locked --bin q-group-sync --example scim_bench
//! target/release/examples/scim_bench [--users 10000] [--groups 1000] [--changes 30]
//! ```
//!
//! It prints, for the initial push: the IdP's own time (every request answered), the time
//! until Q Business equals the IdP, PutGroup calls against two baselines measured in the same
//! run (the groups, i.e. each written once, and the SCIM requests that changed a group's
//! membership, i.e. a put per request), and serve's peak RSS; then the change -> Q latency
//! (p50, p95, max) from the IdP's 2xx to the change being visible in Q.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use q_group_sync_emulator::scim_idp::{Idp, Person, ScimIdp, UserIdFrom};
use q_group_sync_emulator::{QEmulator, QOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKEN: &str = "scim-bench-token-0123456789abcdef0123456789";

#[derive(Debug, Parser)]
#[command(name = "scim_bench")]
struct Cli {
    /// Users the IdP pushes.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Groups the IdP pushes.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Groups each user is in (members are drawn at random).
    #[arg(long, default_value_t = 5)]
    groups_per_user: usize,
    /// Single changes after the initial push, for the latency figures.
    #[arg(long, default_value_t = 30)]
    changes: usize,
    /// Whose request shapes: okta (members in the group's POST) or entra (empty POST, then
    /// PATCHes of 100 members).
    #[arg(long, default_value = "entra", value_parser = ["okta", "entra", "ping"])]
    idp: String,
    /// The q-group-sync binary (default: next to this example, target/release/q-group-sync).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// qbusiness.max_writes_per_second for serve (the product's default is 20).
    #[arg(long, default_value_t = 20)]
    q_writes_per_second: u32,
    /// Random seed (memberships and the changes' moments).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scim_bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scim_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Serve {
    child: tokio::process::Child,
    scim: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    }
}

async fn start_serve(
    binary: &std::path::Path,
    config: &std::path::Path,
    home: &std::path::Path,
) -> Res<Serve> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "serve"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("Q_GROUP_SYNC_SCIM__TOKEN", TOKEN)
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
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sink = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "SCIM listening"
                && let Some(addr) = v["addr"]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr);
            }
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    let scim = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .map_err(|_| "serve did not start its SCIM listener within 60 s")??;
    Ok(Serve { child, scim, logs })
}

fn q_state(q: &QEmulator) -> BTreeMap<String, BTreeSet<String>> {
    q.groups().into_iter().map(|(n, g)| (n, g.users)).collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(cli: Cli) -> Res<()> {
    let idp = match cli.idp.as_str() {
        "okta" => Idp::Okta,
        "ping" => Idp::Ping,
        _ => Idp::Entra,
    };
    let binary = match cli.binary {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("q-group-sync"))
            .ok_or("cannot locate target/release/q-group-sync")?,
    };
    let q = QEmulator::start(QOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[scim]
listen = "127.0.0.1:0"

[qbusiness]
application_id = "{app}"
index_id = "{idx}"
region = "us-east-1"
endpoint_url = "{url}"
max_writes_per_second = {wps}

[state]
path = "{state}"
"#,
            app = q.application_id(),
            idx = q.index_id(),
            url = q.url(),
            wps = cli.q_writes_per_second,
            state = dir.path().join("snapshot.db").display(),
        ),
    )?;
    let mut serve = start_serve(&binary, &config, dir.path()).await?;
    let base = format!("http://{}/scim/v2", serve.scim);
    let mut client = ScimIdp::new(idp, &base, TOKEN);
    let mut rng = StdRng::seed_from_u64(cli.seed);

    // The org: users, and each user in `groups_per_user` random groups.
    let people: Vec<Person> = (0..cli.users)
        .map(|i| Person::new(&format!("user{i:06}"), "bench.example"))
        .collect();
    let mut members: Vec<Vec<String>> = vec![Vec::new(); cli.groups];
    for p in &people {
        let mut picked = BTreeSet::new();
        while picked.len() < cli.groups_per_user.min(cli.groups) {
            picked.insert(rng.random_range(0..cli.groups));
        }
        for g in picked {
            members[g].push(p.user_name.clone());
        }
    }
    let memberships: usize = members.iter().map(Vec::len).sum();
    println!(
        "initial push: {} users, {} groups, {memberships} memberships, {} shapes, Q at {} writes/s",
        cli.users,
        cli.groups,
        idp.as_str(),
        cli.q_writes_per_second
    );

    let started = Instant::now();
    for p in &people {
        client.provision_user(p).await?;
    }
    let users_done = started.elapsed();
    let mut membership_requests = 0usize;
    for (i, m) in members.iter().enumerate() {
        let refs: Vec<&str> = m.iter().map(String::as_str).collect();
        let before = client.writes();
        client.push_group(&format!("Group {i:05}"), &refs).await?;
        // The requests that created the group or changed its membership: a put each for an
        // implementation that writes Q on every request.
        membership_requests += client.writes() - before;
    }
    let pushed = started.elapsed();
    let want = client.directory().expected_q(UserIdFrom::Email);
    let mut peak = serve.peak_rss_mib().unwrap_or(0.0);
    loop {
        if q_state(&q) == want {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            return Err("Q did not reach the IdP's state within an hour".into());
        }
        peak = peak.max(serve.peak_rss_mib().unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_q = started.elapsed();
    peak = peak.max(serve.peak_rss_mib().unwrap_or(0.0));
    let puts = q.put_count();
    println!(
        "  IdP requests: {} in {:.1} s (users {:.1} s), Q equal to the IdP after {:.1} s ({:.1} s after the last request)",
        client.requests(),
        pushed.as_secs_f64(),
        users_done.as_secs_f64(),
        in_q.as_secs_f64(),
        (in_q - pushed).as_secs_f64()
    );
    println!(
        "  PutGroup calls: {puts} = {:.2}x the groups ({}), {:.3}x a put per membership request ({membership_requests})",
        puts as f64 / cli.groups.max(1) as f64,
        cli.groups,
        puts as f64 / membership_requests.max(1) as f64
    );
    println!("  serve peak RSS: {peak:.1} MiB");

    // Single changes at random moments: an added member, a removed member, a deactivation.
    let mut latencies = Vec::new();
    for n in 0..cli.changes {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
        let g = rng.random_range(0..cli.groups);
        let group = format!("Group {g:05}");
        let user = &people[rng.random_range(0..people.len())];
        let in_group = client.directory().groups[&group].contains(&user.user_name);
        match n % 3 {
            0 | 1 if !in_group => client.add_members(&group, &[&user.user_name]).await?,
            0 | 1 => client.remove_members(&group, &[&user.user_name]).await?,
            _ => {
                let active = client.directory().users[&user.user_name].active;
                client.set_active(&user.user_name, !active).await?;
            }
        }
        let acked = Instant::now();
        let want = client.directory().expected_q(UserIdFrom::Email);
        loop {
            if q_state(&q) == want {
                break;
            }
            if acked.elapsed() > Duration::from_secs(120) {
                let tail: Vec<String> = serve
                    .logs
                    .lock()
                    .map(|l| l.iter().rev().take(20).cloned().collect())
                    .unwrap_or_default();
                return Err(
                    format!("change {n} not in Q after 120 s; last logs: {tail:#?}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(acked.elapsed());
    }
    latencies.sort();
    if !latencies.is_empty() {
        println!(
            "change -> Q over {} changes at random moments: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
            latencies.len(),
            percentile(&latencies, 50.0).as_secs_f64(),
            percentile(&latencies, 95.0).as_secs_f64(),
            latencies.last().copied().unwrap_or_default().as_secs_f64()
        );
    }
    let _ = serve.child.start_kill();
    Ok(())
}
