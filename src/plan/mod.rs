//! The pure core: desired state (from Okta) + snapshot (what was applied) in, a [`Plan`] out.
//!
//! No async, no I/O, no clock. Ordered maps throughout, so the same inputs always give the same
//! plan, printed and serialised identically.
//!
//! Invariants:
//! - A group is put with its complete member list (PutGroup replaces membership).
//! - Only groups recorded in the snapshot (created by q-group-sync) are ever deleted, and a
//!   group Q Business already has that is not recorded is never written ([`ownership`]).
//! - A group that could not be read is never pushed, and while any group is unread nothing is
//!   deleted: a partial read must never look like removals.
//! - A group is never truncated: over the inline member limit it is written as chunk
//!   sub-groups ([`chunks`]), or refused when chunking is off.

pub mod chunks;
pub mod early;
pub mod explain;
pub mod input;
pub mod listing;
pub mod ownership;
pub mod reads;
pub mod reconcile;
mod render;
pub mod safety;
pub mod select;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{GroupName, Members, OktaGroupId};
pub use chunks::{Layout, Write};
pub use select::{Blocked, Collision, Desired, DesiredGroup, GroupRead, Rules, Skipped};

/// One group as last applied to Q Business by q-group-sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotGroup {
    pub okta_id: OktaGroupId,
    pub members: Members,
    pub pushed_at: DateTime<Utc>,
    /// A write to this group was started but not confirmed (crash, FAILED, unverified): what
    /// Q holds is unknown, so the next pass writes it again whatever `members` says.
    pub unconfirmed: bool,
    /// The read that `members` come from: the group's `lastMembershipUpdated` then, and when
    /// the read started (for incremental reads).
    pub read: Option<ReadMark>,
    /// Whether `members` are the group's own users or live in chunk sub-groups.
    pub layout: Layout,
}

/// When a group's members were read, against Okta's `lastMembershipUpdated` at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub source_updated: DateTime<Utc>,
    pub read_at: DateTime<Utc>,
}

impl ReadMark {
    /// Whether a group whose `lastMembershipUpdated` is now `source_updated` can keep the
    /// members of this read: the same timestamp, and the read started at least `overlap` after
    /// it (Okta's timestamps are second-granular and its data eventually consistent).
    pub fn still_current(&self, source_updated: DateTime<Utc>, overlap: chrono::TimeDelta) -> bool {
        self.source_updated == source_updated && self.read_at >= source_updated + overlap
    }
}

/// What q-group-sync has applied, by Q name. Only these groups are q-group-sync's to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub groups: BTreeMap<GroupName, SnapshotGroup>,
}

impl Snapshot {
    /// The groups that stand for Okta groups (not chunk sub-groups left by unfinished writes).
    pub fn families(&self) -> impl Iterator<Item = (&GroupName, &SnapshotGroup)> {
        self.groups
            .iter()
            .filter(|(name, _)| !chunks::is_chunk_name(name.as_str()))
    }
}

/// Limits the planner enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Largest member list one PutGroup may carry.
    pub inline_member_limit: usize,
    /// What happens to groups over the limit.
    pub large_groups: LargeGroups,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            inline_member_limit: 1000,
            large_groups: LargeGroups::Chunks,
        }
    }
}

/// How a group over the inline member limit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeGroups {
    /// A parent group with chunk sub-groups ([`chunks`]).
    Chunks,
    /// Not at all (reported as `over_member_limit`).
    Refuse,
    /// In one put whose members the sink hands over as a file (up to [`MEMBER_FILE_LIMIT`]).
    File,
}

/// Most members a member file may carry (Q Business's documented S3 limit).
pub const MEMBER_FILE_LIMIT: usize = 100_000;

/// Why a group is put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PutReason {
    /// Not in the snapshot: created in Q (or adopted, replacing whatever Q held).
    New,
    /// Its member set differs from the snapshot.
    MembersChanged,
    /// An earlier write was not confirmed; written again to be sure.
    Unconfirmed,
    /// The Okta group was known under another Q name, which is deleted after this put.
    Renamed { from: GroupName },
}

/// Why a group is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DeleteReason {
    /// The Okta group no longer exists.
    GoneFromOkta,
    /// The Okta group exists but is out of scope now (filter, include/exclude).
    OutOfScope,
    /// The Okta group now has another Q name, put in the same plan.
    Renamed { to: GroupName },
    /// A chunk sub-group left over from an unfinished write; its group does not reference it.
    StaleChunk,
}

impl DeleteReason {
    /// Whether the deletion takes access away (and so counts for the circuit breaker). A
    /// rename keeps access under the new name; a stale chunk is referenced by nothing.
    pub fn takes_access(&self) -> bool {
        !matches!(
            self,
            DeleteReason::Renamed { .. } | DeleteReason::StaleChunk
        )
    }
}

/// One write to Q Business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Change {
    Put {
        group: GroupName,
        okta_id: OktaGroupId,
        /// The complete member list sent.
        #[serde(skip)]
        members: Members,
        member_count: usize,
        added: Members,
        removed: Members,
        reason: PutReason,
        /// How the members are carried: inline or in chunk sub-groups.
        #[serde(skip_serializing_if = "is_inline")]
        layout: Layout,
        /// The PutGroup calls, in order: changed chunks first, then the group itself (when
        /// its own users or its chunk list change).
        writes: Vec<Write>,
        /// Chunk sub-groups deleted once the group no longer references them.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        stale_chunks: Vec<GroupName>,
    },
    Delete {
        group: GroupName,
        okta_id: OktaGroupId,
        reason: DeleteReason,
        /// Its chunk sub-groups, deleted after it.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        chunks: Vec<GroupName>,
    },
}

fn is_inline(layout: &Layout) -> bool {
    *layout == Layout::Inline
}

impl Change {
    pub fn group(&self) -> &GroupName {
        match self {
            Change::Put { group, .. } | Change::Delete { group, .. } => group,
        }
    }

    pub fn op(&self) -> WriteOp {
        match self {
            Change::Put { .. } => WriteOp::Put,
            Change::Delete { .. } => WriteOp::Delete,
        }
    }
}

/// A write to Q Business: PutGroup or DeleteGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    Put,
    Delete,
}

impl WriteOp {
    /// Bounded label for metrics, the audit log and write intents.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOp::Put => "put",
            WriteOp::Delete => "delete",
        }
    }
}

/// Why an in-scope group is not synced this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Its members could not be read.
    Unread,
    /// Its Q name breaks Q's rules.
    InvalidName,
    /// More than one Okta group maps to its Q name.
    NameConflict,
    /// Too many members for what `qbusiness.large_groups` can carry.
    OverMemberLimit,
    /// Its Q name has the shape of q-group-sync's chunk sub-groups.
    ReservedName,
    /// Q Business already has a group it would write (the group, a chunk sub-group or the new
    /// name of a rename) that q-group-sync did not create. Not a failure: left untouched until
    /// an admin lets q-group-sync take it over.
    NotOwned,
    /// Whether Q Business already has a group it would write could not be checked.
    OwnershipUnchecked,
}

impl IssueKind {
    pub const ALL: [IssueKind; 7] = [
        IssueKind::Unread,
        IssueKind::InvalidName,
        IssueKind::NameConflict,
        IssueKind::OverMemberLimit,
        IssueKind::ReservedName,
        IssueKind::NotOwned,
        IssueKind::OwnershipUnchecked,
    ];

    /// Bounded label for metrics, reports and status.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Unread => "unread",
            IssueKind::InvalidName => "invalid_name",
            IssueKind::NameConflict => "name_conflict",
            IssueKind::OverMemberLimit => "over_member_limit",
            IssueKind::ReservedName => "reserved_name",
            IssueKind::NotOwned => "not_owned",
            IssueKind::OwnershipUnchecked => "ownership_unchecked",
        }
    }

    /// Whether the issue makes the pass a failure (exit 1). A group that is not ours is
    /// left alone by design, so it is reported but is not a failure.
    pub fn is_failure(self) -> bool {
        self != IssueKind::NotOwned
    }
}

impl std::fmt::Display for IssueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group that cannot be synced this pass; it is reported, and counts as a failure unless its
/// kind says otherwise ([`IssueKind::is_failure`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupIssue {
    /// The Q name, or the Okta name when no valid Q name exists.
    pub group: String,
    pub okta_id: OktaGroupId,
    pub kind: IssueKind,
    pub detail: String,
}

/// What one pass would change in Q Business. Built by [`plan`]; never does I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Puts in group-name order, then deletes in group-name order.
    pub changes: Vec<Change>,
    /// In-scope groups that are not synced this pass.
    pub issues: Vec<GroupIssue>,
    /// Deletions withheld because some group could not be read (with the reason).
    pub withheld_deletes: Vec<Change>,
    pub withheld_reason: Option<String>,
    /// In-scope groups whose Q membership already matches.
    pub unchanged: usize,
    /// Groups listed by Okta.
    pub listed: usize,
    /// Groups in scope (synced, unchanged or with an issue).
    pub in_scope: usize,
    pub collisions: Vec<Collision>,
    pub skipped: Skipped,
    /// Destructive changes the circuit breaker holds for approval ([`safety::guard`]).
    pub held: Option<safety::Held>,
    /// Groups Okta listed no user for at all this pass ([`Desired::okta_empty`]).
    #[serde(skip)]
    pub okta_empty: BTreeSet<GroupName>,
    /// What this pass did not check, when it did not check everything (a one-group pass,
    /// Okta's users listing failed): "Q Business matches Okta" is only said without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// Groups Q Business already had, not created by q-group-sync, that this plan writes over
    /// because `groups.take_over` names them ([`ownership::settle`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<GroupName>,
}

impl Plan {
    pub fn puts(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Put { .. }))
    }

    pub fn deletes(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Delete { .. }))
    }

    /// True when the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Diffs the desired state against the snapshot.
pub fn plan(desired: &Desired, snapshot: &Snapshot, policy: &Policy) -> Plan {
    let mut out = Plan {
        listed: desired.listed,
        in_scope: desired.groups.len() + desired.blocked.len() + desired.invalid.len(),
        collisions: desired.collisions.clone(),
        skipped: desired.skipped.clone(),
        okta_empty: desired.okta_empty.clone(),
        ..Plan::default()
    };
    // Q names held by each Okta id in the snapshot, to recognise renames.
    let mut snapshot_names: BTreeMap<&OktaGroupId, BTreeSet<&GroupName>> = BTreeMap::new();
    for (name, g) in snapshot.families() {
        snapshot_names.entry(&g.okta_id).or_default().insert(name);
    }
    // Names that must not be deleted this pass, whatever the snapshot says.
    let mut protected: BTreeSet<&GroupName> = desired.blocked.keys().collect();

    for blocked in desired
        .blocked
        .iter()
        .map(|(name, b)| (name.to_string(), b))
        // An Okta name Q cannot take may hold control characters: reported escaped.
        .chain(
            desired
                .invalid
                .iter()
                .map(|b| (crate::model::printable(&b.okta_name).into_owned(), b)),
        )
    {
        let (group, b) = blocked;
        out.issues.push(GroupIssue {
            group,
            okta_id: b.okta_id.clone(),
            kind: b.kind,
            detail: b.detail.clone(),
        });
    }

    let mut puts = Vec::new();
    for (name, want) in &desired.groups {
        if chunks::is_chunk_name(name.as_str()) {
            protected.insert(name);
            out.issues.push(GroupIssue {
                group: name.to_string(),
                okta_id: want.okta_id.clone(),
                kind: IssueKind::ReservedName,
                detail: "the Q name has the shape of q-group-sync's chunk sub-groups; rename the group or map it with groups.name_prefix".to_owned(),
            });
            continue;
        }
        let limit = policy.inline_member_limit.max(2);
        let too_large = match policy.large_groups {
            // A parent holds at most `limit` chunks of about three quarters of the limit each.
            LargeGroups::Chunks => want.members.len().div_ceil(limit * 3 / 4) > limit,
            LargeGroups::Refuse => true,
            LargeGroups::File => want.members.len() > MEMBER_FILE_LIMIT,
        };
        if want.members.len() > limit && too_large {
            protected.insert(name);
            out.issues.push(GroupIssue {
                group: name.to_string(),
                okta_id: want.okta_id.clone(),
                kind: IssueKind::OverMemberLimit,
                detail: format!(
                    "{} members exceed the inline limit of {} (and what qbusiness.large_groups can carry); not pushed (never truncated)",
                    want.members.len(),
                    policy.inline_member_limit
                ),
            });
            continue;
        }
        let reason = match snapshot.groups.get(name) {
            Some(have) if have.members == want.members && !have.unconfirmed => {
                out.unchanged += 1;
                continue;
            }
            Some(have) if have.members == want.members => PutReason::Unconfirmed,
            Some(_) => PutReason::MembersChanged,
            None => {
                let old = snapshot_names
                    .get(&want.okta_id)
                    .and_then(|names| names.iter().find(|n| !desired.groups.contains_key(**n)));
                match old {
                    Some(from) => PutReason::Renamed {
                        from: (*from).clone(),
                    },
                    None => PutReason::New,
                }
            }
        };
        let before = match &reason {
            PutReason::MembersChanged | PutReason::Unconfirmed => {
                snapshot.groups.get(name).map(|g| &g.members)
            }
            PutReason::Renamed { .. } | PutReason::New => None,
        };
        // Lists are shared, not copied: a new group's additions are its member list.
        let (added, removed) = match before {
            Some(before) => (
                want.members.difference(before).collect(),
                before.difference(&want.members).collect(),
            ),
            None => (want.members.clone(), Members::new()),
        };
        puts.push(Change::Put {
            group: name.clone(),
            okta_id: want.okta_id.clone(),
            members: want.members.clone(),
            member_count: want.members.len(),
            added,
            removed,
            reason,
            layout: Layout::Inline,
            writes: Vec::new(),
            stale_chunks: Vec::new(),
        });
    }
    out.issues.sort_by(|a, b| a.group.cmp(&b.group));

    // Where each Okta id is put under a new name this pass (for delete reasons).
    let desired_name_of: BTreeMap<&OktaGroupId, &GroupName> = desired
        .groups
        .iter()
        .map(|(name, g)| (&g.okta_id, name))
        .collect();
    let mut deletes = Vec::new();
    for (name, have) in snapshot.families() {
        if desired.groups.contains_key(name) || protected.contains(name) {
            continue;
        }
        let reason = if let Some(to) = desired_name_of.get(&have.okta_id) {
            DeleteReason::Renamed { to: (*to).clone() }
        } else if desired.out_of_scope.contains(&have.okta_id) {
            DeleteReason::OutOfScope
        } else if desired
            .blocked
            .values()
            .chain(desired.invalid.iter())
            .any(|b| b.okta_id == have.okta_id)
        {
            // The Okta group still exists under a name we cannot sync now: keep its old Q group.
            continue;
        } else {
            DeleteReason::GoneFromOkta
        };
        deletes.push(Change::Delete {
            group: name.clone(),
            okta_id: have.okta_id.clone(),
            reason,
            chunks: Vec::new(),
        });
    }

    out.changes = puts;
    if desired.unread > 0 {
        out.withheld_reason = Some(format!(
            "{} group(s) could not be read from Okta; no deletions this pass",
            desired.unread
        ));
        out.withheld_deletes = deletes;
    } else {
        out.changes.extend(deletes);
    }
    chunks::expand(&mut out, snapshot, policy);
    out
}

#[cfg(test)]
mod tests;
