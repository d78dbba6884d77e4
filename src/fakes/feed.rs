//! The Okta System Log in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::OktaGroupId;
use crate::source::SourceError;
use crate::source::okta::events::{ChangeEvent, ChangeFeed, FeedPage};

use super::lock;

/// A System Log in memory: events in persistence order, pages of `page_size`, cursors
/// `https://fake.okta.test/api/v1/logs?after=N`.
pub struct FakeChangeFeed {
    page_size: usize,
    events: Mutex<Vec<ChangeEvent>>,
    user_groups: Mutex<BTreeMap<String, Vec<OktaGroupId>>>,
    /// Polls that fail (503) before polls succeed again.
    failing_polls: Mutex<u32>,
    polls: Mutex<usize>,
}

impl FakeChangeFeed {
    pub fn new(page_size: usize) -> Self {
        FakeChangeFeed {
            page_size: page_size.max(1),
            events: Mutex::default(),
            user_groups: Mutex::default(),
            failing_polls: Mutex::default(),
            polls: Mutex::default(),
        }
    }

    /// Appends an event (it is persisted now, whatever its `published`).
    pub fn push(&self, event: ChangeEvent) {
        lock(&self.events).push(event);
    }

    pub fn set_user_groups(&self, user: &str, groups: &[&str]) {
        lock(&self.user_groups).insert(
            user.into(),
            groups.iter().map(|g| OktaGroupId::new(*g)).collect(),
        );
    }

    pub fn fail_next_polls(&self, n: u32) {
        *lock(&self.failing_polls) = n;
    }

    /// Polls answered, failed ones included.
    pub fn polls(&self) -> usize {
        *lock(&self.polls)
    }

    fn cursor(after: usize) -> url::Url {
        url::Url::parse(&format!("https://fake.okta.test/api/v1/logs?after={after}"))
            .expect("a valid URL")
    }
}

impl ChangeFeed for FakeChangeFeed {
    async fn poll(&self, cursor: Option<&url::Url>) -> Result<FeedPage, SourceError> {
        *lock(&self.polls) += 1;
        {
            let mut failing = lock(&self.failing_polls);
            if *failing > 0 {
                *failing -= 1;
                return Err(SourceError::Server {
                    path: "/api/v1/logs".into(),
                    status: 503,
                });
            }
        }
        let start = match cursor {
            None => 0,
            Some(url) => url
                .query_pairs()
                .find(|(k, _)| k == "after")
                .and_then(|(_, v)| v.parse().ok())
                .ok_or_else(|| SourceError::BadRequest {
                    path: "/api/v1/logs".into(),
                    code: "E0000053".into(),
                    summary: format!("not a cursor: {url}"),
                })?,
        };
        let events = lock(&self.events);
        let start = start.min(events.len());
        let end = (start + self.page_size).min(events.len());
        Ok(FeedPage {
            events: events[start..end].to_vec(),
            next: Self::cursor(end),
            full: end - start == self.page_size,
            malformed: 0,
            ignored: 0,
        })
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroupId>, SourceError> {
        Ok(lock(&self.user_groups)
            .get(user_id)
            .cloned()
            .unwrap_or_default())
    }
}
