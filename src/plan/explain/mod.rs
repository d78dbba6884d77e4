//! `explain`: why a user can or cannot see a document. Okta's facts about the user, the
//! snapshot's facts about the groups the document's ACL names, and Q Business's own answer
//! (CheckDocumentAccess) in; a verdict out.
//!
//! Pure: no I/O, no clock. `expected_access` evaluates the document's ACL as Q Business does,
//! but with the group memberships Okta implies (in-scope groups, eligible user); `has_access`
//! is Q's answer; when they differ the verdict names the group and the fix.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Snapshot;
use super::input::{OktaGroup, OktaUser};
use super::safety::Held;
use super::select::{OutReason, Rules, Scope, Skip};
use crate::model::GroupName;

mod acl;
mod verdict;

pub use acl::{AccessAnswer, AclCondition, AclList, DocumentAcl, Relation};
use acl::{View, list_groups, list_matches, list_users};
use verdict::{Ctx, lower_first};

/// How an Okta user maps to a Q user id under the `users.*` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The id q-group-sync writes into groups (`None`: the user is skipped).
    pub written: Option<String>,
    /// The id Q Business is asked about: the written one, else the id the user would have
    /// (a skipped status), else the normalised login.
    pub checked_as: String,
    /// Why the user is skipped, if they are.
    pub skip: Option<Skip>,
}

/// The user's Q identity under `rules`.
pub fn identity(user: &OktaUser, rules: &Rules) -> Identity {
    let id = rules.id_of(user.attribute.as_deref());
    let skip = if !rules.eligible(&user.status) {
        Some(Skip::Status)
    } else {
        id.as_ref().err().copied()
    };
    let checked_as = match &id {
        Ok(id) => id.clone(),
        Err(_) => rules.normalise(user.login.as_deref().unwrap_or(&user.id)),
    };
    Identity {
        written: id.ok().filter(|_| skip.is_none()),
        checked_as,
        skip,
    }
}

/// Everything `explain` knows.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub user: &'a OktaUser,
    /// The groups Okta lists for the user (`GET /api/v1/users/{id}/groups`).
    pub okta_groups: &'a [OktaGroup],
    pub rules: &'a Rules,
    /// `users.id_attribute`, for the messages.
    pub id_attribute: &'a str,
    pub snapshot: &'a Snapshot,
    /// The held plan waiting for approval, if any.
    pub held: Option<&'a Held>,
    pub document: &'a str,
    pub answer: &'a AccessAnswer,
}

/// Why Okta and Q agree or disagree, as a closed set (the JSON `cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Okta and Q agree.
    Consistent,
    /// Okta changed after q-group-sync last wrote the group (or it was never written).
    NotYetSynced,
    /// The removal is held by the circuit breaker.
    Held,
    /// The last write of the group was not confirmed (failed or still processing).
    UnconfirmedWrite,
    /// q-group-sync recorded the user in the group, yet Q does not hold them.
    FailedWrite,
    /// The group is not q-group-sync's (not in its snapshot).
    NotOwned,
    /// The user's Okta group behind it is out of scope.
    OutOfScope,
    /// The user is skipped by the `users.*` rules (status, no id attribute).
    UserSkipped,
    /// The ACL names the user by an id other than the one q-group-sync writes.
    IdMismatch,
    /// A deny list entry.
    DenyList,
    /// The group in Q holds the user although q-group-sync never wrote them into it.
    ChangedInQ,
    /// Nothing above explains it.
    Unexplained,
}

impl Cause {
    /// The label, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Consistent => "consistent",
            Cause::NotYetSynced => "not_yet_synced",
            Cause::Held => "held",
            Cause::UnconfirmedWrite => "unconfirmed_write",
            Cause::FailedWrite => "failed_write",
            Cause::NotOwned => "not_owned",
            Cause::OutOfScope => "out_of_scope",
            Cause::UserSkipped => "user_skipped",
            Cause::IdMismatch => "id_mismatch",
            Cause::DenyList => "deny_list",
            Cause::ChangedInQ => "changed_in_q",
            Cause::Unexplained => "unexplained",
        }
    }
}

/// Where one of the user's Okta groups stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OktaGroupView {
    pub id: String,
    pub name: String,
    /// The Q group it is synced to, when in scope.
    pub q_name: Option<String>,
    /// `in`, `not_included`, `excluded` or `invalid_name`.
    pub scope: &'static str,
}

/// The user, as Okta and the `users.*` rules see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub okta_id: String,
    pub login: Option<String>,
    pub status: String,
    /// The id q-group-sync writes for them; `null` when skipped.
    pub q_user_id: Option<String>,
    /// The id Q Business was asked about.
    pub checked_as: String,
    /// Why the user is skipped: `status`, `missing_attribute`, `invalid_id`.
    pub skipped: Option<&'static str>,
    pub okta_groups: Vec<OktaGroupView>,
}

/// One group the document's ACL names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclGroupView {
    pub name: String,
    /// `allow`, `deny` or `allow,deny`.
    pub list: &'static str,
    /// The user is an Okta member of the in-scope group synced under this name.
    pub in_okta: bool,
    /// Q resolves the user into this group (`userGroups`).
    pub in_q: bool,
    /// q-group-sync owns it (it is in the snapshot).
    pub owned: bool,
    /// When q-group-sync last wrote it.
    pub last_written: Option<DateTime<Utc>>,
    /// Whether that write was confirmed by Q (GetGroup SUCCEEDED).
    pub confirmed: Option<bool>,
    /// Whether the user was in the member list it last wrote.
    pub user_in_last_write: Option<bool>,
}

/// The answer of `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub user: UserView,
    pub document: String,
    /// Q Business's answer.
    pub has_access: bool,
    /// What Okta implies for this ACL.
    pub expected_access: bool,
    pub consistent: bool,
    pub cause: Cause,
    /// One sentence: why, naming the group and the fix.
    pub verdict: String,
    pub acl_groups: Vec<AclGroupView>,
    /// Users the ACL names directly.
    pub acl_users: Vec<String>,
    /// The groups Q resolves the user into.
    pub q_user_groups: Vec<String>,
}

fn skip_str(skip: Skip) -> &'static str {
    match skip {
        Skip::Status => "status",
        Skip::MissingAttribute => "missing_attribute",
        Skip::InvalidId => "invalid_id",
    }
}

/// Puts the facts together.
pub fn explain(f: &Facts<'_>) -> Explanation {
    let ident = identity(f.user, f.rules);
    let who = f.user.login.clone().unwrap_or_else(|| f.user.id.clone());
    let acl = &f.answer.document_acl;
    let allow = acl.allowlist.as_ref();
    let deny = acl.deny_list.as_ref();

    // The user's Okta groups: in scope by Q name, and out of scope by would-be Q name.
    let mut okta_in_scope: BTreeMap<String, &OktaGroup> = BTreeMap::new();
    let mut okta_out: BTreeMap<String, (&OktaGroup, &'static str)> = BTreeMap::new();
    let mut okta_views = Vec::new();
    for g in f.okta_groups {
        let (q_name, scope) = match f.rules.scope(g) {
            Scope::In(name) => {
                okta_in_scope.insert(name.as_str().to_owned(), g);
                (Some(name.as_str().to_owned()), "in")
            }
            Scope::Out(reason) => {
                let scope = match reason {
                    OutReason::NotIncluded => "not_included",
                    OutReason::Excluded => "excluded",
                };
                okta_out.insert(format!("{}{}", f.rules.name_prefix(), g.name), (g, scope));
                (None, scope)
            }
            Scope::Invalid(_) => (None, "invalid_name"),
        };
        okta_views.push(OktaGroupView {
            id: g.id.clone(),
            name: g.name.clone(),
            q_name,
            scope,
        });
    }

    let q_groups: BTreeSet<&str> = f.answer.user_groups.iter().map(String::as_str).collect();
    let aliases: BTreeSet<String> = f
        .answer
        .user_aliases
        .iter()
        .map(|a| f.rules.normalise(a))
        .collect();
    let checked = ident.checked_as.as_str();
    let q_is_user = |u: &str| {
        let u = f.rules.normalise(u);
        u == checked || aliases.contains(&u)
    };
    // Q may list only the groups that name the user directly (not their nested parents): a
    // user in one of the chunk sub-groups q-group-sync made of a group is in that group.
    let q_in_group = |g: &str| {
        let name = GroupName::new(g);
        q_groups.contains(g)
            || f.snapshot.groups.get(&name).is_some_and(|s| {
                s.layout
                    .chunk_names(&name)
                    .iter()
                    .any(|c| q_groups.contains(c.as_str()))
            })
    };
    let eligible = ident.written.is_some();
    // Named directly: by the id q-group-sync writes, or by another of the user's Okta
    // identities (login, email, Okta id), which is an id mismatch when Q disagrees.
    let identities: BTreeSet<String> = [
        f.user.login.as_deref(),
        f.user.email.as_deref(),
        Some(f.user.id.as_str()),
    ]
    .into_iter()
    .flatten()
    .map(|v| f.rules.normalise(v))
    .chain(ident.written.clone())
    .collect();
    let okta_is_user = |u: &str| eligible && identities.contains(&f.rules.normalise(u));
    let okta_in_group = |g: &str| eligible && okta_in_scope.contains_key(g);
    let q_view = View {
        is_user: &q_is_user,
        in_group: &q_in_group,
    };
    let okta_view = View {
        is_user: &okta_is_user,
        in_group: &okta_in_group,
    };

    let deny_q = list_matches(deny, &q_view);
    let allow_e = list_matches(allow, &okta_view);
    let deny_e = list_matches(deny, &okta_view);
    let expected = allow_e && !deny_e;
    let has = f.answer.has_access;

    // The ACL's groups, in order of appearance.
    let mut names: Vec<&str> = Vec::new();
    for g in list_groups(allow).chain(list_groups(deny)) {
        if !names.contains(&g) {
            names.push(g);
        }
    }
    let allow_names: BTreeSet<&str> = list_groups(allow).collect();
    let deny_names: BTreeSet<&str> = list_groups(deny).collect();
    let acl_groups: Vec<AclGroupView> = names
        .iter()
        .map(|&name| {
            let snap = f.snapshot.groups.get(&GroupName::new(name));
            AclGroupView {
                name: name.to_owned(),
                list: match (allow_names.contains(name), deny_names.contains(name)) {
                    (true, true) => "allow,deny",
                    (false, true) => "deny",
                    _ => "allow",
                },
                in_okta: okta_in_scope.contains_key(name),
                in_q: q_in_group(name),
                owned: snap.is_some(),
                last_written: snap.map(|s| s.pushed_at),
                confirmed: snap.map(|s| !s.unconfirmed),
                user_in_last_write: snap.map(|s| s.members.contains(checked)),
            }
        })
        .collect();
    let mut acl_users: Vec<String> = Vec::new();
    for u in list_users(allow).chain(list_users(deny)) {
        if !acl_users.iter().any(|x| x == u) {
            acl_users.push(u.to_owned());
        }
    }

    let ctx = Ctx {
        f,
        ident: &ident,
        who: &who,
        okta_in_scope: &okta_in_scope,
        okta_out: &okta_out,
    };
    let (cause, verdict) = if expected == has {
        (Cause::Consistent, ctx.consistent(has, deny_q, &names))
    } else if expected {
        // Okta says yes, Q says no.
        if deny_q && !deny_e {
            ctx.denied(&deny_names, &q_in_group, &q_is_user, deny)
        } else if let Some(g) = names
            .iter()
            .find(|g| allow_names.contains(*g) && okta_in_group(g) && !q_in_group(g))
        {
            ctx.missing(g)
        } else if let Some(verdict) = ctx.id_mismatch(allow) {
            (Cause::IdMismatch, verdict)
        } else {
            ctx.unexplained(has)
        }
    } else {
        // Q says yes, Okta says no.
        if let Some(g) = names
            .iter()
            .find(|g| allow_names.contains(*g) && q_in_group(g) && !okta_in_group(g))
        {
            ctx.extra(g)
        } else if list_users(allow).any(&q_is_user) && !list_users(allow).any(&okta_is_user) {
            ctx.direct_entry()
        } else if let Some(g) = names
            .iter()
            .find(|g| deny_names.contains(*g) && okta_in_group(g) && !q_in_group(g))
        {
            let (cause, why) = ctx.missing(g);
            let verdict = format!(
                "Okta puts {who} in deny-list group \"{g}\", but Q does not; {}",
                lower_first(&why)
            );
            (cause, verdict)
        } else {
            ctx.unexplained(has)
        }
    };

    Explanation {
        user: UserView {
            okta_id: f.user.id.clone(),
            login: f.user.login.clone(),
            status: f.user.status.clone(),
            q_user_id: ident.written.clone(),
            checked_as: ident.checked_as.clone(),
            skipped: ident.skip.map(skip_str),
            okta_groups: okta_views,
        },
        document: f.document.to_owned(),
        has_access: has,
        expected_access: expected,
        consistent: expected == has,
        cause,
        verdict,
        acl_groups,
        acl_users,
        q_user_groups: f.answer.user_groups.clone(),
    }
}

#[cfg(test)]
mod tests;
