//! What Q Business does where its documentation is silent, as far as q-group-sync knows it:
//! learnt by `check-config --write-probe` (and recorded in the snapshot), or by the sink while
//! it works. Each open question is a field; `None` is "not known", and the product is then
//! right under every answer (the rules are in docs/internals.md, "Where the AWS documentation is
//! silent").

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answers to the open questions about Q Business's group APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Readings {
    /// Whether GetGroup showed the put (PROCESSING or its outcome) on the first call after it
    /// was accepted (`false`: it first answered the status from before the put).
    pub processing_visible: Option<bool>,
    /// How long after a put's answer GetGroup first showed a status of that put (ms).
    pub status_visible_after_ms: Option<u64>,
    /// Whether a put that changes nothing gets a status of its own.
    pub noop_moves_status: Option<bool>,
    /// Whether PutGroup accepts `memberUsers: []`.
    pub empty_list: Option<bool>,
    /// Whether PutGroup accepts a `groupMembers` without any list (an empty group).
    pub empty_group: Option<bool>,
    /// Whether ListGroups accepts an `updatedEarlierThan` ahead of the service's clock.
    pub future_cutoff: Option<bool>,
    /// When the write probe learnt these (none: only learnt while working).
    pub probed_at: Option<DateTime<Utc>>,
}

impl Readings {
    /// The snapshot's form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The snapshot's form back; an unreadable value is "nothing known".
    pub fn from_json(text: &str) -> Readings {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// Whether the probe got as far as the questions (answered one after a confirmed put):
    /// only then are its findings worth recording over earlier ones.
    pub fn any_known(&self) -> bool {
        self.noop_moves_status.is_some()
            || self.empty_list.is_some()
            || self.empty_group.is_some()
            || self.future_cutoff.is_some()
    }

    /// How long a put that changes nothing waits before its unmoved SUCCEEDED is taken as its
    /// confirmation, when the probe found that such a put leaves the status as it was: three
    /// times the delay the probe saw before a put's status showed, and at least 5 s.
    /// `None`: no such confirmation (the status is known to move, or nothing is known).
    pub fn noop_settle(&self) -> Option<Duration> {
        if self.noop_moves_status != Some(false) {
            return None;
        }
        let seen = Duration::from_millis(self.status_visible_after_ms.unwrap_or(0));
        Some(seen.saturating_mul(3).max(Duration::from_secs(5)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_garbage_as_unknown() {
        let r = Readings {
            noop_moves_status: Some(false),
            status_visible_after_ms: Some(4000),
            ..Readings::default()
        };
        assert_eq!(Readings::from_json(&r.to_json()), r);
        assert_eq!(Readings::from_json("not json"), Readings::default());
        assert_eq!(Readings::from_json("{\"later\": 1}"), Readings::default());
        assert_eq!(r.noop_settle(), Some(Duration::from_secs(12)));
        assert_eq!(Readings::default().noop_settle(), None);
    }
}
