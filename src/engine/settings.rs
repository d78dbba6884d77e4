//! The knobs of a pass, from the configuration: scope and mapping rules, limits, concurrency,
//! the circuit breaker and how puts are confirmed.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::VerifyMode;
use crate::model::GroupName;
use crate::plan::safety::SafetyPolicy;
use crate::plan::{self, Policy, Rules};

/// Knobs of a pass.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub rules: Rules,
    pub policy: Policy,
    /// Member reads started at once (the Okta client bounds requests in flight on its own).
    pub read_concurrency: usize,
    /// Group writes in flight at most.
    pub write_concurrency: usize,
    /// The deletion circuit breaker.
    pub safety: SafetyPolicy,
    /// How puts are confirmed before they are recorded.
    pub verify: Verify,
    /// A full member read (every group) at least this often; incremental reads in between.
    pub full_every: Duration,
    /// How long after a group's lastMembershipUpdated a read must start to count as current.
    pub overlap: chrono::TimeDelta,
    /// Q groups made outside q-group-sync that it may write over (`groups.take_over`).
    pub take_over: plan::ownership::TakeOver,
}

/// How puts are confirmed (PutGroup is asynchronous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    pub mode: VerifyMode,
    /// With [`VerifyMode::Sample`]: percent of groups (by name) confirmed.
    pub sample_percent: u8,
    /// Longest wait for a terminal status.
    pub timeout: Duration,
    /// First poll delay; doubles up to 5 s.
    pub first_poll: Duration,
    /// After a shutdown (the pass's token cancelled), how long puts already sent are still
    /// confirmed and recorded; one not confirmed by then is written again by the next pass.
    pub after_shutdown: Duration,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            mode: VerifyMode::Always,
            sample_percent: 10,
            timeout: Duration::from_secs(300),
            first_poll: Duration::from_millis(200),
            after_shutdown: Duration::ZERO,
        }
    }
}

impl Verify {
    /// Whether the put of `group` is confirmed with GetGroup before it is recorded.
    pub(super) fn wanted(&self, group: &GroupName) -> bool {
        match self.mode {
            VerifyMode::Always => true,
            VerifyMode::Never => false,
            VerifyMode::Sample => {
                let digest = Sha256::digest(group.as_str().as_bytes());
                u16::from(digest[0]) * 100 / 256 < u16::from(self.sample_percent)
            }
        }
    }
}
