//! `reconcile`: Q Business's groups compared with the snapshot and Okta (the comparison is
//! [`plan::reconcile`]), and with `--adopt` the groups that look managed recorded as owned,
//! so the next pass rewrites or deletes them. The only writes are intents and a run log entry.

use super::Engine;
use crate::model::{GroupName, OktaGroupId};
use crate::plan::reconcile::{LooksManaged, Reconciliation};
use crate::plan::{self, Snapshot};
use crate::report::Trigger;
use crate::sink::{GroupSink, SinkError, qbusiness::list_cutoff};
use crate::source::{DirectorySource, SourceError};
use crate::store::{IntentOp, RunRecord, RunStart, Store, StoreError};

/// What `reconcile` is asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcileRequest<'a> {
    /// `groups.name_prefix`: unrecorded Q groups that start with it look managed.
    pub name_prefix: Option<&'a str>,
    /// `--adopt`: record the groups found as owned (and unconfirmed).
    pub adopt: bool,
    /// `groups.adopt_prefixed`: adopt groups that only match the prefix too.
    pub adopt_prefixed: bool,
}

/// What `reconcile` found, and the groups it adopted.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    pub found: Reconciliation,
    /// The Q names recorded as owned (`--adopt`).
    pub adopted: Vec<String>,
}

/// Why `reconcile` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the snapshot")]
    Snapshot(#[source] StoreError),
    #[error("listing Q Business groups (ListGroups)")]
    QBusiness(#[source] SinkError),
    #[error("listing Okta groups")]
    Okta(#[source] SourceError),
    /// Recording the adopted groups (the run log entry, an intent).
    #[error(transparent)]
    Record(StoreError),
}

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// Compares Q Business with the snapshot and Okta's in-scope groups; with `adopt`, records
    /// the groups that look managed as owned, under a run log entry of their own.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest<'_>,
    ) -> Result<Reconciled, ReconcileError> {
        let snapshot: Snapshot = self.store.load().await.map_err(ReconcileError::Snapshot)?;
        let in_q = self
            .q_group_names()
            .await
            .map_err(ReconcileError::QBusiness)?;
        let groups = self
            .source
            .list_groups()
            .await
            .map_err(ReconcileError::Okta)?;
        let found = plan::reconcile::reconcile(
            &in_q,
            &snapshot,
            &groups,
            &self.settings.rules,
            request.name_prefix,
        );
        let mut adopted = Vec::new();
        if request.adopt && !found.look_managed_but_unrecorded.is_empty() {
            adopted = self
                .adopt(&found, request.adopt_prefixed)
                .await
                .map_err(ReconcileError::Record)?;
        }
        Ok(Reconciled { found, adopted })
    }

    /// Records the unrecorded groups that look managed as owned (an adoption intent each),
    /// leaving out those that only match the name prefix unless `prefixed`.
    async fn adopt(
        &self,
        found: &Reconciliation,
        prefixed: bool,
    ) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let start = RunStart {
            pass_id: "reconcile".into(),
            trigger: Trigger::Reconcile.as_str().into(),
            group: None,
        };
        let run = self.store.begin_run(now, &start).await?;
        let mut adopted = Vec::new();
        for u in &found.look_managed_but_unrecorded {
            if u.why == LooksManaged::NamePrefix && !prefixed {
                continue;
            }
            let okta_id = OktaGroupId::new(u.okta_id.clone().unwrap_or_default());
            self.store
                .record_intent(run, now, &u.group, &okta_id, IntentOp::Adopt)
                .await?;
            adopted.push(u.group.to_string());
        }
        let record = RunRecord {
            outcome: "success".into(),
            ..Default::default()
        };
        self.store
            .finish_run(run, self.clock.now(), &record)
            .await?;
        Ok(adopted)
    }

    /// Every group name in the index (ListGroups, all pages), sorted.
    async fn q_group_names(&self) -> Result<Vec<GroupName>, SinkError> {
        let until = list_cutoff(self.clock.now());
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.sink.list_groups_page(until, token.take()).await?;
            names.extend(page.names);
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}
