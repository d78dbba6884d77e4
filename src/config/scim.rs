//! `[scim]`: the SCIM 2.0 service provider that identity providers push users and groups to
//! (the second source, instead of polling Okta).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{ConfigError, read_secret_file, redacted};

/// The shortest SCIM bearer token accepted: it is the only thing between the network and every
/// group's membership.
pub const MIN_SCIM_TOKEN_LEN: usize = 32;

/// The largest `scim.max_body` accepted (a SCIM request of an IdP is a few KiB; a PATCH of 100
/// members about 10 KiB).
pub const MAX_SCIM_BODY: usize = 8 * 1024 * 1024;

/// Which attribute of a SCIM user becomes the Q Business user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ScimUserId {
    /// The primary email (`emails[primary eq true].value`), else the first email, else
    /// `userName`.
    #[default]
    #[serde(rename = "email")]
    Email,
    /// `userName`.
    #[serde(rename = "userName")]
    UserName,
}

impl ScimUserId {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimUserId::Email => "email",
            ScimUserId::UserName => "userName",
        }
    }
}

/// `[scim]`: where the SCIM listener runs and how it authenticates the IdP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScimConfig {
    /// Address of the SCIM listener (its own port, base path `/scim/v2`).
    pub listen: SocketAddr,
    /// The bearer token the IdP sends (prefer `token_file` or `Q_GROUP_SYNC_SCIM__TOKEN`).
    #[serde(serialize_with = "redacted")]
    pub token: Option<SecretString>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// The SCIM user attribute that becomes the Q user id: `"email"` or `"userName"`.
    pub user_id: ScimUserId,
    /// A pass starts once no SCIM change has arrived for this long (an IdP's burst of member
    /// PATCHes to one group becomes one PutGroup).
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// ... but no later than this after the first change not yet applied (a steady stream of
    /// changes, e.g. an initial push, still reaches Q).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Largest request body, in bytes; a larger one gets 413 before it is read.
    pub max_body: usize,
    /// SCIM connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// A connection that has not sent a request's complete headers within this is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
}

impl Default for ScimConfig {
    fn default() -> Self {
        ScimConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            token: None,
            token_file: None,
            user_id: ScimUserId::Email,
            settle: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
            max_body: 512 * 1024,
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ScimConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    "scim.token",
                    "set either scim.token or scim.token_file, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::key(
                    "scim.token",
                    "missing: set scim.token_file or Q_GROUP_SYNC_SCIM__TOKEN (the bearer token \
                     the IdP sends; at least 32 characters, e.g. `openssl rand -hex 32`)",
                ));
            }
            (Some(t), None) if t.expose_secret().trim().len() < MIN_SCIM_TOKEN_LEN => {
                return Err(ConfigError::key(
                    "scim.token",
                    format!("holds fewer than {MIN_SCIM_TOKEN_LEN} characters"),
                ));
            }
            _ => {}
        }
        if self.settle.is_zero() {
            return Err(ConfigError::key("scim.settle", "must be more than zero"));
        }
        if self.max_delay < self.settle {
            return Err(ConfigError::key(
                "scim.max_delay",
                "must be at least scim.settle",
            ));
        }
        if self.max_delay > Duration::from_secs(3600) {
            return Err(ConfigError::key("scim.max_delay", "must be at most 1h"));
        }
        if !(1024..=MAX_SCIM_BODY).contains(&self.max_body) {
            return Err(ConfigError::key(
                "scim.max_body",
                format!(
                    "{} is out of range: 1024 to {MAX_SCIM_BODY} bytes",
                    self.max_body
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::key(
                "scim.max_connections",
                "must be at least 1",
            ));
        }
        if self.header_read_timeout.is_zero() {
            return Err(ConfigError::key(
                "scim.header_read_timeout",
                "must be more than zero",
            ));
        }
        Ok(())
    }

    /// The bearer token, from `scim.token` or `scim.token_file`.
    pub fn token(&self) -> Result<SecretString, ConfigError> {
        if let Some(t) = &self.token {
            return Ok(SecretString::from(t.expose_secret().trim().to_owned()));
        }
        let Some(path) = &self.token_file else {
            return Err(ConfigError::key("scim.token", "missing"));
        };
        let token = read_secret_file("scim.token_file", path)?;
        if token.expose_secret().len() < MIN_SCIM_TOKEN_LEN {
            return Err(ConfigError::key(
                "scim.token_file",
                format!(
                    "{} holds fewer than {MIN_SCIM_TOKEN_LEN} characters",
                    path.display()
                ),
            ));
        }
        Ok(token)
    }
}
