//! `[sync]`: how much of Okta each pass reads.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[sync]`: how much of Okta each pass reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// A full member read of every group at least this often. In between, passes read the
    /// members of groups whose lastMembershipUpdated moved (a user's profile or status change
    /// does not move it, so the full read catches those).
    #[serde(with = "humantime_serde")]
    pub full_every: Duration,
    /// A read counts as current for a group only if it started this long after the group's
    /// lastMembershipUpdated (Okta's timestamps are whole seconds and its data eventually
    /// consistent; the margin also absorbs clock skew).
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            full_every: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(120),
        }
    }
}
