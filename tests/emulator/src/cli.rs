//! The `q-group-sync-emulator` command line: both emulators in one process, for manual runs, the
//! demo and the benchmark (`examples/bench`).
//!
//! Prints one JSON line with the URLs, ids and the generated org's size, then serves until
//! SIGTERM/SIGINT or until stdin closes (so a parent that dies takes it along).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::AsyncReadExt;

use crate::generate::{self, OrgSpec, Sizes};
use crate::{EmptyMembers, OktaEmulator, OktaOptions, QEmulator, QModes, QOptions};

/// Serve an emulated Okta org and Amazon Q Business index on loopback.
///
/// Control endpoints (no auth) on the Okta URL: `GET /_emulator/stats` (`?detail=true` for
/// requests by kind and the background client, `&groups=true` for the groups whose members were
/// read), `POST /_emulator/reset-stats`, `POST /_emulator/churn` (`{"percent": 1.0, "seed": 7}`;
/// answers the changed groups; every change is logged to the System Log),
/// `POST /_emulator/members`, `POST /_emulator/users/{id}/lifecycle/{op}` (`op`: suspend,
/// unsuspend, deactivate, reactivate, unlock; 409 when not allowed),
/// `POST /_emulator/users/{id}/profile` (`{"email": "new@example.test"}`; null removes),
/// `POST /_emulator/touch-users` (every user's lastUpdated moves),
/// `POST /_emulator/deactivate` (`{"percent": 1.0, "seed": 7}`; answers the users and the
/// number of their groups); on the Q Business URL:
/// `GET /_emulator/stats` (`?detail=true` for calls by operation), `POST /_emulator/reset-stats`,
/// `GET` and `POST /_emulator/modes` (the readings of what AWS leaves open, as JSON: e.g.
/// `{"status_lag": 3000, "empty_members": "refuse"}`; fields left out take their defaults),
/// `GET /_emulator/groups`, `POST /_emulator/groups` (`{"name": "Sales", "users": ["ana@x"]}`:
/// a group made by hand, which q-group-sync must leave alone), `PUT /_emulator/documents/{id}`
/// (`{"dataSourceId": null, "documentAcl": {"allowlist": ..., "denyList": ...}}`, for
/// CheckDocumentAccess) and `DELETE`.
#[derive(Parser, Debug, Clone)]
#[command(name = "q-group-sync-emulator", version, about)]
pub struct Cli {
    /// Number of Okta groups to generate.
    #[arg(long, default_value_t = 50)]
    pub groups: usize,
    /// Number of Okta users to generate.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Largest generated group (a few groups come close to it).
    #[arg(long, default_value_t = 1000)]
    pub max_group_size: usize,
    /// Group size profile: `small` (most under 50, mean about 50) or `heavy` (the benchmark's:
    /// about half under 50, mean about 22 % of --max-group-size).
    #[arg(long, default_value = "small")]
    pub sizes: Sizes,
    /// Generator seed; the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Generate a realistic, messy org (odd statuses, missing emails, odd group names).
    #[arg(long)]
    pub messy: bool,
    /// Requests per window in Okta's shared /api/v1/groups bucket (listings and member reads).
    #[arg(long, default_value_t = 10_000)]
    pub okta_rate_limit: u32,
    /// Length of the rate-limit window in seconds (Okta's is 60).
    #[arg(long, default_value_t = 60.0)]
    pub okta_rate_window: f64,
    /// A second, synthetic Okta client spending this many requests per second of the same
    /// bucket, to test sharing it. 0: none.
    #[arg(long, default_value_t = 0.0)]
    pub okta_background_rps: f64,
    /// Requests per window in Okta's System Log bucket (`/api/v1/logs`).
    #[arg(long, default_value_t = 120)]
    pub okta_logs_rate_limit: u32,
    /// Requests per window in each of Okta's user buckets (the users listing, one user, a
    /// user's groups: three buckets, each counted on its own).
    #[arg(long, default_value_t = 10_000)]
    pub okta_users_rate_limit: u32,
    /// Delay before a System Log event becomes visible to `GET /api/v1/logs`, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub okta_log_lag_ms: u64,
    /// A random extra delay per System Log event, up to this many milliseconds (events become
    /// visible out of `published` order).
    #[arg(long, default_value_t = 0)]
    pub okta_log_lag_jitter_ms: u64,
    /// Most members one page of `GET /api/v1/groups/{id}/users` returns, whatever `limit`
    /// asks (some orgs cap member pages below the documented 1000).
    #[arg(long, default_value_t = 10_000)]
    pub okta_max_members_limit: usize,
    /// Latency added to every Okta API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub okta_latency_ms: u64,
    /// Okta emulator listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub okta_listen: SocketAddr,
    /// Q Business emulator listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub q_listen: SocketAddr,
    /// Q Business: GetGroup keeps answering a group's status from before a put for this many
    /// milliseconds after it (404 for a group the put created).
    #[arg(long, default_value_t = 0)]
    pub q_status_lag_ms: u64,
    /// Q Business: a put that changes nothing leaves the group's status as it was.
    #[arg(long)]
    pub q_noop_keeps_status: bool,
    /// Q Business: which empty PutGroup is accepted: `accept` (an empty list and no list),
    /// `omit-only` (only a groupMembers without the list) or `refuse` (no empty group).
    #[arg(long, default_value = "accept")]
    pub q_empty_members: EmptyMembers,
    /// Q Business: ListGroups refuses an updatedEarlierThan ahead of its clock.
    #[arg(long)]
    pub q_refuse_future_cutoff: bool,
    /// Q Business: its clock against this host's, in seconds (negative: behind).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub q_clock_skew_secs: i64,
    /// Q Business: CheckDocumentAccess lists only the groups that name the user directly (not
    /// the groups that hold those).
    #[arg(long)]
    pub q_direct_user_groups: bool,
}

/// Generates the org, starts both emulators, prints the JSON line, serves until told to stop.
pub async fn run(cli: Cli) -> std::io::Result<()> {
    let generating = Instant::now();
    let spec = OrgSpec {
        seed: cli.seed,
        groups: cli.groups,
        users: cli.users,
        max_group_size: cli.max_group_size,
        messy: cli.messy,
    };
    let org = generate::org_with_sizes(&spec, cli.sizes);
    let memberships: usize = org.groups.values().map(|g| g.members.len()).sum();
    let largest = org.groups.values().map(|g| g.members.len()).max();
    let generate_secs = generating.elapsed().as_secs_f64();
    if !(cli.okta_rate_window > 0.0 && cli.okta_rate_window.is_finite()) {
        return Err(std::io::Error::other("--okta-rate-window must be positive"));
    }
    let okta_options = OktaOptions {
        rate_limit: cli.okta_rate_limit,
        rate_window: Duration::from_secs_f64(cli.okta_rate_window),
        background_rps: cli.okta_background_rps.max(0.0),
        latency: Duration::from_millis(cli.okta_latency_ms),
        logs_rate_limit: cli.okta_logs_rate_limit,
        users_rate_limit: cli.okta_users_rate_limit,
        log_lag: Duration::from_millis(cli.okta_log_lag_ms),
        log_lag_jitter: Duration::from_millis(cli.okta_log_lag_jitter_ms),
        max_members_limit: cli.okta_max_members_limit.max(1),
        ..OktaOptions::default()
    };
    let okta = OktaEmulator::start_on(cli.okta_listen, org, okta_options).await?;
    let modes = QModes {
        status_lag: Duration::from_millis(cli.q_status_lag_ms),
        noop_moves_status: !cli.q_noop_keeps_status,
        empty_members: cli.q_empty_members,
        future_cutoff: !cli.q_refuse_future_cutoff,
        clock_skew_secs: cli.q_clock_skew_secs,
        nested_user_groups: !cli.q_direct_user_groups,
    };
    let q = QEmulator::start_on(
        cli.q_listen,
        QOptions {
            modes,
            ..QOptions::default()
        },
    )
    .await?;
    let line = serde_json::json!({
        "okta_url": okta.url(),
        "okta_token": okta.token(),
        "qbusiness_url": q.url(),
        "application_id": q.application_id(),
        "index_id": q.index_id(),
        "groups": cli.groups,
        "users": cli.users,
        "memberships": memberships,
        "largest_group": largest,
        "generate_secs": generate_secs,
    });
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    stop_signal().await?;
    okta.shutdown().await;
    q.shutdown().await;
    Ok(())
}

/// Resolves on SIGTERM, SIGINT, or end of stdin (the parent went away).
async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 1024];
        // Any error counts as closed too.
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
    }
    Ok(())
}
