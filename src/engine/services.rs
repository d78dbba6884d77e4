//! What the engine offers besides passes, so that nothing else reaches its edges: `explain`'s
//! reads, the daemon's reads of the run log and held plans, the System Log position (the one
//! write outside a pass), and the source's own figures for reports.

use super::Engine;
use crate::explain::{ExplainError, Question, Settings};
use crate::plan::explain::Explanation;
use crate::sink::{DocumentAccess, GroupSink};
use crate::source::okta::OktaStats;
use crate::source::{DirectorySource, SourceInfo, UserDirectory};
use crate::store::{HeldRecord, Store, StoreError};

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// When the last successful full pass finished, per the run log.
    pub async fn last_success(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.store.last_success().await
    }

    /// A held plan by id, or the open one when `id` is `None`.
    pub async fn held_plan(&self, id: Option<&str>) -> Result<Option<HeldRecord>, StoreError> {
        self.store.held_plan(id).await
    }

    /// The recorded System Log position (`next` link) polling resumes from, if any.
    pub async fn events_cursor(&self) -> Result<Option<String>, StoreError> {
        self.store.events_cursor().await
    }

    /// Records the System Log position once the changes before it are synced.
    pub async fn record_events_cursor(&self, cursor: &str) -> Result<(), StoreError> {
        self.store.set_events_cursor(cursor).await
    }
}

impl<S, K, T> Engine<S, K, T>
where
    S: DirectorySource + SourceInfo,
    K: GroupSink,
    T: Store,
{
    /// The source's request counters so far (Okta's; `None` for a source without them).
    pub fn source_stats(&self) -> Option<OktaStats> {
        self.source.request_stats()
    }
}

impl<S, K, T> Engine<S, K, T>
where
    S: DirectorySource + UserDirectory + SourceInfo,
    K: GroupSink + DocumentAccess,
    T: Store,
{
    /// `explain`: why a user can or cannot see a document, from the source (the user and their
    /// groups), the snapshot and one CheckDocumentAccess. Reads only; takes no part in a pass.
    pub async fn explain(&self, question: &Question<'_>) -> Result<Explanation, ExplainError> {
        let settings = Settings {
            rules: &self.settings.rules,
            id_attribute: self.source.id_attribute().unwrap_or(DEFAULT_ID_ATTRIBUTE),
        };
        crate::explain::explain(&self.source, &self.sink, &self.store, settings, question).await
    }
}

/// `users.id_attribute`'s default, named by `explain` for a source that does not say which
/// attribute it maps users by.
const DEFAULT_ID_ATTRIBUTE: &str = "email";
