//! The summarise step: what the plan says, into the report, the logs and the trace.

use tracing::{info, warn};

use super::context::Pass;
use super::traces::trace_plan;
use crate::plan::{IssueKind, Plan};
use crate::report::{FailedStep, Failure};

/// Puts what the plan says into the report, the logs and the trace, and notes what this
/// pass did not check (so "Q Business matches Okta" is only said when it read what it
/// needed to say so).
pub(super) fn summarise(pass: &mut Pass<'_>, plan: Plan, unread: usize) -> Plan {
    if pass.tracing() {
        trace_plan(pass, &plan);
    }
    let (request, report) = (pass.request, &mut pass.report);
    report.groups_listed = plan.listed;
    report.groups_in_scope = plan.in_scope;
    report.groups_unread = unread;
    for issue in plan.issues.iter().filter(|i| i.kind.is_failure()) {
        report.failures.push(Failure {
            group: issue.group.clone(),
            op: if issue.kind == IssueKind::Unread {
                FailedStep::Read
            } else {
                FailedStep::Plan
            },
            kind: issue.kind.as_str().to_owned(),
            message: issue.detail.clone(),
        });
    }
    let not_owned: Vec<&str> = plan
        .issues
        .iter()
        .filter(|i| i.kind == IssueKind::NotOwned)
        .map(|i| i.group.as_str())
        .collect();
    if !not_owned.is_empty() {
        warn!(
            groups = ?not_owned,
            "groups Q Business already has and q-group-sync did not create are left untouched; take them over with `reconcile --adopt` or groups.take_over"
        );
    }
    if !plan.collisions.is_empty() {
        warn!(
            collisions = plan.collisions.len(),
            "Okta users that Q Business sees as one user"
        );
    }
    info!(
        puts = plan.puts().count(),
        deletes = plan.deletes().count(),
        unchanged = plan.unchanged,
        issues = plan.issues.len(),
        withheld_deletes = plan.withheld_deletes.len(),
        "planned"
    );
    if let Some(held) = &plan.held {
        warn!(
            plan_id = %held.id,
            deletes = held.deletes.len(),
            removals = held.removal_count(),
            reasons = %held.reasons.join("; "),
            "destructive changes held for approval"
        );
    }
    let mut plan = plan;
    plan.unchecked = if request.limited() {
        Some(format!(
            "groups other than {} (this pass was limited to them)",
            report.group.as_deref().unwrap_or("the named ones")
        ))
    } else {
        report
            .users
            .error
            .as_ref()
            .map(|what| match report.next_full_read_at {
                Some(at) => format!("{what}; the next full read is due at {}", at.to_rfc3339()),
                None => what.clone(),
            })
    };
    plan
}
