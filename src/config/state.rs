//! `[state]`: where the snapshot of what was applied lives (SQLite or PostgreSQL), and who leads.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{ConfigError, redacted};

/// `[state]`: where the snapshot of what was applied lives, and (PostgreSQL) who leads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite` (one replica, a file on a volume) or `postgres` (shared, two or more replicas).
    pub backend: StateBackend,
    /// SQLite snapshot file; created on first use.
    pub path: PathBuf,
    /// PostgreSQL: connection URL (`postgres://user:password@host:5432/db`). A secret: prefer
    /// `url_file` or `Q_GROUP_SYNC_STATE__URL`.
    #[serde(serialize_with = "redacted")]
    pub url: Option<SecretString>,
    /// PostgreSQL: file holding the connection URL (a mounted secret).
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: TLS to the server: `verify-full` (certificate and host name checked),
    /// `require` (encrypted, certificate not checked) or `disable` (loopback only).
    pub tls: PgTls,
    /// PostgreSQL: PEM file of CA certificates for `verify-full` (e.g. the RDS bundle);
    /// default: the system's CA store.
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL: connections in the pool for snapshot reads and writes (the leader lock has
    /// its own connection).
    pub pool_size: usize,
    /// PostgreSQL: schema holding q-group-sync's tables; created if missing.
    pub schema: String,
    /// PostgreSQL: how soon a standby takes over after the leader's connection drops.
    #[serde(with = "humantime_serde")]
    pub leader_takeover: Duration,
    /// This replica's name in the leader record and /status. Default: `POD_NAME`, else
    /// `HOSTNAME`, else the host name.
    pub replica: Option<String>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            path: PathBuf::from("/var/lib/q-group-sync/snapshot.db"),
            url: None,
            url_file: None,
            tls: PgTls::default(),
            tls_ca_file: None,
            pool_size: 4,
            schema: "q_group_sync".to_owned(),
            leader_takeover: Duration::from_secs(15),
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

    /// The backend's keys: PostgreSQL ones refused with SQLite, required and ranged with PostgreSQL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let st = self;
        if st.path.as_os_str().is_empty() {
            return Err(ConfigError::key("state.path", "is empty"));
        }
        if st.backend == StateBackend::Sqlite {
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
}
