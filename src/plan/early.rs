//! Which writes may go while other groups are still being read (the pipelined pass).
//!
//! Pure: no I/O, no clock. A group's put may start before the whole read is done only when no
//! safety rule could ever hold it and nothing another group's read can still reveal would
//! change it: its Q name is claimed by this Okta group alone (no name conflict can appear), it
//! is no rename (the old name's deletion waits), its member list is complete, and the put only
//! adds members (a new group, or a superset of what was applied). Puts that remove members and
//! every deletion wait for the complete read and the circuit breaker ([`super::safety`]), which
//! never holds a put without removals.

use std::collections::{BTreeMap, BTreeSet};

use super::input::OktaGroup;
use super::select::{DesiredGroup, Rules, Scope};
use super::{Change, Desired, Policy, PutReason, Snapshot, SnapshotGroup, chunks, plan};
use crate::model::{GroupName, Members, OktaGroupId};

/// The groups of a pass whose write may go early, decided from the listing before any member
/// read; [`EarlyWrites::put`] then decides each group once its members are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EarlyWrites {
    /// Okta group id -> its Q name, for the groups that may go early.
    names: BTreeMap<String, GroupName>,
    /// The snapshot's entries each candidate's put is planned against: its own name and the
    /// chunk sub-groups recorded for its Okta id (a list, not a map: most hold one entry or
    /// none, and a map's node would cost a kilobyte per candidate).
    base: BTreeMap<GroupName, Vec<(GroupName, SnapshotGroup)>>,
}

impl EarlyWrites {
    /// The candidates of a pass that reads `to_read`: in scope, under a Q name no other listed
    /// group maps to and that is not a chunk name, and not known in the snapshot under another
    /// name (a rename).
    pub fn from_listing(
        groups: &[OktaGroup],
        rules: &Rules,
        snapshot: &Snapshot,
        to_read: &[&OktaGroup],
    ) -> EarlyWrites {
        let mut claims: BTreeMap<GroupName, usize> = BTreeMap::new();
        for g in groups {
            if let Scope::In(name) = rules.scope(g) {
                *claims.entry(name).or_default() += 1;
            }
        }
        let mut known_as: BTreeMap<&OktaGroupId, BTreeSet<&GroupName>> = BTreeMap::new();
        let mut chunks_of: BTreeMap<&OktaGroupId, Vec<&GroupName>> = BTreeMap::new();
        for (name, g) in &snapshot.groups {
            if chunks::is_chunk_name(name.as_str()) {
                chunks_of.entry(&g.okta_id).or_default().push(name);
            } else {
                known_as.entry(&g.okta_id).or_default().insert(name);
            }
        }
        let mut out = EarlyWrites::default();
        for g in to_read {
            let Scope::In(name) = rules.scope(g) else {
                continue;
            };
            let okta_id = OktaGroupId::new(&g.id);
            let unique = claims.get(&name) == Some(&1);
            let renamed = known_as
                .get(&okta_id)
                .is_some_and(|names| names.iter().any(|n| **n != name));
            if !unique || renamed || chunks::is_chunk_name(name.as_str()) {
                continue;
            }
            let chunks = chunks_of.get(&okta_id).into_iter().flatten();
            let mut base: Vec<(GroupName, SnapshotGroup)> = std::iter::once(&name)
                .chain(chunks.copied())
                .filter_map(|n| Some((n.clone(), snapshot.groups.get(n)?.clone())))
                .collect();
            base.shrink_to_fit();
            out.base.insert(name.clone(), base);
            out.names.insert(g.id.clone(), name);
        }
        out
    }

    /// The Q names whose writes may go early: what a check that must run before the first
    /// write (e.g. whether Q already holds a group of that name) looks at.
    pub fn names(&self) -> impl Iterator<Item = &GroupName> {
        self.names.values()
    }

    /// Keeps only the names `keep` accepts; the others wait for the complete read.
    pub fn retain(&mut self, mut keep: impl FnMut(&GroupName) -> bool) {
        self.names.retain(|_, name| keep(name));
        let names: BTreeSet<&GroupName> = self.names.values().collect();
        self.base.retain(|name, _| names.contains(name));
    }

    /// Whether no group may go early.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The put of Okta group `okta_id`, read in full as `members` (`okta_members` users listed
    /// by Okta before the `users.*` rules), when it may go now: the same put the pass's plan
    /// holds for it, planned against the same snapshot. `None` when the group is not a
    /// candidate, needs no write, cannot be written, or its put removes members or leaves
    /// stale chunks to delete.
    pub fn put(
        &self,
        okta_id: &str,
        okta_name: &str,
        members: &Members,
        okta_members: usize,
        policy: &Policy,
    ) -> Option<Change> {
        let name = self.names.get(okta_id)?;
        let base = self.base.get(name)?;
        let mut desired = Desired {
            listed: 1,
            ..Desired::default()
        };
        if okta_members == 0 {
            desired.okta_empty.insert(name.clone());
        }
        desired.groups.insert(
            name.clone(),
            DesiredGroup {
                okta_id: OktaGroupId::new(okta_id),
                okta_name: okta_name.to_owned(),
                members: members.clone(),
            },
        );
        let base = Snapshot {
            groups: base.iter().cloned().collect(),
        };
        let one = plan(&desired, &base, policy);
        if !one.issues.is_empty() {
            return None;
        }
        let mut changes = one.changes.into_iter();
        let change = changes.next()?;
        if changes.next().is_some() {
            return None;
        }
        may_go_early(&change).then_some(change)
    }
}

/// Whether a planned change is one the circuit breaker never holds and that nothing else in
/// the pass depends on: a put without removals, no stale chunks to delete, not a rename.
pub fn may_go_early(change: &Change) -> bool {
    match change {
        Change::Put {
            removed,
            stale_chunks,
            reason,
            ..
        } => {
            removed.is_empty()
                && stale_chunks.is_empty()
                && matches!(
                    reason,
                    PutReason::New | PutReason::MembersChanged | PutReason::Unconfirmed
                )
        }
        Change::Delete { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::UserId;
    use crate::plan::input::GroupType;
    use crate::plan::safety::{self, Managed, SafetyPolicy};
    use crate::plan::{Layout, SnapshotGroup};

    fn members(ids: &[&str]) -> Members {
        ids.iter().map(|id| UserId::from_normalised(*id)).collect()
    }

    fn group(id: &str, name: &str) -> OktaGroup {
        OktaGroup {
            id: id.into(),
            name: name.into(),
            kind: GroupType::Okta,
            last_membership_updated: None,
            last_updated: None,
        }
    }

    fn rules() -> Rules {
        Rules::new(&["*".into()], &[], "", &["ACTIVE".into()], false).expect("rules")
    }

    fn applied(okta_id: &str, ids: &[&str], unconfirmed: bool) -> SnapshotGroup {
        SnapshotGroup {
            okta_id: OktaGroupId::new(okta_id),
            members: members(ids),
            pushed_at: chrono::Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
            unconfirmed,
            read: None,
            layout: Layout::Inline,
        }
    }

    fn snapshot(entries: &[(&str, SnapshotGroup)]) -> Snapshot {
        Snapshot {
            groups: entries
                .iter()
                .map(|(n, g)| (GroupName::new(*n), g.clone()))
                .collect(),
        }
    }

    fn early(groups: &[OktaGroup], snap: &Snapshot) -> EarlyWrites {
        let to_read: Vec<&OktaGroup> = groups.iter().collect();
        EarlyWrites::from_listing(groups, &rules(), snap, &to_read)
    }

    fn names(e: &EarlyWrites) -> Vec<&str> {
        e.names().map(GroupName::as_str).collect()
    }

    #[test]
    fn new_groups_and_additions_go_early_removals_do_not() {
        let groups = [
            group("g1", "new"),
            group("g2", "grows"),
            group("g3", "shrinks"),
        ];
        let snap = snapshot(&[
            ("grows", applied("g2", &["a@x.test"], false)),
            ("shrinks", applied("g3", &["a@x.test", "b@x.test"], false)),
        ]);
        let e = early(&groups, &snap);
        let policy = Policy::default();
        let new = e
            .put("g1", "new", &members(&["a@x.test"]), 1, &policy)
            .expect("a put");
        assert!(matches!(
            &new,
            Change::Put {
                reason: PutReason::New,
                ..
            }
        ));
        let grows = e
            .put(
                "g2",
                "grows",
                &members(&["a@x.test", "b@x.test"]),
                2,
                &policy,
            )
            .expect("a put");
        let Change::Put { added, removed, .. } = &grows else {
            unreachable!("a put")
        };
        assert_eq!((added.len(), removed.len()), (1, 0));
        // One member in, one out: waits for the complete read and the breaker.
        assert!(
            e.put(
                "g3",
                "shrinks",
                &members(&["a@x.test", "c@x.test"]),
                2,
                &policy
            )
            .is_none()
        );
        // Emptied: waits too.
        assert!(e.put("g3", "shrinks", &members(&[]), 0, &policy).is_none());
        // Unchanged: nothing to write.
        assert!(
            e.put("g2", "grows", &members(&["a@x.test"]), 1, &policy)
                .is_none()
        );
    }

    #[test]
    fn the_early_put_is_the_put_of_the_whole_plan() {
        let groups = [
            group("g1", "new"),
            group("g2", "grows"),
            group("g3", "gone-soon"),
        ];
        let snap = snapshot(&[
            ("grows", applied("g2", &["a@x.test"], false)),
            ("old", applied("g9", &["a@x.test"], false)),
        ]);
        let e = early(&groups, &snap);
        let reads = [
            ("g1", "new", members(&["a@x.test", "b@x.test"])),
            ("g2", "grows", members(&["a@x.test", "c@x.test"])),
            ("g3", "gone-soon", members(&["d@x.test"])),
        ];
        let mut desired = Desired {
            listed: 3,
            ..Desired::default()
        };
        for (id, name, m) in &reads {
            desired.groups.insert(
                GroupName::new(*name),
                DesiredGroup {
                    okta_id: OktaGroupId::new(*id),
                    okta_name: (*name).into(),
                    members: m.clone(),
                },
            );
        }
        // The whole plan, as the pass makes it (with a breaker that holds the deletion).
        let whole = plan(&desired, &snap, &Policy::default());
        let strict = SafetyPolicy {
            max_group_deletes: 0,
            ..SafetyPolicy::default()
        };
        let guarded = safety::guard(
            whole,
            Managed::of(&snap),
            true,
            &strict,
            &snap,
            &Policy::default(),
        );
        assert!(guarded.held.is_some(), "the deletion of `old` is held");
        for (id, name, m) in &reads {
            let one = e
                .put(id, name, m, m.len(), &Policy::default())
                .expect("a put");
            let in_plan = guarded.changes.iter().find(|c| c.group() == one.group());
            assert_eq!(in_plan, Some(&one), "{name}");
        }
    }

    #[test]
    fn conflicting_reserved_and_renamed_names_wait() {
        let groups = [
            group("g1", "twice"),
            group("g2", "twice"),
            group(
                "g3",
                &chunks::chunk_name(&GroupName::new("x"), 0, 2).to_string(),
            ),
            group("g4", "new-name"),
            group("g5", "fine"),
        ];
        let snap = snapshot(&[("old-name", applied("g4", &["a@x.test"], false))]);
        let e = early(&groups, &snap);
        assert_eq!(names(&e), ["fine"]);
        let m = members(&["a@x.test"]);
        for id in ["g1", "g2", "g4"] {
            assert!(e.put(id, "?", &m, 1, &Policy::default()).is_none(), "{id}");
        }
    }

    #[test]
    fn only_groups_read_this_pass_and_kept_names_are_candidates() {
        let groups = [group("g1", "a"), group("g2", "b")];
        let to_read = [&groups[1]];
        let mut e = EarlyWrites::from_listing(&groups, &rules(), &Snapshot::default(), &to_read);
        assert_eq!(names(&e), ["b"]);
        e.retain(|name| name.as_str() != "b");
        assert!(e.is_empty());
        assert!(
            e.put("g2", "b", &members(&["a@x.test"]), 1, &Policy::default())
                .is_none()
        );
    }

    #[test]
    fn over_the_limit_groups_wait_for_their_issue_and_unconfirmed_rewrites_go() {
        let groups = [group("g1", "big"), group("g2", "retry")];
        let snap = snapshot(&[("retry", applied("g2", &["a@x.test"], true))]);
        let e = early(&groups, &snap);
        let refuse = Policy {
            inline_member_limit: 2,
            large_groups: crate::plan::LargeGroups::Refuse,
        };
        let big = members(&["a@x.test", "b@x.test", "c@x.test"]);
        assert!(e.put("g1", "big", &big, 3, &refuse).is_none());
        let retry = e
            .put(
                "g2",
                "retry",
                &members(&["a@x.test"]),
                1,
                &Policy::default(),
            )
            .expect("a put");
        assert!(matches!(
            retry,
            Change::Put {
                reason: PutReason::Unconfirmed,
                ..
            }
        ));
    }
}
