//! The plan of an approval: a held plan's destructive changes, if Okta still agrees.

use super::{Engine, Error};
use crate::plan::{Change, Plan};
use crate::sink::GroupSink;
use crate::source::DirectorySource;
use crate::store::{HoldStatus, Store};

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// The plan of an approval: the fresh plan's destructive changes, if the held plan `id`
    /// covers every one of them (Okta still agrees, or asks for less). Additions are left to
    /// the next pass, so an approval applies exactly what was approved.
    pub(super) async fn approved(&self, id: &str, fresh: Plan) -> Result<Plan, Error> {
        let record = self
            .store
            .held_plan(Some(id))
            .await?
            .ok_or_else(|| Error::UnknownPlan { id: id.to_owned() })?;
        if record.status != HoldStatus::Held {
            return Err(Error::PlanClosed {
                id: id.to_owned(),
                status: record.status,
            });
        }
        if let Some(reason) = &fresh.withheld_reason {
            // Deciding whether Okta still agrees needs every group read.
            return Err(Error::ApprovalIncomplete {
                id: id.to_owned(),
                reason: reason.clone(),
            });
        }
        if let Err(changes) = record.held.covers(&fresh) {
            self.store
                .resolve_holds(
                    self.clock.now(),
                    Some(id),
                    HoldStatus::Superseded,
                    "Okta changed before approval",
                )
                .await?;
            return Err(Error::PlanDisagrees {
                id: id.to_owned(),
                changes,
            });
        }
        let mut plan = fresh;
        plan.changes.retain(|c| match c {
            Change::Delete { reason, .. } => reason.takes_access(),
            Change::Put { removed, .. } => !removed.is_empty(),
        });
        plan.unchanged = 0;
        Ok(plan)
    }
}
