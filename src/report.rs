//! What a pass was asked to do and what it did: the request, the report `sync` prints and
//! `/status` serves, and the closed sets they are made of. Below the engine, so that metrics
//! and the serve runtime can read a report without depending on the engine.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::Plan;
use crate::trace::Trace;

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A command (`sync`, `plan`, `approve`).
    Cli,
    /// The cron schedule of `serve`.
    Schedule,
    /// `serve`'s first pass.
    Startup,
    /// `POST /sync` or `POST /approve`.
    Admin,
    /// Changes seen in Okta's System Log.
    Events,
    /// A replica that just became leader.
    Takeover,
    /// `reconcile --adopt`.
    Reconcile,
    /// Changes an IdP pushed to the SCIM listener.
    Scim,
}

impl Trigger {
    pub const ALL: [Trigger; 8] = [
        Trigger::Cli,
        Trigger::Schedule,
        Trigger::Startup,
        Trigger::Admin,
        Trigger::Events,
        Trigger::Takeover,
        Trigger::Reconcile,
        Trigger::Scim,
    ];

    /// Bounded label for logs, metrics and the run log.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Schedule => "schedule",
            Trigger::Startup => "startup",
            Trigger::Admin => "admin",
            Trigger::Events => "events",
            Trigger::Takeover => "takeover",
            Trigger::Reconcile => "reconcile",
            Trigger::Scim => "scim",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read Okta and the snapshot, compute the plan, write nothing.
    Plan,
    /// Apply the plan to Q Business and record what succeeded.
    Apply,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every change applied (or there was nothing to do) and every in-scope group was synced.
    Success,
    /// Some groups could not be read or written; everything else was applied and recorded.
    Partial,
    /// Additions were applied; deletions and removals wait for approval of a held plan.
    Held,
    /// The pass stopped early (Okta unreachable, credentials, snapshot, cancelled).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Held => "held",
            Outcome::Failed => "failed",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRequest {
    pub mode: Mode,
    /// Limit the pass to one group: an Okta group id, Okta name or Q name.
    pub group: Option<String>,
    /// The id for logs and the run log; default: the run id (or `plan`).
    pub pass_id: Option<String>,
    /// `cli`, `schedule`, `startup` or `admin`.
    pub trigger: Trigger,
    /// Apply the destructive changes of this held plan (with [`Mode::Apply`]), if Okta still
    /// agrees with them.
    pub approve: Option<String>,
    /// Read every group's members, not only those Okta reports changed.
    pub full: bool,
    /// Limit the pass to these Okta group ids (event-driven passes); ids Okta and the snapshot
    /// no longer know are nothing to do, not an error.
    pub groups: Vec<String>,
}

impl PassRequest {
    /// Whether the pass covers some groups only.
    pub fn limited(&self) -> bool {
        self.group.is_some() || !self.groups.is_empty()
    }

    /// A full pass started from the command line.
    pub fn cli(mode: Mode) -> PassRequest {
        PassRequest {
            mode,
            group: None,
            pass_id: None,
            trigger: Trigger::Cli,
            approve: None,
            full: false,
            groups: Vec::new(),
        }
    }

    /// The approval of held plan `plan_id`.
    pub fn approve(plan_id: &str, trigger: Trigger) -> PassRequest {
        PassRequest {
            mode: Mode::Apply,
            group: None,
            pass_id: None,
            trigger,
            approve: Some(plan_id.to_owned()),
            full: false,
            groups: Vec::new(),
        }
    }
}

/// One change that failed, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub group: String,
    pub op: FailedStep,
    /// Bounded label.
    pub kind: String,
    pub message: String,
}

/// Where a group failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedStep {
    /// Reading its members from Okta.
    Read,
    /// Planning (an issue such as a name conflict).
    Plan,
    /// PutGroup.
    Put,
    /// DeleteGroup.
    Delete,
}

impl FailedStep {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedStep::Read => "read",
            FailedStep::Plan => "plan",
            FailedStep::Put => "put",
            FailedStep::Delete => "delete",
        }
    }
}

impl From<crate::plan::WriteOp> for FailedStep {
    fn from(op: crate::plan::WriteOp) -> FailedStep {
        match op {
            crate::plan::WriteOp::Put => FailedStep::Put,
            crate::plan::WriteOp::Delete => FailedStep::Delete,
        }
    }
}

/// What a pass did. Printed by `sync`, served by `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub mode: Mode,
    /// The pass id used in logs (the run id when none was given).
    pub pass_id: Option<String>,
    pub run_id: Option<i64>,
    /// The one group the pass was limited to, if any.
    pub group: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// Why the pass stopped early, when it did.
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    /// When the pass stopped on the setup (credentials or permissions refused, the configured
    /// ids): what to change. Every run fails the same way until then (exit 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'static str>,
    pub groups_listed: usize,
    pub groups_in_scope: usize,
    pub groups_unread: usize,
    /// In-scope groups whose members were read this pass (the rest were unchanged in Okta).
    pub groups_read: usize,
    pub puts_applied: usize,
    pub deletes_applied: usize,
    pub users_added: usize,
    pub users_removed: usize,
    pub failures: Vec<Failure>,
    pub plan: Plan,
    /// How this pass checked users' status and id changes.
    pub users: UserCheck,
    /// When the next full member read is due (incremental passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_full_read_at: Option<DateTime<Utc>>,
    /// Step by step, for a one-group pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

/// How a pass found users whose status or id attribute changed (which Okta does not report
/// as a membership change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserCheckHow {
    /// Every group's members were read.
    FullRead,
    /// Okta's users listing, for the users updated since the last pass.
    Listing,
    /// Not checked (the pass stopped before, or was limited to some groups).
    #[default]
    NotChecked,
}

/// What a pass learnt of users' status and id changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserCheck {
    pub how: UserCheckHow,
    /// Users Okta listed as updated since the last pass.
    pub users_listed: usize,
    /// Of those, users whose effective Q identity changed (status, id attribute).
    pub users_changed: usize,
    /// Groups read again because of them.
    pub groups_affected: usize,
    /// What could not be checked, when something could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl UserCheck {
    pub(crate) fn full_read() -> UserCheck {
        UserCheck {
            how: UserCheckHow::FullRead,
            ..UserCheck::default()
        }
    }

    pub(crate) fn not_checked(why: &str) -> UserCheck {
        UserCheck {
            error: Some(why.to_owned()),
            ..UserCheck::default()
        }
    }

    pub(crate) fn failed(error: String) -> UserCheck {
        UserCheck {
            how: UserCheckHow::Listing,
            error: Some(error),
            ..UserCheck::default()
        }
    }
}

impl RunReport {
    pub(crate) fn new(mode: Mode, started_at: DateTime<Utc>) -> RunReport {
        RunReport {
            mode,
            pass_id: None,
            run_id: None,
            group: None,
            started_at,
            finished_at: started_at,
            outcome: Outcome::Success,
            error: None,
            error_kind: None,
            fix: None,
            groups_listed: 0,
            groups_in_scope: 0,
            groups_unread: 0,
            groups_read: 0,
            puts_applied: 0,
            deletes_applied: 0,
            users_added: 0,
            users_removed: 0,
            failures: Vec::new(),
            plan: Plan::default(),
            users: UserCheck::default(),
            next_full_read_at: None,
            trace: None,
        }
    }
}

/// How an event-driven pass names its groups in reports and the run log (the first ten ids).
pub(crate) fn changed_groups_label(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut label = format!(
        "{} group(s) changed in Okta: {}",
        ids.len(),
        ids.iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if ids.len() > SHOWN {
        label.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    label
}
