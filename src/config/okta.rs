//! `[okta]` and `[okta.events]`: where and how groups are read, and the System Log change feed.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, check_endpoint, read_secret_file, redacted};

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
    /// `limit` sent on every list call except member reads.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// `limit` sent on member reads (`GET /api/v1/groups/{id}/users`; 1000 is the endpoint's
    /// documented default). Okta may answer fewer per page; a page that times out or fails
    /// with a 5xx is asked again smaller, and the smaller size is kept for the rest of the pass.
    #[serde(default = "default_member_page_size")]
    pub member_page_size: u32,
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
    /// OAuth: the app's private key as PEM text, for platforms that hand secrets over as
    /// environment variables (`Q_GROUP_SYNC_OKTA__PRIVATE_KEY` from ECS and Secrets Manager).
    /// Exactly one of this and `private_key_file`.
    #[serde(default, serialize_with = "redacted")]
    pub private_key: Option<SecretString>,
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

/// `okta.auth` with the keys of its mode, checked and read: what the Okta client authenticates
/// with. The TOML keeps its flat shape (`client_id`, `private_key_file`, ... next to `auth`).
#[derive(Debug, Clone)]
pub enum OktaCredentials {
    /// `auth = "ssws"`: the API token, from `api_token` or `api_token_file`.
    Ssws { token: SecretString },
    /// `auth = "oauth"`: the service app.
    OAuth {
        client_id: String,
        /// Where the key came from, for error messages: `okta.private_key_file <path>` or
        /// `okta.private_key`.
        private_key_source: String,
        /// The PEM text of the key; parsed by the Okta client.
        private_key_pem: SecretString,
        key_id: Option<String>,
        scopes: Vec<String>,
        dpop: bool,
    },
}

/// `[okta.events]`: poll Okta's System Log and sync the groups that changed between passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Poll the System Log (needs okta.logs.read and okta.users.read with OAuth).
    pub enabled: bool,
    /// How often the System Log is polled (when caught up). Default: 5 s, or `max_delay` when
    /// that is shorter; read it with [`EventsConfig::poll_interval`].
    #[serde(with = "humantime_serde::option")]
    pub poll_interval: Option<Duration>,
    /// Longest time from a change in Okta to its sync into Q Business.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// How far back the first poll (with no saved position) starts.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// Events per poll (`limit`, 1 to 1000).
    pub page_size: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: false,
            poll_interval: None,
            max_delay: Duration::from_secs(60),
            lookback: Duration::from_secs(300),
            page_size: 1000,
        }
    }
}

/// `okta.events.poll_interval` when not set, unless `max_delay` is shorter.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

impl EventsConfig {
    /// `poll_interval` as set, else `min(5 s, max_delay)`.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
            .unwrap_or_else(|| DEFAULT_POLL_INTERVAL.min(self.max_delay))
    }
}

/// The OAuth scopes `[okta.events]` needs beyond listing groups: the System Log, and the users
/// whose groups are read again.
pub const EVENTS_SCOPES: [&str; 2] = ["okta.logs.read", "okta.users.read"];

/// The System Log bucket's limit on Workforce orgs (per minute); other plans have less.
pub const SYSTEM_LOG_LIMIT_PER_MINUTE: f64 = 120.0;
/// The System Log keeps 90 days.
const SYSTEM_LOG_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

fn default_group_filter() -> String {
    r#"type eq "OKTA_GROUP""#.to_owned()
}
fn default_page_size() -> u32 {
    200
}
fn default_member_page_size() -> u32 {
    1000
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
fn default_true() -> bool {
    true
}

impl OktaConfig {
    /// `[okta]` on its own: the org URL, credentials for the chosen `auth`, ranges, events.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let o = self;
        check_endpoint("okta.org_url", &o.org_url)?;
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
        if !(1..=10_000).contains(&o.member_page_size) {
            return Err(ConfigError::key(
                "okta.member_page_size",
                "must be between 1 and 10000 (1000, the endpoint's default, recommended)",
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
                    "{} is out of range: a share above 0 and at most 1 (0.5 leaves half of each bucket to other integrations)",
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
            return Err(ConfigError::key(
                "okta.max_retries",
                format!("{} is out of range: 0 to 20 retries", o.max_retries),
            ));
        }
        // --- OAuth service app (okta.auth = "oauth"): its keys are required with it and refused
        // without it. The key file itself is read and parsed at start-up by the Okta client.
        if o.auth == OktaAuthMode::OAuth {
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
            match (&o.private_key_file, &o.private_key) {
                (None, None) => {
                    return Err(ConfigError::key(
                        "okta.private_key_file",
                        "missing: a PEM file with the app's private key (required with okta.auth = \"oauth\"; \
                         or the PEM text itself in okta.private_key / Q_GROUP_SYNC_OKTA__PRIVATE_KEY)",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(ConfigError::key(
                        "okta.private_key",
                        "set either private_key_file or private_key, not both",
                    ));
                }
                (Some(path), None) if path.as_os_str().is_empty() => {
                    return Err(ConfigError::key("okta.private_key_file", "is empty"));
                }
                (None, Some(pem)) if pem.expose_secret().trim().is_empty() => {
                    return Err(ConfigError::key("okta.private_key", "is empty"));
                }
                _ => {}
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
        self.validate_events()
    }

    /// The credentials of `okta.auth`, reading the token or key file now. Call after
    /// [`OktaConfig::validate`]: a missing key is reported, but not why it is needed.
    pub fn credentials(&self) -> Result<OktaCredentials, ConfigError> {
        Ok(match self.auth {
            OktaAuthMode::Ssws => OktaCredentials::Ssws {
                token: self.ssws_token()?,
            },
            OktaAuthMode::OAuth => OktaCredentials::OAuth {
                private_key_pem: self.private_key_pem()?,
                private_key_source: match &self.private_key_file {
                    Some(path) => format!("okta.private_key_file: {}", path.display()),
                    None => "okta.private_key:".to_owned(),
                },
                client_id: self.client_id.clone().unwrap_or_default(),
                key_id: self.key_id.clone(),
                scopes: self.scopes.clone(),
                dpop: self.dpop,
            },
        })
    }

    /// The PEM text of `okta.private_key`, or of the file `okta.private_key_file` (OAuth only);
    /// parsed by the Okta client.
    pub fn private_key_pem(&self) -> Result<SecretString, ConfigError> {
        if let Some(pem) = &self.private_key {
            // A one-line value with `\n` escapes (env files cannot hold line breaks) is the
            // same PEM text with its line breaks written out.
            let text = pem.expose_secret();
            if !text.contains('\n') && text.contains("\\n") {
                return Ok(SecretString::from(text.replace("\\n", "\n")));
            }
            return Ok(pem.clone());
        }
        let path = self
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

    /// The Okta token, read from `okta.api_token` or `okta.api_token_file`.
    pub fn ssws_token(&self) -> Result<SecretString, ConfigError> {
        if let Some(t) = &self.api_token {
            return Ok(t.clone());
        }
        let path = self
            .api_token_file
            .as_ref()
            .ok_or_else(|| ConfigError::key("okta.api_token", "missing"))?;
        read_secret_file("okta.api_token_file", path)
    }

    /// `[okta.events]`: values always (a typo is a typo), scopes only when enabled.
    fn validate_events(&self) -> Result<(), ConfigError> {
        let o = self;
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
        let poll_interval = e.poll_interval();
        if poll_interval.is_zero() || poll_interval > e.max_delay {
            return Err(ConfigError::key(
                "okta.events.poll_interval",
                format!(
                    "{} must be more than zero and at most okta.events.max_delay ({})",
                    humantime::format_duration(poll_interval),
                    humantime::format_duration(e.max_delay)
                ),
            ));
        }
        // Polls per minute must fit this process's share of the System Log bucket.
        let allowance = SYSTEM_LOG_LIMIT_PER_MINUTE * o.rate_limit_share;
        let per_minute = 60.0 / poll_interval.as_secs_f64();
        if per_minute > allowance {
            let min = Duration::from_millis((60_000.0 / allowance).ceil() as u64);
            return Err(ConfigError::key(
                "okta.events.poll_interval",
                format!(
                    "{} polls {per_minute:.0} times a minute, more than okta.rate_limit_share \
                     ({}) of the System Log's {SYSTEM_LOG_LIMIT_PER_MINUTE}/min bucket allows \
                     ({allowance:.0}/min); use at least {}",
                    humantime::format_duration(poll_interval),
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
            let missing: Vec<&str> = EVENTS_SCOPES
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
}
