//! Document ACLs for the Q Business emulator's CheckDocumentAccess: the wire shape
//! (`documentAcl.allowlist` / `denyList`, each `memberRelation` + `conditions[]` of `users[]`
//! {id, type} and `groups[]` {name, type}), group resolution (nested `memberGroups`, as chunked
//! large groups use) and the evaluation.
//!
//! Assumptions where AWS documents nothing (stated in docs/operations.md's explain section too):
//! - a missing `memberRelation` means OR; an AND over no principals matches nothing;
//! - access = the allowlist matches and the deny list does not; no allowlist, no access;
//! - user ids compare as Q compares users (trimmed, case-insensitive, `+tag` folded in emails);
//!   group names compare exactly;
//! - a user Q has never seen is not an error: no groups, no aliases, access only through a
//!   direct user entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// `AND` / `OR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRelation {
    /// Every item must match.
    #[serde(rename = "AND")]
    And,
    /// One item is enough.
    #[serde(rename = "OR")]
    Or,
}

/// `{"id": ..., "type": "INDEX" | "DATASOURCE"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclUser {
    /// The user id.
    pub id: String,
    /// `INDEX` or `DATASOURCE`.
    #[serde(rename = "type", default = "index_type")]
    pub kind: String,
}

/// `{"name": ..., "type": "INDEX" | "DATASOURCE"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGroup {
    /// The group name.
    pub name: String,
    /// `INDEX` or `DATASOURCE`.
    #[serde(rename = "type", default = "index_type")]
    pub kind: String,
}

fn index_type() -> String {
    "INDEX".to_owned()
}

/// One condition of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AclCondition {
    /// How the users and groups combine (none: OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_relation: Option<MemberRelation>,
    /// Users named directly.
    #[serde(default)]
    pub users: Vec<AclUser>,
    /// Groups named.
    #[serde(default)]
    pub groups: Vec<AclGroup>,
}

/// `allowlist` or `denyList`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AclMembership {
    /// How the conditions combine (none: OR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_relation: Option<MemberRelation>,
    /// The conditions.
    #[serde(default)]
    pub conditions: Vec<AclCondition>,
}

/// `documentAcl`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentAcl {
    /// Who may see the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<AclMembership>,
    /// Who may not, whatever the allowlist says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_list: Option<AclMembership>,
}

impl DocumentAcl {
    /// An allowlist of one OR condition naming `groups`.
    pub fn allow_groups(groups: &[&str]) -> DocumentAcl {
        DocumentAcl {
            allowlist: Some(AclMembership {
                member_relation: Some(MemberRelation::Or),
                conditions: vec![AclCondition {
                    member_relation: Some(MemberRelation::Or),
                    users: Vec::new(),
                    groups: groups
                        .iter()
                        .map(|g| AclGroup {
                            name: (*g).to_owned(),
                            kind: index_type(),
                        })
                        .collect(),
                }],
            }),
            deny_list: None,
        }
    }
}

fn combine(relation: Option<MemberRelation>, mut items: impl Iterator<Item = bool>) -> bool {
    match relation {
        Some(MemberRelation::And) => {
            let mut any = false;
            for item in items {
                if !item {
                    return false;
                }
                any = true;
            }
            any
        }
        Some(MemberRelation::Or) | None => items.any(|b| b),
    }
}

fn matches(
    list: Option<&AclMembership>,
    user: &str,
    groups: &BTreeSet<String>,
    fold: &dyn Fn(&str) -> String,
) -> bool {
    list.is_some_and(|l| {
        combine(
            l.member_relation,
            l.conditions.iter().map(|c| {
                let users = c.users.iter().map(|u| fold(&u.id) == user);
                let in_groups = c.groups.iter().map(|g| groups.contains(&g.name));
                combine(c.member_relation, users.chain(in_groups))
            }),
        )
    })
}

/// Whether `user` (already folded) in `groups` may see a document with `acl`.
pub fn has_access(acl: &DocumentAcl, user: &str, groups: &BTreeSet<String>) -> bool {
    matches(acl.allowlist.as_ref(), user, groups, &fold_user)
        && !matches(acl.deny_list.as_ref(), user, groups, &fold_user)
}

/// A user id as Q Business compares it: trimmed; an email address (AWS documents only those
/// as case-insensitive with `+tag` folded) also lowercased and folded. Other ids are compared
/// exactly (the reading under which changing their case breaks an ACL).
pub fn fold_user(raw: &str) -> String {
    let trimmed = raw.trim();
    if !is_email(trimmed) {
        return trimmed.to_owned();
    }
    let lower = trimmed.to_lowercase();
    match lower.rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() => match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => lower,
        },
        _ => lower,
    }
}

/// Whether `v` is an email address: one `@`, a local part, and a domain of two or more
/// non-empty dot-separated labels, with no whitespace anywhere.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !v.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

/// One group as resolution sees it: its users and its member groups.
pub struct Resolvable<'a> {
    /// `memberUsers` ids.
    pub users: &'a BTreeSet<String>,
    /// `memberGroups` names.
    pub groups: &'a BTreeSet<String>,
}

/// Every group `user` (folded) belongs to, directly or through member groups, recursively
/// (cycle-safe).
pub fn groups_of(user: &str, groups: &BTreeMap<&str, Resolvable<'_>>) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = groups
        .iter()
        .filter(|(_, g)| g.users.iter().any(|u| fold_user(u) == user))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    loop {
        let more: Vec<String> = groups
            .iter()
            .filter(|(name, g)| {
                !found.contains(**name) && g.groups.iter().any(|sub| found.contains(sub))
            })
            .map(|(name, _)| (*name).to_owned())
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn nested_groups_resolve_through_chunks_and_cycles() {
        let (u1, u2, none) = (
            set(&["Ana+x@Example.test"]),
            set(&["bo@example.test"]),
            set(&[]),
        );
        let (parent_groups, chunk_groups, cyc) =
            (set(&["P (chunk 1 of 2)"]), set(&[]), set(&["Cycle B"]));
        let cyc_b = set(&["Cycle A"]);
        let mut groups = BTreeMap::new();
        groups.insert(
            "P",
            Resolvable {
                users: &none,
                groups: &parent_groups,
            },
        );
        groups.insert(
            "P (chunk 1 of 2)",
            Resolvable {
                users: &u1,
                groups: &chunk_groups,
            },
        );
        groups.insert(
            "Other",
            Resolvable {
                users: &u2,
                groups: &chunk_groups,
            },
        );
        groups.insert(
            "Cycle A",
            Resolvable {
                users: &none,
                groups: &cyc,
            },
        );
        groups.insert(
            "Cycle B",
            Resolvable {
                users: &u1,
                groups: &cyc_b,
            },
        );
        let found = groups_of("ana@example.test", &groups);
        assert_eq!(found, set(&["Cycle A", "Cycle B", "P", "P (chunk 1 of 2)"]));
    }

    #[test]
    fn allow_and_deny_with_and_or() {
        let acl: DocumentAcl = serde_json::from_value(serde_json::json!({
            "allowlist": {"memberRelation": "OR", "conditions": [
                {"memberRelation": "AND", "groups": [{"name": "Eng", "type": "INDEX"}, {"name": "Full-time", "type": "INDEX"}]},
                {"users": [{"id": "Boss@Example.test", "type": "INDEX"}]}
            ]},
            "denyList": {"conditions": [{"groups": [{"name": "Leavers", "type": "INDEX"}]}]}
        }))
        .unwrap_or_default();
        assert!(has_access(
            &acl,
            "ana@example.test",
            &set(&["Eng", "Full-time"])
        ));
        assert!(!has_access(&acl, "ana@example.test", &set(&["Eng"])));
        assert!(has_access(&acl, "boss@example.test", &set(&[])));
        assert!(!has_access(
            &acl,
            "ana@example.test",
            &set(&["Eng", "Full-time", "Leavers"])
        ));
        assert!(!has_access(
            &DocumentAcl::default(),
            "ana@example.test",
            &set(&["Eng"])
        ));
    }
}
