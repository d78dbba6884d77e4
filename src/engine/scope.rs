//! The narrow step: the groups and snapshot entries a pass covers, all of them or those a
//! limited pass names.

use std::collections::BTreeSet;

use super::Error;
use super::context::Pass;
use crate::plan::Snapshot;
use crate::plan::select::{Rules, Scope};
use crate::source::OktaGroup;

/// The groups and snapshot entries a pass covers: everything, or what its request limits it
/// to (one group by Okta id, Okta name or Q name, or the groups of an events pass).
pub(super) fn narrow(
    pass: &Pass<'_>,
    groups: Vec<OktaGroup>,
    snapshot: Snapshot,
) -> Result<(Vec<OktaGroup>, Snapshot), Error> {
    let request = pass.request;
    let rules = &pass.settings.rules;
    Ok(match &request.group {
        None if request.groups.is_empty() => (groups, snapshot),
        None => {
            let wanted: BTreeSet<&str> = request.groups.iter().map(String::as_str).collect();
            some_groups(rules, &wanted, groups, snapshot)
        }
        Some(wanted) => {
            let listed = groups.len();
            let (subset, snap) =
                some_groups(rules, &BTreeSet::from([wanted.as_str()]), groups, snapshot);
            if subset.is_empty() && snap.groups.is_empty() {
                return Err(Error::UnknownGroup {
                    group: wanted.clone(),
                });
            }
            pass.trace("list", || {
                let found: Vec<String> = subset
                    .iter()
                    .map(|g| {
                        format!(
                            "{} {:?} (lastMembershipUpdated {})",
                            g.id,
                            g.name,
                            g.last_membership_updated
                                .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339())
                        )
                    })
                    .collect();
                let known: Vec<String> = snap.groups.keys().map(|n| format!("{n:?}")).collect();
                format!(
                    "{wanted:?}: Okta lists {} of {} groups [{}]; the snapshot has [{}]",
                    subset.len(),
                    listed,
                    found.join(", "),
                    known.join(", ")
                )
            });
            for g in &subset {
                pass.trace("scope", || match rules.scope(g) {
                    Scope::In(name) => format!("{:?} is in scope as Q group {name:?}", g.name),
                    Scope::Out(why) => format!(
                        "{:?} is out of scope ({why:?}): its Q group, if any, is deleted",
                        g.name
                    ),
                    Scope::Invalid(problem) => format!(
                        "{:?} is in scope but its Q name is unusable ({problem})",
                        g.name
                    ),
                });
            }
            (subset, snap)
        }
    })
}

/// Narrows a pass to some groups, each named by Okta id, Okta name or Q name: the matching
/// listed groups, and the snapshot entries they (or the names) own, so a rename or deletion
/// of those groups is handled and nothing else is touched.
fn some_groups(
    rules: &Rules,
    wanted: &BTreeSet<&str>,
    groups: Vec<OktaGroup>,
    snapshot: Snapshot,
) -> (Vec<OktaGroup>, Snapshot) {
    let subset: Vec<OktaGroup> = groups
        .into_iter()
        .filter(|g| {
            wanted.contains(g.id.as_str())
                || wanted.contains(g.name.as_str())
                || matches!(rules.scope(g), Scope::In(ref n) if wanted.contains(n.as_str()))
        })
        .collect();
    let ids: BTreeSet<&str> = subset.iter().map(|g| g.id.as_str()).collect();
    let groups = snapshot
        .groups
        .into_iter()
        .filter(|(name, g)| {
            wanted.contains(name.as_str())
                || wanted.contains(g.okta_id.as_str())
                || ids.contains(g.okta_id.as_str())
        })
        .collect();
    (subset, Snapshot { groups })
}
