//! The first-contact step: the names a plan would write that the snapshot does not own are
//! checked in Q Business once, before any write (the decision is [`ownership::settle`]).

use std::collections::BTreeSet;

use futures::StreamExt;
use tracing::{info, warn};

use super::context::Pass;
use super::{Engine, Error};
use crate::model::GroupName;
use crate::plan::Plan;
use crate::plan::ownership::{self, Existence};
use crate::sink::{GroupSink, GroupState, SinkError};
use crate::source::DirectorySource;
use crate::store::Store;

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// First contact: asks Q Business about the names `plan` would write that the snapshot
    /// does not own (`owned`), and drops the puts of groups Q already has and q-group-sync
    /// did not create ([`ownership::settle`]). One check per pass, before any write; nothing
    /// is asked when every write is to an owned group.
    pub(super) async fn first_contact(
        &self,
        pass: &Pass<'_>,
        mut plan: Plan,
        owned: &BTreeSet<GroupName>,
    ) -> Result<Plan, Error> {
        let names = ownership::unowned_writes(&plan, owned);
        if names.is_empty() {
            return Ok(plan);
        }
        let found = pass
            .unless_cancelled(self.existing_in_q(names))
            .await?
            .map_err(Error::QBusiness)?;
        pass.trace("ownership", || {
            format!(
                "Q Business has {:?} (not created by q-group-sync), has not {:?}, could not say for {:?}",
                found.exists,
                found.absent,
                found.unchecked.keys().collect::<Vec<_>>()
            )
        });
        ownership::settle(&mut plan, owned, &found, &pass.settings.take_over);
        Ok(plan)
    }

    /// Which of `names` Q Business has. ListGroups answers 10 names a page for the whole
    /// index, GetGroup one name a request: the index is listed while the pages listed stay
    /// fewer than the names still open (so an empty or small index costs a page or two however
    /// many names are asked about), then the rest are looked up one by one. An error leaves a
    /// name unchecked; it is never taken as absent. `Err` when GetGroup was refused for good
    /// (credentials, permissions, the application's ids): no name can be checked, and no write
    /// would succeed either.
    pub(super) async fn existing_in_q(
        &self,
        names: BTreeSet<GroupName>,
    ) -> Result<Existence, SinkError> {
        let asked = names.len();
        let mut out = Existence::default();
        let mut open = names;
        let mut pages = 0usize;
        let mut token: Option<String> = None;
        let until = crate::sink::qbusiness::list_cutoff(self.clock.now());
        while !open.is_empty() && pages < open.len() {
            match self.sink.list_groups_page(until, token.take()).await {
                Ok(page) => {
                    pages += 1;
                    for name in &page.names {
                        if let Some(name) = open.take(name) {
                            out.exists.insert(name);
                        }
                    }
                    match page.next {
                        Some(next) => token = Some(next),
                        // The whole index is listed: what it did not list is absent.
                        None => out.absent.append(&mut open),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "listing Q Business groups failed; looking the new groups up one by one");
                    break;
                }
            }
        }
        let lookups = open.len();
        let stopped: std::sync::Mutex<Option<SinkError>> = std::sync::Mutex::new(None);
        let stopped = &stopped;
        let mut answers = futures::stream::iter(open)
            .map(|name| async move {
                let earlier = stopped.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(e) = earlier {
                    return (name, Err(e));
                }
                let answer = self.sink.group_state(&name).await;
                if let Err(e) = &answer
                    && e.kind.is_fatal()
                {
                    stopped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert_with(|| e.clone());
                }
                (name, answer)
            })
            .buffer_unordered(self.settings.write_concurrency.max(1));
        while let Some((name, answer)) = answers.next().await {
            match answer {
                Ok(GroupState::Missing | GroupState::Deleted) => {
                    out.absent.insert(name);
                }
                Ok(_) => {
                    out.exists.insert(name);
                }
                Err(e) => {
                    out.unchecked.insert(name, e.to_string());
                }
            }
        }
        info!(
            asked,
            list_pages = pages,
            lookups,
            exists = out.exists.len(),
            unchecked = out.unchecked.len(),
            "checked which new Q groups Q Business already has"
        );
        match stopped.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(refused) => Err(refused),
            None => Ok(out),
        }
    }
}
