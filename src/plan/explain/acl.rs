//! The document's ACL as Q Business answers it (CheckDocumentAccess), and how an ACL is
//! evaluated: the same rules for Q's view of membership and for the one Okta implies.

use serde::Serialize;

/// How the principals of an ACL condition (or the conditions of a list) combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Relation {
    And,
    Or,
}

/// One condition of an ACL list: users and groups, combined by `relation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AclCondition {
    /// `None`: Q Business sent none (treated as OR).
    pub relation: Option<Relation>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// `allowlist` or `denyList` of a document's ACL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AclList {
    /// `None`: Q Business sent none (treated as OR).
    pub relation: Option<Relation>,
    pub conditions: Vec<AclCondition>,
}

/// A document's ACL as CheckDocumentAccess returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DocumentAcl {
    pub allowlist: Option<AclList>,
    pub deny_list: Option<AclList>,
}

/// Q Business's answer to CheckDocumentAccess.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessAnswer {
    pub has_access: bool,
    /// `userGroups[].name`: the groups Q resolves the user into (nested groups included).
    pub user_groups: Vec<String>,
    /// `userAliases[].id`.
    pub user_aliases: Vec<String>,
    pub document_acl: DocumentAcl,
}

/// Whose view of membership an ACL is evaluated with.
pub(super) struct View<'v> {
    pub(super) is_user: &'v dyn Fn(&str) -> bool,
    pub(super) in_group: &'v dyn Fn(&str) -> bool,
}

fn combine(relation: Option<Relation>, mut items: impl Iterator<Item = bool>) -> bool {
    match relation {
        Some(Relation::And) => {
            let mut any = false;
            for item in items {
                if !item {
                    return false;
                }
                any = true;
            }
            any
        }
        Some(Relation::Or) | None => items.any(|b| b),
    }
}

fn condition_matches(c: &AclCondition, view: &View<'_>) -> bool {
    let users = c.users.iter().map(|u| (view.is_user)(u));
    let groups = c.groups.iter().map(|g| (view.in_group)(g));
    combine(c.relation, users.chain(groups))
}

pub(super) fn list_matches(list: Option<&AclList>, view: &View<'_>) -> bool {
    list.is_some_and(|l| {
        combine(
            l.relation,
            l.conditions.iter().map(|c| condition_matches(c, view)),
        )
    })
}

pub(super) fn list_groups(list: Option<&AclList>) -> impl Iterator<Item = &str> {
    list.into_iter()
        .flat_map(|l| &l.conditions)
        .flat_map(|c| &c.groups)
        .map(String::as_str)
}

pub(super) fn list_users(list: Option<&AclList>) -> impl Iterator<Item = &str> {
    list.into_iter()
        .flat_map(|l| &l.conditions)
        .flat_map(|c| &c.users)
        .map(String::as_str)
}
