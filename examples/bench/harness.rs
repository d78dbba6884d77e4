//! The throughput benchmark's harness: emulators in a separate process, the real binaries,
//! per-run measurements, the table and the target checks.
//!
//! Shared by `examples/bench/main.rs` (the `bench` command) and `tests/bench_smoke.rs` (the same
//! logic at a tiny size), so the harness cannot rot unnoticed. Every child process is bounded by
//! a timeout, and the emulator process also stops when its stdin closes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use q_group_sync_emulator::OktaOrg;
use q_group_sync_emulator::generate::{self, ChurnSpec, OrgSpec, Sizes};
use q_group_sync_emulator::measure::{self, Measured};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// MiB, for RSS.
const MIB: f64 = 1024.0 * 1024.0;

/// What to benchmark, and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Okta groups to generate.
    pub groups: usize,
    /// Okta users to generate.
    pub users: usize,
    /// Largest group (Q Business's inline limit is 1000).
    pub max_group_size: usize,
    /// Generator seed.
    pub seed: u64,
    /// Requests per window in the emulated `/api/v1/groups*` bucket.
    pub rate_limit: u32,
    /// Window length, seconds.
    pub rate_window_secs: f64,
    /// `okta.rate_limit_share` written to the config: the share of the bucket q-group-sync
    /// (and the naive client, which uses the same Okta client) may use.
    pub share: f64,
    /// `okta.page_size` written to the config (the naive strategy reads members at this size too).
    pub page_size: u32,
    /// `okta.member_page_size` written to q-group-sync's config; `None`: the product's
    /// default (1000).
    pub member_page_size: Option<u32>,
    /// Most members the emulated org returns per member page, whatever is asked; `None`: no
    /// cap below the endpoint's. With a cap, q-group-sync's initial sync runs once more
    /// against a capped org.
    pub member_page_cap: Option<usize>,
    /// The naive strategy runs its initial pass only (its request count is the baseline).
    pub naive_initial_only: bool,
    /// Membership churn of the churn pass, percent.
    pub churn_percent: f64,
    /// Churn seed.
    pub churn_seed: u64,
    /// Share of the ACTIVE group members deactivated before the deactivation passes, percent.
    pub deactivate_percent: f64,
    /// Deactivation seed.
    pub deactivate_seed: u64,
    /// `sync.overlap` written to the config, seconds. The harness waits this long, and one
    /// second more, after each change it makes, before the pass that should see it.
    pub overlap_secs: u64,
    /// Requests per window in the emulated `/api/v1/users*` bucket (the users listing and a
    /// user's groups); the same window as the groups bucket.
    pub users_rate_limit: u32,
    /// The shared-budget run's background client spends this fraction of the bucket.
    pub background_fraction: f64,
    /// Run the naive strategy too.
    pub naive: bool,
    /// Run the shared-budget run too.
    pub shared: bool,
    /// Longest one sync process may run before it is killed (and the run fails).
    pub run_timeout: Duration,
    /// Where configs, snapshots and each run's stdout/stderr go.
    pub work_dir: PathBuf,
    /// Plan micro-benchmark repetitions (0: skip it).
    pub plan_reps: usize,
    /// `qbusiness.max_writes_per_second` written to the config; `None`: the product's default
    /// (20), not scaled with the Okta bucket, so a pass's floor is the larger of the Okta floor
    /// and the Q write floor.
    pub q_writes: Option<u32>,
    /// `--output` of the measured `q-group-sync sync` runs: `json` (the run report with the
    /// whole plan, and the client's own Okta counters) or `text`.
    pub sync_output: String,
}

impl Options {
    /// The full benchmark: 5,000 groups, 50,000 users, about 1.06M memberships, Okta's Workforce
    /// `/api/v1/groups` bucket (500/min) scaled up 18x to 9,000/min.
    pub fn full(work_dir: PathBuf) -> Options {
        Options {
            groups: 5000,
            users: 50_000,
            max_group_size: 1000,
            seed: 1,
            rate_limit: 9000,
            rate_window_secs: 60.0,
            share: 0.5,
            page_size: 200,
            member_page_size: None,
            member_page_cap: None,
            naive_initial_only: false,
            churn_percent: 1.0,
            churn_seed: 7,
            deactivate_percent: 1.0,
            deactivate_seed: 11,
            users_rate_limit: 10_000,
            overlap_secs: 2,
            background_fraction: 0.4,
            naive: true,
            shared: true,
            run_timeout: Duration::from_secs(30 * 60),
            work_dir,
            plan_reps: 5,
            q_writes: None,
            sync_output: "json".to_owned(),
        }
    }

    /// A smoke run in well under a minute: 500 groups, 5,000 users, a 30,000/min bucket.
    pub fn quick(work_dir: PathBuf) -> Options {
        Options {
            groups: 500,
            users: 5000,
            rate_limit: 30_000,
            run_timeout: Duration::from_secs(5 * 60),
            ..Options::full(work_dir)
        }
    }

    /// `qbusiness.max_writes_per_second` for the runs.
    pub fn q_writes_per_second(&self) -> u32 {
        self.q_writes.unwrap_or(20).max(1)
    }

    /// Requests per second the sync client may use: share × limit / window.
    pub fn allowed_rate(&self) -> f64 {
        self.share * f64::from(self.rate_limit) / self.rate_window_secs
    }

    /// The same, in the `/api/v1/users*` bucket.
    pub fn allowed_users_rate(&self) -> f64 {
        self.share * f64::from(self.users_rate_limit) / self.rate_window_secs
    }

    /// Users per page of the product's users listing: Okta's 200, or less with a smaller
    /// `okta.page_size`.
    pub fn users_page_size(&self) -> usize {
        self.page_size.clamp(1, 200) as usize
    }

    fn spec(&self) -> OrgSpec {
        OrgSpec {
            seed: self.seed,
            groups: self.groups,
            users: self.users,
            max_group_size: self.max_group_size,
            messy: false,
        }
    }
}

/// A program to run: a path and leading arguments (the smoke test runs roles of itself).
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
}

impl Program {
    pub fn new(path: impl Into<PathBuf>) -> Program {
        Program {
            path: path.into(),
            args: Vec::new(),
        }
    }

    fn exists(&self) -> bool {
        self.path.is_file()
    }
}

/// The three programs the benchmark runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `q-group-sync`.
    pub product: Program,
    /// `q-group-sync-emulator`.
    pub emulator: Program,
    /// `naive_sync`.
    pub naive: Program,
}

impl Binaries {
    /// The release binaries next to the running executable (`target/release/examples/bench`):
    /// `target/release/q-group-sync`, `target/release/q-group-sync-emulator`,
    /// `target/release/examples/naive_sync`.
    pub fn next_to_current_exe() -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("locating the bench executable")?;
        let examples = exe.parent().context("bench has no directory")?;
        let profile = examples
            .parent()
            .context("bench is not in target/*/examples")?;
        let bins = Binaries {
            product: Program::new(profile.join("q-group-sync")),
            emulator: Program::new(profile.join("q-group-sync-emulator")),
            naive: Program::new(examples.join("naive_sync")),
        };
        for program in [&bins.product, &bins.emulator, &bins.naive] {
            if !program.exists() {
                bail!(
                    "{} is missing: build first with `cargo build --release --workspace --examples --bins`",
                    program.path.display()
                );
            }
        }
        Ok(bins)
    }
}

// ---------------------------------------------------------------------------------------------
// The emulator process
// ---------------------------------------------------------------------------------------------

/// What the emulator prints on start.
#[derive(Debug, Clone, Deserialize)]
pub struct EmulatorInfo {
    pub okta_url: String,
    pub okta_token: String,
    pub qbusiness_url: String,
    pub application_id: String,
    pub index_id: String,
    pub memberships: usize,
    pub generate_secs: f64,
}

/// A running `q-group-sync-emulator`; killed when dropped.
struct Emulator {
    child: tokio::process::Child,
    info: EmulatorInfo,
    http: reqwest::Client,
}

impl Emulator {
    async fn start(
        program: &Program,
        opts: &Options,
        background_rps: f64,
        cap: Option<usize>,
        log: &Path,
    ) -> anyhow::Result<Emulator> {
        let stderr = std::fs::File::create(log).context("creating the emulator log")?;
        let mut child = tokio::process::Command::new(&program.path)
            .args(&program.args)
            .args([
                "--groups".to_owned(),
                opts.groups.to_string(),
                "--users".to_owned(),
                opts.users.to_string(),
                "--max-group-size".to_owned(),
                opts.max_group_size.to_string(),
                "--sizes".to_owned(),
                "heavy".to_owned(),
                "--seed".to_owned(),
                opts.seed.to_string(),
                "--okta-rate-limit".to_owned(),
                opts.rate_limit.to_string(),
                "--okta-rate-window".to_owned(),
                opts.rate_window_secs.to_string(),
                "--okta-background-rps".to_owned(),
                background_rps.to_string(),
                "--okta-users-rate-limit".to_owned(),
                opts.users_rate_limit.to_string(),
                "--okta-max-members-limit".to_owned(),
                cap.unwrap_or(10_000).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.path.display()))?;
        let stdout = child.stdout.take().context("emulator stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        // The first JSON line (a test harness may print other lines before it).
        let info = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if line.trim_start().starts_with('{') {
                    return Ok(serde_json::from_str::<EmulatorInfo>(&line)?);
                }
            }
            anyhow::bail!("the emulator exited before printing its URLs")
        })
        .await
        .context("the emulator did not start within 120 s")??;
        // Keep draining stdout so the emulator never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Emulator { child, info, http })
    }

    async fn get(&self, url: String) -> anyhow::Result<Value> {
        let response = self.http.get(&url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    async fn post(&self, url: String, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    async fn reset_stats(&self) -> anyhow::Result<()> {
        self.post(
            format!("{}/_emulator/reset-stats", self.info.okta_url),
            json!({}),
        )
        .await
        .context("resetting the Okta stats")?;
        self.post(
            format!("{}/_emulator/reset-stats", self.info.qbusiness_url),
            json!({}),
        )
        .await
        .context("resetting the Q Business stats")?;
        Ok(())
    }

    async fn okta_stats(&self) -> anyhow::Result<Value> {
        self.get(format!(
            "{}/_emulator/stats?detail=true&groups=true",
            self.info.okta_url
        ))
        .await
        .context("reading the Okta stats")
    }

    async fn q_stats(&self) -> anyhow::Result<Value> {
        self.get(format!(
            "{}/_emulator/stats?detail=true",
            self.info.qbusiness_url
        ))
        .await
        .context("reading the Q Business stats")
    }

    async fn churn(&self, opts: &Options) -> anyhow::Result<Churned> {
        let body = json!({
            "percent": opts.churn_percent,
            "seed": opts.churn_seed,
            "max_group_size": opts.max_group_size,
        });
        let churn = self
            .post(format!("{}/_emulator/churn", self.info.okta_url), body)
            .await
            .context("churning the Okta org")?;
        let ids = churn["groups"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(|g| g["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Churned {
            added: count(&churn["added"]),
            removed: count(&churn["removed"]),
            ids,
        })
    }

    /// `POST /_emulator/touch-users`: every user's `lastUpdated` moves, nothing else.
    async fn touch_users(&self) -> anyhow::Result<usize> {
        let touched = self
            .post(
                format!("{}/_emulator/touch-users", self.info.okta_url),
                json!({}),
            )
            .await
            .context("touching every Okta user")?;
        Ok(count(&touched["touched"]))
    }

    /// `POST /_emulator/deactivate`: the deactivated users and the number of their groups.
    async fn deactivate(&self, opts: &Options) -> anyhow::Result<Deactivated> {
        let body = json!({ "percent": opts.deactivate_percent, "seed": opts.deactivate_seed });
        let done = self
            .post(format!("{}/_emulator/deactivate", self.info.okta_url), body)
            .await
            .context("deactivating Okta users")?;
        Ok(Deactivated {
            users: done["users"]
                .as_array()
                .map(|users| {
                    users
                        .iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            groups: count(&done["groups"]),
            in_scope: BTreeSet::new(),
        })
    }

    /// What the Q Business index holds: group name to member user ids.
    async fn q_groups(&self) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
        let groups = self
            .get(format!("{}/_emulator/groups", self.info.qbusiness_url))
            .await
            .context("reading the Q Business groups")?;
        Ok(groups
            .as_object()
            .map(|groups| {
                groups
                    .iter()
                    .map(|(name, g)| {
                        let users = g["users"]
                            .as_array()
                            .map(|users| {
                                users
                                    .iter()
                                    .filter_map(|u| u.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (name.clone(), users)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Closes stdin (the emulator exits), then kills it if it lingers.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn count(value: &Value) -> usize {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// What a churn changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Churned {
    added: usize,
    removed: usize,
    ids: BTreeSet<String>,
}

/// What a deactivation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivated {
    /// The deactivated users, by id.
    pub users: Vec<String>,
    /// Distinct groups of any type they are in, as the emulator answered.
    pub groups: usize,
    /// Of those, the in-scope (OKTA_GROUP) groups, by Okta id: the groups a pass must read
    /// again.
    pub in_scope: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

/// What Q should hold for `org` under the benchmark's config (the product's defaults),
/// computed independently of the product: OKTA_GROUP groups by name; members ACTIVE,
/// PASSWORD_EXPIRED, LOCKED_OUT or RECOVERY with a non-empty email; ids lowercased with
/// `+tag` dropped.
pub fn oracle(org: &OktaOrg) -> BTreeMap<String, BTreeSet<String>> {
    let entitled = ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"];
    let mut out = BTreeMap::new();
    for g in org.groups.values().filter(|g| g.group_type == "OKTA_GROUP") {
        let mut members = BTreeSet::new();
        for uid in &g.members {
            let Some(u) = org.users.get(uid) else {
                continue;
            };
            if !entitled.contains(&u.status.as_str()) {
                continue;
            }
            let Some(email) = u.profile.get("email").and_then(Value::as_str) else {
                continue;
            };
            let email = email.trim().to_lowercase();
            if email.is_empty() {
                continue;
            }
            let email = match email.split_once('@') {
                Some((local, domain)) => match local.split('+').next() {
                    Some(base) if !base.is_empty() => format!("{base}@{domain}"),
                    _ => email.clone(),
                },
                None => email.clone(),
            };
            members.insert(email);
        }
        out.insert(g.name.clone(), members);
    }
    out
}

/// How the Q index compares with the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleMatch {
    /// Groups the oracle expects.
    pub expected: usize,
    /// Groups whose members differ, missing or extra.
    pub differing: usize,
}

impl OracleMatch {
    fn of(
        q: &BTreeMap<String, BTreeSet<String>>,
        expected: &BTreeMap<String, BTreeSet<String>>,
    ) -> Self {
        let names: BTreeSet<&String> = q.keys().chain(expected.keys()).collect();
        let differing = names
            .into_iter()
            .filter(|name| q.get(*name) != expected.get(*name))
            .count();
        OracleMatch {
            expected: expected.len(),
            differing,
        }
    }

    pub fn equal(&self) -> bool {
        self.differing == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

/// Which strategy a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Product,
    Naive,
}

/// Which pass a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Initial,
    NoChange,
    Churn,
    /// After 1% of the users in a group were deactivated.
    Deactivated,
    /// After every user's `lastUpdated` moved, with nothing else changed (a nightly HR job).
    Touch,
    /// Initial, with the background client spending part of the bucket.
    SharedInitial,
    /// Initial, against an org that caps member pages ([`Options::member_page_cap`]).
    CappedInitial,
}

/// One measured run of a sync process.
#[derive(Debug, Clone)]
pub struct Row {
    pub strategy: Strategy,
    pub pass: Pass,
    /// Exit code 0 (and not killed).
    pub ok: bool,
    pub exit: Option<i32>,
    /// `/api/v1` requests the emulator answered to the sync process, and of those 429s.
    pub okta_requests: usize,
    pub okta_429: usize,
    /// Okta requests by kind: groups listing pages, users listing pages, a user's groups,
    /// one user, member pages.
    pub list_groups_requests: usize,
    pub list_users_requests: usize,
    pub user_groups_requests: usize,
    pub get_user_requests: usize,
    pub list_members_requests: usize,
    /// Distinct groups whose members were read.
    pub groups_read: BTreeSet<String>,
    pub token_requests: usize,
    /// Q Business calls of any kind, and the writes among them.
    pub q_requests: usize,
    pub q_puts: usize,
    pub q_deletes: usize,
    pub q_throttled: usize,
    /// Q calls by operation.
    pub q_by_op: Vec<(String, usize)>,
    pub wall: Duration,
    /// Okta requests / allowed rate.
    pub floor: Duration,
    /// Q writes (PutGroup, DeleteGroup) / `qbusiness.max_writes_per_second`.
    pub q_floor: Duration,
    pub max_rss_bytes: u64,
    pub cpu: Duration,
    /// The sync process's own Okta counters (its report), when it printed one.
    pub client_rate_limited: Option<u64>,
    pub client_wait_secs: Option<f64>,
    /// The background client's requests and refusals during the run (shared run).
    pub background: Option<(u64, u64)>,
    /// Groups the churn changed (churn runs).
    pub churned: Option<BTreeSet<String>>,
    /// What the deactivation did (deactivation runs).
    pub deactivated: Option<Deactivated>,
    /// Users whose `lastUpdated` moved (touch runs).
    pub touched: Option<usize>,
    /// The report's `groups_read` and `users` (q-group-sync with `--output json`).
    pub reported_groups_read: Option<usize>,
    pub users: Option<UsersCheck>,
    /// The Q index against the oracle after the run, when compared.
    pub oracle: Option<OracleMatch>,
}

impl Row {
    pub fn name(&self) -> String {
        let strategy = match self.strategy {
            Strategy::Product => "q-group-sync",
            Strategy::Naive => "naive",
        };
        let pass = match self.pass {
            Pass::Initial => "initial",
            Pass::NoChange => "no change",
            Pass::Churn => "1% churn",
            Pass::Deactivated => "1% deactivated",
            Pass::Touch => "profile touch",
            Pass::SharedInitial => "initial, shared budget",
            Pass::CappedInitial => "initial, member pages capped",
        };
        format!("{strategy}: {pass}")
    }

    pub fn q_writes(&self) -> usize {
        self.q_puts + self.q_deletes
    }

    /// The larger of the Okta floor and the Q write floor.
    pub fn max_floor(&self) -> Duration {
        self.floor.max(self.q_floor)
    }

    /// Wall time over the larger floor.
    pub fn wall_over_max_floor(&self) -> Option<f64> {
        let floor = self.max_floor();
        (!floor.is_zero()).then(|| self.wall.as_secs_f64() / floor.as_secs_f64())
    }
}

/// The sync process's report: only the fields the harness reads (the rest is skipped).
#[derive(Debug, Default, Deserialize)]
struct SyncReport {
    #[serde(default)]
    okta: Option<ClientStats>,
    #[serde(default)]
    groups_read: Option<usize>,
    #[serde(default)]
    users: Option<UsersCheck>,
}

/// The report's `users` object: how the pass checked users' status and id changes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsersCheck {
    #[serde(default)]
    pub how: String,
    #[serde(default)]
    pub users_listed: usize,
    #[serde(default)]
    pub users_changed: usize,
    #[serde(default)]
    pub groups_affected: usize,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ClientStats {
    #[serde(default)]
    rate_limited: u64,
    #[serde(default)]
    rate_limit_wait_secs: f64,
}

/// Environment of a sync process: credentials for the emulators, nothing inherited but PATH.
fn sync_command(
    program: &Program,
    args: &[&str],
    token: &str,
    home: &Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(&program.path);
    cmd.args(&program.args)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("Q_GROUP_SYNC_OKTA__API_TOKEN", token)
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK")
        .env("AWS_SECRET_ACCESS_KEY", "benchmark-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    cmd
}

/// Runs one measured sync process and keeps its output under `work_dir/<label>.{stdout,stderr}`.
async fn measured(
    cmd: std::process::Command,
    timeout: Duration,
    work_dir: &Path,
    label: &str,
) -> anyhow::Result<Measured> {
    let mut cmd = cmd;
    let m = tokio::task::spawn_blocking(move || measure::run(&mut cmd, timeout))
        .await
        .context("the measuring thread panicked")?
        .context("running a sync process")?;
    std::fs::write(work_dir.join(format!("{label}.stdout")), &m.stdout)?;
    std::fs::write(work_dir.join(format!("{label}.stderr")), &m.stderr)?;
    Ok(m)
}

/// The writable config of one strategy's emulator.
struct Setup {
    emulator: Emulator,
    config: PathBuf,
    dir: PathBuf,
}

impl Setup {
    async fn start(
        bins: &Binaries,
        opts: &Options,
        name: &str,
        background_rps: f64,
        cap: Option<usize>,
        strategy: Strategy,
    ) -> anyhow::Result<Setup> {
        let dir = opts.work_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let emulator = Emulator::start(
            &bins.emulator,
            opts,
            background_rps,
            cap,
            &dir.join("emulator.log"),
        )
        .await?;
        let config = dir.join("config.toml");
        write_config(&config, &emulator.info, opts, &dir, strategy)?;
        Ok(Setup {
            emulator,
            config,
            dir,
        })
    }

    /// The Q index against the oracle of `org`.
    async fn oracle(&self, org: &OktaOrg) -> anyhow::Result<OracleMatch> {
        let q = self.emulator.q_groups().await?;
        Ok(OracleMatch::of(&q, &oracle(org)))
    }

    /// One sync process (`args` after `--config`), measured, with the emulators' counters.
    async fn run(
        &self,
        program: &Program,
        args: &[&str],
        opts: &Options,
        strategy: Strategy,
        pass: Pass,
    ) -> anyhow::Result<Row> {
        self.emulator.reset_stats().await?;
        let config = self.config.to_string_lossy().into_owned();
        let mut full_args = vec!["--config", config.as_str()];
        full_args.extend_from_slice(args);
        let cmd = sync_command(
            program,
            &full_args,
            &self.emulator.info.okta_token,
            &self.dir,
        );
        let label = format!("{strategy:?}-{pass:?}").to_lowercase();
        let m = measured(cmd, opts.run_timeout, &self.dir, &label).await?;
        let okta = self.emulator.okta_stats().await?;
        let q = self.emulator.q_stats().await?;
        let report: SyncReport = serde_json::from_slice(&m.stdout).unwrap_or_default();
        let okta_requests = count(&okta["requests"]);
        let kind = |name: &str| count(&okta[name]["requests"]);
        let users_bucket = kind("list_users") + kind("user_groups") + kind("get_user");
        // Each bucket at the allowed rate; the users listing comes before the member reads.
        let floor = Duration::from_secs_f64(
            okta_requests.saturating_sub(users_bucket) as f64 / opts.allowed_rate()
                + users_bucket as f64 / opts.allowed_users_rate(),
        );
        let q_writes = count(&q["puts"]) + count(&q["deletes"]);
        let q_floor =
            Duration::from_secs_f64(q_writes as f64 / f64::from(opts.q_writes_per_second()));
        let row = Row {
            strategy,
            pass,
            q_floor,
            ok: m.status.success() && !m.timed_out,
            exit: m.status.code(),
            okta_requests,
            okta_429: count(&okta["rate_limited"]),
            list_groups_requests: kind("list_groups"),
            list_users_requests: kind("list_users"),
            user_groups_requests: kind("user_groups"),
            get_user_requests: kind("get_user"),
            list_members_requests: count(&okta["list_members"]["requests"]),
            groups_read: okta["list_members_group_ids"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            token_requests: count(&okta["token_requests"]),
            q_requests: count(&q["calls"]),
            q_puts: count(&q["puts"]),
            q_deletes: count(&q["deletes"]),
            q_throttled: count(&q["throttled"]),
            q_by_op: q["by_op"]
                .as_object()
                .map(|ops| ops.iter().map(|(op, n)| (op.clone(), count(n))).collect())
                .unwrap_or_default(),
            wall: m.wall,
            floor,
            max_rss_bytes: m.max_rss_bytes,
            cpu: m.cpu(),
            client_rate_limited: report.okta.as_ref().map(|o| o.rate_limited),
            client_wait_secs: report.okta.as_ref().map(|o| o.rate_limit_wait_secs),
            background: (okta["background"]["rps"].as_f64().unwrap_or(0.0) > 0.0).then(|| {
                (
                    okta["background"]["requests"].as_u64().unwrap_or(0),
                    okta["background"]["rate_limited"].as_u64().unwrap_or(0),
                )
            }),
            churned: None,
            deactivated: None,
            touched: None,
            reported_groups_read: report.groups_read,
            users: report.users,
            oracle: None,
        };
        if !row.ok {
            let stderr = String::from_utf8_lossy(&m.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            eprintln!(
                "{} failed (exit {:?}{}); last stderr lines (all in {}):",
                row.name(),
                row.exit,
                if m.timed_out {
                    ", killed after the timeout"
                } else {
                    ""
                },
                self.dir.join(format!("{label}.stderr")).display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
        Ok(row)
    }
}

fn write_config(
    path: &Path,
    info: &EmulatorInfo,
    opts: &Options,
    dir: &Path,
    strategy: Strategy,
) -> anyhow::Result<()> {
    // The naive strategy reads members at `page_size`; q-group-sync at its member page size.
    let member_page_size = match strategy {
        Strategy::Naive => format!("member_page_size = {}\n", opts.page_size),
        Strategy::Product => opts
            .member_page_size
            .map(|n| format!("member_page_size = {n}\n"))
            .unwrap_or_default(),
    };
    let toml = format!(
        r#"# Written by the q-group-sync benchmark.
[okta]
org_url = "{okta}"
page_size = {page_size}
{member_page_size}rate_limit_share = {share}

[qbusiness]
application_id = "{app}"
index_id = "{index}"
region = "us-east-1"
endpoint_url = "{q}"
max_writes_per_second = {writes}

[state]
path = "{state}"

[sync]
overlap = "{overlap}s"
"#,
        overlap = opts.overlap_secs,
        okta = info.okta_url,
        page_size = opts.page_size,
        share = opts.share,
        app = info.application_id,
        index = info.index_id,
        q = info.qbusiness_url,
        writes = opts.q_writes_per_second(),
        state = dir.join("snapshot.db").display(),
    );
    std::fs::write(path, toml).with_context(|| format!("writing {}", path.display()))
}

/// Waits `sync.overlap` and one second more after a change in Okta, so that the next pass's
/// reads count as current for it (a read counts as current for a group only if it started at
/// least `sync.overlap` after the group's `lastMembershipUpdated`, which has one-second
/// resolution) and the pass after it does not list the same users again.
async fn settle(opts: &Options) {
    tokio::time::sleep(Duration::from_secs(opts.overlap_secs + 1)).await;
}

/// The in-scope (OKTA_GROUP) groups, by id, that hold any of `users`.
fn groups_of(org: &OktaOrg, users: &[String]) -> BTreeSet<String> {
    let users: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    org.groups
        .values()
        .filter(|g| g.group_type == "OKTA_GROUP")
        .filter(|g| g.members.iter().any(|m| users.contains(m.as_str())))
        .map(|g| g.id.clone())
        .collect()
}

/// `q-group-sync check-config` against the emulators: the config is valid and both answer.
async fn preflight(bins: &Binaries, setup: &Setup) -> anyhow::Result<()> {
    let config = setup.config.to_string_lossy().into_owned();
    let cmd = sync_command(
        &bins.product,
        &["--config", &config, "check-config"],
        &setup.emulator.info.okta_token,
        &setup.dir,
    );
    let m = measured(cmd, Duration::from_secs(120), &setup.dir, "check-config").await?;
    if !m.status.success() {
        bail!(
            "q-group-sync check-config failed against the emulator (exit {:?}): {} {}",
            m.status.code(),
            String::from_utf8_lossy(&m.stdout).trim(),
            String::from_utf8_lossy(&m.stderr).trim()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

/// Plan micro-benchmark timings (median of the repetitions).
#[derive(Debug, Clone)]
pub struct PlanTiming {
    pub memberships: usize,
    pub groups: usize,
    /// `select::desired`: scope and member mapping of every group.
    pub desired: Duration,
    /// `plan` against a snapshot of the same org (nothing to do).
    pub plan_unchanged: Duration,
    /// `plan` after the churn.
    pub plan_churn: Duration,
    /// Puts the churn plan holds, and the groups the churn changed.
    pub churn_puts: usize,
    pub churned_groups: usize,
}

/// Everything one benchmark produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub opts: Options,
    pub memberships: usize,
    pub generate_secs: f64,
    pub rows: Vec<Row>,
    pub plan: Option<PlanTiming>,
    /// Both strategies saw the same churn.
    pub same_churn: Option<bool>,
    /// Both strategies saw the same deactivation.
    pub same_deactivation: Option<bool>,
}

impl Report {
    pub fn row(&self, strategy: Strategy, pass: Pass) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.strategy == strategy && r.pass == pass)
    }

    /// True when every sync process exited 0.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }
}

/// Runs the whole benchmark. `progress` gets one line per step.
pub async fn run(
    opts: &Options,
    bins: &Binaries,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.work_dir)?;
    let mut rows = Vec::new();
    let sync = ["sync", "--output", opts.sync_output.as_str()];

    progress(&format!(
        "starting the emulator: {} groups, {} users, Okta bucket {} per {} s",
        opts.groups, opts.users, opts.rate_limit, opts.rate_window_secs
    ));
    let product = Setup::start(bins, opts, "product", 0.0, None, Strategy::Product).await?;
    preflight(bins, &product).await?;
    let info = product.emulator.info.clone();
    progress(&format!(
        "org: {} memberships, generated in {:.2} s",
        info.memberships, info.generate_secs
    ));

    for (pass, label) in [(Pass::Initial, "initial"), (Pass::NoChange, "no-change")] {
        progress(&format!("q-group-sync: {label} sync"));
        rows.push(
            product
                .run(&bins.product, &sync, opts, Strategy::Product, pass)
                .await?,
        );
    }
    // The oracle's copy of the org: the same generator, churn and deactivation, in this process.
    let mut model = generate::org_with_sizes(&opts.spec(), Sizes::Heavy);
    let product_churn = product.emulator.churn(opts).await?;
    let model_churn = generate::churn(
        &mut model,
        &ChurnSpec {
            percent: opts.churn_percent,
            seed: opts.churn_seed,
            max_group_size: opts.max_group_size,
        },
    );
    let model_churned: BTreeSet<String> = model_churn.groups.iter().map(|g| g.id.clone()).collect();
    if model_churned != product_churn.ids {
        bail!("the oracle's churn differs from the emulator's: the oracle cannot follow the org");
    }
    settle(opts).await;
    progress(&format!(
        "churn: +{} -{} memberships in {} groups; q-group-sync: churn sync",
        product_churn.added,
        product_churn.removed,
        product_churn.ids.len()
    ));
    let mut row = product
        .run(&bins.product, &sync, opts, Strategy::Product, Pass::Churn)
        .await?;
    row.churned = Some(product_churn.ids.clone());
    row.oracle = Some(product.oracle(&model).await?);
    rows.push(row);

    let touched = product.emulator.touch_users().await?;
    model.touch_all_users();
    settle(opts).await;
    progress(&format!(
        "touched {touched} users; q-group-sync: profile touch sync"
    ));
    let mut row = product
        .run(&bins.product, &sync, opts, Strategy::Product, Pass::Touch)
        .await?;
    row.touched = Some(touched);
    row.oracle = Some(product.oracle(&model).await?);
    rows.push(row);
    let mut product_deactivated = product.emulator.deactivate(opts).await?;
    let model_deactivated =
        generate::deactivate_share(&mut model, opts.deactivate_percent, opts.deactivate_seed);
    if model_deactivated.users != product_deactivated.users {
        bail!("the oracle's deactivation differs from the emulator's");
    }
    product_deactivated.in_scope = groups_of(&model, &product_deactivated.users);
    settle(opts).await;
    progress(&format!(
        "deactivated {} users in {} groups ({} in scope); q-group-sync: deactivation sync",
        product_deactivated.users.len(),
        product_deactivated.groups,
        product_deactivated.in_scope.len()
    ));
    let mut row = product
        .run(
            &bins.product,
            &sync,
            opts,
            Strategy::Product,
            Pass::Deactivated,
        )
        .await?;
    row.deactivated = Some(product_deactivated.clone());
    row.oracle = Some(product.oracle(&model).await?);
    rows.push(row);

    product.emulator.stop().await;

    let mut same_churn = None;
    let mut same_deactivation = None;
    if opts.naive {
        let naive = Setup::start(bins, opts, "naive", 0.0, None, Strategy::Naive).await?;
        progress("naive: initial pass");
        rows.push(
            naive
                .run(&bins.naive, &[], opts, Strategy::Naive, Pass::Initial)
                .await?,
        );
    }
    if opts.naive && !opts.naive_initial_only {
        let naive = Setup::start(bins, opts, "naive-passes", 0.0, None, Strategy::Naive).await?;
        naive
            .run(&bins.naive, &[], opts, Strategy::Naive, Pass::Initial)
            .await?;
        progress("naive: no-change pass");
        rows.push(
            naive
                .run(&bins.naive, &[], opts, Strategy::Naive, Pass::NoChange)
                .await?,
        );
        let churn = naive.emulator.churn(opts).await?;
        same_churn = Some(churn == product_churn);
        progress("naive: churn pass");
        let mut row = naive
            .run(&bins.naive, &[], opts, Strategy::Naive, Pass::Churn)
            .await?;
        row.churned = Some(churn.ids);
        rows.push(row);

        let touched = naive.emulator.touch_users().await?;
        progress("naive: profile touch pass");
        let mut row = naive
            .run(&bins.naive, &[], opts, Strategy::Naive, Pass::Touch)
            .await?;
        row.touched = Some(touched);
        rows.push(row);
        let mut deactivated = naive.emulator.deactivate(opts).await?;
        deactivated.in_scope = product_deactivated.in_scope.clone();
        same_deactivation = Some(deactivated == product_deactivated);
        progress("naive: deactivation pass");
        let mut row = naive
            .run(&bins.naive, &[], opts, Strategy::Naive, Pass::Deactivated)
            .await?;
        row.deactivated = Some(deactivated);
        row.oracle = Some(naive.oracle(&model).await?);
        rows.push(row);

        naive.emulator.stop().await;
    }
    drop(model);

    if opts.shared {
        let rps = opts.background_fraction * f64::from(opts.rate_limit) / opts.rate_window_secs;
        progress(&format!(
            "q-group-sync: initial sync sharing the bucket with a {rps:.1} req/s background client"
        ));
        let shared = Setup::start(bins, opts, "shared", rps, None, Strategy::Product).await?;
        rows.push(
            shared
                .run(
                    &bins.product,
                    &sync,
                    opts,
                    Strategy::Product,
                    Pass::SharedInitial,
                )
                .await?,
        );
        shared.emulator.stop().await;
    }

    if let Some(cap) = opts.member_page_cap {
        progress(&format!(
            "q-group-sync: initial sync against an org that returns at most {cap} members per page"
        ));
        let capped = Setup::start(bins, opts, "capped", 0.0, Some(cap), Strategy::Product).await?;
        rows.push(
            capped
                .run(
                    &bins.product,
                    &sync,
                    opts,
                    Strategy::Product,
                    Pass::CappedInitial,
                )
                .await?,
        );
        capped.emulator.stop().await;
    }

    let plan = if opts.plan_reps > 0 {
        progress("plan micro-benchmark");
        Some(plan_benchmark(opts))
    } else {
        None
    };

    Ok(Report {
        opts: opts.clone(),
        memberships: info.memberships,
        generate_secs: info.generate_secs,
        rows,
        plan,
        same_churn,
        same_deactivation,
    })
}

// ---------------------------------------------------------------------------------------------
// Plan micro-benchmark
// ---------------------------------------------------------------------------------------------

/// Times `select::desired` and `plan::plan` on the benchmark's org (in this process): a no-op
/// plan against a snapshot of the same org, and the plan after the churn the runs use.
pub fn plan_benchmark(opts: &Options) -> PlanTiming {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use q_group_sync::model::OktaGroupId;
    use q_group_sync::plan::select::{GroupRead, Rules};
    use q_group_sync::plan::{Policy, Snapshot, SnapshotGroup, plan};
    use q_group_sync::source::{GroupType, MemberRead, OktaGroup, OktaMember};

    let org = generate::org_with_sizes(&opts.spec(), Sizes::Heavy);
    let mut churned = org.clone();
    let churn = generate::churn(
        &mut churned,
        &ChurnSpec {
            percent: opts.churn_percent,
            seed: opts.churn_seed,
            max_group_size: opts.max_group_size,
        },
    );
    let rules = Rules::new(&["*".to_owned()], &[], "", &["ACTIVE".to_owned()], true)
        .expect("static rules compile");
    let groups: Vec<OktaGroup> = org
        .groups
        .values()
        .map(|g| OktaGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            kind: GroupType::Okta,
            last_membership_updated: None,
            last_updated: None,
        })
        .collect();
    let reads = |org: &q_group_sync_emulator::OktaOrg| -> BTreeMap<String, GroupRead> {
        org.groups
            .values()
            .map(|g| {
                let members = g
                    .members
                    .iter()
                    .map(|id| OktaMember {
                        id: id.clone(),
                        status: "ACTIVE".to_owned(),
                        attribute: org.users[id]
                            .profile
                            .get("email")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect();
                (g.id.clone(), GroupRead::Read(MemberRead::Members(members)))
            })
            .collect()
    };
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let reps = opts.plan_reps.max(1);

    let mut desired_times = Vec::new();
    let mut before = None;
    for _ in 0..reps {
        let input = reads(&org);
        let started = Instant::now();
        let desired = q_group_sync::plan::select::desired(&groups, &rules, input);
        desired_times.push(started.elapsed());
        before = Some(desired);
    }
    let before = before.expect("at least one repetition");
    let after = q_group_sync::plan::select::desired(&groups, &rules, reads(&churned));
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let snapshot = Snapshot {
        groups: before
            .groups
            .iter()
            .map(|(name, g)| {
                let group = SnapshotGroup {
                    okta_id: OktaGroupId::new(g.okta_id.as_str()),
                    members: g.members.clone(),
                    pushed_at: at,
                    unconfirmed: false,
                    read: None,
                    layout: Default::default(),
                };
                (name.clone(), group)
            })
            .collect(),
    };
    let policy = Policy::default();
    let time_plan = |desired| {
        let mut times = Vec::new();
        let mut puts = 0;
        for _ in 0..reps {
            let started = Instant::now();
            let p = plan(desired, &snapshot, &policy);
            times.push(started.elapsed());
            puts = p.puts().count();
        }
        (median(times), puts)
    };
    let (plan_unchanged, _) = time_plan(&before);
    let (plan_churn, churn_puts) = time_plan(&after);
    PlanTiming {
        memberships: org.groups.values().map(|g| g.members.len()).sum(),
        groups: org.groups.len(),
        desired: median(desired_times),
        plan_unchanged,
        plan_churn,
        churn_puts,
        churned_groups: churn.groups.len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// The results table (Markdown), with a header stating the org and the allowed rate.
pub fn render(report: &Report) -> String {
    let o = &report.opts;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Org: {} groups, {} users, {} memberships (seed {}, generated in {:.1} s). Okta bucket: {} requests per {} s; \
         allowed rate = okta.rate_limit_share {} x {} / {} s = {:.1} req/s. Q Business writes \
         paced to {} per second (qbusiness.max_writes_per_second, not scaled with the Okta bucket); \
         q-group-sync reads members {} per page, the naive strategy {} per page{}.",
        o.groups,
        o.users,
        report.memberships,
        o.seed,
        report.generate_secs,
        o.rate_limit,
        o.rate_window_secs,
        o.share,
        o.rate_limit,
        o.rate_window_secs,
        o.allowed_rate(),
        o.q_writes_per_second(),
        o.member_page_size
            .map_or_else(|| "1000 (the default)".to_owned(), |n| n.to_string()),
        o.page_size,
        o.member_page_cap
            .map(|cap| format!("; the capped org returns at most {cap} members per page"))
            .unwrap_or_default(),
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| run | Okta requests | Okta 429s | Q requests | Q writes | wall s | Okta floor s | Q write floor s | wall / max(floors) | peak RSS MiB | CPU s | exit |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &report.rows {
        let ratio = r
            .wall_over_max_floor()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} |",
            r.name(),
            r.okta_requests,
            r.okta_429,
            r.q_requests,
            r.q_writes(),
            r.wall.as_secs_f64(),
            r.floor.as_secs_f64(),
            r.q_floor.as_secs_f64(),
            ratio,
            r.max_rss_bytes as f64 / MIB,
            r.cpu.as_secs_f64(),
            r.exit
                .map_or_else(|| "killed".to_owned(), |c| c.to_string()),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| run | groups listing pages | users listing pages | user-group lookups | member pages | groups read | Q writes | wall s | users: how | listed | changed | groups affected | Q = oracle |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
    );
    for r in &report.rows {
        let users = r.users.as_ref();
        let field = |f: fn(&UsersCheck) -> usize| {
            users.map_or_else(|| "-".to_owned(), |u| f(u).to_string())
        };
        let how = users.map_or_else(
            || "-".to_owned(),
            |u| match &u.error {
                Some(error) => format!("{} ({error})", u.how),
                None => u.how.clone(),
            },
        );
        let oracle = r.oracle.as_ref().map_or_else(
            || "-".to_owned(),
            |o| {
                if o.equal() {
                    format!("yes ({} groups)", o.expected)
                } else {
                    format!("**no** ({} of {} groups differ)", o.differing, o.expected)
                }
            },
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {how} | {} | {} | {} | {oracle} |",
            r.name(),
            r.list_groups_requests,
            r.list_users_requests,
            r.user_groups_requests + r.get_user_requests,
            r.list_members_requests,
            r.groups_read.len(),
            r.q_writes(),
            r.wall.as_secs_f64(),
            field(|u| u.users_listed),
            field(|u| u.users_changed),
            field(|u| u.groups_affected),
        );
    }
    let _ = writeln!(out);
    for r in &report.rows {
        let mut notes = vec![format!(
            "member reads {} requests for {} groups",
            r.list_members_requests,
            r.groups_read.len()
        )];
        if let Some(churned) = &r.churned {
            notes.push(format!("churn changed {} groups", churned.len()));
        }
        if let Some(d) = &r.deactivated {
            notes.push(format!(
                "{} users deactivated, in {} groups ({} in scope)",
                d.users.len(),
                d.groups,
                d.in_scope.len()
            ));
        }
        if let Some(touched) = r.touched {
            notes.push(format!("{touched} users touched"));
        }
        if let Some(read) = r.reported_groups_read {
            notes.push(format!("the report says {read} groups read"));
        }
        if r.strategy == Strategy::Product
            && let Some(n) = report.row(Strategy::Naive, r.pass)
        {
            notes.push(format!(
                "{:.1}x fewer Okta requests than the naive pass ({} vs {})",
                n.okta_requests as f64 / r.okta_requests.max(1) as f64,
                n.okta_requests,
                r.okta_requests
            ));
        }
        if let (Some(limited), Some(wait)) = (r.client_rate_limited, r.client_wait_secs) {
            notes.push(format!(
                "client saw {limited} 429s, waited {wait:.1} s on them"
            ));
        }
        if let Some((requests, refused)) = r.background {
            notes.push(format!(
                "background client: {requests} requests, {refused} refused"
            ));
        }
        if !r.q_by_op.is_empty() {
            let ops: Vec<String> = r
                .q_by_op
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect();
            notes.push(format!("Q calls: {}", ops.join(", ")));
        }
        if r.q_throttled > 0 {
            notes.push(format!("{} Q throttles", r.q_throttled));
        }
        let _ = writeln!(out, "- {}: {}", r.name(), notes.join("; "));
    }
    if let Some(p) = &report.plan {
        let _ = writeln!(
            out,
            "- plan micro-benchmark ({} groups, {} memberships, median of {}): select::desired {:.0} ms, \
             plan with nothing to do {:.0} ms, plan after the churn {:.0} ms ({} puts for {} changed groups)",
            p.groups,
            p.memberships,
            o.plan_reps,
            p.desired.as_secs_f64() * 1000.0,
            p.plan_unchanged.as_secs_f64() * 1000.0,
            p.plan_churn.as_secs_f64() * 1000.0,
            p.churn_puts,
            p.churned_groups
        );
    }
    out
}

/// One target and whether the run met it.
#[derive(Debug, Clone)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The issue's targets, checked against the report. Targets whose runs are missing are left out.
pub fn checks(report: &Report) -> Vec<Check> {
    let o = &report.opts;
    let mut out = Vec::new();
    let mut check = |target: &str, measured: String, met: bool| {
        out.push(Check {
            target: target.to_owned(),
            measured,
            met,
        });
    };
    let product = |pass| report.row(Strategy::Product, pass);
    let naive = |pass| report.row(Strategy::Naive, pass);

    let pages = o.groups.div_ceil(o.page_size.max(1) as usize);
    let users_page = o.users_page_size();
    if let Some(r) = product(Pass::NoChange) {
        // The groups listing, and one users-listing page: nobody's lastUpdated moved, so
        // Okta answers one empty page.
        let expected = pages + 1 + r.token_requests;
        check(
            "no-change: Okta requests = ceil(groups / page size) + 1 users-listing page (+ auth), 0 member reads",
            format!(
                "{} = {} groups-listing + {} users-listing + {} member pages + {} lookups (expected {pages} + 1 + {} auth)",
                r.okta_requests,
                r.list_groups_requests,
                r.list_users_requests,
                r.list_members_requests,
                r.user_groups_requests + r.get_user_requests,
                r.token_requests
            ),
            r.ok && r.okta_requests == expected
                && r.list_users_requests == 1
                && r.list_members_requests == 0,
        );
        check(
            "no-change: zero Q writes",
            format!("{} writes ({} Q requests)", r.q_writes(), r.q_requests),
            r.ok && r.q_writes() == 0,
        );
        if let Some(n) = naive(Pass::NoChange) {
            let ratio = n.okta_requests as f64 / r.okta_requests.max(1) as f64;
            check(
                "no-change: >= 100x fewer Okta requests than the naive pass",
                format!("{ratio:.0}x ({} vs {})", n.okta_requests, r.okta_requests),
                r.ok && n.ok && ratio >= 100.0,
            );
        }
    }
    if let Some(r) = product(Pass::Churn) {
        let churned = r.churned.clone().unwrap_or_default();
        check(
            "1% churn: Q writes = groups actually changed",
            format!(
                "{} puts + {} deletes for {} changed groups",
                r.q_puts,
                r.q_deletes,
                churned.len()
            ),
            r.ok && r.q_puts == churned.len() && r.q_deletes == 0,
        );
        let extra = r.groups_read.difference(&churned).count();
        let missing = churned.difference(&r.groups_read).count();
        check(
            "1% churn: Okta member reads only for changed groups",
            format!(
                "members read for {} groups: {} of the {} changed, {extra} unchanged",
                r.groups_read.len(),
                churned.len() - missing,
                churned.len()
            ),
            r.ok && extra == 0,
        );
    }
    if let Some(r) = product(Pass::Touch) {
        let touched = r.touched.unwrap_or(0);
        let expected = touched.div_ceil(users_page).max(1);
        check(
            "profile touch: 0 member reads, 0 Q writes; users-listing pages = ceil(users / 200)",
            format!(
                "{} member pages, {} writes; {} users-listing pages for {touched} touched users (expected {expected}); {} users changed",
                r.list_members_requests,
                r.q_writes(),
                r.list_users_requests,
                r.users.as_ref().map_or(0, |u| u.users_changed)
            ),
            r.ok && r.list_members_requests == 0
                && r.q_writes() == 0
                && r.list_users_requests == expected,
        );
    }
    if let Some(r) = product(Pass::Deactivated) {
        let d = r.deactivated.clone().unwrap_or(Deactivated {
            users: Vec::new(),
            groups: 0,
            in_scope: BTreeSet::new(),
        });
        let extra = r.groups_read.difference(&d.in_scope).count();
        let missing = d.in_scope.difference(&r.groups_read).count();
        check(
            "1% deactivated: members read again for exactly the deactivated users' groups",
            format!(
                "{} groups read ({} member pages): {} of the {} in-scope groups of the {} deactivated users, {extra} others",
                r.groups_read.len(),
                r.list_members_requests,
                d.in_scope.len() - missing,
                d.in_scope.len(),
                d.users.len()
            ),
            r.ok && extra == 0 && missing == 0 && !d.in_scope.is_empty(),
        );
        let changed = r.users.as_ref().map_or(0, |u| u.users_changed);
        let limit = changed.div_ceil(users_page) + 1;
        check(
            "1% deactivated: users-listing pages <= ceil(changed users / 200) + 1",
            format!(
                "{} pages for {} listed, {changed} changed users (at most {limit})",
                r.list_users_requests,
                r.users.as_ref().map_or(0, |u| u.users_listed),
            ),
            r.ok && changed == d.users.len() && r.list_users_requests <= limit,
        );
        check(
            "1% deactivated: Q Business equals the oracle",
            r.oracle.as_ref().map_or_else(
                || "not compared".to_owned(),
                |m| {
                    format!(
                        "{} of {} groups differ; {} puts + {} deletes",
                        m.differing, m.expected, r.q_puts, r.q_deletes
                    )
                },
            ),
            r.ok && r.oracle.as_ref().is_some_and(OracleMatch::equal),
        );
    }
    for pass in [Pass::Churn, Pass::Touch] {
        if let Some(r) = product(pass)
            && let Some(m) = &r.oracle
        {
            check(
                &format!(
                    "{}: Q Business equals the oracle",
                    r.name().trim_start_matches("q-group-sync: ")
                ),
                format!("{} of {} groups differ", m.differing, m.expected),
                r.ok && m.equal(),
            );
        }
    }
    if let Some(r) = product(Pass::Initial) {
        let ratio = r.wall_over_max_floor().unwrap_or(f64::INFINITY);
        check(
            "initial: wall time <= 1.10 x max(Okta floor, Q write floor)",
            format!(
                "{:.1} s / max({:.1} s, {:.1} s) = {ratio:.2}",
                r.wall.as_secs_f64(),
                r.floor.as_secs_f64(),
                r.q_floor.as_secs_f64()
            ),
            r.ok && ratio <= 1.10,
        );
        if let Some(n) = naive(Pass::Initial) {
            let ratio = r.okta_requests as f64 / n.okta_requests.max(1) as f64;
            check(
                "initial: Okta requests <= 0.6 x the naive strategy's at page size 200",
                format!(
                    "{} / {} = {ratio:.2} (member pages {} vs {})",
                    r.okta_requests,
                    n.okta_requests,
                    r.list_members_requests,
                    n.list_members_requests
                ),
                r.ok && n.ok && ratio <= 0.6,
            );
        }
        check(
            "initial: zero 429s alone on the budget",
            format!("{} 429s", r.okta_429),
            r.ok && r.okta_429 == 0,
        );
    }
    if let Some(r) = product(Pass::CappedInitial) {
        if let Some(n) = naive(Pass::Initial) {
            check(
                "initial, member pages capped: no more Okta requests than reading at page size 200",
                format!(
                    "{} vs {} (member pages {} vs {})",
                    r.okta_requests,
                    n.okta_requests,
                    r.list_members_requests,
                    n.list_members_requests
                ),
                r.ok && n.ok && r.okta_requests <= n.okta_requests,
            );
        }
        let ratio = r.wall_over_max_floor().unwrap_or(f64::INFINITY);
        check(
            "initial, member pages capped: wall time <= 1.10 x max(Okta floor, Q write floor), 0 429s",
            format!(
                "{:.1} s / max({:.1} s, {:.1} s) = {ratio:.2}; {} 429s",
                r.wall.as_secs_f64(),
                r.floor.as_secs_f64(),
                r.q_floor.as_secs_f64(),
                r.okta_429
            ),
            r.ok && ratio <= 1.10 && r.okta_429 == 0,
        );
    }
    if let Some(r) = product(Pass::SharedInitial) {
        check(
            "initial, shared budget: a few 429s at most (<= 5), no failure",
            format!(
                "{} 429s, exit {}",
                r.okta_429,
                r.exit
                    .map_or_else(|| "killed".to_owned(), |c| c.to_string())
            ),
            r.ok && r.okta_429 <= 5,
        );
    }
    let peak = report
        .rows
        .iter()
        .filter(|r| r.strategy == Strategy::Product)
        .map(|r| r.max_rss_bytes)
        .max();
    if let Some(peak) = peak {
        check(
            "peak RSS of q-group-sync <= 64 MB",
            format!(
                "{:.1} MiB ({:.1} MB) over all q-group-sync runs, {} memberships",
                peak as f64 / MIB,
                peak as f64 / 1e6,
                report.memberships
            ),
            peak as f64 <= 64.0 * 1e6,
        );
    }
    if let Some(p) = &report.plan {
        let worst = p.plan_churn.max(p.plan_unchanged);
        check(
            "plan computation <= 1 s",
            format!(
                "{:.0} ms (plan), {:.0} ms (select::desired + plan)",
                worst.as_secs_f64() * 1000.0,
                (p.desired + worst).as_secs_f64() * 1000.0
            ),
            worst <= Duration::from_secs(1),
        );
    }
    if let Some(same) = report.same_churn {
        check(
            "both strategies saw the same churn",
            if same {
                "same groups"
            } else {
                "different groups"
            }
            .to_owned(),
            same,
        );
    }
    if let Some(same) = report.same_deactivation {
        check(
            "both strategies saw the same deactivation",
            if same {
                "same users"
            } else {
                "different users"
            }
            .to_owned(),
            same,
        );
    }
    out
}

/// The checks as a Markdown table.
pub fn render_checks(checks: &[Check]) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---|---|\n");
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.target,
            c.measured,
            if c.met { "yes" } else { "**no**" }
        );
    }
    out
}
