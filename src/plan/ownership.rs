//! First contact: Q Business groups a plan would write that q-group-sync did not create.
//!
//! Before the first write of a Q name the snapshot does not own (a new group, a chunk
//! sub-group, the new name of a rename), the engine asks Q Business whether it already has it
//! ([`Existence`]). [`settle`] decides with that answer: a group Q already has and that is not
//! ours is not written at all (no put, no chunk writes, no rename, so no delete of its old
//! name) and is reported as [`IssueKind::NotOwned`], unless `groups.take_over` names it; a name
//! whose check failed is never taken as absent ([`IssueKind::OwnershipUnchecked`]).
//!
//! Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::{Change, DeleteReason, GroupIssue, IssueKind, Plan, PutReason, Snapshot};
use crate::model::GroupName;

/// `groups.take_over`: Q groups made outside q-group-sync that it may write over (and so
/// take over) when Okta has a group of that name: exact names, or prefixes written with a
/// trailing `*` (`"*"` alone: every group).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakeOver {
    names: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl TakeOver {
    pub fn new(patterns: &[String]) -> TakeOver {
        let mut out = TakeOver::default();
        for p in patterns {
            match p.strip_suffix('*') {
                Some(prefix) => out.prefixes.push(prefix.to_owned()),
                None => {
                    out.names.insert(p.clone());
                }
            }
        }
        out
    }

    /// Whether the Q group `name` may be taken over.
    pub fn covers(&self, name: &GroupName) -> bool {
        self.names.contains(name.as_str())
            || self.prefixes.iter().any(|p| name.as_str().starts_with(p))
    }
}

/// What Q Business answered about the names it was asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existence {
    /// Q has a group of this name.
    pub exists: BTreeSet<GroupName>,
    /// Q has no group of this name (ResourceNotFound, or a complete listing without it).
    pub absent: BTreeSet<GroupName>,
    /// The check failed for this name, with the error.
    pub unchecked: BTreeMap<GroupName, String>,
}

/// Every Q name the snapshot owns: its groups (unfinished writes and adoptions included) and
/// the chunk sub-groups their recorded layouts name.
pub fn owned(snapshot: &Snapshot) -> BTreeSet<GroupName> {
    let mut out: BTreeSet<GroupName> = snapshot.groups.keys().cloned().collect();
    for (name, g) in snapshot.families() {
        out.extend(g.layout.chunk_names(name));
    }
    out
}

/// The Q names `plan` would put that `owned` does not hold: what Q Business must be asked
/// about before the first write.
pub fn unowned_writes(plan: &Plan, owned: &BTreeSet<GroupName>) -> BTreeSet<GroupName> {
    plan.puts()
        .flat_map(targets)
        .filter(|name| !owned.contains(*name))
        .cloned()
        .collect()
}

fn targets(change: &Change) -> impl Iterator<Item = &GroupName> {
    let writes = match change {
        Change::Put { writes, .. } => writes.as_slice(),
        Change::Delete { .. } => &[],
    };
    writes.iter().map(|w| &w.group)
}

/// What stands in the way of one put.
enum Blocker<'a> {
    /// Q already has this name and it is not ours.
    Exists(&'a GroupName),
    /// Whether Q has this name is unknown (the check failed, or the name was not checked).
    Unknown(&'a GroupName, &'a str),
}

/// Applies the answer of the existence check to `plan`: puts that would write a name Q
/// already has and q-group-sync does not own are dropped (with the deletion of a renamed
/// group's old name) and reported, unless `take_over` covers the group; so are puts with a name
/// whose check failed. Groups written over with `take_over` are listed in
/// [`Plan::taken_over`].
pub fn settle(
    plan: &mut Plan,
    owned: &BTreeSet<GroupName>,
    found: &Existence,
    take_over: &TakeOver,
) {
    let mut dropped: BTreeSet<GroupName> = BTreeSet::new();
    let mut issues = Vec::new();
    let mut taken_over = Vec::new();
    for change in plan.puts() {
        let group = change.group();
        let unowned: Vec<&GroupName> = targets(change).filter(|n| !owned.contains(*n)).collect();
        if unowned.is_empty() {
            continue;
        }
        if take_over.covers(group) {
            if unowned.iter().any(|n| found.exists.contains(*n)) {
                taken_over.push(group.clone());
            }
            continue;
        }
        let blocker = unowned
            .iter()
            .find(|n| found.exists.contains(**n))
            .map(|n| Blocker::Exists(n))
            .or_else(|| {
                unowned
                    .iter()
                    .find(|n| !found.absent.contains(**n))
                    .map(|n| {
                        let why = found
                            .unchecked
                            .get(*n)
                            .map_or("not checked", String::as_str);
                        Blocker::Unknown(n, why)
                    })
            });
        let Some(blocker) = blocker else { continue };
        let Change::Put {
            okta_id, reason, ..
        } = change
        else {
            continue;
        };
        let kept = match reason {
            PutReason::Renamed { from } => format!("; it keeps its old Q name {from:?}"),
            _ => String::new(),
        };
        let (kind, detail) = match blocker {
            Blocker::Exists(name) if name == group => (
                IssueKind::NotOwned,
                format!(
                    "Q Business already has a group of this name that q-group-sync did not create; left untouched{kept}. {HOW_TO_TAKE_OVER}"
                ),
            ),
            Blocker::Exists(name) => (
                IssueKind::NotOwned,
                format!(
                    "Q Business already has a group named {name:?} (a chunk sub-group this group needs) that q-group-sync did not create; the group is left untouched{kept}. Rename or delete that group in Q Business, or take over this group (reconcile --adopt, groups.take_over)"
                ),
            ),
            Blocker::Unknown(name, why) => (
                IssueKind::OwnershipUnchecked,
                format!(
                    "could not check whether Q Business already has a group named {name:?} ({why}); not written this pass{kept}, the next pass checks again"
                ),
            ),
        };
        issues.push(GroupIssue {
            group: group.to_string(),
            okta_id: okta_id.clone(),
            kind,
            detail,
        });
        dropped.insert(group.clone());
    }
    if dropped.is_empty() && taken_over.is_empty() {
        return;
    }
    let keep = |c: &Change| match c {
        Change::Put { group, .. } => !dropped.contains(group),
        // The old name of a rename stays while the new one cannot be written.
        Change::Delete {
            reason: DeleteReason::Renamed { to },
            ..
        } => !dropped.contains(to),
        Change::Delete { .. } => true,
    };
    plan.changes.retain(keep);
    plan.withheld_deletes.retain(keep);
    plan.issues.extend(issues);
    plan.issues.sort_by(|a, b| a.group.cmp(&b.group));
    plan.taken_over = taken_over;
}

/// What the report says to an admin who wants q-group-sync to manage such a group.
pub const HOW_TO_TAKE_OVER: &str = "To let q-group-sync manage it (its members become Okta's): `q-group-sync reconcile --adopt`, or add its name to groups.take_over";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Members, OktaGroupId, UserId};
    use crate::plan::select::{Desired, DesiredGroup};
    use crate::plan::{Layout, Policy, SnapshotGroup, chunks, plan};

    fn users(n: usize) -> Members {
        (0..n)
            .map(|i| UserId::from_normalised(format!("user{i}@x.test")))
            .collect()
    }

    fn desired(groups: &[(&str, &str, usize)]) -> Desired {
        let mut d = Desired::default();
        for (id, name, n) in groups {
            d.groups.insert(
                GroupName::new(*name),
                DesiredGroup {
                    okta_id: OktaGroupId::new(*id),
                    okta_name: (*name).to_owned(),
                    members: users(*n),
                },
            );
        }
        d
    }

    fn recorded(groups: &[(&str, &str, usize)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (id, name, n) in groups {
            s.groups.insert(
                GroupName::new(*name),
                SnapshotGroup {
                    okta_id: OktaGroupId::new(*id),
                    members: users(*n),
                    pushed_at: chrono::DateTime::UNIX_EPOCH,
                    unconfirmed: false,
                    read: None,
                    layout: Layout::Inline,
                },
            );
        }
        s
    }

    fn names(list: &[&str]) -> BTreeSet<GroupName> {
        list.iter().map(|n| GroupName::new(*n)).collect()
    }

    fn put_groups(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .map(|c| format!("{} {}", c.op().as_str(), c.group()))
            .collect()
    }

    /// The plan, the names it asks about and the plan after `found`.
    fn settled(d: &Desired, s: &Snapshot, found: &Existence, take_over: &TakeOver) -> Plan {
        let mut p = plan(d, s, &Policy::default());
        let owned = owned(s);
        settle(&mut p, &owned, found, take_over);
        p
    }

    #[test]
    fn a_group_q_already_has_is_not_written_and_says_how_to_take_it_over() {
        let d = desired(&[("g1", "Sales & Marketing", 3), ("g2", "Eng", 2)]);
        let s = Snapshot::default();
        let p = plan(&d, &s, &Policy::default());
        assert_eq!(
            unowned_writes(&p, &owned(&s)),
            names(&["Eng", "Sales & Marketing"])
        );
        let found = Existence {
            exists: names(&["Sales & Marketing"]),
            absent: names(&["Eng"]),
            ..Existence::default()
        };
        let p = settled(&d, &s, &found, &TakeOver::default());
        assert_eq!(put_groups(&p), ["put Eng"]);
        assert_eq!(p.issues.len(), 1);
        assert_eq!(p.issues[0].kind, IssueKind::NotOwned);
        assert_eq!(p.issues[0].group, "Sales & Marketing");
        assert!(p.issues[0].detail.contains("reconcile --adopt"));
        assert!(p.issues[0].detail.contains("groups.take_over"));
        assert!(p.taken_over.is_empty());
    }

    #[test]
    fn owned_groups_are_not_asked_about() {
        let d = desired(&[("g1", "Eng", 3)]);
        let s = recorded(&[("g1", "Eng", 2)]);
        let p = plan(&d, &s, &Policy::default());
        assert!(unowned_writes(&p, &owned(&s)).is_empty());
        // Even with an empty answer, an owned group's write stands.
        let p = settled(&d, &s, &Existence::default(), &TakeOver::default());
        assert_eq!(put_groups(&p), ["put Eng"]);
        assert!(p.issues.is_empty());
    }

    #[test]
    fn a_failed_check_is_never_taken_as_absent() {
        let d = desired(&[("g1", "A", 1), ("g2", "B", 1), ("g3", "C", 1)]);
        let found = Existence {
            absent: names(&["A"]),
            unchecked: BTreeMap::from([(GroupName::new("B"), "ListGroups failed".to_owned())]),
            ..Existence::default()
        };
        let p = settled(&d, &Snapshot::default(), &found, &TakeOver::default());
        assert_eq!(put_groups(&p), ["put A"]);
        let kinds: Vec<(&str, IssueKind)> = p
            .issues
            .iter()
            .map(|i| (i.group.as_str(), i.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("B", IssueKind::OwnershipUnchecked),
                ("C", IssueKind::OwnershipUnchecked)
            ]
        );
        assert!(p.issues[0].detail.contains("ListGroups failed"));
        assert!(p.issues[1].detail.contains("not checked"));
    }

    #[test]
    fn take_over_writes_over_names_and_prefixes_and_lists_them() {
        let t = TakeOver::new(&["Sales & Marketing".into(), "legacy-*".into()]);
        assert!(t.covers(&GroupName::new("Sales & Marketing")));
        assert!(t.covers(&GroupName::new("legacy-ops")));
        assert!(!t.covers(&GroupName::new("Sales")));
        assert!(TakeOver::new(&["*".into()]).covers(&GroupName::new("anything")));
        let d = desired(&[
            ("g1", "Sales & Marketing", 2),
            ("g2", "legacy-ops", 2),
            ("g3", "Other", 2),
        ]);
        let found = Existence {
            exists: names(&["Sales & Marketing", "Other"]),
            unchecked: BTreeMap::from([(GroupName::new("legacy-ops"), "throttled".to_owned())]),
            ..Existence::default()
        };
        let p = settled(&d, &Snapshot::default(), &found, &t);
        assert_eq!(put_groups(&p), ["put Sales & Marketing", "put legacy-ops"]);
        assert_eq!(p.taken_over, [GroupName::new("Sales & Marketing")]);
        assert_eq!(p.issues.len(), 1);
        assert_eq!(p.issues[0].group, "Other");
    }

    #[test]
    fn a_rename_onto_a_foreign_group_keeps_the_old_name() {
        let s = recorded(&[("g1", "Sales", 2)]);
        let d = desired(&[("g1", "Sales EMEA", 2)]);
        let p = plan(&d, &s, &Policy::default());
        assert_eq!(put_groups(&p), ["put Sales EMEA", "delete Sales"]);
        assert_eq!(unowned_writes(&p, &owned(&s)), names(&["Sales EMEA"]));
        let found = Existence {
            exists: names(&["Sales EMEA"]),
            ..Existence::default()
        };
        let p = settled(&d, &s, &found, &TakeOver::default());
        assert!(p.changes.is_empty(), "{:?}", put_groups(&p));
        assert_eq!(p.issues[0].kind, IssueKind::NotOwned);
        assert!(
            p.issues[0]
                .detail
                .contains("keeps its old Q name \"Sales\"")
        );
    }

    #[test]
    fn a_chunk_name_q_already_has_stops_the_whole_group() {
        let d = desired(&[("g1", "All Staff", 1500)]);
        let s = Snapshot::default();
        let p = plan(&d, &s, &Policy::default());
        let asked = unowned_writes(&p, &owned(&s));
        let chunk = chunks::chunk_name(&GroupName::new("All Staff"), 1, 2);
        assert!(asked.contains(&chunk), "{asked:?}");
        assert_eq!(asked.len(), 3, "the group and its two chunks");
        let mut absent = asked.clone();
        absent.remove(&chunk);
        let found = Existence {
            exists: BTreeSet::from([chunk.clone()]),
            absent,
            ..Existence::default()
        };
        let p = settled(&d, &s, &found, &TakeOver::default());
        assert!(p.changes.is_empty(), "no chunk and no parent write");
        assert_eq!(p.issues[0].kind, IssueKind::NotOwned);
        assert!(p.issues[0].detail.contains(chunk.as_str()));
    }

    #[test]
    fn recorded_chunks_are_owned() {
        let d = desired(&[("g1", "All Staff", 1500)]);
        let first = plan(&d, &Snapshot::default(), &Policy::default());
        let mut s = Snapshot::default();
        if let Some(Change::Put { layout, .. }) = first.changes.first() {
            s = recorded(&[("g1", "All Staff", 1500)]);
            s.groups
                .get_mut(&GroupName::new("All Staff"))
                .expect("recorded")
                .layout = *layout;
        }
        let more = desired(&[("g1", "All Staff", 1501)]);
        let p = plan(&more, &s, &Policy::default());
        assert!(!p.changes.is_empty());
        assert!(unowned_writes(&p, &owned(&s)).is_empty());
    }
}
