//! `[safety]`: the deletion circuit breaker's thresholds.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[safety]`: the deletion circuit breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    /// Most group deletions one pass may make without approval.
    pub max_group_deletes: usize,
    /// Most group deletions one pass may make without approval, in percent of managed groups.
    pub max_group_deletes_percent: f64,
    /// Most member removals one pass may make without approval, in percent of all managed
    /// memberships.
    pub max_member_removals_percent: f64,
    /// A managed group that Okta suddenly lists no users for (while it had at least
    /// `empty_group_min_members`) is suspicious: its removals, and only its, need approval. A
    /// group whose members were deactivated is not (Okta still lists them).
    pub block_empty_groups: bool,
    /// See `block_empty_groups`: a group that had fewer members may become empty freely.
    pub empty_group_min_members: usize,
    /// When Okta lists this many percent fewer in-scope groups than are managed, every deletion
    /// needs approval (a filter typo or a partial outage looks like a mass deletion).
    pub max_group_count_drop_percent: f64,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            max_group_deletes: 10,
            max_group_deletes_percent: 10.0,
            max_member_removals_percent: 20.0,
            block_empty_groups: true,
            empty_group_min_members: 2,
            max_group_count_drop_percent: 50.0,
        }
    }
}

impl SafetyConfig {
    /// The percentages are percentages.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sf = self;
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
        Ok(())
    }
}
