//! The diff step of a one-group trace: each change of the plan, the issues, and what was
//! withheld or held.

use super::context::Pass;
use crate::plan::{self, Change, Plan};

/// The diff step of a one-group trace.
pub(super) fn trace_plan(pass: &Pass<'_>, plan: &Plan) {
    for change in &plan.changes {
        pass.trace("diff", || match change {
            Change::Put {
                group,
                member_count,
                added,
                removed,
                reason,
                layout,
                writes,
                stale_chunks,
                ..
            } => format!(
                "put {group:?} ({reason:?}): {member_count} members, +{} -{} against the snapshot; {}; {} write(s){}",
                added.len(),
                removed.len(),
                match layout {
                    plan::Layout::Inline => "inline".to_owned(),
                    plan::Layout::Chunked { chunks } => format!("in {chunks} chunk sub-groups"),
                },
                writes.len(),
                if stale_chunks.is_empty() {
                    String::new()
                } else {
                    format!(", then {} stale chunk(s) deleted", stale_chunks.len())
                }
            ),
            Change::Delete {
                group,
                reason,
                chunks,
                ..
            } => {
                format!(
                    "delete {group:?} ({reason:?}) and {} chunk(s)",
                    chunks.len()
                )
            }
        });
    }
    if plan.changes.is_empty() && plan.unchanged > 0 {
        pass.trace("diff", || {
            "Q Business already matches Okta (per the snapshot): nothing to write".to_owned()
        });
    }
    for issue in &plan.issues {
        pass.trace("diff", || {
            format!(
                "not synced: {} [{}]: {}",
                issue.group, issue.kind, issue.detail
            )
        });
    }
    if let Some(reason) = &plan.withheld_reason {
        pass.trace("diff", || format!("deletions withheld: {reason}"));
    }
    if let Some(held) = &plan.held {
        pass.trace("diff", || {
            format!(
                "held for approval as plan {}: {}",
                held.id,
                held.reasons.join("; ")
            )
        });
    }
}
