//! The list step: every group Okta has, or (with incremental listing, `serve`'s default) only
//! those changed since the last listing, merged into it; the decisions are
//! [`plan::listing`]'s. Also keeps the newest `lastUpdated` the last recorded users check
//! listed, where the next one starts ([`plan::reads::users_since`]).
//!
//! The listing is kept in memory: a process that starts (or a replica that becomes leader)
//! lists every group first.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::info;

use super::context::Pass;
use super::{Engine, Error};
use crate::plan::listing::{self, Listing, ListingPolicy, ListingStep};
use crate::report::Trigger;
use crate::sink::GroupSink;
use crate::source::{DirectorySource, OktaGroup};
use crate::store::Store;

/// How a pass lists the groups, and what the last listing found.
#[derive(Debug, Default)]
pub(super) struct ListingState {
    /// `None`: every pass lists every group (the cron schedule, one-shot commands).
    incremental: Option<Incremental>,
    /// The groups as last listed (incremental listing only).
    last: Option<Listing>,
    /// The newest `lastUpdated` among the users the last recorded users check listed.
    users_newest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
struct Incremental {
    policy: ListingPolicy,
    /// The look-back of a users listing from the newest stamp the last one saw.
    stamp_margin: TimeDelta,
}

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Lists incrementally: scheduled and event-driven passes list only the groups changed
    /// since the last listing (Okta's `filter` on `lastUpdated` and `lastMembershipUpdated`,
    /// looking back `sync.overlap` from the newest stamp seen), and a full listing runs every
    /// `full_every` (it alone finds deleted groups), or less often in an org whose listing at
    /// `page_size` groups a page takes more than `full_rate` requests a minute. A users check starts
    /// `stamp_margin` before the newest `lastUpdated` the last one listed, when that is later
    /// than the last check less `sync.overlap`.
    pub fn with_incremental_listing(
        self,
        full_every: Duration,
        full_rate: Option<f64>,
        page_size: usize,
        stamp_margin: Duration,
    ) -> Self {
        {
            let mut state = self.listing_state();
            state.incremental = Some(Incremental {
                policy: ListingPolicy {
                    full_every: TimeDelta::from_std(full_every).unwrap_or(TimeDelta::MAX),
                    full_rate,
                    page_size,
                    look_back: self.settings.overlap,
                },
                stamp_margin: TimeDelta::from_std(stamp_margin).unwrap_or(TimeDelta::MAX),
            });
        }
        self
    }

    /// When the next full listing is due (incremental listing, once a full listing was made).
    pub fn next_full_listing_at(&self) -> Option<DateTime<Utc>> {
        let state = self.listing_state();
        let policy = state.incremental?.policy;
        listing::next_full_at(state.last.as_ref(), &policy)
    }

    pub(super) fn listing_state(&self) -> MutexGuard<'_, ListingState> {
        self.listing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The list step: the groups this pass plans against.
    pub(super) async fn list(&self, pass: &mut Pass<'_>) -> Result<Vec<OktaGroup>, Error> {
        let incremental = self.listing_state().incremental;
        let Some(incremental) = incremental else {
            return Ok(pass.unless_cancelled(self.source.list_groups()).await??);
        };
        // Passes an operator asks for (start-up, POST /sync, takeover) see every group.
        let may_list_changes = !pass.request.full
            && matches!(pass.request.trigger, Trigger::Schedule | Trigger::Events);
        let step = listing::next_step(
            self.listing_state().last.as_ref(),
            pass.started_at(),
            &incremental.policy,
            may_list_changes,
        );
        match step {
            ListingStep::Full => {
                let groups = pass.unless_cancelled(self.source.list_groups()).await??;
                info!(groups = groups.len(), "listed every Okta group");
                pass.trace("list", || {
                    format!("{} group(s), a full listing", groups.len())
                });
                self.listing_state().last = Some(Listing::full(groups.clone(), pass.started_at()));
                Ok(groups)
            }
            ListingStep::Changed { since } => {
                let changed = pass
                    .unless_cancelled(self.source.list_groups_changed_since(since))
                    .await??;
                let count = changed.len();
                let merged = self.listing_state().last.as_mut().map(|last| {
                    last.merge(changed);
                    last.groups()
                });
                let Some(groups) = merged else {
                    return Ok(pass.unless_cancelled(self.source.list_groups()).await??);
                };
                info!(
                    changed = count,
                    since = %since.to_rfc3339(),
                    groups = groups.len(),
                    "listed the Okta groups changed since the last listing"
                );
                pass.trace("list", || {
                    format!(
                        "{count} group(s) changed since {}; {} known",
                        since.to_rfc3339(),
                        groups.len()
                    )
                });
                Ok(groups)
            }
        }
    }

    /// Where this pass's users listing starts, the last recorded check being `checked_at`.
    pub(super) fn users_listing_from(
        &self,
        checked_at: DateTime<Utc>,
        overlap: TimeDelta,
    ) -> DateTime<Utc> {
        let state = self.listing_state();
        match state.incremental {
            Some(inc) => crate::plan::reads::users_since(
                checked_at,
                state.users_newest,
                overlap,
                inc.stamp_margin,
            ),
            None => checked_at - overlap,
        }
    }

    /// Records the newest `lastUpdated` of a users check that was recorded in full.
    pub(super) fn users_listed_up_to(&self, newest: Option<DateTime<Utc>>) {
        let mut state = self.listing_state();
        state.users_newest = state.users_newest.max(newest);
    }
}

/// The listing state an engine starts with: every group on every pass.
pub(super) fn new_state() -> Mutex<ListingState> {
    Mutex::new(ListingState::default())
}
