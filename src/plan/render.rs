//! The admin's view of a [`Plan`]: what `q-group-sync plan` prints.

use std::fmt;

use super::chunks::WriteRole;
use super::{Change, DeleteReason, IssueKind, Plan, PutReason};
use crate::model::Members;

/// Member ids printed per group and direction before eliding the rest.
const MEMBERS_SHOWN: usize = 10;

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let puts = self.puts().count();
        let deletes = self.deletes().count();
        writeln!(
            f,
            "Plan: {puts} to put, {deletes} to delete, {} unchanged, {} with issues ({} in scope of {} listed)",
            self.unchanged,
            self.issues.len(),
            self.in_scope,
            self.listed
        )?;
        for change in &self.changes {
            write_change(f, change, "")?;
            if self.taken_over.contains(change.group()) {
                writeln!(
                    f,
                    "    takes over the Q Business group of this name made outside q-group-sync (groups.take_over)"
                )?;
            }
        }
        for issue in &self.issues {
            writeln!(f, "! {} [{}]: {}", issue.group, issue.kind, issue.detail)?;
        }
        let not_owned = self
            .issues
            .iter()
            .filter(|i| i.kind == IssueKind::NotOwned)
            .count();
        if not_owned > 0 {
            writeln!(
                f,
                "{not_owned} group(s) already exist in Q Business and were not created by q-group-sync: left untouched (not a failure). To let q-group-sync manage one, run `q-group-sync reconcile --adopt` or add its name to groups.take_over; the next sync then writes Okta's members to it."
            )?;
        }
        if let Some(reason) = &self.withheld_reason {
            writeln!(f, "! deletions withheld: {reason}")?;
            for change in &self.withheld_deletes {
                write_change(f, change, "(withheld) ")?;
            }
        }
        if let Some(held) = &self.held {
            writeln!(
                f,
                "! HELD for approval (plan {}): {} group deletion(s), {} member removal(s)",
                held.id,
                held.deletes.len(),
                held.removal_count()
            )?;
            for reason in &held.reasons {
                writeln!(f, "    because {reason}")?;
            }
            for d in held.deletes.iter().take(MEMBERS_SHOWN) {
                writeln!(f, "    - {} (delete)", d.group)?;
            }
            if held.deletes.len() > MEMBERS_SHOWN {
                writeln!(
                    f,
                    "    - ... and {} more deletions",
                    held.deletes.len() - MEMBERS_SHOWN
                )?;
            }
            for (group, removed) in held.removals.iter().take(MEMBERS_SHOWN) {
                writeln!(f, "    ~ {group} (remove {})", removed.len())?;
            }
            if held.removals.len() > MEMBERS_SHOWN {
                writeln!(
                    f,
                    "    ~ ... and {} more groups with removals",
                    held.removals.len() - MEMBERS_SHOWN
                )?;
            }
            writeln!(f, "    approve with: q-group-sync approve {}", held.id)?;
        }
        for c in &self.collisions {
            let ids: Vec<&str> = c.okta_user_ids.iter().map(String::as_str).collect();
            writeln!(
                f,
                "! collision: Okta users {} are all {} in Q Business",
                ids.join(", "),
                c.user_id
            )?;
        }
        let s = &self.skipped;
        if s.total() > 0 {
            let mut parts: Vec<String> = s
                .by_status
                .iter()
                .map(|(status, n)| format!("{n} {status}"))
                .collect();
            if s.missing_attribute > 0 {
                parts.push(format!("{} without the id attribute", s.missing_attribute));
            }
            if s.invalid_id > 0 {
                parts.push(format!("{} with an id Q Business rejects", s.invalid_id));
            }
            writeln!(f, "skipped users: {}", parts.join(", "))?;
        }
        if self.changes.is_empty()
            && self.issues.is_empty()
            && self.withheld_reason.is_none()
            && self.held.is_none()
        {
            match &self.unchecked {
                None => writeln!(f, "Nothing to do: Q Business matches Okta.")?,
                Some(what) => writeln!(
                    f,
                    "Nothing to do for what this pass read; not checked: {what}."
                )?,
            }
        } else if let Some(what) = &self.unchecked {
            writeln!(f, "not checked: {what}.")?;
        }
        Ok(())
    }
}

fn write_change(f: &mut fmt::Formatter<'_>, change: &Change, tag: &str) -> fmt::Result {
    match change {
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
        } => {
            match reason {
                PutReason::New => writeln!(f, "+ {tag}{group} (new, {member_count} members)")?,
                PutReason::MembersChanged => writeln!(
                    f,
                    "~ {tag}{group} ({member_count} members: +{} -{})",
                    added.len(),
                    removed.len()
                )?,
                PutReason::Renamed { from } => writeln!(
                    f,
                    "> {tag}{group} (renamed from {from}, {member_count} members)"
                )?,
                PutReason::Unconfirmed => writeln!(
                    f,
                    "~ {tag}{group} ({member_count} members: +{} -{}, the last write was not confirmed)",
                    added.len(),
                    removed.len()
                )?,
            }
            if let super::Layout::Chunked { chunks } = layout {
                let written: Vec<String> = writes
                    .iter()
                    .filter(|w| w.role == WriteRole::Chunk)
                    .map(|w| format!("{} ({} users)", w.group, w.user_count))
                    .collect();
                let parent = writes.iter().any(|w| w.role == WriteRole::Group);
                writeln!(
                    f,
                    "    in {chunks} chunk sub-groups; writes {} of them{}",
                    written.len(),
                    if parent {
                        " and the group's chunk list"
                    } else {
                        ""
                    }
                )?;
                for w in written.iter().take(MEMBERS_SHOWN) {
                    writeln!(f, "    * {w}")?;
                }
            }
            for stale in stale_chunks.iter().take(MEMBERS_SHOWN) {
                writeln!(f, "    - {stale} (chunk no longer used)")?;
            }
            if !matches!(reason, PutReason::MembersChanged | PutReason::Unconfirmed) {
                return Ok(());
            }
            write_members(f, '+', added)?;
            write_members(f, '-', removed)
        }
        Change::Delete {
            group,
            reason,
            chunks,
            ..
        } => {
            let why = match reason {
                DeleteReason::GoneFromOkta => "gone from Okta".to_owned(),
                DeleteReason::OutOfScope => "out of scope".to_owned(),
                DeleteReason::Renamed { to } => format!("renamed to {to}"),
                DeleteReason::StaleChunk => {
                    "chunk sub-group left by an unfinished write".to_owned()
                }
            };
            if chunks.is_empty() {
                writeln!(f, "- {tag}{group} ({why})")
            } else {
                writeln!(
                    f,
                    "- {tag}{group} ({why}, with its {} chunk sub-groups)",
                    chunks.len()
                )
            }
        }
    }
}

fn write_members(f: &mut fmt::Formatter<'_>, sign: char, members: &Members) -> fmt::Result {
    for m in members.iter().take(MEMBERS_SHOWN) {
        writeln!(f, "    {sign} {m}")?;
    }
    if members.len() > MEMBERS_SHOWN {
        writeln!(
            f,
            "    {sign} ... and {} more",
            members.len() - MEMBERS_SHOWN
        )?;
    }
    Ok(())
}
