//! The near-real-time change feed: Okta's System Log (`GET /api/v1/logs`) in polling mode,
//! reduced to which groups and users changed.
//!
//! Events only say *where to look*: each affected group is read again from Okta in full and
//! synced as usual, never patched from the event. So a duplicated, late or out-of-order event
//! costs at most one extra read, and a missed one is caught by the scheduled passes, which stay
//! the source of truth. Nothing here decides membership or scope; [`affected`] is pure.
//!
//! NB: in polling mode (no `until`, `sortOrder=ASCENDING`) Okta always sends a `next` link, even
//! on an empty page, and events come in persistence order, which can differ from `published`
//! (<https://developer.okta.com/docs/reference/system-log-query/>). The feed persists nothing
//! itself: the caller stores [`FeedPage::next`] and passes it back.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use url::Url;

use super::{Fetched, OktaSource, encode_query_value, same_origin};
use crate::clock::Clock;
use crate::config::{Config, EventsConfig};
use crate::model::OktaGroupId;
use crate::source::{DirectorySource, SourceError};

/// The System Log events the feed asks for: membership changes, group and user lifecycle,
/// group renames and user profile changes. Everything else is filtered out by Okta.
pub const EVENT_FILTER: &str = concat!(
    r#"eventType eq "group.user_membership.add""#,
    r#" or eventType eq "group.user_membership.remove""#,
    r#" or eventType sw "group.lifecycle.""#,
    r#" or eventType eq "group.profile.update""#,
    r#" or eventType sw "user.lifecycle.""#,
    r#" or eventType eq "user.account.update_profile""#,
);

/// The System Log's path.
const LOGS_PATH: &str = "/api/v1/logs";

/// What kind of change an event reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `group.user_membership.add`.
    MembershipAdd,
    /// `group.user_membership.remove`.
    MembershipRemove,
    /// `group.lifecycle.*`, with the action (`create`, `delete`, ...).
    GroupLifecycle(String),
    /// `group.profile.update`: a group's name or description changed.
    GroupProfileUpdate,
    /// `user.lifecycle.*`, with the action (`deactivate`, `suspend`, `delete.initiated`, ...).
    UserLifecycle(String),
    /// `user.account.update_profile`: e.g. a new email, which is the Q user id.
    UserProfileUpdate,
}

impl ChangeKind {
    /// The kind of an `eventType`; `None` for types the feed does not use.
    pub fn parse(event_type: &str) -> Option<ChangeKind> {
        Some(match event_type {
            "group.user_membership.add" => ChangeKind::MembershipAdd,
            "group.user_membership.remove" => ChangeKind::MembershipRemove,
            "group.profile.update" => ChangeKind::GroupProfileUpdate,
            "user.account.update_profile" => ChangeKind::UserProfileUpdate,
            t => {
                if let Some(action) = t.strip_prefix("group.lifecycle.") {
                    ChangeKind::GroupLifecycle(action.to_owned())
                } else if let Some(action) = t.strip_prefix("user.lifecycle.") {
                    ChangeKind::UserLifecycle(action.to_owned())
                } else {
                    return None;
                }
            }
        })
    }

    /// Which targets an event of this kind must name to be usable.
    fn needs(&self) -> (bool, bool) {
        match self {
            ChangeKind::MembershipAdd | ChangeKind::MembershipRemove => (true, true),
            ChangeKind::GroupLifecycle(_) | ChangeKind::GroupProfileUpdate => (false, true),
            ChangeKind::UserLifecycle(_) | ChangeKind::UserProfileUpdate => (true, false),
        }
    }
}

/// One relevant System Log event, reduced to what marks groups dirty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The event's `uuid` (unique; duplicates are harmless anyway).
    pub uuid: String,
    /// When the change happened (`published`); not the order events arrive in.
    pub published: DateTime<Utc>,
    pub kind: ChangeKind,
    /// The `User` target's id, when the event names one.
    pub user_id: Option<String>,
    /// The `UserGroup` target's id, when the event names one.
    pub group_id: Option<OktaGroupId>,
}

/// One poll of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// The relevant events of the page, in the order Okta sent them.
    pub events: Vec<ChangeEvent>,
    /// Where the next poll starts: persist it and pass it back to [`ChangeFeed::poll`]. Always
    /// present (polling mode), on the org's origin.
    pub next: Url,
    /// The page held as many events as it may (`limit`): more are waiting, poll again now.
    pub full: bool,
    /// Events skipped because they could not be read (each logged with its uuid).
    pub malformed: usize,
    /// Events of types the feed does not use.
    pub ignored: usize,
}

/// What a batch of events makes dirty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Groups to read again: membership changes, and created, deleted or renamed groups.
    pub groups: BTreeSet<OktaGroupId>,
    /// Users whose status or profile changed: every group they are in (per Okta, see
    /// [`ChangeFeed::user_groups`], and per the snapshot) needs reading again.
    pub users: BTreeSet<String>,
    /// A group was created, deleted or renamed: the group listing changed too.
    pub relist: bool,
}

impl Affected {
    /// True when nothing needs reading again.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty() && !self.relist
    }
}

/// Which groups and users `events` make dirty. Pure; order and duplicates do not matter.
pub fn affected<'a>(events: impl IntoIterator<Item = &'a ChangeEvent>) -> Affected {
    let mut out = Affected::default();
    for e in events {
        match &e.kind {
            ChangeKind::MembershipAdd | ChangeKind::MembershipRemove => {
                out.groups.extend(e.group_id.iter().cloned());
            }
            ChangeKind::GroupLifecycle(_) | ChangeKind::GroupProfileUpdate => {
                out.groups.extend(e.group_id.iter().cloned());
                out.relist = true;
            }
            ChangeKind::UserLifecycle(_) | ChangeKind::UserProfileUpdate => {
                out.users.extend(e.user_id.iter().cloned());
            }
        }
    }
    out
}

/// Where q-group-sync learns, between passes, which groups changed.
pub trait ChangeFeed: Send + Sync {
    /// One page of events after `cursor` (a [`FeedPage::next`] from before), or, without one,
    /// from `okta.events.lookback` ago. An error leaves the cursor as it was: poll it again
    /// later. A [`SourceError::BadRequest`] or [`SourceError::ForeignLink`] means the cursor
    /// itself is unusable (expired, or from another org): drop it and start afresh; the next
    /// full pass covers the gap.
    fn poll(
        &self,
        cursor: Option<&Url>,
    ) -> impl Future<Output = Result<FeedPage, SourceError>> + Send;

    /// Ids of the groups a user is a member of now (all pages). A user Okta no longer has is in
    /// no group (empty). The groups a user *left* are known only from the snapshot.
    fn user_groups(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<OktaGroupId>, SourceError>> + Send;
}

/// Polls until a page is not full (caught up) or `max_pages` pages were read; returns every
/// event and the cursor after the last page read.
pub async fn drain<F: ChangeFeed + ?Sized>(
    feed: &F,
    cursor: Option<&Url>,
    max_pages: usize,
) -> Result<(Vec<ChangeEvent>, Option<Url>), SourceError> {
    let mut events = Vec::new();
    let mut next = cursor.cloned();
    for _ in 0..max_pages.max(1) {
        let page = feed.poll(next.as_ref()).await?;
        events.extend(page.events);
        next = Some(page.next);
        if !page.full {
            break;
        }
    }
    Ok((events, next))
}

/// `[okta.events]`, resolved for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// How far back the first poll (without a cursor) starts.
    pub lookback: Duration,
    /// `limit` of each poll (1..=1000).
    pub page_size: u32,
}

impl FeedSettings {
    /// From `okta.events`.
    pub fn from_config(config: &Config) -> FeedSettings {
        let EventsConfig {
            lookback,
            page_size,
            ..
        } = config
            .okta
            .as_ref()
            .map_or_else(EventsConfig::default, |o| o.events.clone());
        FeedSettings {
            lookback,
            page_size,
        }
    }
}

/// The System Log [`ChangeFeed`], on an [`OktaSource`]'s HTTP client, auth, retries and
/// rate-limit budget (`/api/v1/logs` and `/api/v1/users` are buckets of their own).
pub struct OktaChangeFeed {
    source: Arc<OktaSource>,
    settings: FeedSettings,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OktaChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaChangeFeed")
            .field("source", &self.source)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OktaChangeFeed {
    /// A feed sharing `source` (and its budget) with the passes.
    pub fn new(
        source: Arc<OktaSource>,
        settings: FeedSettings,
        clock: Arc<dyn Clock>,
    ) -> OktaChangeFeed {
        OktaChangeFeed {
            source,
            settings,
            clock,
        }
    }

    /// The first poll: `since = now - lookback`, ascending (polling mode), the filter, `limit`.
    pub fn first_url(&self) -> Url {
        let lookback = chrono::TimeDelta::from_std(self.settings.lookback)
            .unwrap_or(chrono::TimeDelta::zero());
        let since = (self.clock.now() - lookback).to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut url = self.source.endpoint(&["api", "v1", "logs"]);
        url.set_query(Some(&format!(
            "since={}&sortOrder=ASCENDING&limit={}&filter={}",
            encode_query_value(&since),
            self.settings.page_size,
            encode_query_value(EVENT_FILTER)
        )));
        url
    }

    /// A saved cursor is followed only to the org's own System Log, without credentials in it.
    fn check_cursor(&self, cursor: &Url) -> Result<Url, SourceError> {
        if !same_origin(cursor, self.source.org_url()) {
            return Err(SourceError::ForeignLink {
                path: LOGS_PATH.to_owned(),
                link_origin: cursor.origin().ascii_serialization(),
            });
        }
        if cursor.path() != LOGS_PATH
            || !cursor.username().is_empty()
            || cursor.password().is_some()
            || cursor.fragment().is_some()
        {
            return Err(SourceError::Malformed {
                path: LOGS_PATH.to_owned(),
                detail: format!(
                    "the saved System Log cursor is not a {LOGS_PATH} URL of okta.org_url"
                ),
            });
        }
        Ok(cursor.clone())
    }
}

impl ChangeFeed for OktaChangeFeed {
    async fn poll(&self, cursor: Option<&Url>) -> Result<FeedPage, SourceError> {
        let url = match cursor {
            Some(cursor) => self.check_cursor(cursor)?,
            None => self.first_url(),
        };
        let limit = url
            .query_pairs()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(100);
        match self.source.fetch_page(&url, &parse_events).await? {
            Fetched::Page {
                items,
                next: Some(next),
            } => Ok(FeedPage {
                full: items.received >= limit.max(1),
                events: items.events,
                next,
                malformed: items.malformed,
                ignored: items.ignored,
            }),
            Fetched::Page { next: None, .. } => Err(SourceError::Malformed {
                path: LOGS_PATH.to_owned(),
                detail: "the System Log page has no next link (polling mode always has one)"
                    .to_owned(),
            }),
            Fetched::NotFound => Err(SourceError::Server {
                path: LOGS_PATH.to_owned(),
                status: 404,
            }),
        }
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroupId>, SourceError> {
        let ids = self.source.groups_of_user(user_id).await?;
        Ok(ids.into_iter().map(OktaGroupId::new).collect())
    }
}

/// The OAuth scopes of the feed's two endpoints: [`crate::config::EVENTS_SCOPES`], which the
/// configuration checks against `okta.scopes`.
pub fn required_scopes() -> [&'static str; 2] {
    crate::config::EVENTS_SCOPES
}

// ---------- parsing ----------

/// One page of events, read event by event.
#[derive(Debug, Default, PartialEq, Eq)]
struct ParsedPage {
    events: Vec<ChangeEvent>,
    /// Events in the body, relevant or not.
    received: usize,
    malformed: usize,
    ignored: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    uuid: String,
    published: String,
    event_type: String,
    #[serde(default)]
    target: Option<Vec<WireTarget>>,
}

#[derive(Deserialize)]
struct WireTarget {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The body must be a JSON array (otherwise the page is retried as broken); each event in it is
/// used, ignored (another type) or skipped as malformed with a warning naming its uuid.
fn parse_events(body: &[u8]) -> Result<ParsedPage, serde_json::Error> {
    let raw: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    let mut page = ParsedPage {
        received: raw.len(),
        ..ParsedPage::default()
    };
    for value in raw {
        let uuid = value
            .get("uuid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("(no uuid)")
            .to_owned();
        match read_event(value) {
            Ok(Some(event)) => page.events.push(event),
            Ok(None) => page.ignored += 1,
            Err(problem) => {
                page.malformed += 1;
                tracing::warn!(uuid = %uuid, problem = %problem, "skipping a System Log event that cannot be read");
            }
        }
    }
    Ok(page)
}

/// One event: `Ok(None)` for a type the feed does not use.
fn read_event(value: serde_json::Value) -> Result<Option<ChangeEvent>, String> {
    let wire: WireEvent = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let Some(kind) = ChangeKind::parse(&wire.event_type) else {
        return Ok(None);
    };
    let published = DateTime::parse_from_rfc3339(&wire.published)
        .map_err(|e| format!("published {:?} is not RFC 3339: {e}", wire.published))?
        .with_timezone(&Utc);
    let targets = wire.target.unwrap_or_default();
    let target_of = |kind: &str| -> Result<Option<String>, String> {
        let mut ids = targets
            .iter()
            .filter(|t| t.kind.as_deref() == Some(kind))
            .map(|t| t.id.as_deref().filter(|id| !id.is_empty()));
        match (ids.next(), ids.next()) {
            (None, _) => Ok(None),
            (Some(Some(id)), None) => Ok(Some(id.to_owned())),
            (Some(None), _) => Err(format!("its {kind} target has no id")),
            (Some(_), Some(_)) => Err(format!("it names more than one {kind} target")),
        }
    };
    let user_id = target_of("User")?;
    let group_id = target_of("UserGroup")?.map(OktaGroupId::new);
    let (needs_user, needs_group) = kind.needs();
    if needs_user && user_id.is_none() {
        return Err(format!("{} has no User target", wire.event_type));
    }
    if needs_group && group_id.is_none() {
        return Err(format!("{} has no UserGroup target", wire.event_type));
    }
    Ok(Some(ChangeEvent {
        uuid: wire.uuid,
        published,
        kind,
        user_id,
        group_id,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fakes::{FakeChangeFeed, FixedClock};
    use crate::source::scope_for;

    #[test]
    fn required_scopes_are_those_of_the_feeds_endpoints() {
        assert_eq!(
            required_scopes(),
            [scope_for(LOGS_PATH), scope_for("/api/v1/users")]
        );
    }

    fn event(uuid: &str, kind: ChangeKind, user: Option<&str>, group: Option<&str>) -> ChangeEvent {
        ChangeEvent {
            uuid: uuid.into(),
            published: FixedClock.now(),
            kind,
            user_id: user.map(Into::into),
            group_id: group.map(OktaGroupId::new),
        }
    }

    fn ids(groups: &[&str]) -> BTreeSet<OktaGroupId> {
        groups.iter().map(|g| OktaGroupId::new(*g)).collect()
    }

    #[test]
    fn affected_maps_each_kind() {
        let events = [
            event("1", ChangeKind::MembershipAdd, Some("u1"), Some("g1")),
            event("2", ChangeKind::MembershipRemove, Some("u2"), Some("g2")),
            event(
                "3",
                ChangeKind::UserLifecycle("deactivate".into()),
                Some("u3"),
                None,
            ),
            event("4", ChangeKind::UserProfileUpdate, Some("u4"), None),
        ];
        let got = affected(&events);
        assert_eq!(got.groups, ids(&["g1", "g2"]));
        assert_eq!(
            got.users,
            ["u3", "u4"].map(String::from).into_iter().collect()
        );
        assert!(!got.relist, "membership and user changes keep the listing");
        for kind in [
            ChangeKind::GroupLifecycle("create".into()),
            ChangeKind::GroupLifecycle("delete".into()),
            ChangeKind::GroupProfileUpdate,
        ] {
            let got = affected(&[event("5", kind.clone(), None, Some("g5"))]);
            assert_eq!(got.groups, ids(&["g5"]), "{kind:?}");
            assert!(got.relist, "{kind:?}");
            assert!(got.users.is_empty());
        }
        assert!(affected(&[]).is_empty());
    }

    #[test]
    fn affected_ignores_order_and_duplicates() {
        let a = event("1", ChangeKind::MembershipAdd, Some("u1"), Some("g1"));
        let b = event("2", ChangeKind::MembershipRemove, Some("u1"), Some("g1"));
        let c = event(
            "3",
            ChangeKind::GroupLifecycle("delete".into()),
            None,
            Some("g2"),
        );
        let d = event(
            "4",
            ChangeKind::UserLifecycle("suspend".into()),
            Some("u9"),
            None,
        );
        let forward = affected(&[a.clone(), b.clone(), c.clone(), d.clone()]);
        let shuffled = affected(&[d.clone(), c.clone(), b.clone(), a.clone(), a, c, d, b]);
        assert_eq!(forward, shuffled);
        assert_eq!(forward.groups, ids(&["g1", "g2"]));
        // A remove seen before its add (persistence order) marks the same group: it is re-read
        // from Okta, so whichever came last in Okta is what gets synced.
        assert!(forward.relist);
    }

    #[test]
    fn kinds_parse_from_event_types() {
        assert_eq!(
            ChangeKind::parse("group.user_membership.add"),
            Some(ChangeKind::MembershipAdd)
        );
        assert_eq!(
            ChangeKind::parse("user.lifecycle.delete.initiated"),
            Some(ChangeKind::UserLifecycle("delete.initiated".into()))
        );
        assert_eq!(
            ChangeKind::parse("group.lifecycle.create"),
            Some(ChangeKind::GroupLifecycle("create".into()))
        );
        assert_eq!(ChangeKind::parse("user.session.start"), None);
        assert_eq!(ChangeKind::parse("group.user_membership"), None);
    }

    #[test]
    fn events_are_read_one_by_one() {
        let body = br#"[
            {"uuid":"a","published":"2024-07-11T18:46:28.123Z","eventType":"group.user_membership.add",
             "actor":{"id":"00uadmin"},"target":[{"id":"00g1","type":"UserGroup"},{"id":"00u1","type":"User","alternateId":"ana@x.test"}]},
            {"uuid":"b","published":"2024-07-11T18:46:29.000Z","eventType":"user.session.start","target":null},
            {"uuid":"c","published":"yesterday","eventType":"group.user_membership.remove","target":[]},
            {"uuid":"d","published":"2024-07-11T18:46:29.000Z","eventType":"group.user_membership.remove","target":[{"id":"00u1","type":"User"}]},
            {"published":"2024-07-11T18:46:29.000Z","eventType":"group.lifecycle.create"},
            {"uuid":"f","published":"2024-07-11T18:46:30.000+02:00","eventType":"user.lifecycle.suspend","target":[{"id":"00u2","type":"User"}]},
            {"uuid":"g","published":"2024-07-11T18:46:30.000Z","eventType":"group.lifecycle.delete","target":[{"id":"00g1","type":"UserGroup"},{"id":"00g2","type":"UserGroup"}]},
            {"uuid":"h","published":"2024-07-11T18:46:30.000Z","eventType":"group.profile.update","target":[{"type":"UserGroup"}]},
            17
        ]"#;
        let page = parse_events(body).unwrap();
        assert_eq!(page.received, 9);
        assert_eq!(page.ignored, 1);
        assert_eq!(page.malformed, 6);
        assert_eq!(page.events.len(), 2);
        let add = &page.events[0];
        assert_eq!(add.uuid, "a");
        assert_eq!(add.kind, ChangeKind::MembershipAdd);
        assert_eq!(add.user_id.as_deref(), Some("00u1"));
        assert_eq!(add.group_id, Some(OktaGroupId::new("00g1")));
        assert_eq!(
            add.published.to_rfc3339_opts(SecondsFormat::Millis, true),
            "2024-07-11T18:46:28.123Z"
        );
        assert_eq!(
            page.events[1].published.to_rfc3339(),
            "2024-07-11T16:46:30+00:00"
        );
        assert!(parse_events(br#"{"not":"an array"}"#).is_err());
        assert!(parse_events(b"[").is_err());
    }

    #[test]
    fn the_filter_names_every_used_type() {
        for t in [
            "group.user_membership.add",
            "group.user_membership.remove",
            "group.lifecycle.",
            "group.profile.update",
            "user.lifecycle.",
            "user.account.update_profile",
        ] {
            assert!(EVENT_FILTER.contains(&format!("\"{t}\"")), "{t}");
        }
        assert!(!EVENT_FILTER.contains("published"));
    }

    #[tokio::test]
    async fn drain_reads_until_caught_up_and_returns_the_last_cursor() {
        let feed = FakeChangeFeed::new(2);
        for n in 0..5 {
            feed.push(event(
                &n.to_string(),
                ChangeKind::MembershipAdd,
                Some("u"),
                Some(&format!("g{n}")),
            ));
        }
        let (events, next) = drain(&feed, None, 10).await.unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(feed.polls(), 3, "2 + 2 + 1: the short page ends it");
        let (again, next) = drain(&feed, next.as_ref(), 10).await.unwrap();
        assert!(again.is_empty(), "nothing twice");
        feed.push(event(
            "5",
            ChangeKind::MembershipRemove,
            Some("u"),
            Some("g0"),
        ));
        let (late, _) = drain(&feed, next.as_ref(), 10).await.unwrap();
        assert_eq!(late.len(), 1);
        let (capped, _) = drain(&feed, None, 1).await.unwrap();
        assert_eq!(capped.len(), 2, "at most max_pages pages");

        feed.fail_next_polls(1);
        assert_eq!(drain(&feed, None, 10).await.unwrap_err().kind(), "server");
        feed.set_user_groups("u", &["g1", "g2"]);
        assert_eq!(
            feed.user_groups("u").await.unwrap(),
            ids(&["g1", "g2"]).into_iter().collect::<Vec<_>>()
        );
        assert!(feed.user_groups("nobody").await.unwrap().is_empty());
    }
}
