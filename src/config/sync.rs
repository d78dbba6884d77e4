//! `[sync]`: how much of Okta each pass reads, and (without `schedule.cron`) how often `serve`
//! checks Okta for changes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    /// Without `schedule.cron`: `serve` checks Okta this often, listing only the groups changed
    /// since the last check and the users updated since.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
    /// Without `schedule.cron`: every group is listed at least this often (a listing of
    /// changes never shows a deleted group; this one does).
    #[serde(with = "humantime_serde")]
    pub full_listing_every: Duration,
    /// Without `schedule.cron`: the Okta requests a minute the full listing may average. In
    /// an org whose listing has more pages than `full_listing_every` allows at this rate (over
    /// 6,000 groups at the defaults), every group is listed as often as the rate allows (50,000
    /// groups: every 125 minutes). 0: every `full_listing_every`, whatever the size.
    pub full_listing_rate: f64,
    /// Without `schedule.cron`: a users check starts this long before the newest `lastUpdated`
    /// the last check listed, when that is later than the last check less `overlap` (Okta's
    /// clock on both sides; it covers whole-second stamps and a change visible a moment late).
    /// At most `overlap` (a longer one counts as `overlap`).
    #[serde(with = "humantime_serde")]
    pub stamp_margin: Duration,
}

/// `sync.poll_every` when not set.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_secs(30);
/// `sync.full_listing_every` when not set.
pub const DEFAULT_FULL_LISTING_EVERY: Duration = Duration::from_secs(15 * 60);

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            full_every: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(120),
            poll_every: DEFAULT_POLL_EVERY,
            full_listing_every: DEFAULT_FULL_LISTING_EVERY,
            full_listing_rate: 2.0,
            stamp_margin: Duration::from_secs(5),
        }
    }
}

impl SyncConfig {
    /// `stamp_margin`, at most `overlap`: the look-back from Okta's newest stamp never reaches
    /// further than the one from the last check.
    pub fn margin(&self) -> Duration {
        self.stamp_margin.min(self.overlap)
    }

    /// Checks the polling keys: an interval of a second or more, and a full listing no more
    /// often than the checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_every < Duration::from_secs(1) {
            return Err(ConfigError::key(
                "sync.poll_every",
                format!(
                    "{} is too short: at least 1s",
                    humantime::format_duration(self.poll_every)
                ),
            ));
        }
        if self.full_listing_every < self.poll_every {
            return Err(ConfigError::key(
                "sync.full_listing_every",
                format!(
                    "{} is shorter than sync.poll_every ({}); it must be at least as long",
                    humantime::format_duration(self.full_listing_every),
                    humantime::format_duration(self.poll_every)
                ),
            ));
        }
        if !(self.full_listing_rate.is_finite() && self.full_listing_rate >= 0.0) {
            return Err(ConfigError::key(
                "sync.full_listing_rate",
                format!(
                    "{} is not a rate: requests a minute, 0 or more (0: every sync.full_listing_every)",
                    self.full_listing_rate
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polling_keys_are_checked() {
        SyncConfig::default()
            .validate()
            .expect("the defaults are valid");
        let err = SyncConfig {
            poll_every: Duration::from_millis(500),
            ..SyncConfig::default()
        }
        .validate()
        .expect_err("too short");
        assert!(err.to_string().contains("sync.poll_every"), "{err}");
        let err = SyncConfig {
            full_listing_every: Duration::from_secs(10),
            ..SyncConfig::default()
        }
        .validate()
        .expect_err("shorter than the checks");
        assert!(err.to_string().contains("sync.full_listing_every"), "{err}");
        for rate in [-1.0, f64::NAN, f64::INFINITY] {
            let err = SyncConfig {
                full_listing_rate: rate,
                ..SyncConfig::default()
            }
            .validate()
            .expect_err("not a rate");
            assert!(err.to_string().contains("sync.full_listing_rate"), "{err}");
        }
        // A margin over the overlap is not an error: the overlap bounds it (a config with a
        // short overlap and no margin keeps loading).
        SyncConfig {
            overlap: Duration::from_secs(2),
            ..SyncConfig::default()
        }
        .validate()
        .expect("the margin is capped, not refused");
        assert_eq!(
            SyncConfig {
                overlap: Duration::from_secs(2),
                ..SyncConfig::default()
            }
            .margin(),
            Duration::from_secs(2)
        );
    }
}
