//! `reconcile`: which Q Business groups look managed by q-group-sync but are not recorded in
//! the snapshot, and which recorded groups Q Business no longer lists. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::input::OktaGroup;
use super::select::{Rules, Scope};
use super::{Snapshot, chunks};
use crate::model::GroupName;

/// Why an unrecorded Q group looks like one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LooksManaged {
    /// It has the Q name of an in-scope Okta group.
    OktaName,
    /// It has the shape of a chunk sub-group.
    Chunk,
    /// It starts with `groups.name_prefix`.
    NamePrefix,
}

impl LooksManaged {
    /// In words, for the text output.
    pub fn describe(self) -> &'static str {
        match self {
            LooksManaged::OktaName => "same name as an in-scope Okta group",
            LooksManaged::Chunk => {
                "a q-group-sync chunk sub-group (adopting it lets the next sync delete or rewrite it)"
            }
            LooksManaged::NamePrefix => "matches groups.name_prefix",
        }
    }
}

/// An unrecorded Q group that looks managed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrecorded {
    pub group: GroupName,
    pub why: LooksManaged,
    /// The Okta group it stands for, when one is known.
    pub okta_id: Option<String>,
}

/// What `reconcile` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Groups Q Business lists.
    pub q_groups: usize,
    /// Groups the snapshot records as managed.
    pub managed: usize,
    pub look_managed_but_unrecorded: Vec<Unrecorded>,
    pub recorded_but_missing_in_q: Vec<GroupName>,
}

/// Compares what Q lists (`in_q`) with the snapshot and Okta's in-scope groups.
pub fn reconcile(
    in_q: &[GroupName],
    snapshot: &Snapshot,
    listed: &[OktaGroup],
    rules: &Rules,
    name_prefix: Option<&str>,
) -> Reconciliation {
    let okta_names: BTreeMap<String, String> = listed
        .iter()
        .filter_map(|g| match rules.scope(g) {
            Scope::In(name) => Some((name.to_string(), g.id.clone())),
            Scope::Out(_) | Scope::Invalid(_) => None,
        })
        .collect();
    let prefix = name_prefix.filter(|p| !p.is_empty());
    // Chunk sub-groups of recorded large groups are recorded with their group.
    let recorded_chunks: BTreeSet<GroupName> = snapshot
        .families()
        .flat_map(|(name, g)| g.layout.chunk_names(name))
        .collect();
    let mut found = Vec::new();
    for name in in_q {
        if snapshot.groups.contains_key(name) || recorded_chunks.contains(name) {
            continue;
        }
        let why = if let Some(okta_id) = okta_names.get(name.as_str()) {
            Some((LooksManaged::OktaName, Some(okta_id.clone())))
        } else if chunks::is_chunk_name(name.as_str()) {
            let parent = chunks::chunk_parent(name.as_str());
            Some((
                LooksManaged::Chunk,
                parent.and_then(|p| okta_names.get(p)).cloned(),
            ))
        } else if prefix.is_some_and(|p| name.as_str().starts_with(p)) {
            Some((LooksManaged::NamePrefix, None))
        } else {
            None
        };
        if let Some((why, okta_id)) = why {
            found.push(Unrecorded {
                group: name.clone(),
                why,
                okta_id,
            });
        }
    }
    let in_q_set: BTreeSet<&GroupName> = in_q.iter().collect();
    Reconciliation {
        q_groups: in_q.len(),
        managed: snapshot.groups.len(),
        look_managed_but_unrecorded: found,
        recorded_but_missing_in_q: snapshot
            .groups
            .keys()
            .filter(|n| !in_q_set.contains(n))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OktaGroupId;
    use crate::plan::SnapshotGroup;
    use crate::plan::input::GroupType;

    #[test]
    fn unrecorded_groups_are_told_apart_by_why_they_look_managed() {
        let rules =
            Rules::new(&["*".into()], &[], "okta:", &["ACTIVE".into()], false).expect("rules");
        let listed = [OktaGroup {
            id: "00g1".into(),
            name: "Sales".into(),
            kind: GroupType::Okta,
            last_membership_updated: None,
            last_updated: None,
        }];
        let mut snapshot = Snapshot::default();
        snapshot.groups.insert(
            GroupName::new("okta:Gone"),
            SnapshotGroup {
                okta_id: OktaGroupId::new("00g9"),
                members: Default::default(),
                pushed_at: chrono::DateTime::UNIX_EPOCH,
                unconfirmed: false,
                read: None,
                layout: Default::default(),
            },
        );
        let in_q: Vec<GroupName> = ["okta:Sales", "okta:Other", "Made by hand"]
            .map(GroupName::new)
            .to_vec();
        let r = reconcile(&in_q, &snapshot, &listed, &rules, Some("okta:"));
        let got: Vec<(&str, LooksManaged)> = r
            .look_managed_but_unrecorded
            .iter()
            .map(|u| (u.group.as_str(), u.why))
            .collect();
        assert_eq!(
            got,
            [
                ("okta:Sales", LooksManaged::OktaName),
                ("okta:Other", LooksManaged::NamePrefix)
            ]
        );
        assert_eq!(r.recorded_but_missing_in_q, [GroupName::new("okta:Gone")]);
    }
}
