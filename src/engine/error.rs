//! Why a pass could not run to the end.

use crate::sink::SinkError;
use crate::source::SourceError;
use crate::store::{HoldStatus, StoreError};

/// A pass that could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading groups from Okta")]
    Okta(#[from] SourceError),
    #[error("snapshot")]
    Store(#[from] StoreError),
    #[error("writing to Q Business stopped: {0}")]
    QBusiness(SinkError),
    #[error(
        "stopped by shutdown with {not_applied} change(s) not applied; the next pass applies them"
    )]
    Cancelled { not_applied: usize },
    #[error("stopped by shutdown while reading Okta; nothing was written")]
    Interrupted,
    #[error(
        "no Okta group or managed Q group is named {group:?} (give an Okta group id, Okta name or Q name)"
    )]
    UnknownGroup { group: String },
    #[error(
        "no held plan has the id {id:?}; `q-group-sync plan` or GET /status shows the open one"
    )]
    UnknownPlan { id: String },
    #[error(
        "held plan {id} is {status}, not waiting for approval; run `q-group-sync sync` for a new plan"
    )]
    PlanClosed { id: String, status: HoldStatus },
    #[error(
        "held plan {id} cannot be checked against Okta now ({reason}); it stays held, try again"
    )]
    ApprovalIncomplete { id: String, reason: String },
    #[error("Okta no longer agrees with held plan {id}: {} not in it; run `q-group-sync sync` for a new plan", .changes.join(", "))]
    PlanDisagrees { id: String, changes: Vec<String> },
}

impl Error {
    /// What to change when the pass stopped on the setup (credentials or permissions Okta or
    /// AWS refused, the configured ids): every run fails the same way until then. `None` when
    /// the next run may succeed as it is.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Error::Okta(e) => e.fix(),
            Error::QBusiness(e) => e.fix(),
            _ => None,
        }
    }

    /// Bounded label for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Okta(_) => "okta",
            Error::Store(StoreError::Fenced { .. }) => "fenced",
            Error::Store(_) => "snapshot",
            Error::QBusiness(_) => "qbusiness",
            Error::Cancelled { .. } | Error::Interrupted => "cancelled",
            Error::UnknownGroup { .. } => "unknown_group",
            Error::UnknownPlan { .. }
            | Error::PlanClosed { .. }
            | Error::PlanDisagrees { .. }
            | Error::ApprovalIncomplete { .. } => "approval",
        }
    }
}
