//! `[server]` and `[schedule]`: the settings of `serve`: its HTTP port and when passes run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{ConfigError, redacted};
use crate::schedule::Schedule;

/// The schedule when `[schedule] cron` is not set: every 15 minutes.
pub const DEFAULT_CRON: &str = "0 */15 * * * *";

/// `[schedule]`: when `serve` runs passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron expression, UTC, with a seconds field (`0 */15 * * * *`); a 5-field expression
    /// gets second 0. Parsed at load, so a bad expression fails start-up.
    pub cron: Schedule,
    /// Run a pass as soon as `serve` starts.
    pub run_on_start: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: Schedule::parse(DEFAULT_CRON).expect("the default cron expression parses"),
            run_on_start: true,
        }
    }
}

impl ScheduleConfig {
    /// The cron expression with a seconds field, as the scheduler takes it.
    pub fn cron_with_seconds(&self) -> String {
        self.cron.with_seconds().to_owned()
    }
}

/// The longest `server.shutdown_grace`; orchestrators need their own grace period above it.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(600);

/// `[server]`: the one HTTP port of `serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for /metrics, /livez, /readyz, /status and POST /sync.
    pub listen: SocketAddr,
    /// Bearer token for POST /sync. Without it (and without the file) the endpoint is disabled.
    #[serde(serialize_with = "redacted")]
    pub admin_token: Option<SecretString>,
    /// File holding the admin token.
    pub admin_token_file: Option<PathBuf>,
    /// How long a shutdown may take to let writes in flight finish and be recorded.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A connection that has not sent a request's complete headers within this is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request not answered within this gets 503 (a `dry_run` waiting for a long pass, too).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// HTTP connections open at once (one request each); a new one beyond it (or beyond half
    /// of it from one address) closes the oldest connection not in the middle of a request.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            admin_token: None,
            admin_token_file: None,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_connections: 64,
        }
    }
}

impl ServerConfig {
    /// One admin token source, long enough; a grace period.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
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
        for (key, d) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.request_timeout", s.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::key(key, "must be more than zero"));
            }
        }
        if s.max_connections == 0 {
            return Err(ConfigError::key(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        if s.shutdown_grace.is_zero() || s.shutdown_grace > MAX_SHUTDOWN_GRACE {
            return Err(ConfigError::key(
                "server.shutdown_grace",
                "must be between 1s and 10m, and below the orchestrator's grace period \
                 (terminationGracePeriodSeconds, ECS stopTimeout, compose stop_grace_period) \
                 by at least 10s",
            ));
        }
        Ok(())
    }
}
