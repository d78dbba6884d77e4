//! Configuration: typed at start-up, unknown keys rejected, each section checked by its own
//! `validate` and the whole by [`Config::validate`].
//!
//! Sources, lowest precedence first: built-in defaults (each section's `Default`, or its
//! `default_*` functions where the section has required keys), the TOML file (`--config PATH` or
//! `Q_GROUP_SYNC_CONFIG`), then environment variables `Q_GROUP_SYNC_<SECTION>__<KEY>`.
//!
//! Nothing here reads from Okta or Q Business; the secret files are read on demand.

mod env;
mod groups;
mod okta;
mod qbusiness;
mod safety;
mod scim;
mod server;
mod state;
mod sync;
#[cfg(test)]
mod tests;
mod users;

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

pub use env::variable_of;
pub use groups::GroupsConfig;
pub use okta::{
    EVENTS_SCOPES, EventsConfig, OktaAuthMode, OktaConfig, OktaCredentials,
    SYSTEM_LOG_LIMIT_PER_MINUTE,
};
pub use qbusiness::{LargeGroups, QBusinessConfig, VerifyMode};
pub use safety::SafetyConfig;
pub use scim::{MIN_SCIM_TOKEN_LEN, ScimConfig, ScimUserId};
pub use server::{DEFAULT_CRON, ScheduleConfig, ServerConfig};
pub use state::{PgTls, StateBackend, StateConfig};
pub use sync::SyncConfig;
pub use users::{KNOWN_STATUSES, UsersConfig};

/// Environment variable prefix for overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "Q_GROUP_SYNC_";
/// Environment variable naming the config file when `--config` is not given.
pub const ENV_CONFIG_PATH: &str = "Q_GROUP_SYNC_CONFIG";

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
    /// Poll Okta's Management API (one source of two; see [`Source`]).
    pub okta: Option<OktaConfig>,
    /// Take SCIM pushes from any IdP (the other source).
    pub scim: Option<ScimConfig>,
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

impl Config {
    /// Loads from defaults, the TOML file (if any) and `Q_GROUP_SYNC_*` variables, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with the environment given (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
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
        let overrides = env::overrides(vars)?;
        let from_env = !overrides.is_empty();
        let figment = overrides.into_iter().fold(figment, Figment::merge);
        Config::from_figment(figment).map_err(|e| match (path, e) {
            (None, ConfigError(msg)) if msg.contains("missing field") => ConfigError(format!(
                "no configuration file given: pass --config PATH or set {ENV_CONFIG_PATH}=PATH \
                 (config/example.toml lists every key){}; {msg}",
                if from_env {
                    ", or set every required key as an environment variable"
                } else {
                    ""
                }
            )),
            (_, e) => e,
        })
    }

    /// Extracts and validates a config from any figment (tests use in-memory TOML).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let figment = Figment::from(Serialized::defaults(serde_json::json!({
            "groups": {}, "users": {}, "state": {}, "safety": {}, "sync": {}, "schedule": {}, "server": {}
        })))
        .merge(figment);
        let mut config: Config = figment.extract().map_err(|e| {
            ConfigError(describe_figment_error(e, |key| {
                figment.find_value(key).ok().and_then(|v| v.into_string())
            }))
        })?;
        check_unchosen_alternatives(&config, |key| figment.find_value(key).is_ok())?;
        // An empty secret (e.g. `VAR=` in an env file) means "not set here".
        let okta_token = config.okta.as_mut().map(|o| &mut o.api_token);
        let scim_token = config.scim.as_mut().map(|s| &mut s.token);
        for secret in [
            okta_token,
            scim_token,
            Some(&mut config.server.admin_token),
            Some(&mut config.state.url),
        ]
        .into_iter()
        .flatten()
        {
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

    /// Value and cross-field checks that serde alone cannot express: each section's own
    /// `validate`, in file order. No rule spans two sections; one that spans two keys lives
    /// with the section holding both.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.source()?;
        if let Some(okta) = &self.okta {
            okta.validate()?;
        }
        if let Some(scim) = &self.scim {
            scim.validate()?;
        }
        self.groups.validate()?;
        self.users.validate()?;
        self.qbusiness.validate()?;
        self.safety.validate()?;
        self.sync.validate()?;
        self.state.validate()?;
        self.server.validate()
    }

    /// Where groups come from: exactly one of `[okta]` and `[scim]`.
    pub fn source(&self) -> Result<Source<'_>, ConfigError> {
        match (&self.okta, &self.scim) {
            (Some(okta), None) => Ok(Source::Okta(okta)),
            (None, Some(scim)) => Ok(Source::Scim(scim)),
            (Some(_), Some(_)) => Err(ConfigError(
                "[okta] and [scim] are both set: a q-group-sync deployment takes its groups from \
                 one source (polling Okta, or SCIM pushes from any IdP, Okta included); remove \
                 one section (or its Q_GROUP_SYNC_OKTA__* / Q_GROUP_SYNC_SCIM__* variables)"
                    .to_owned(),
            )),
            (None, None) => Err(ConfigError(
                "no source: set [okta] (poll Okta's API; okta.org_url and a token) or [scim] \
                 (IdPs push users and groups to it; scim.token_file)"
                    .to_owned(),
            )),
        }
    }

    /// The `[okta]` section, for what only the Okta source has (`what` names it in the error).
    pub fn okta(&self, what: &str) -> Result<&OktaConfig, ConfigError> {
        self.okta.as_ref().ok_or_else(|| {
            ConfigError(format!(
                "{what} reads Okta's API, and this configuration has no [okta] section (its \
                 source is [scim])"
            ))
        })
    }

    /// The PEM text of `okta.private_key` or `okta.private_key_file` (OAuth only); parsed by the
    /// Okta client.
    pub fn okta_private_key_pem(&self) -> Result<SecretString, ConfigError> {
        self.okta("the Okta client")?.private_key_pem()
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
        self.okta("the Okta client")?.ssws_token()
    }
}

/// The configured source of groups.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// `[okta]`: passes read Okta's Management API.
    Okta(&'a OktaConfig),
    /// `[scim]`: IdPs push to the SCIM listener; passes read what was stored.
    Scim(&'a ScimConfig),
}

/// True when `[okta]` is the source and uses this authentication.
fn okta_auth(c: &Config, auth: OktaAuthMode) -> bool {
    c.okta.as_ref().is_some_and(|o| o.auth == auth)
}

/// A key that belongs to one alternative of a choice: `(key, selector, the alternative, whether
/// the config chose it)`.
type AlternativeKey = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Config) -> bool,
);

/// The keys of each alternative of a choice (`okta.auth`, `state.backend`,
/// `qbusiness.large_groups`, `qbusiness.verify`) other than the default one. Setting one while
/// it is not chosen is an error naming the selector: it is almost always a forgotten selector
/// (two replicas on local SQLite files instead of PostgreSQL, an OAuth app never used). The
/// default alternative's keys ([`DEFAULT_ALTERNATIVE_KEYS`]) are only warned about: they are
/// what a config had before the switch, and harmless. On/off switches (`okta.events.enabled`)
/// are not choices: their settings stay, checked, while off.
const ALTERNATIVE_KEYS: &[AlternativeKey] = &[
    ("okta.client_id", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("okta.private_key_file", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("okta.private_key", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("okta.key_id", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("okta.scopes", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("okta.dpop", "okta.auth", "oauth", |c| {
        okta_auth(c, OktaAuthMode::OAuth)
    }),
    ("state.url", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.url_file", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.tls", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.tls_ca_file", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.pool_size", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.schema", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("state.leader_takeover", "state.backend", "postgres", |c| {
        c.state.backend == StateBackend::Postgres
    }),
    ("qbusiness.s3_bucket", "qbusiness.large_groups", "s3", |c| {
        c.qbusiness.large_groups == LargeGroups::S3
    }),
    ("qbusiness.s3_prefix", "qbusiness.large_groups", "s3", |c| {
        c.qbusiness.large_groups == LargeGroups::S3
    }),
    ("qbusiness.role_arn", "qbusiness.large_groups", "s3", |c| {
        c.qbusiness.large_groups == LargeGroups::S3
    }),
    (
        "qbusiness.s3_endpoint_url",
        "qbusiness.large_groups",
        "s3",
        |c| c.qbusiness.large_groups == LargeGroups::S3,
    ),
    (
        "qbusiness.verify_sample_percent",
        "qbusiness.verify",
        "sample",
        |c| c.qbusiness.verify == VerifyMode::Sample,
    ),
];

/// The default alternatives' own keys: ignored, with a warning, when another is chosen.
const DEFAULT_ALTERNATIVE_KEYS: &[AlternativeKey] = &[
    ("okta.api_token", "okta.auth", "ssws", |c| {
        okta_auth(c, OktaAuthMode::Ssws)
    }),
    ("okta.api_token_file", "okta.auth", "ssws", |c| {
        okta_auth(c, OktaAuthMode::Ssws)
    }),
    ("state.path", "state.backend", "sqlite", |c| {
        c.state.backend == StateBackend::Sqlite
    }),
];

/// Refuses a key of an alternative the config did not choose; `is_set(key)` says whether a
/// source (file or environment) set it. An empty secret counts as unset.
fn check_unchosen_alternatives(
    config: &Config,
    is_set: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    let empty_secret = |key: &str| match key {
        "okta.api_token" => config.okta.as_ref().is_none_or(|o| o.api_token.is_none()),
        "state.url" => config.state.url.is_none(),
        "okta.private_key" => config.okta.as_ref().is_none_or(|o| o.private_key.is_none()),
        _ => false,
    };
    for (key, selector, alternative, chosen) in ALTERNATIVE_KEYS {
        if !chosen(config) && is_set(key) && !empty_secret(key) {
            return Err(ConfigError::key(
                key,
                format!(
                    "is a setting of {selector} = \"{alternative}\", which is not chosen; set {selector} = \"{alternative}\" or remove it"
                ),
            ));
        }
    }
    for (key, selector, alternative, chosen) in DEFAULT_ALTERNATIVE_KEYS {
        if !chosen(config) && is_set(key) && !empty_secret(key) {
            tracing::warn!(
                key,
                "{key} is ignored: it is a setting of {selector} = \"{alternative}\", which is not chosen"
            );
        }
    }
    Ok(())
}

/// Reads a one-line secret from a file (a trailing newline is fine).
pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
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

fn redacted<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("[REDACTED]"),
        None => s.serialize_none(),
    }
}

/// The rules of every URL key: http(s) with a host, plain http only to a loopback host, and no
/// user name or password (the URL is shown in logs and /status; credentials have their own
/// keys). The URL itself is never part of the message.
fn check_endpoint(key: &str, url: &Url) -> Result<(), ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::key(
            key,
            "must not hold a user name or password (user:password@); remove them from the URL",
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => {
            return Err(ConfigError::key(
                key,
                "plain http is accepted only for loopback hosts; use https",
            ));
        }
        _ => return Err(ConfigError::key(key, "must be an http(s) URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::key(key, "has no host"));
    }
    Ok(())
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

/// One line per problem, each naming the key path and where the value came from. The value
/// of a secret key is never shown, nor that of a URL key (it may hold a password), except as
/// the `https://` form of a URL written without its scheme and without `@`. `value_of(key)`
/// is the string a key was given, if any.
fn describe_figment_error(
    err: figment::Error,
    value_of: impl Fn(&str) -> Option<String>,
) -> String {
    err.into_iter()
        .map(|e| {
            let path = e.path.join(".");
            let key = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            let source = match (&e.metadata, &e.profile) {
                (Some(md), _) => match &md.source {
                    Some(src) => format!(" (in {src})"),
                    None => format!(" (in {})", md.name),
                },
                _ => String::new(),
            };
            let what = if let Some(at) = syntax_error_at(&e.kind) {
                at
            } else if let figment::error::Kind::UnknownField(field, expected) = &e.kind {
                unknown_key(field, expected)
            } else if URL_KEYS.contains(&path.as_str()) && without_scheme(&e.kind) {
                let example = value_of(&path)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty() && !v.contains(['@', ' ', '/']))
                    .map_or_else(|| "https://<host>".to_owned(), |v| format!("https://{v}"));
                format!("has no scheme: write the whole URL, e.g. {example}")
            } else if env::is_secret(&path) || URL_KEYS.contains(&path.as_str()) {
                without_value(&e.kind)
            } else {
                e.kind.to_string()
            };
            format!("{key}{what}{source}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An unknown key, with the nearest known key of its section when one is close.
fn unknown_key(field: &str, expected: &[&str]) -> String {
    let nearest = expected
        .iter()
        .map(|k| (strsim::levenshtein(k, field), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d);
    match nearest {
        Some((_, k)) => format!("unknown key `{field}`; did you mean `{k}`?"),
        None => format!(
            "unknown key `{field}`; the keys here are {}",
            expected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether a URL was refused for having no scheme (`acme.okta.com`).
fn without_scheme(kind: &figment::error::Kind) -> bool {
    use figment::error::Kind;
    match kind {
        Kind::Message(m) | Kind::InvalidValue(_, m) => m.contains("relative URL without a base"),
        _ => kind.to_string().contains("relative URL without a base"),
    }
}

/// A TOML syntax error, by line and column only: the parser's message quotes the offending
/// source line, which may be an unquoted secret.
fn syntax_error_at(kind: &figment::error::Kind) -> Option<String> {
    let figment::error::Kind::Message(message) = kind else {
        return None;
    };
    let first = message.lines().next()?;
    let at = first.strip_prefix("TOML parse error at ")?;
    Some(format!(
        "TOML syntax error at {} (the line is not shown: it may hold a secret)",
        at.trim()
    ))
}

/// The config keys that hold a URL; none may carry a user name or password.
const URL_KEYS: [&str; 3] = [
    "okta.org_url",
    "qbusiness.endpoint_url",
    "qbusiness.s3_endpoint_url",
];

/// A figment error's text without the offending value.
fn without_value(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let type_of = |a: &Actual| match a {
        Actual::Bool(_) => "a boolean".to_owned(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer (quote it as a string)".to_owned(),
        Actual::Float(_) => "a number (quote it as a string)".to_owned(),
        Actual::Str(_) | Actual::Char(_) => "a string".to_owned(),
        Actual::Bytes(_) => "bytes".to_owned(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(actual, expected) => format!(
            "invalid type: found {}, expected {expected} (value not shown)",
            type_of(actual)
        ),
        Kind::InvalidValue(_, expected) => {
            format!("invalid value (not shown): expected {expected}")
        }
        Kind::Message(_) => "invalid value (not shown)".to_owned(),
        other => other.to_string(),
    }
}
