//! The deletion circuit breaker: a plan that would remove too much is split into what is safe
//! to apply now (additions) and what waits for an admin's approval (deletions, removals).
//!
//! Pure: no I/O, no clock. A brief IdP problem (an outage, an empty page, a token that lost a
//! permission, a filter typo) must never turn into revoked access for whole departments.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Change, Plan, Snapshot};
use crate::config::SafetyConfig;
use crate::model::{GroupName, Members, OktaGroupId};

/// The limits of the breaker; see `[safety]` in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyPolicy {
    pub max_group_deletes: usize,
    pub max_group_deletes_percent: f64,
    pub max_member_removals_percent: f64,
    pub block_empty_groups: bool,
    /// With `block_empty_groups`: a group is suspiciously empty when Okta lists no user for it
    /// while it had at least this many members.
    pub empty_group_min_members: usize,
    pub max_group_count_drop_percent: f64,
}

impl Default for SafetyPolicy {
    fn default() -> Self {
        SafetyPolicy::from_config(&SafetyConfig::default())
    }
}

impl SafetyPolicy {
    pub fn from_config(c: &SafetyConfig) -> SafetyPolicy {
        SafetyPolicy {
            max_group_deletes: c.max_group_deletes,
            max_group_deletes_percent: c.max_group_deletes_percent,
            max_member_removals_percent: c.max_member_removals_percent,
            block_empty_groups: c.block_empty_groups,
            empty_group_min_members: c.empty_group_min_members,
            max_group_count_drop_percent: c.max_group_count_drop_percent,
        }
    }

    /// A policy that holds nothing (tests, and the approval of a held plan).
    pub fn off() -> SafetyPolicy {
        SafetyPolicy {
            max_group_deletes: usize::MAX,
            max_group_deletes_percent: 100.0,
            max_member_removals_percent: 100.0,
            block_empty_groups: false,
            empty_group_min_members: usize::MAX,
            max_group_count_drop_percent: 100.0,
        }
    }
}

/// A held deletion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldDelete {
    pub group: GroupName,
    pub okta_id: OktaGroupId,
}

/// Destructive changes waiting for approval. Its [`Held::hash`] identifies it: the same held
/// changes in a later pass are the same held plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The plan id admins approve: the first 12 hex digits of `hash`.
    pub id: String,
    /// SHA-256 over the held changes.
    pub hash: String,
    /// Which limits tripped, in words.
    pub reasons: Vec<String>,
    /// Groups to delete.
    pub deletes: Vec<HeldDelete>,
    /// Members to remove, by group.
    pub removals: BTreeMap<GroupName, Members>,
}

impl Held {
    /// SHA-256 over the held changes (not the reasons), hex.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        for d in &self.deletes {
            h.update(b"D\0");
            h.update(d.group.as_str().as_bytes());
            h.update(b"\0");
            h.update(d.okta_id.as_str().as_bytes());
            h.update(b"\n");
        }
        for (group, members) in &self.removals {
            h.update(b"R\0");
            h.update(group.as_str().as_bytes());
            for m in members {
                h.update(b"\0");
                h.update(m.as_str().as_bytes());
            }
            h.update(b"\n");
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Sets `hash` and `id` from the held changes.
    fn seal(mut self) -> Held {
        self.hash = self.compute_hash();
        self.id = self.hash[..12].to_owned();
        self
    }

    pub fn removal_count(&self) -> usize {
        self.removals.values().map(Members::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.removals.is_empty()
    }

    /// Whether every destructive change of `plan` is in this held plan (Okta still agrees, or
    /// asks for less). Returns the changes that are not, in words.
    pub fn covers(&self, plan: &Plan) -> Result<(), Vec<String>> {
        let mut extra = Vec::new();
        for c in &plan.changes {
            match c {
                Change::Delete { reason, .. } if !reason.takes_access() => {}
                Change::Delete { group, okta_id, .. } => {
                    let d = HeldDelete {
                        group: group.clone(),
                        okta_id: okta_id.clone(),
                    };
                    if !self.deletes.contains(&d) {
                        extra.push(format!("delete {group}"));
                    }
                }
                Change::Put { group, removed, .. } if !removed.is_empty() => {
                    let held = self.removals.get(group);
                    let missing = removed
                        .iter()
                        .filter(|m| held.is_none_or(|h| !h.contains(m.as_str())))
                        .count();
                    if missing > 0 {
                        extra.push(format!("remove {missing} member(s) from {group}"));
                    }
                }
                Change::Put { .. } => {}
            }
        }
        if extra.is_empty() { Ok(()) } else { Err(extra) }
    }
}

/// What q-group-sync manages in all: the base of the percentage limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Managed {
    pub groups: usize,
    pub memberships: usize,
}

impl Managed {
    pub fn of(snapshot: &Snapshot) -> Managed {
        Managed {
            groups: snapshot.families().count(),
            memberships: snapshot.families().map(|(_, g)| g.members.len()).sum(),
        }
    }
}

/// Applies the breaker to a plan. When a limit trips, the returned plan's changes keep every
/// addition (a put whose removals are held carries the old members plus the additions), its
/// deletions and removals move into `held`, and nothing destructive remains to apply.
///
/// `managed` counts the whole snapshot, also when `plan` covers one group only; the group-count
/// rule applies to full passes (`full`) only. `snapshot` and `limits` are those `plan` was made
/// with: the puts rebuilt with other member lists get their writes from them.
pub fn guard(
    mut plan: Plan,
    managed: Managed,
    full: bool,
    policy: &SafetyPolicy,
    snapshot: &Snapshot,
    limits: &super::Policy,
) -> Plan {
    let Managed {
        groups: managed,
        memberships: managed_members,
    } = managed;
    let deletes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Delete { reason, .. } if reason.takes_access()))
        .collect();
    let removals: usize = plan
        .changes
        .iter()
        .map(|c| match c {
            Change::Put { removed, .. } => removed.len(),
            Change::Delete { .. } => 0,
        })
        .sum();

    let mut reasons = Vec::new();
    let n = deletes.len();
    if n > policy.max_group_deletes {
        reasons.push(format!(
            "{n} group deletions exceed safety.max_group_deletes ({})",
            policy.max_group_deletes
        ));
    }
    if managed > 0 && n > 0 {
        let pct = 100.0 * n as f64 / managed as f64;
        if pct > policy.max_group_deletes_percent {
            reasons.push(format!(
                "{n} of {managed} managed groups ({pct:.1}%) would be deleted, over safety.max_group_deletes_percent ({}%)",
                policy.max_group_deletes_percent
            ));
        }
    }
    if managed_members > 0 && removals > 0 {
        let pct = 100.0 * removals as f64 / managed_members as f64;
        if pct > policy.max_member_removals_percent {
            reasons.push(format!(
                "{removals} of {managed_members} managed memberships ({pct:.1}%) would be removed, over safety.max_member_removals_percent ({}%)",
                policy.max_member_removals_percent
            ));
        }
    }
    if full && managed > 0 && plan.in_scope < managed {
        let drop = 100.0 * (managed - plan.in_scope) as f64 / managed as f64;
        if drop > policy.max_group_count_drop_percent {
            reasons.push(format!(
                "Okta lists {} in-scope groups against {managed} managed ({drop:.0}% fewer), over safety.max_group_count_drop_percent ({}%)",
                plan.in_scope, policy.max_group_count_drop_percent
            ));
        }
    }
    // A group Okta suddenly lists no one for, that had several members, looks like an Okta
    // problem (a broken group rule, an import gone wrong); it is held on its own. A group whose
    // last member left, or whose members were all deactivated (Okta still lists them), is not.
    let suspicious: Vec<(&GroupName, usize)> = if policy.block_empty_groups {
        plan.changes
            .iter()
            .filter_map(|c| match c {
                Change::Put {
                    group,
                    members,
                    removed,
                    ..
                } if members.is_empty()
                    && removed.len() >= policy.empty_group_min_members.max(1)
                    && plan.okta_empty.contains(group) =>
                {
                    Some((group, removed.len()))
                }
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let empty_reason = (!suspicious.is_empty()).then(|| {
        let names: Vec<String> = suspicious
            .iter()
            .map(|(g, n)| format!("{g} (had {n})"))
            .collect();
        format!(
            "Okta lists no users for {} managed group(s) that had members: {}; see safety.block_empty_groups",
            suspicious.len(),
            abbreviate(&names)
        )
    });
    let suspicious: BTreeSet<GroupName> = suspicious.into_iter().map(|(g, _)| g.clone()).collect();
    // A pass-wide limit holds every destructive change; otherwise only the suspicious groups.
    let whole_pass = !reasons.is_empty();
    reasons.extend(empty_reason);
    if reasons.is_empty() {
        return plan;
    }
    let holds = |group: &GroupName| whole_pass || suspicious.contains(group);

    let mut held = Held {
        reasons,
        ..Held::default()
    };
    let mut safe = Vec::with_capacity(plan.changes.len());
    for change in std::mem::take(&mut plan.changes) {
        match change {
            Change::Delete {
                group,
                okta_id,
                reason,
                chunks,
            } => {
                if reason.takes_access() && whole_pass {
                    held.deletes.push(HeldDelete { group, okta_id });
                } else {
                    safe.push(Change::Delete {
                        group,
                        okta_id,
                        reason,
                        chunks,
                    });
                }
            }
            Change::Put {
                group,
                okta_id,
                members,
                added,
                removed,
                reason,
                ..
            } if !removed.is_empty() && holds(&group) => {
                // Keep everyone who has access now, add the newcomers; the removals wait.
                let kept: Members = members.iter().chain(removed.iter()).collect();
                held.removals.insert(group.clone(), removed);
                if added.is_empty() {
                    continue;
                }
                let member_count = kept.len();
                safe.push(Change::Put {
                    group,
                    okta_id,
                    members: kept,
                    member_count,
                    added,
                    removed: Members::new(),
                    reason,
                    // Worked out below for the kept members.
                    layout: super::Layout::Inline,
                    writes: Vec::new(),
                    stale_chunks: Vec::new(),
                });
            }
            other => safe.push(other),
        }
    }
    plan.changes = safe;
    super::chunks::expand(&mut plan, snapshot, limits);
    if !held.is_empty() {
        plan.held = Some(held.seal());
    }
    plan
}

fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::UserId;
    use crate::plan::{Desired, DesiredGroup, Policy, SnapshotGroup, plan};

    fn members(ids: &[&str]) -> Members {
        ids.iter().map(|i| UserId::from_normalised(*i)).collect()
    }

    fn snapshot(n: usize, per_group: usize) -> Snapshot {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        let mut s = Snapshot::default();
        for g in 0..n {
            let ids: Vec<String> = (0..per_group).map(|u| format!("u{u}@x.test")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            s.groups.insert(
                GroupName::new(format!("g{g:03}")),
                SnapshotGroup {
                    okta_id: OktaGroupId::new(format!("id{g}")),
                    members: members(&refs),
                    pushed_at: at,
                    unconfirmed: false,
                    read: None,
                    layout: Default::default(),
                },
            );
        }
        s
    }

    /// Desired = the snapshot with `keep` groups left and `f` applied to their member lists.
    fn desired(s: &Snapshot, keep: usize, f: impl Fn(&Members) -> Members) -> Desired {
        let mut d = Desired {
            listed: keep,
            ..Desired::default()
        };
        for (name, g) in s.groups.iter().take(keep) {
            d.groups.insert(
                name.clone(),
                DesiredGroup {
                    okta_id: g.okta_id.clone(),
                    okta_name: name.to_string(),
                    members: f(&g.members),
                },
            );
        }
        d
    }

    fn run(d: &Desired, s: &Snapshot) -> Plan {
        guard(
            plan(d, s, &Policy::default()),
            Managed::of(s),
            true,
            &SafetyPolicy::default(),
            s,
            &Policy::default(),
        )
    }

    #[test]
    fn okta_returning_nothing_holds_every_deletion() {
        let s = snapshot(100, 3);
        let p = run(&desired(&s, 0, Members::clone), &s);
        assert!(p.changes.is_empty());
        let held = p.held.expect("held");
        assert_eq!(held.deletes.len(), 100);
        assert_eq!(held.reasons.len(), 3, "{:?}", held.reasons);
        assert_eq!(held.id.len(), 12);
        assert!(held.hash.starts_with(&held.id));
    }

    #[test]
    fn thirty_of_a_hundred_deleted_is_held_and_a_few_are_not() {
        let s = snapshot(100, 3);
        let p = run(&desired(&s, 70, Members::clone), &s);
        assert_eq!(p.held.as_ref().map(|h| h.deletes.len()), Some(30));
        assert!(p.changes.is_empty());
        let p = run(&desired(&s, 95, Members::clone), &s);
        assert!(p.held.is_none(), "5 of 100 is within the limits");
        assert_eq!(p.deletes().count(), 5);
    }

    #[test]
    fn removals_are_held_but_additions_apply() {
        let s = snapshot(10, 10);
        // Every group loses 3 of 10 members (30% > 20%) and gains one newcomer.
        let d = desired(&s, 10, |m| {
            m.iter()
                .skip(3)
                .cloned()
                .chain([UserId::from_normalised("new@x.test")])
                .collect()
        });
        let p = run(&d, &s);
        let held = p.held.as_ref().expect("held");
        assert_eq!(held.removal_count(), 30);
        assert_eq!(p.changes.len(), 10);
        for c in &p.changes {
            let Change::Put {
                members: m,
                removed,
                added,
                ..
            } = c
            else {
                panic!("put")
            };
            assert!(removed.is_empty());
            assert_eq!(added.len(), 1);
            assert_eq!(m.len(), 11, "old members kept, newcomer added");
        }
    }

    #[test]
    fn an_emptied_group_is_suspicious_only_when_okta_lists_no_one() {
        let s = snapshot(50, 4);
        let mut d = desired(&s, 50, Members::clone);
        let first = d.groups.keys().next().expect("a group").clone();
        d.groups.get_mut(&first).expect("group").members = Members::new();
        // Okta still lists the group's users, all left out now (deactivated): not suspicious.
        let p = run(&d, &s);
        assert!(p.held.is_none(), "{:?}", p.held);
        assert_eq!(removed_from(&p, &first), 4);
        // Okta lists no one for a group that had four members: held, on its own.
        d.okta_empty.insert(first.clone());
        let p = run(&d, &s);
        let held = p.held.expect("one emptied group is enough");
        assert!(held.reasons[0].contains("no users"), "{:?}", held.reasons);
        assert_eq!(held.removals.keys().collect::<Vec<_>>(), vec![&first]);
        assert!(held.deletes.is_empty());
        // With the breaker's empty-group rule off, it applies.
        let off = SafetyPolicy {
            block_empty_groups: false,
            ..SafetyPolicy::default()
        };
        let p = guard(
            plan(&d, &s, &Policy::default()),
            Managed::of(&s),
            true,
            &off,
            &s,
            &Policy::default(),
        );
        assert!(p.held.is_none());
    }

    #[test]
    fn a_suspicious_group_does_not_hold_the_other_groups_removals() {
        let s = snapshot(50, 4);
        let mut d = desired(&s, 50, Members::clone);
        let names: Vec<GroupName> = d.groups.keys().take(3).cloned().collect();
        // The first is emptied with no one listed; the next two each lose one member.
        d.groups.get_mut(&names[0]).expect("group").members = Members::new();
        d.okta_empty.insert(names[0].clone());
        for name in &names[1..] {
            let g = d.groups.get_mut(name).expect("group");
            g.members = g.members.iter().skip(1).cloned().collect();
        }
        let p = run(&d, &s);
        let held = p.held.as_ref().expect("held");
        assert_eq!(held.removals.keys().collect::<Vec<_>>(), vec![&names[0]]);
        assert_eq!(removed_from(&p, &names[0]), 0, "its removals wait");
        assert_eq!(removed_from(&p, &names[1]), 1);
        assert_eq!(removed_from(&p, &names[2]), 1);
    }

    #[test]
    fn a_group_whose_last_member_left_is_not_suspicious() {
        let s = snapshot(50, 1);
        let mut d = desired(&s, 50, Members::clone);
        let first = d.groups.keys().next().expect("a group").clone();
        d.groups.get_mut(&first).expect("group").members = Members::new();
        d.okta_empty.insert(first.clone());
        let p = run(&d, &s);
        assert!(p.held.is_none(), "{:?}", p.held);
        assert_eq!(removed_from(&p, &first), 1);
    }

    #[test]
    fn a_pass_wide_limit_still_holds_everything() {
        let s = snapshot(10, 10);
        let mut d = desired(&s, 10, |m| m.iter().skip(3).cloned().collect());
        let first = d.groups.keys().next().expect("a group").clone();
        d.groups.get_mut(&first).expect("group").members = Members::new();
        d.okta_empty.insert(first.clone());
        let p = run(&d, &s);
        let held = p.held.expect("held");
        assert_eq!(held.removals.len(), 10);
        assert_eq!(held.reasons.len(), 2, "{:?}", held.reasons);
        assert!(p.changes.is_empty());
    }

    fn removed_from(p: &Plan, name: &GroupName) -> usize {
        p.changes
            .iter()
            .find_map(|c| match c {
                Change::Put { group, removed, .. } if group == name => Some(removed.len()),
                _ => None,
            })
            .unwrap_or(0)
    }

    #[test]
    fn covers_accepts_equal_or_less_and_refuses_more() {
        let s = snapshot(100, 3);
        let held = run(&desired(&s, 70, Members::clone), &s)
            .held
            .expect("held");
        let unguarded = plan(&desired(&s, 70, Members::clone), &s, &Policy::default());
        assert_eq!(held.covers(&unguarded), Ok(()));
        let fewer = plan(&desired(&s, 80, Members::clone), &s, &Policy::default());
        assert_eq!(held.covers(&fewer), Ok(()));
        let more = plan(&desired(&s, 60, Members::clone), &s, &Policy::default());
        assert_eq!(held.covers(&more).map_err(|e| e.len()), Err(10));
        assert_eq!(
            held.hash,
            run(&desired(&s, 70, Members::clone), &s)
                .held
                .expect("held")
                .hash
        );
    }

    #[test]
    fn chunk_sub_groups_are_not_managed_groups_of_their_own() {
        // What a re-chunk that stopped early leaves: a group and an orphan chunk of it.
        let mut s = snapshot(1, 3);
        let group = s.groups[&GroupName::new("g000")].clone();
        let orphan = crate::plan::chunks::chunk_name(&GroupName::new("g000"), 0, 9);
        s.groups.insert(
            orphan,
            SnapshotGroup {
                members: Members::new(),
                unconfirmed: true,
                ..group
            },
        );
        assert_eq!(Managed::of(&s).groups, 1);
        assert_eq!(Managed::of(&s).memberships, 3);
    }
}
