//! `[users]`: how an Okta user becomes a Q Business user id, and which users count.

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

/// `[users]`: how an Okta user becomes a Q user id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// `email`, `login`, or the name of a custom Okta profile attribute.
    pub id_attribute: String,
    /// User statuses that count as members.
    pub statuses: Vec<String>,
    /// Drop `+tag` from the local part of email ids, as Q Business does (only email ids are
    /// lowercased and folded; others are sent as the source has them).
    pub fold_subaddress: bool,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            id_attribute: "email".to_owned(),
            statuses: ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"]
                .map(String::from)
                .to_vec(),
            fold_subaddress: true,
        }
    }
}

impl UsersConfig {
    /// The attribute is one name; the statuses are Okta's and not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let attr = self.id_attribute.trim();
        if attr.is_empty() || attr != self.id_attribute {
            return Err(ConfigError::key(
                "users.id_attribute",
                "must be a profile attribute name without spaces",
            ));
        }
        if self.statuses.is_empty() {
            return Err(ConfigError::key(
                "users.statuses",
                "is empty: no user would ever be a member",
            ));
        }
        for s in &self.statuses {
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
        Ok(())
    }
}
