//! Environment overrides: `Q_GROUP_SYNC_<SECTION>__<KEY>` for the keys in [`KEYS`], each value
//! parsed by its key's type (not guessed), each naming its variable when it is wrong.
//!
//! Other variables with the prefix (Kubernetes service links such as `Q_GROUP_SYNC_PORT`, test
//! settings) are not config and are ignored; a variable in the `__` form that names no key is
//! refused with the nearest key, since it is almost always a typo.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::{ConfigError, ENV_CONFIG_PATH, ENV_PREFIX};

/// How a key's environment value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvType {
    /// Taken verbatim: `0123` stays the string "0123". Enums, paths, URLs and durations too
    /// (their own parser names the variable when the text is wrong).
    Str,
    /// Taken verbatim and never echoed in an error.
    Secret,
    /// A whole number (`10`).
    Int,
    /// A number (`12.5`).
    Float,
    /// `true` or `false`.
    Bool,
    /// Comma-separated; spaces around items are trimmed (`a, b` is `["a", "b"]`).
    List,
}

use EnvType::{Bool, Float, Int, List, Secret, Str};

/// Every config key, as `section.key` (nested sections dotted), with its type. The only list
/// of keys the environment can set; a test keeps it equal to the keys of [`super::Config`].
pub(crate) const KEYS: &[(&str, EnvType)] = &[
    ("okta.org_url", Str),
    ("okta.api_token", Secret),
    ("okta.api_token_file", Str),
    ("okta.group_filter", Str),
    ("okta.page_size", Int),
    ("okta.member_page_size", Int),
    ("okta.max_concurrency", Int),
    ("okta.request_timeout", Str),
    ("okta.max_retries", Int),
    ("okta.rate_limit_share", Float),
    ("okta.max_retry_wait", Str),
    ("okta.auth", Str),
    ("okta.client_id", Str),
    ("okta.private_key_file", Str),
    ("okta.private_key", Secret),
    ("okta.key_id", Str),
    ("okta.scopes", List),
    ("okta.dpop", Bool),
    ("okta.events.enabled", Bool),
    ("okta.events.poll_interval", Str),
    ("okta.events.max_delay", Str),
    ("okta.events.lookback", Str),
    ("okta.events.page_size", Int),
    ("scim.listen", Str),
    ("scim.token", Secret),
    ("scim.token_file", Str),
    ("scim.user_id", Str),
    ("scim.settle", Str),
    ("scim.max_delay", Str),
    ("scim.max_body", Int),
    ("scim.max_connections", Int),
    ("scim.header_read_timeout", Str),
    ("groups.include", List),
    ("groups.exclude", List),
    ("groups.name_prefix", Str),
    ("groups.adopt_prefixed", Bool),
    ("groups.take_over", List),
    ("users.id_attribute", Str),
    ("users.statuses", List),
    ("users.fold_subaddress", Bool),
    ("qbusiness.application_id", Str),
    ("qbusiness.index_id", Str),
    ("qbusiness.region", Str),
    ("qbusiness.data_source_id", Str),
    ("qbusiness.endpoint_url", Str),
    ("qbusiness.max_concurrency", Int),
    ("qbusiness.max_writes_per_second", Int),
    ("qbusiness.max_attempts", Int),
    ("qbusiness.retry_initial_backoff", Str),
    ("qbusiness.inline_member_limit", Int),
    ("qbusiness.large_groups", Str),
    ("qbusiness.s3_bucket", Str),
    ("qbusiness.s3_prefix", Str),
    ("qbusiness.role_arn", Str),
    ("qbusiness.s3_endpoint_url", Str),
    ("qbusiness.s3_bucket_owner", Str),
    ("qbusiness.verify", Str),
    ("qbusiness.verify_sample_percent", Int),
    ("qbusiness.verify_timeout", Str),
    ("state.backend", Str),
    ("state.path", Str),
    ("state.url", Secret),
    ("state.url_file", Str),
    ("state.tls", Str),
    ("state.tls_ca_file", Str),
    ("state.pool_size", Int),
    ("state.schema", Str),
    ("state.leader_takeover", Str),
    ("state.replica", Str),
    ("safety.max_group_deletes", Int),
    ("safety.max_group_deletes_percent", Float),
    ("safety.max_member_removals_percent", Float),
    ("safety.block_empty_groups", Bool),
    ("safety.empty_group_min_members", Int),
    ("safety.max_group_count_drop_percent", Float),
    ("sync.full_every", Str),
    ("sync.overlap", Str),
    ("sync.poll_every", Str),
    ("sync.full_listing_every", Str),
    ("sync.full_listing_rate", Float),
    ("sync.stamp_margin", Str),
    ("schedule.cron", Str),
    ("schedule.run_on_start", Bool),
    ("server.listen", Str),
    ("server.admin_token", Secret),
    ("server.admin_token_file", Str),
    ("server.shutdown_grace", Str),
    ("server.header_read_timeout", Str),
    ("server.request_timeout", Str),
    ("server.max_connections", Int),
];

/// Whether the config value at `path` (dotted) is a secret: never echoed in an error.
pub(crate) fn is_secret(path: &str) -> bool {
    KEYS.iter().any(|(k, t)| *k == path && *t == Secret)
}

/// The environment variable of a key: `okta.events.max_delay` is
/// `Q_GROUP_SYNC_OKTA__EVENTS__MAX_DELAY`.
pub fn variable_of(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// One environment variable that sets one key; figment names it in errors
/// ("in environment variable Q_GROUP_SYNC_...").
#[derive(Debug, Clone)]
pub(crate) struct EnvVar {
    variable: String,
    key: &'static str,
    value: Value,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.variable))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::default(self.key, &self.value).data()
    }
}

/// The overrides among `vars`, sorted by variable name. Variables with the prefix that are not
/// in the `__` form are ignored (logged at debug); an empty value counts as unset.
pub(crate) fn overrides(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvVar>, ConfigError> {
    let mut found = Vec::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (variable, raw) in vars {
        if variable == ENV_CONFIG_PATH {
            continue;
        }
        let rest = &variable[ENV_PREFIX.len()..];
        if !rest.contains("__") {
            match single_underscore_form(&variable) {
                // Almost certainly meant as that key: say so where it is seen.
                Some(meant) => tracing::info!(
                    variable = %variable,
                    "ignoring {variable}: section and key are separated by two underscores; set {meant} to configure that key"
                ),
                None => tracing::debug!(
                    variable = %variable,
                    "ignoring an environment variable with the config prefix: it is not in the <SECTION>__<KEY> form of a config key"
                ),
            }
            continue;
        }
        let Some((key, ty)) = KEYS.iter().find(|(k, _)| variable_of(k) == variable) else {
            return Err(ConfigError(format!(
                "environment variable {variable} names no config key{}",
                nearest(&variable)
                    .map(|(k, v)| format!("; did you mean {v} ({k})?"))
                    .unwrap_or_default()
            )));
        };
        if raw.trim().is_empty() {
            continue;
        }
        let value = parse(&variable, key, *ty, &raw)?;
        found.push(EnvVar {
            variable,
            key,
            value,
        });
    }
    Ok(found)
}

/// The variable of the key `variable` names with one underscore where `__` belongs
/// (`Q_GROUP_SYNC_OKTA_ORG_URL` for `Q_GROUP_SYNC_OKTA__ORG_URL`), if it names one.
fn single_underscore_form(variable: &str) -> Option<String> {
    KEYS.iter()
        .map(|(k, _)| variable_of(k))
        .find(|v| v.replace("__", "_") == variable)
}

/// The key whose variable is closest to `variable`, if any is reasonably close.
fn nearest(variable: &str) -> Option<(&'static str, String)> {
    KEYS.iter()
        .map(|(k, _)| (*k, variable_of(k)))
        .map(|(k, v)| (strsim::levenshtein(&v, variable), k, v))
        .filter(|(d, _, _)| *d <= 6)
        .min_by_key(|(d, _, _)| *d)
        .map(|(_, k, v)| (k, v))
}

/// `raw` as the value of `key`, by its type.
fn parse(variable: &str, key: &str, ty: EnvType, raw: &str) -> Result<Value, ConfigError> {
    let bad = |what: &str| {
        // A secret's text is never shown; the others are shown to point at the typo.
        let shown = if ty == Secret {
            String::new()
        } else {
            format!(" {raw:?}")
        };
        ConfigError(format!(
            "environment variable {variable} ({key}):{shown} is not {what}"
        ))
    };
    let text = raw.trim();
    Ok(match ty {
        Str | Secret => Value::from(raw.to_owned()),
        Int => {
            if let Ok(n) = text.parse::<u64>() {
                Value::from(n)
            } else {
                Value::from(text.parse::<i64>().map_err(|_| bad("a whole number"))?)
            }
        }
        Float => {
            let n: f64 = text.parse().map_err(|_| bad("a number"))?;
            if !n.is_finite() {
                return Err(bad("a finite number"));
            }
            Value::from(n)
        }
        Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => return Err(bad("true or false")),
        },
        List => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_owned()))
                .collect::<Vec<_>>(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn variables_not_in_the_key_form_are_ignored() {
        let found = overrides(vars(&[
            ("Q_GROUP_SYNC_PORT", "tcp://10.0.0.1:9090"),
            ("Q_GROUP_SYNC_PORT_9090_TCP_ADDR", "10.0.0.1"),
            ("Q_GROUP_SYNC_SERVICE_HOST", "10.0.0.1"),
            ("Q_GROUP_SYNC_TEST_POSTGRES_URL", "postgres://x"),
            ("Q_GROUP_SYNC_CONFIG", "/etc/q.toml"),
            ("HOME", "/root"),
        ]))
        .expect("ignored");
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_typo_in_the_key_form_names_the_nearest_key() {
        let err = overrides(vars(&[("Q_GROUP_SYNC_OKTA__ORG_ULR", "https://x")]))
            .expect_err("typo")
            .to_string();
        assert!(err.contains("Q_GROUP_SYNC_OKTA__ORG_ULR"), "{err}");
        assert!(err.contains("Q_GROUP_SYNC_OKTA__ORG_URL"), "{err}");
    }

    #[test]
    fn values_are_parsed_by_the_key_type() {
        let found = overrides(vars(&[
            ("Q_GROUP_SYNC_GROUPS__NAME_PREFIX", "0123"),
            ("Q_GROUP_SYNC_GROUPS__EXCLUDE", "a*, b* ,"),
            ("Q_GROUP_SYNC_OKTA__PAGE_SIZE", " 50 "),
            ("Q_GROUP_SYNC_OKTA__DPOP", "FALSE"),
            ("Q_GROUP_SYNC_SAFETY__MAX_GROUP_DELETES_PERCENT", "12.5"),
            ("Q_GROUP_SYNC_OKTA__API_TOKEN", "00123"),
            ("Q_GROUP_SYNC_STATE__REPLICA", ""),
        ]))
        .expect("parsed");
        let got: Vec<(&str, String)> = found
            .iter()
            .map(|v| (v.key, format!("{:?}", v.value)))
            .collect();
        let want = [
            (
                "groups.exclude",
                Value::from(vec![Value::from("a*"), Value::from("b*")]),
            ),
            ("groups.name_prefix", Value::from("0123")),
            ("okta.api_token", Value::from("00123")),
            ("okta.dpop", Value::from(false)),
            ("okta.page_size", Value::from(50u64)),
            ("safety.max_group_deletes_percent", Value::from(12.5)),
        ];
        let want: Vec<(&str, String)> = want.iter().map(|(k, v)| (*k, format!("{v:?}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_bad_number_names_the_variable_and_a_bad_secret_is_not_shown() {
        let err = overrides(vars(&[("Q_GROUP_SYNC_OKTA__PAGE_SIZE", "lots")]))
            .expect_err("not a number")
            .to_string();
        assert!(
            err.contains("Q_GROUP_SYNC_OKTA__PAGE_SIZE") && err.contains("whole number"),
            "{err}"
        );
        let err = overrides(vars(&[("Q_GROUP_SYNC_OKTA__DPOP", "yes")]))
            .expect_err("not a bool")
            .to_string();
        assert!(err.contains("true or false"), "{err}");
    }
}
