//! Configuration: typed at start-up, unknown keys rejected, cross-field rules in [`Config::validate`].
//!
//! Sources, lowest precedence first: built-in defaults, the TOML file (`--config PATH` or
//! `Q_GROUP_SYNC_CONFIG`), then environment variables `Q_GROUP_SYNC_<SECTION>__<KEY>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// Environment variable prefix for overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "Q_GROUP_SYNC_";
/// Environment variable naming the config file when `--config` is not given.
pub const ENV_CONFIG_PATH: &str = "Q_GROUP_SYNC_CONFIG";

/// Environment variables holding secrets, read verbatim, and their config keys.
const SECRET_ENV: [(&str, &str); 3] = [
    ("Q_GROUP_SYNC_OKTA__API_TOKEN", "okta.api_token"),
    ("Q_GROUP_SYNC_SERVER__ADMIN_TOKEN", "server.admin_token"),
    ("Q_GROUP_SYNC_STATE__URL", "state.url"),
];

/// A configuration problem: the message names the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn key(key: &str, reason: impl std::fmt::Display) -> Self {
        ConfigError(format!("{key}: {reason}"))
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub okta: OktaConfig,
    #[serde(default)]
    pub groups: GroupsConfig,
    #[serde(default)]
    pub users: UsersConfig,
    pub qbusiness: QBusinessConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub safety: SafetyConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub server: ServerConfig,
}

/// `[okta]`: where and how to read groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// `https://acme.okta.com`; plain http only for loopback hosts (emulators).
    pub org_url: Url,
    /// SSWS API token. Prefer `api_token_file` or the environment over the TOML file.
    #[serde(default, serialize_with = "redacted")]
    pub api_token: Option<SecretString>,
    /// File holding the SSWS API token (e.g. a mounted Kubernetes Secret).
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// Filter expression for `GET /api/v1/groups`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// `limit` sent on every list call.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Requests in flight to Okta at most.
    #[serde(default = "default_okta_concurrency")]
    pub max_concurrency: usize,
    /// Timeout of one HTTP request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of one request after a 429, 5xx, timeout or broken body, before giving up.
    #[serde(default = "default_okta_retries")]
    pub max_retries: u32,
    /// Share of each Okta rate-limit bucket this process may use (Okta's default per-token
    /// share is 0.5; other integrations need the rest).
    #[serde(default = "default_rate_limit_share")]
    pub rate_limit_share: f64,
    /// Longest single wait before a retry (429 resets are capped to this).
    #[serde(default = "default_max_retry_wait", with = "humantime_serde")]
    pub max_retry_wait: Duration,
    /// How requests authenticate: an SSWS API token, or an OAuth 2.0 service app.
    #[serde(default)]
    pub auth: OktaAuthMode,
    /// OAuth: the service app's Client ID.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth: PEM file with the app's private key (RSA 2048+ or EC P-256), read at start-up.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// OAuth: `kid` of that key in the app's Public keys (required by Okta when it has several).
    #[serde(default)]
    pub key_id: Option<String>,
    /// OAuth: scopes requested; each must be granted on the app's Okta API Scopes tab.
    #[serde(default = "default_okta_scopes")]
    pub scopes: Vec<String>,
    /// OAuth: bind tokens to a per-process key with DPoP (RFC 9449), as new Okta apps require.
    #[serde(default = "default_true")]
    pub dpop: bool,
    /// `[okta.events]`: the System Log change feed.
    #[serde(default)]
    pub events: EventsConfig,
}

/// `[okta.events]`: poll Okta's System Log and sync the groups that changed between passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Poll the System Log (needs okta.logs.read and okta.users.read with OAuth).
    #[serde(default)]
    pub enabled: bool,
    /// How often the System Log is polled (when caught up).
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Longest time from a change in Okta to its sync into Q Business.
    #[serde(default = "default_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// How far back the first poll (with no saved position) starts.
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub lookback: Duration,
    /// Events per poll (`limit`, 1 to 1000).
    #[serde(default = "default_events_page_size")]
    pub page_size: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: false,
            poll_interval: default_poll_interval(),
            max_delay: default_max_delay(),
            lookback: default_lookback(),
            page_size: default_events_page_size(),
        }
    }
}

/// The System Log bucket's limit on Workforce orgs (per minute); other plans have less.
pub const SYSTEM_LOG_LIMIT_PER_MINUTE: f64 = 120.0;
/// The System Log keeps 90 days.
const SYSTEM_LOG_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_max_delay() -> Duration {
    Duration::from_secs(60)
}
fn default_lookback() -> Duration {
    Duration::from_secs(300)
}
fn default_events_page_size() -> u32 {
    1000
}

/// `okta.auth`: how q-group-sync authenticates to Okta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OktaAuthMode {
    /// `Authorization: SSWS <okta.api_token>`.
    #[default]
    Ssws,
    /// OAuth 2.0 client credentials with a `private_key_jwt` client assertion (and DPoP).
    #[serde(rename = "oauth")]
    OAuth,
}

/// `[groups]`: which Okta groups are in scope, and their Q names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// Glob patterns on the Okta group name; a group must match one.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Glob patterns on the Okta group name; a matching group is out of scope.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Prefix for the Q group name (`<prefix><okta name>`).
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Let `reconcile --adopt` take over Q groups that only match `name_prefix` (not an Okta
    /// group's name), e.g. after a lost snapshot. Off by default.
    #[serde(default)]
    pub adopt_prefixed: bool,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            include: default_include(),
            exclude: Vec::new(),
            name_prefix: None,
            adopt_prefixed: false,
        }
    }
}

/// `[users]`: how an Okta user becomes a Q user id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// `email`, `login`, or the name of a custom Okta profile attribute.
    #[serde(default = "default_id_attribute")]
    pub id_attribute: String,
    /// User statuses that count as members.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<String>,
    /// Drop `+tag` from the local part of email-like ids, as Q Business does.
    #[serde(default = "default_true")]
    pub fold_subaddress: bool,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            id_attribute: default_id_attribute(),
            statuses: default_statuses(),
            fold_subaddress: true,
        }
    }
}

/// `[qbusiness]`: the target application and index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QBusinessConfig {
    pub application_id: String,
    pub index_id: String,
    pub region: String,
    #[serde(default)]
    pub data_source_id: Option<String>,
    /// Endpoint override (emulators, VPC endpoints). Default: the regional endpoint.
    #[serde(default)]
    pub endpoint_url: Option<Url>,
    /// Group writes in flight at most.
    #[serde(default = "default_q_concurrency")]
    pub max_concurrency: usize,
    /// PutGroup and DeleteGroup calls per second at most (Q Business's quotas are per account).
    #[serde(default = "default_q_writes_per_second")]
    pub max_writes_per_second: u32,
    /// Attempts per call, SDK retries included (throttling and 5xx are retried).
    #[serde(default = "default_q_attempts")]
    pub max_attempts: u32,
    /// First backoff between attempts; doubles with jitter up to 20 s.
    #[serde(default = "default_q_backoff", with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Members one PutGroup may carry; larger groups are chunked (or refused, never truncated).
    #[serde(default = "default_inline_member_limit")]
    pub inline_member_limit: usize,
    /// Groups over `inline_member_limit`: `chunks` (nested chunk sub-groups), `s3`
    /// (experimental: a member file in S3) or `refuse`.
    #[serde(default)]
    pub large_groups: LargeGroups,
    /// `large_groups = "s3"`: the bucket member files are written to.
    #[serde(default)]
    pub s3_bucket: Option<String>,
    /// `large_groups = "s3"`: key prefix of the member files (one file per group).
    #[serde(default = "default_s3_prefix")]
    pub s3_prefix: String,
    /// `large_groups = "s3"`: the IAM role Q Business assumes to read the member files.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `large_groups = "s3"`: S3 endpoint override (VPC endpoints, emulators; path-style).
    #[serde(default)]
    pub s3_endpoint_url: Option<Url>,
    /// Whether a put is confirmed with GetGroup before it is recorded: `always`, `sample`, `never`.
    #[serde(default)]
    pub verify: VerifyMode,
    /// With `verify = "sample"`: the share of puts (percent, by group name) that are confirmed.
    #[serde(default = "default_verify_sample")]
    pub verify_sample_percent: u8,
    /// How long a put may stay PROCESSING before it counts as unverified (retried next pass).
    #[serde(default = "default_verify_timeout", with = "humantime_serde")]
    pub verify_timeout: Duration,
}

/// `qbusiness.large_groups`: what happens to a group over the inline member limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LargeGroups {
    /// Written as a parent group whose `memberGroups` are chunk sub-groups of at most the
    /// limit each.
    #[default]
    Chunks,
    /// Not written; reported as an issue (`over_member_limit`).
    Refuse,
    /// Experimental: the members go to a file in `s3_bucket` that Q Business reads with
    /// `role_arn` (`s3PathForGroupMembers`; the file format is not documented by AWS).
    S3,
}

/// How puts are confirmed (PutGroup is asynchronous).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Every put is confirmed SUCCEEDED before it is recorded.
    #[default]
    Always,
    /// A fixed share of groups (by name) is confirmed; the rest are recorded when accepted.
    Sample,
    /// Puts are recorded when Q Business accepts them.
    Never,
}

/// `[sync]`: how much of Okta each pass reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// A full member read of every group at least this often. In between, passes read the
    /// members of groups whose lastMembershipUpdated moved (a user's profile or status change
    /// does not move it, so the full read catches those).
    #[serde(default = "default_full_every", with = "humantime_serde")]
    pub full_every: Duration,
    /// A read counts as current for a group only if it started this long after the group's
    /// lastMembershipUpdated (Okta's timestamps are whole seconds and its data eventually
    /// consistent; the margin also absorbs clock skew).
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            full_every: default_full_every(),
            overlap: default_overlap(),
        }
    }
}

fn default_full_every() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_overlap() -> Duration {
    Duration::from_secs(120)
}

/// `[safety]`: the deletion circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Most group deletions one pass may make without approval.
    #[serde(default = "default_max_deletes")]
    pub max_group_deletes: usize,
    /// Most group deletions one pass may make without approval, in percent of managed groups.
    #[serde(default = "default_max_deletes_percent")]
    pub max_group_deletes_percent: f64,
    /// Most member removals one pass may make without approval, in percent of all managed
    /// memberships.
    #[serde(default = "default_max_removals_percent")]
    pub max_member_removals_percent: f64,
    /// A managed group that Okta suddenly lists no users for (while it had at least
    /// `empty_group_min_members`) is suspicious: its removals, and only its, need approval. A
    /// group whose members were deactivated is not (Okta still lists them).
    #[serde(default = "default_true")]
    pub block_empty_groups: bool,
    /// See `block_empty_groups`: a group that had fewer members may become empty freely.
    #[serde(default = "default_empty_group_min_members")]
    pub empty_group_min_members: usize,
    /// When Okta lists this many percent fewer in-scope groups than are managed, every deletion
    /// needs approval (a filter typo or a partial outage looks like a mass deletion).
    #[serde(default = "default_max_count_drop")]
    pub max_group_count_drop_percent: f64,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_group_deletes: default_max_deletes(),
            max_group_deletes_percent: default_max_deletes_percent(),
            max_member_removals_percent: default_max_removals_percent(),
            block_empty_groups: true,
            empty_group_min_members: default_empty_group_min_members(),
            max_group_count_drop_percent: default_max_count_drop(),
        }
    }
}

fn default_empty_group_min_members() -> usize {
    2
}
fn default_max_deletes() -> usize {
    10
}
fn default_max_deletes_percent() -> f64 {
    10.0
}
fn default_max_removals_percent() -> f64 {
    20.0
}
fn default_max_count_drop() -> f64 {
    50.0
}
fn default_verify_sample() -> u8 {
    10
}
fn default_verify_timeout() -> Duration {
    Duration::from_secs(300)
}

/// `[state]`: where the snapshot of what was applied lives, and (PostgreSQL) who leads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite` (one replica, a file on a volume) or `postgres` (shared, two or more replicas).
    #[serde(default)]
    pub backend: StateBackend,
    /// SQLite snapshot file; created on first use.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// PostgreSQL: connection URL (`postgres://user:password@host:5432/db`). A secret: prefer
    /// `url_file` or `Q_GROUP_SYNC_STATE__URL`.
    #[serde(default, serialize_with = "redacted")]
    pub url: Option<SecretString>,
    /// PostgreSQL: file holding the connection URL (a mounted secret).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: TLS to the server: `verify-full` (certificate and host name checked),
    /// `require` (encrypted, certificate not checked) or `disable` (loopback only).
    #[serde(default)]
    pub tls: PgTls,
    /// PostgreSQL: PEM file of CA certificates for `verify-full` (e.g. the RDS bundle);
    /// default: the system's CA store.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL: connections in the pool for snapshot reads and writes (the leader lock has
    /// its own connection).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: schema holding q-group-sync's tables; created if missing.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// PostgreSQL: how soon a standby takes over after the leader's connection drops.
    #[serde(default = "default_leader_takeover", with = "humantime_serde")]
    pub leader_takeover: Duration,
    /// This replica's name in the leader record and /status. Default: `POD_NAME`, else
    /// `HOSTNAME`, else the host name.
    #[serde(default)]
    pub replica: Option<String>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            path: default_state_path(),
            url: None,
            url_file: None,
            tls: PgTls::default(),
            tls_ca_file: None,
            pool_size: default_pool_size(),
            schema: default_schema(),
            leader_takeover: default_leader_takeover(),
            replica: None,
        }
    }
}

/// `state.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// One file, one replica; the process always leads.
    #[default]
    Sqlite,
    /// A shared database; replicas elect a leader.
    Postgres,
}

/// `state.tls`: TLS to PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTls {
    /// No TLS; accepted only for loopback hosts and Unix sockets.
    Disable,
    /// TLS without checking the certificate (like libpq's `sslmode=require`).
    Require,
    /// TLS, certificate chain and host name checked (like libpq's `sslmode=verify-full`).
    #[default]
    VerifyFull,
}

impl StateConfig {
    /// This replica's name: `state.replica`, else `POD_NAME`, `HOSTNAME`, `/etc/hostname`.
    pub fn replica_name(&self) -> String {
        self.replica
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("q-group-sync-{}", std::process::id()))
    }

    /// The PostgreSQL connection URL from `state.url` or `state.url_file`.
    pub fn postgres_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(url) = &self.url {
            return Ok(SecretString::from(url.expose_secret().trim().to_owned()));
        }
        let Some(path) = &self.url_file else {
            return Err(ConfigError::key(
                "state.url",
                "missing: set state.url_file or Q_GROUP_SYNC_STATE__URL",
            ));
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::key(
                "state.url_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let url = text.trim();
        if url.is_empty() || url.contains(['\n', '\r']) {
            return Err(ConfigError::key(
                "state.url_file",
                format!(
                    "{} must hold the connection URL on one line",
                    path.display()
                ),
            ));
        }
        Ok(SecretString::from(url.to_owned()))
    }
}

/// `[schedule]`: when `serve` runs passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron expression, UTC, with a seconds field (`0 */15 * * * *`); a 5-field expression
    /// gets second 0.
    #[serde(default = "default_cron")]
    pub cron: String,
    /// Run a pass as soon as `serve` starts.
    #[serde(default = "default_true")]
    pub run_on_start: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: default_cron(),
            run_on_start: true,
        }
    }
}

impl ScheduleConfig {
    /// The cron expression with a seconds field.
    pub fn cron_with_seconds(&self) -> String {
        let cron = self.cron.trim();
        if cron.split_whitespace().count() == 5 {
            format!("0 {cron}")
        } else {
            cron.to_owned()
        }
    }
}

/// `[server]`: the one HTTP port of `serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for /metrics, /livez, /readyz, /status and POST /sync.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// Bearer token for POST /sync. Without it (and without the file) the endpoint is disabled.
    #[serde(default, serialize_with = "redacted")]
    pub admin_token: Option<SecretString>,
    /// File holding the admin token.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// How long a shutdown may take to let writes in flight finish and be recorded.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_token: None,
            admin_token_file: None,
            shutdown_grace: default_grace(),
        }
    }
}

fn default_cron() -> String {
    "0 */15 * * * *".to_owned()
}
fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}

fn redacted<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("[REDACTED]"),
        None => s.serialize_none(),
    }
}

fn default_group_filter() -> String {
    r#"type eq "OKTA_GROUP""#.to_owned()
}
fn default_page_size() -> u32 {
    200
}
fn default_okta_concurrency() -> usize {
    4
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_rate_limit_share() -> f64 {
    0.5
}
fn default_okta_retries() -> u32 {
    5
}
fn default_max_retry_wait() -> Duration {
    Duration::from_secs(90)
}
fn default_okta_scopes() -> Vec<String> {
    vec!["okta.groups.read".to_owned(), "okta.users.read".to_owned()]
}
fn default_include() -> Vec<String> {
    vec!["*".to_owned()]
}
fn default_id_attribute() -> String {
    "email".to_owned()
}
fn default_statuses() -> Vec<String> {
    ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"]
        .map(String::from)
        .to_vec()
}
fn default_true() -> bool {
    true
}
fn default_q_concurrency() -> usize {
    4
}
fn default_q_writes_per_second() -> u32 {
    20
}
fn default_q_attempts() -> u32 {
    3
}
fn default_q_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_s3_prefix() -> String {
    "q-group-sync/members/".to_owned()
}

fn default_inline_member_limit() -> usize {
    1000
}
fn default_state_path() -> PathBuf {
    PathBuf::from("/var/lib/q-group-sync/snapshot.db")
}
fn default_pool_size() -> usize {
    4
}
fn default_schema() -> String {
    "q_group_sync".to_owned()
}
fn default_leader_takeover() -> Duration {
    Duration::from_secs(15)
}

/// Okta user statuses; anything else in `users.statuses` is a typo.
pub const KNOWN_STATUSES: [&str; 8] = [
    "ACTIVE",
    "DEPROVISIONED",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "PROVISIONED",
    "RECOVERY",
    "STAGED",
    "SUSPENDED",
];

impl Config {
    /// Loads from defaults, the TOML file (if any) and `Q_GROUP_SYNC_*` variables, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .split("__")
                .ignore(&["CONFIG"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        // Secrets are taken verbatim: figment would read `00123` as the number 123 or `true`
        // as a bool.
        let figment = SECRET_ENV
            .iter()
            .fold(figment, |f, (var, key)| match std::env::var(var) {
                Ok(raw) => f.merge(Serialized::default(key, raw)),
                Err(_) => f,
            });
        Config::from_figment(figment)
    }

    /// Extracts and validates a config from any figment (tests use in-memory TOML).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let figment = Figment::from(Serialized::defaults(serde_json::json!({
            "groups": {}, "users": {}, "state": {}, "safety": {}, "sync": {}, "schedule": {}, "server": {}
        })))
        .merge(figment);
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        // An empty secret (e.g. `VAR=` in an env file) means "not set here".
        for secret in [
            &mut config.okta.api_token,
            &mut config.server.admin_token,
            &mut config.state.url,
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().trim().is_empty())
            {
                *secret = None;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Cross-field and value checks that serde alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let o = &self.okta;
        match o.org_url.scheme() {
            "https" => {}
            "http" if is_loopback(&o.org_url) => {}
            "http" => {
                return Err(ConfigError::key(
                    "okta.org_url",
                    "plain http is accepted only for loopback hosts; use https",
                ));
            }
            other => {
                return Err(ConfigError::key(
                    "okta.org_url",
                    format!("unsupported scheme {other:?}"),
                ));
            }
        }
        if o.org_url.host_str().is_none() {
            return Err(ConfigError::key("okta.org_url", "has no host"));
        }
        if o.org_url.path() != "/" || o.org_url.query().is_some() {
            return Err(ConfigError::key(
                "okta.org_url",
                "must be the org's base URL only, e.g. https://acme.okta.com",
            ));
        }
        match (o.auth, &o.api_token, &o.api_token_file) {
            (OktaAuthMode::OAuth, _, _) => {}
            (OktaAuthMode::Ssws, Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    "okta.api_token",
                    "set either api_token or api_token_file, not both",
                ));
            }
            (OktaAuthMode::Ssws, None, None) => {
                return Err(ConfigError::key(
                    "okta.api_token",
                    "missing: set okta.api_token_file or Q_GROUP_SYNC_OKTA__API_TOKEN \
                     (or okta.auth = \"oauth\" for a service app)",
                ));
            }
            (OktaAuthMode::Ssws, Some(t), None) if t.expose_secret().trim().is_empty() => {
                return Err(ConfigError::key("okta.api_token", "is empty"));
            }
            _ => {}
        }
        if o.group_filter.trim().is_empty() {
            return Err(ConfigError::key("okta.group_filter", "is empty"));
        }
        if !(1..=10_000).contains(&o.page_size) {
            return Err(ConfigError::key(
                "okta.page_size",
                "must be between 1 and 10000 (200 recommended)",
            ));
        }
        if !(1..=50).contains(&o.max_concurrency) {
            return Err(ConfigError::key(
                "okta.max_concurrency",
                "must be between 1 and 50 (Okta's org-wide concurrency limit is 75)",
            ));
        }
        if !(o.rate_limit_share > 0.0 && o.rate_limit_share <= 1.0) {
            return Err(ConfigError::key(
                "okta.rate_limit_share",
                format!(
                    "{} is not a share between 0 (exclusive) and 1",
                    o.rate_limit_share
                ),
            ));
        }
        if o.request_timeout.is_zero() {
            return Err(ConfigError::key(
                "okta.request_timeout",
                "must be more than zero",
            ));
        }
        if o.max_retries > 20 {
            return Err(ConfigError::key("okta.max_retries", "must be at most 20"));
        }
        // --- OAuth service app (okta.auth = "oauth"): its keys are required with it and refused
        // without it. The key file itself is read and parsed at start-up by the Okta client.
        if o.auth == OktaAuthMode::Ssws {
            for (key, set) in [
                ("okta.client_id", o.client_id.is_some()),
                ("okta.private_key_file", o.private_key_file.is_some()),
                ("okta.key_id", o.key_id.is_some()),
            ] {
                if set {
                    return Err(ConfigError::key(
                        key,
                        "is an OAuth setting but okta.auth is \"ssws\"; set okta.auth = \"oauth\"",
                    ));
                }
            }
        } else {
            let printable = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic());
            match &o.client_id {
                None => {
                    return Err(ConfigError::key(
                        "okta.client_id",
                        "missing: the service app's Client ID (required with okta.auth = \"oauth\")",
                    ));
                }
                Some(id) if !printable(id) => {
                    return Err(ConfigError::key(
                        "okta.client_id",
                        "must be the app's Client ID, without spaces",
                    ));
                }
                Some(_) => {}
            }
            match &o.private_key_file {
                None => {
                    return Err(ConfigError::key(
                        "okta.private_key_file",
                        "missing: a PEM file with the app's private key (required with okta.auth = \"oauth\")",
                    ));
                }
                Some(path) if path.as_os_str().is_empty() => {
                    return Err(ConfigError::key("okta.private_key_file", "is empty"));
                }
                Some(_) => {}
            }
            if let Some(kid) = &o.key_id
                && !printable(kid)
            {
                return Err(ConfigError::key(
                    "okta.key_id",
                    "must be the KID shown under the app's Public keys, without spaces",
                ));
            }
            if let Some(bad) = o.scopes.iter().find(|s| !printable(s) || s.contains('"')) {
                return Err(ConfigError::key(
                    "okta.scopes",
                    format!("{bad:?} is not a scope name"),
                ));
            }
            for (scope, why) in [
                ("okta.groups.read", "listing groups and members needs it"),
                (
                    "okta.users.read",
                    "every pass lists the users whose status or email changed",
                ),
            ] {
                if !o.scopes.iter().any(|s| s == scope) {
                    return Err(ConfigError::key(
                        "okta.scopes",
                        format!(
                            "must include {scope:?} ({why}); grant it on the app's \"Okta API Scopes\" tab"
                        ),
                    ));
                }
            }
        }
        self.validate_events()?;
        for (key, patterns) in [
            ("groups.include", &self.groups.include),
            ("groups.exclude", &self.groups.exclude),
        ] {
            for p in patterns.iter() {
                globset::Glob::new(p)
                    .map_err(|e| ConfigError::key(key, format!("bad glob {p:?}: {e}")))?;
            }
        }
        if let Some(prefix) = &self.groups.name_prefix
            && let Err(problem) = crate::model::check_q_id(prefix)
            && problem != crate::model::IdProblem::Empty
        {
            return Err(ConfigError::key("groups.name_prefix", problem));
        }
        let attr = self.users.id_attribute.trim();
        if attr.is_empty() || attr != self.users.id_attribute {
            return Err(ConfigError::key(
                "users.id_attribute",
                "must be a profile attribute name without spaces",
            ));
        }
        if self.users.statuses.is_empty() {
            return Err(ConfigError::key(
                "users.statuses",
                "is empty: no user would ever be a member",
            ));
        }
        for s in &self.users.statuses {
            if !KNOWN_STATUSES.contains(&s.as_str()) {
                return Err(ConfigError::key(
                    "users.statuses",
                    format!(
                        "unknown status {s:?}; expected one of {}",
                        KNOWN_STATUSES.join(", ")
                    ),
                ));
            }
        }
        let q = &self.qbusiness;
        check_aws_id("qbusiness.application_id", &q.application_id)?;
        check_aws_id("qbusiness.index_id", &q.index_id)?;
        if let Some(ds) = &q.data_source_id {
            check_aws_id("qbusiness.data_source_id", ds)?;
        }
        let region_ok = !q.region.is_empty()
            && q.region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(ConfigError::key(
                "qbusiness.region",
                format!("{:?} is not an AWS region name", q.region),
            ));
        }
        if let Some(u) = &q.endpoint_url {
            if !matches!(u.scheme(), "http" | "https") {
                return Err(ConfigError::key(
                    "qbusiness.endpoint_url",
                    "must be an http(s) URL",
                ));
            }
            if u.scheme() == "http" && !is_loopback(u) {
                return Err(ConfigError::key(
                    "qbusiness.endpoint_url",
                    "plain http is accepted only for loopback hosts; use https",
                ));
            }
        }
        if !(1..=32).contains(&q.max_concurrency) {
            return Err(ConfigError::key(
                "qbusiness.max_concurrency",
                "must be between 1 and 32",
            ));
        }
        if !(1..=10_000).contains(&q.max_writes_per_second) {
            return Err(ConfigError::key(
                "qbusiness.max_writes_per_second",
                "must be between 1 and 10000",
            ));
        }
        if !(1..=10).contains(&q.max_attempts) {
            return Err(ConfigError::key(
                "qbusiness.max_attempts",
                "must be between 1 and 10",
            ));
        }
        if q.large_groups == LargeGroups::S3 {
            let bucket_ok = q.s3_bucket.as_deref().is_some_and(|b| {
                (3..=63).contains(&b.len())
                    && b.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'
                    })
                    && !b.starts_with(['.', '-'])
                    && !b.ends_with(['.', '-'])
            });
            if !bucket_ok {
                return Err(ConfigError::key(
                    "qbusiness.s3_bucket",
                    "is required with large_groups = \"s3\" and must be an S3 bucket name (3-63 of a-z 0-9 . -)",
                ));
            }
            if !q.role_arn.as_deref().is_some_and(|a| a.starts_with("arn:")) {
                return Err(ConfigError::key(
                    "qbusiness.role_arn",
                    "is required with large_groups = \"s3\": the ARN of the role Q Business uses to read the member files",
                ));
            }
            if q.s3_prefix.chars().count() > 900 {
                return Err(ConfigError::key(
                    "qbusiness.s3_prefix",
                    "is too long (S3 keys are at most 1024 characters)",
                ));
            }
        }
        if !(2..=1000).contains(&q.inline_member_limit) {
            return Err(ConfigError::key(
                "qbusiness.inline_member_limit",
                "must be between 2 and 1000 (PutGroup's inline limit)",
            ));
        }
        if q.verify_sample_percent > 100 {
            return Err(ConfigError::key(
                "qbusiness.verify_sample_percent",
                "must be between 0 and 100",
            ));
        }
        if q.verify_timeout.is_zero() {
            return Err(ConfigError::key(
                "qbusiness.verify_timeout",
                "must be more than zero",
            ));
        }
        let sf = &self.safety;
        for (key, v) in [
            (
                "safety.max_group_deletes_percent",
                sf.max_group_deletes_percent,
            ),
            (
                "safety.max_member_removals_percent",
                sf.max_member_removals_percent,
            ),
            (
                "safety.max_group_count_drop_percent",
                sf.max_group_count_drop_percent,
            ),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(ConfigError::key(
                    key,
                    format!("{v} is not a percentage between 0 and 100"),
                ));
            }
        }
        self.validate_state()?;
        let cron = self.schedule.cron_with_seconds();
        crate::schedule::parse(&cron).map_err(|e| {
            ConfigError::key(
                "schedule.cron",
                format!(
                    "{:?} is not a cron expression (sec min hour day month weekday): {e}",
                    self.schedule.cron
                ),
            )
        })?;
        let s = &self.server;
        if s.admin_token.is_some() && s.admin_token_file.is_some() {
            return Err(ConfigError::key(
                "server.admin_token",
                "set either admin_token or admin_token_file, not both",
            ));
        }
        if let Some(t) = &s.admin_token
            && t.expose_secret().trim().len() < 16
        {
            return Err(ConfigError::key(
                "server.admin_token",
                "must be at least 16 characters",
            ));
        }
        if s.shutdown_grace.is_zero() {
            return Err(ConfigError::key(
                "server.shutdown_grace",
                "must be more than zero",
            ));
        }
        Ok(())
    }

    /// `[okta.events]`: values always (a typo is a typo), scopes only when enabled.
    fn validate_events(&self) -> Result<(), ConfigError> {
        let o = &self.okta;
        let e = &o.events;
        if !(1..=1000).contains(&e.page_size) {
            return Err(ConfigError::key(
                "okta.events.page_size",
                format!(
                    "{} is out of range: the System Log takes a limit of 1 to 1000",
                    e.page_size
                ),
            ));
        }
        if e.max_delay.is_zero() {
            return Err(ConfigError::key(
                "okta.events.max_delay",
                "must be more than zero",
            ));
        }
        if e.poll_interval.is_zero() || e.poll_interval > e.max_delay {
            return Err(ConfigError::key(
                "okta.events.poll_interval",
                format!(
                    "{} must be more than zero and at most okta.events.max_delay ({})",
                    humantime::format_duration(e.poll_interval),
                    humantime::format_duration(e.max_delay)
                ),
            ));
        }
        // Polls per minute must fit this process's share of the System Log bucket.
        let allowance = SYSTEM_LOG_LIMIT_PER_MINUTE * o.rate_limit_share;
        let per_minute = 60.0 / e.poll_interval.as_secs_f64();
        if per_minute > allowance {
            let min = Duration::from_millis((60_000.0 / allowance).ceil() as u64);
            return Err(ConfigError::key(
                "okta.events.poll_interval",
                format!(
                    "{} polls {per_minute:.0} times a minute, more than okta.rate_limit_share \
                     ({}) of the System Log's {SYSTEM_LOG_LIMIT_PER_MINUTE}/min bucket allows \
                     ({allowance:.0}/min); use at least {}",
                    humantime::format_duration(e.poll_interval),
                    o.rate_limit_share,
                    humantime::format_duration(min)
                ),
            ));
        }
        if e.lookback > SYSTEM_LOG_RETENTION {
            return Err(ConfigError::key(
                "okta.events.lookback",
                "must be at most 90 days (the System Log's retention)",
            ));
        }
        if e.enabled && o.auth == OktaAuthMode::OAuth {
            let missing: Vec<&str> = crate::source::events::required_scopes()
                .into_iter()
                .filter(|need| !o.scopes.iter().any(|s| s == need))
                .collect();
            if !missing.is_empty() {
                return Err(ConfigError::key(
                    "okta.scopes",
                    format!(
                        "okta.events.enabled needs {} too (the System Log and users' groups): \
                         add {} to okta.scopes and grant {} on the app's \"Okta API Scopes\" tab",
                        missing.join(" and "),
                        missing
                            .iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if missing.len() == 1 { "it" } else { "them" }
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_state(&self) -> Result<(), ConfigError> {
        let st = &self.state;
        if st.path.as_os_str().is_empty() {
            return Err(ConfigError::key("state.path", "is empty"));
        }
        if st.backend == StateBackend::Sqlite {
            for (key, set) in [
                ("state.url", st.url.is_some()),
                ("state.url_file", st.url_file.is_some()),
                ("state.tls_ca_file", st.tls_ca_file.is_some()),
            ] {
                if set {
                    return Err(ConfigError::key(
                        key,
                        "is a PostgreSQL setting but state.backend is \"sqlite\"; set state.backend = \"postgres\"",
                    ));
                }
            }
            return Ok(());
        }
        match (&st.url, &st.url_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    "state.url",
                    "set either url or url_file, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::key(
                    "state.url",
                    "missing: state.backend = \"postgres\" needs state.url_file or Q_GROUP_SYNC_STATE__URL",
                ));
            }
            _ => {}
        }
        if !(1..=64).contains(&st.pool_size) {
            return Err(ConfigError::key(
                "state.pool_size",
                "must be between 1 and 64",
            ));
        }
        let ident_ok = st.schema.len() <= 63
            && st
                .schema
                .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && st
                .schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !st.schema.starts_with("pg_");
        if !ident_ok {
            return Err(ConfigError::key(
                "state.schema",
                format!(
                    "{:?} is not a schema name: lowercase letters, digits and _, at most 63, not starting with a digit or pg_",
                    st.schema
                ),
            ));
        }
        if st.leader_takeover < Duration::from_secs(2)
            || st.leader_takeover > Duration::from_secs(600)
        {
            return Err(ConfigError::key(
                "state.leader_takeover",
                "must be between 2s and 10m",
            ));
        }
        if st.tls_ca_file.is_some() && st.tls != PgTls::VerifyFull {
            return Err(ConfigError::key(
                "state.tls_ca_file",
                "is used only with state.tls = \"verify-full\"",
            ));
        }
        if let Some(r) = &st.replica
            && (r.trim().is_empty() || r.len() > 200 || r.chars().any(char::is_control))
        {
            return Err(ConfigError::key(
                "state.replica",
                "must be a name of 1 to 200 printable characters",
            ));
        }
        Ok(())
    }

    /// The PEM text of `okta.private_key_file` (OAuth only); parsed by the Okta client.
    pub fn okta_private_key_pem(&self) -> Result<SecretString, ConfigError> {
        let path = self
            .okta
            .private_key_file
            .as_ref()
            .ok_or_else(|| ConfigError::key("okta.private_key_file", "missing"))?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::key(
                "okta.private_key_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Ok(SecretString::from(text))
    }

    /// The admin token for POST /sync, if one is configured.
    pub fn admin_token(&self) -> Result<Option<SecretString>, ConfigError> {
        if let Some(t) = &self.server.admin_token {
            return Ok(Some(SecretString::from(
                t.expose_secret().trim().to_owned(),
            )));
        }
        let Some(path) = &self.server.admin_token_file else {
            return Ok(None);
        };
        let token = read_secret_file("server.admin_token_file", path)?;
        if token.expose_secret().len() < 16 {
            return Err(ConfigError::key(
                "server.admin_token_file",
                format!("{} holds fewer than 16 characters", path.display()),
            ));
        }
        Ok(Some(token))
    }

    /// The Okta token, read from `okta.api_token` or `okta.api_token_file`.
    pub fn okta_token(&self) -> Result<SecretString, ConfigError> {
        if let Some(t) = &self.okta.api_token {
            return Ok(t.clone());
        }
        let path = self
            .okta
            .api_token_file
            .as_ref()
            .ok_or_else(|| ConfigError::key("okta.api_token", "missing"))?;
        read_secret_file("okta.api_token_file", path)
    }
}

/// Reads a one-line secret from a file (a trailing newline is fine).
fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::key(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::key(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    if secret.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ConfigError::key(
            key,
            format!(
                "{} holds more than one line or spaces; it must hold only the secret",
                path.display()
            ),
        ));
    }
    Ok(SecretString::from(secret.to_owned()))
}

fn check_aws_id(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = value.len() == 36
        && value
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && c == '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::key(
            key,
            format!("{value:?} is not a 36-character Q Business id"),
        ))
    }
}

/// True for `localhost`, 127.0.0.0/8 and `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// One line per problem, each naming the key path and where the value came from.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let source = match (&e.metadata, &e.profile) {
                (Some(md), _) => match &md.source {
                    Some(src) => format!(" (in {src})"),
                    None => format!(" (in {})", md.name),
                },
                _ => String::new(),
            };
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [okta]
        org_url = "https://acme.okta.com"
        api_token = "00secret"
        [qbusiness]
        application_id = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
        index_id = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
        region = "us-east-1"
    "#;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(Figment::from(Toml::string(toml)))
    }

    #[test]
    fn example_config_parses() {
        let example = include_str!("../config/example.toml");
        // The example leaves the token out (it belongs in a secret); supply one.
        let figment = Figment::from(Toml::string(example))
            .merge(Serialized::default("okta.api_token", "00example"));
        let config = Config::from_figment(figment).expect("example stays valid");
        let defaults = parse(MINIMAL).expect("minimal parses");
        assert_eq!(config.okta.page_size, defaults.okta.page_size);
        assert_eq!(config.okta.group_filter, defaults.okta.group_filter);
        assert_eq!(config.users.statuses, defaults.users.statuses);
        assert_eq!(config.state.path, defaults.state.path);
        let (example, default) = (&config.okta.events, &defaults.okta.events);
        assert_eq!(
            (
                example.enabled,
                example.poll_interval,
                example.max_delay,
                example.lookback,
                example.page_size
            ),
            (
                default.enabled,
                default.poll_interval,
                default.max_delay,
                default.lookback,
                default.page_size
            ),
            "the example shows the defaults"
        );
    }

    #[test]
    fn deployment_configs_parse() {
        for (name, text) in [
            (
                "kubernetes base",
                include_str!("../deploy/kubernetes/config.toml"),
            ),
            (
                "kubernetes ha component",
                include_str!("../deploy/kubernetes/components/ha/config.toml"),
            ),
        ] {
            let c = Config::from_figment(Figment::from(Toml::string(text)))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                c.state.backend == StateBackend::Postgres,
                name.contains("ha"),
                "{name}"
            );
        }
    }

    #[test]
    fn postgres_state_is_checked_and_its_url_is_a_secret() {
        let pg = |state: &str| {
            parse(&format!(
                "{MINIMAL}\n[state]\nbackend = \"postgres\"\n{state}\n"
            ))
        };
        let c = pg("url = \"postgres://u:pw-secret@db.example.test/app\"").expect("parses");
        assert_eq!(c.state.tls, PgTls::VerifyFull);
        assert_eq!(c.state.schema, "q_group_sync");
        assert_eq!(c.state.leader_takeover, Duration::from_secs(15));
        assert!(!format!("{c:?}").contains("pw-secret"));
        assert!(
            !serde_json::to_string(&c)
                .expect("json")
                .contains("pw-secret")
        );
        for (state, key) in [
            ("", "state.url"),
            ("url = \"postgres://h/d\"\nurl_file = \"/x\"", "state.url"),
            ("url_file = \"/x\"\nschema = \"Bad-Name\"", "state.schema"),
            ("url_file = \"/x\"\nschema = \"pg_catalog\"", "state.schema"),
            ("url_file = \"/x\"\npool_size = 0", "state.pool_size"),
            (
                "url_file = \"/x\"\nleader_takeover = \"1s\"",
                "state.leader_takeover",
            ),
            ("url_file = \"/x\"\ntls = \"prefer\"", "state.tls"),
            (
                "url_file = \"/x\"\ntls = \"require\"\ntls_ca_file = \"/ca\"",
                "state.tls_ca_file",
            ),
        ] {
            let err = pg(state).expect_err(key);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        // PostgreSQL keys with the SQLite backend are a mistake, not silently ignored.
        let err = parse(&format!("{MINIMAL}\n[state]\nurl_file = \"/x\"\n")).expect_err("sqlite");
        assert!(err.to_string().contains("state.backend"), "{err}");
        // url_file: read on demand, one line.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://u:p@h/d\n").expect("write");
        let c = pg(&format!("url_file = {:?}", path)).expect("parses");
        assert_eq!(
            c.state.postgres_url().expect("reads").expose_secret(),
            "postgres://u:p@h/d"
        );
        std::fs::write(&path, "postgres://u:p@h/d\nmore\n").expect("write");
        let err = c.state.postgres_url().expect_err("two lines");
        assert!(err.to_string().contains("state.url_file"), "{err}");
    }

    #[test]
    fn defaults_apply() {
        let c = parse(MINIMAL).expect("parses");
        assert_eq!(c.okta.group_filter, r#"type eq "OKTA_GROUP""#);
        assert_eq!(c.okta.page_size, 200);
        assert_eq!(c.groups.include, vec!["*"]);
        assert_eq!(c.users.id_attribute, "email");
        assert_eq!(
            c.users.statuses,
            vec!["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"]
        );
        assert!(c.users.fold_subaddress);
        assert_eq!(c.qbusiness.inline_member_limit, 1000);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(&format!("{MINIMAL}\n[state]\npath = \"x.db\"\nbogus = 1\n"))
            .expect_err("rejected");
        assert!(err.to_string().contains("bogus"), "{err}");
        assert!(err.to_string().contains("state"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let toml = MINIMAL.replace("[qbusiness]", "page_size = \"many\"\n[qbusiness]");
        let err = parse(&toml).expect_err("rejected");
        assert!(err.to_string().contains("okta.page_size"), "{err}");
    }

    #[test]
    fn http_only_for_loopback() {
        let err = parse(&MINIMAL.replace("https://acme.okta.com", "http://acme.okta.com"))
            .expect_err("rejected");
        assert!(err.to_string().contains("okta.org_url"), "{err}");
        parse(&MINIMAL.replace("https://acme.okta.com", "http://127.0.0.1:8080"))
            .expect("loopback ok");
        parse(&MINIMAL.replace("https://acme.okta.com", "http://localhost:8080"))
            .expect("localhost ok");
    }

    #[test]
    fn bad_values_are_named() {
        for (from, to, key) in [
            (
                "region = \"us-east-1\"",
                "region = \"US EAST\"",
                "qbusiness.region",
            ),
            (
                "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
                "short",
                "qbusiness.application_id",
            ),
            (
                "[qbusiness]",
                "page_size = 0\n[qbusiness]",
                "okta.page_size",
            ),
            (
                "[qbusiness]",
                "[users]\nstatuses = [\"ACTIV\"]\n[qbusiness]",
                "users.statuses",
            ),
            (
                "[qbusiness]",
                "[groups]\ninclude = [\"[\"]\n[qbusiness]",
                "groups.include",
            ),
        ] {
            let err = parse(&MINIMAL.replace(from, to)).expect_err(key);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn token_is_not_in_debug() {
        let c = parse(MINIMAL).expect("parses");
        assert!(!format!("{c:?}").contains("00secret"));
        assert!(
            !serde_json::to_string(&c)
                .expect("serialises")
                .contains("00secret")
        );
    }

    #[test]
    fn okta_auth_defaults_to_ssws_and_oauth_keys_have_defaults() {
        let c = parse(MINIMAL).expect("parses");
        assert_eq!(c.okta.auth, OktaAuthMode::Ssws);
        assert_eq!(c.okta.scopes, vec!["okta.groups.read", "okta.users.read"]);
        assert!(c.okta.dpop);
        assert_eq!(
            (c.okta.client_id.as_ref(), c.okta.key_id.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn oauth_needs_client_id_and_key_file_but_no_api_token() {
        let oauth = MINIMAL.replace(
            "api_token = \"00secret\"",
            "auth = \"oauth\"\nclient_id = \"0oa1\"\nprivate_key_file = \"/run/k.pem\"",
        );
        let c = parse(&oauth).expect("oauth parses without an API token");
        assert_eq!(c.okta.auth, OktaAuthMode::OAuth);
        for (from, to, key) in [
            ("client_id = \"0oa1\"\n", "", "okta.client_id"),
            (
                "client_id = \"0oa1\"",
                "client_id = \"0oa 1\"",
                "okta.client_id",
            ),
            (
                "private_key_file = \"/run/k.pem\"",
                "",
                "okta.private_key_file",
            ),
            (
                "auth = \"oauth\"",
                "auth = \"oauth\"\nkey_id = \"\"",
                "okta.key_id",
            ),
            (
                "auth = \"oauth\"",
                "auth = \"oauth\"\nscopes = [\"okta.users.read\"]",
                "okta.scopes",
            ),
            (
                "auth = \"oauth\"",
                "auth = \"oauth\"\nscopes = [\"okta.groups.read okta.users.read\"]",
                "okta.scopes",
            ),
            ("auth = \"oauth\"", "auth = \"bearer\"", "okta.auth"),
        ] {
            let err = parse(&oauth.replace(from, to)).expect_err(key);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        // OAuth keys without okta.auth = "oauth" are a mistake, not silently ignored.
        let err = parse(&MINIMAL.replace("[qbusiness]", "client_id = \"0oa1\"\n[qbusiness]"))
            .expect_err("ssws with client_id");
        assert!(err.to_string().contains("okta.auth = \"oauth\""), "{err}");
        // The key file is read on demand, and a missing one names the key.
        let err = c.okta_private_key_pem().expect_err("no such file");
        assert!(err.to_string().contains("okta.private_key_file"), "{err}");
    }

    #[test]
    fn events_default_off_with_documented_defaults() {
        let c = parse(MINIMAL).expect("parses");
        let e = &c.okta.events;
        assert!(!e.enabled);
        assert_eq!(e.poll_interval, Duration::from_secs(15));
        assert_eq!(e.max_delay, Duration::from_secs(60));
        assert_eq!(e.lookback, Duration::from_secs(300));
        assert_eq!(e.page_size, 1000);
        let on = parse(&format!(
            "{MINIMAL}\n[okta.events]\nenabled = true\npoll_interval = \"5s\"\nmax_delay = \"30s\"\nlookback = \"1h\"\npage_size = 200\n"
        ))
        .expect("parses");
        assert!(on.okta.events.enabled);
        assert_eq!(on.okta.events.lookback, Duration::from_secs(3600));
    }

    #[test]
    fn bad_event_settings_are_named() {
        for (events, key, needle) in [
            ("page_size = 0", "okta.events.page_size", "1 to 1000"),
            ("page_size = 1001", "okta.events.page_size", "1 to 1000"),
            (
                "poll_interval = \"2m\"",
                "okta.events.poll_interval",
                "max_delay",
            ),
            (
                "poll_interval = \"0s\"",
                "okta.events.poll_interval",
                "more than zero",
            ),
            (
                "poll_interval = \"500ms\"",
                "okta.events.poll_interval",
                "60/min",
            ),
            (
                "max_delay = \"0s\"",
                "okta.events.max_delay",
                "more than zero",
            ),
            ("lookback = \"91days\"", "okta.events.lookback", "retention"),
            ("bogus = 1", "bogus", "okta.events"),
        ] {
            let toml = format!("{MINIMAL}\n[okta.events]\n{events}\n");
            let err = parse(&toml).expect_err(events).to_string();
            assert!(err.contains(key) && err.contains(needle), "{events}: {err}");
        }
        // 1 s is exactly half of 120/min; with the whole bucket, 500 ms fits.
        parse(&format!(
            "{MINIMAL}\n[okta.events]\npoll_interval = \"1s\"\n"
        ))
        .expect("fits");
        let toml = MINIMAL.replace("[qbusiness]", "rate_limit_share = 1.0\n[qbusiness]");
        parse(&format!(
            "{toml}\n[okta.events]\npoll_interval = \"500ms\"\n"
        ))
        .expect("fits");
    }

    #[test]
    fn events_with_oauth_need_the_logs_scope_too() {
        let oauth = MINIMAL.replace(
            "api_token = \"00secret\"",
            "auth = \"oauth\"\nclient_id = \"0oa1\"\nprivate_key_file = \"/run/k.pem\"",
        );
        parse(&oauth).expect("events off: the default scopes are enough");
        let err = parse(&format!("{oauth}\n[okta.events]\nenabled = true\n"))
            .expect_err("missing scopes")
            .to_string();
        assert!(err.contains("okta.scopes"), "{err}");
        assert!(err.contains("okta.logs.read"), "{err}");
        let some = oauth.replace(
            "private_key_file = \"/run/k.pem\"",
            "private_key_file = \"/run/k.pem\"\nscopes = [\"okta.groups.read\", \"okta.logs.read\"]",
        );
        let err = parse(&format!("{some}\n[okta.events]\nenabled = true\n"))
            .expect_err("missing users scope")
            .to_string();
        assert!(
            err.contains("okta.users.read") && !err.contains("needs okta.logs.read"),
            "{err}"
        );
        let all = oauth.replace(
            "private_key_file = \"/run/k.pem\"",
            "private_key_file = \"/run/k.pem\"\nscopes = [\"okta.groups.read\", \"okta.logs.read\", \"okta.users.read\"]",
        );
        parse(&format!("{all}\n[okta.events]\nenabled = true\n")).expect("all scopes");
    }

    #[test]
    fn token_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "00filetoken\n").expect("write");
        let toml = MINIMAL.replace(
            "api_token = \"00secret\"",
            &format!("api_token_file = {:?}", path),
        );
        let c = parse(&toml).expect("parses");
        assert_eq!(
            c.okta_token().expect("reads").expose_secret(),
            "00filetoken"
        );
        std::fs::remove_file(&path).expect("rm");
        let err = c.okta_token().expect_err("missing file");
        assert!(err.to_string().contains("okta.api_token_file"), "{err}");
    }
}
