//! Near-real-time updates: polls the Okta System Log and queues a pass over the groups it
//! reports changed (`okta.events`).
//!
//! Events only say *which* groups to look at: each is re-read from Okta in full, so duplicate,
//! late or out-of-order events are harmless, and the scheduled passes remain the source of
//! truth. The position in the log is recorded after the pass that synced the changes before it
//! (a restart reads those events again, which only costs a re-read).

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

use super::Daemon;
use crate::app::ProductEngine;
use crate::config::EventsConfig;
use crate::metrics;
use crate::source::SourceError;
use crate::source::okta::events::{ChangeFeed, affected, drain};

/// Pages read per poll at most before the groups found so far are queued.
const MAX_PAGES_PER_POLL: usize = 20;

/// One poll: the groups to sync and the position after them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub groups: BTreeSet<String>,
    pub events: usize,
    /// When the oldest relevant event read happened (its `published`).
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
    pub next: Option<Url>,
}

/// The recorded System Log position, if there is a usable one.
async fn saved_position(engine: &ProductEngine) -> Option<Url> {
    match engine.events_cursor().await {
        Ok(saved) => saved.and_then(|s: String| match Url::parse(&s) {
            Ok(url) => Some(url),
            Err(e) => {
                warn!(error = %e, "the saved System Log position does not parse; starting from okta.events.lookback");
                None
            }
        }),
        Err(e) => {
            warn!(error = %e, "could not read the saved System Log position; starting from okta.events.lookback");
            None
        }
    }
}

/// Polls once from `cursor`: reads the new events and resolves users to their groups.
pub async fn poll_once<F: ChangeFeed>(
    feed: &F,
    cursor: Option<&Url>,
) -> Result<Polled, SourceError> {
    let (events, next) = drain(feed, cursor, MAX_PAGES_PER_POLL).await?;
    let found = affected(&events);
    let mut groups: BTreeSet<String> = found.groups.iter().map(|g| g.as_str().to_owned()).collect();
    for user in &found.users {
        match feed.user_groups(user).await {
            Ok(ids) => groups.extend(ids.iter().map(|g| g.as_str().to_owned())),
            // The scheduled passes still catch this user's change.
            Err(e) => {
                warn!(okta_user = %user, error = %e, "could not list a changed user's groups")
            }
        }
    }
    Ok(Polled {
        groups,
        events: events.len(),
        oldest: events.iter().map(|e| e.published).min(),
        next,
    })
}

/// Polls every `poll_interval` until `shutdown`, queueing a pass over the changed groups.
/// `may_sync` says whether this replica runs passes now (false on a standby).
pub async fn run<F: ChangeFeed>(
    daemon: Arc<Daemon>,
    feed: F,
    settings: EventsConfig,
    may_sync: impl Fn() -> bool + Send,
    shutdown: CancellationToken,
) {
    let engine = daemon.engine();
    let mut cursor: Option<Url> = None;
    let mut saved: Option<Url> = None;
    let mut leading = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval()) => {}
            _ = shutdown.cancelled() => break,
        }
        if !may_sync() {
            leading = false;
            continue;
        }
        if !leading {
            // Starting, or taking over from another replica: resume where the synced changes end.
            leading = true;
            cursor = saved_position(engine).await;
            saved = cursor.clone();
            info!(interval = ?settings.poll_interval(), resume = cursor.is_some(), "polling the Okta System Log");
        }
        match poll_once(&feed, cursor.as_ref()).await {
            Ok(polled) => {
                metrics::event_poll("ok", polled.events, polled.groups.len());
                let Some(next) = polled.next else { continue };
                if polled.groups.is_empty() {
                    // Nothing to sync: the position can be recorded at once, unless an events
                    // pass has yet to sync changes before it (that pass records a position).
                    if saved.as_ref() != Some(&next) && !daemon.events_pending() {
                        match engine.record_events_cursor(next.as_str()).await {
                            Ok(()) => saved = Some(next.clone()),
                            Err(e) => warn!(error = %e, "could not record the System Log position"),
                        }
                    }
                } else {
                    debug!(
                        groups = polled.groups.len(),
                        events = polled.events,
                        "groups changed in Okta"
                    );
                    // max_delay counts from the change in Okta, not from when it was read.
                    let deadline = polled.oldest.and_then(|t| {
                        chrono::TimeDelta::from_std(settings.max_delay)
                            .ok()
                            .and_then(|d| t.checked_add_signed(d))
                    });
                    daemon.enqueue_changed(polled.groups, next.as_str().to_owned(), deadline);
                    saved = Some(next.clone());
                }
                cursor = Some(next);
            }
            Err(
                e @ (SourceError::BadRequest { .. }
                | SourceError::ForeignLink { .. }
                | SourceError::Malformed { .. }),
            ) => {
                // An expired or unusable position: start again from the lookback window; the
                // scheduled passes cover anything in between.
                metrics::event_poll("reset", 0, 0);
                warn!(error = %e, "the System Log position is no longer usable; starting again from okta.events.lookback");
                cursor = None;
            }
            Err(e) => {
                metrics::event_poll("error", 0, 0);
                warn!(kind = e.kind().as_str(), error = %e, "polling the System Log failed; retrying at the next poll");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeChangeFeed;
    use crate::model::OktaGroupId;
    use crate::source::okta::events::{ChangeEvent, ChangeKind};

    fn event(uuid: &str, kind: ChangeKind, user: Option<&str>, group: Option<&str>) -> ChangeEvent {
        ChangeEvent {
            uuid: uuid.into(),
            published: chrono::DateTime::UNIX_EPOCH,
            kind,
            user_id: user.map(Into::into),
            group_id: group.map(OktaGroupId::new),
        }
    }

    #[tokio::test]
    async fn membership_and_user_events_become_groups_to_sync() {
        let feed = FakeChangeFeed::new(100);
        feed.push(event(
            "1",
            ChangeKind::MembershipAdd,
            Some("u1"),
            Some("g1"),
        ));
        feed.push(event(
            "2",
            ChangeKind::MembershipRemove,
            Some("u2"),
            Some("g2"),
        ));
        feed.push(event(
            "3",
            ChangeKind::MembershipAdd,
            Some("u1"),
            Some("g1"),
        ));
        feed.push(event("4", ChangeKind::UserProfileUpdate, Some("u9"), None));
        feed.set_user_groups("u9", &["g7", "g1"]);
        let polled = poll_once(&feed, None).await.expect("poll");
        assert_eq!(
            polled.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["g1", "g2", "g7"]
        );
        assert_eq!(polled.events, 4);
        let next = polled.next.expect("a position");
        // Caught up: nothing new from the returned position.
        let again = poll_once(&feed, Some(&next)).await.expect("poll");
        assert!(again.groups.is_empty());
    }
}
