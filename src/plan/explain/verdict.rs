//! The verdict in words: what a difference between Okta's view and Q Business's means, and
//! the fix, sentence by sentence.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::acl::{AclList, list_users};
use super::{Cause, Facts, Identity};
use crate::model::GroupName;
use crate::plan::input::OktaGroup;
use crate::plan::select::Skip;

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A group name as a shell argument.
fn shell(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+/:".contains(c))
    {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', r"'\''"))
    }
}

/// What the verdict sentences draw on.
pub(super) struct Ctx<'a> {
    pub(super) f: &'a Facts<'a>,
    pub(super) ident: &'a Identity,
    pub(super) who: &'a str,
    pub(super) okta_in_scope: &'a BTreeMap<String, &'a OktaGroup>,
    pub(super) okta_out: &'a BTreeMap<String, (&'a OktaGroup, &'static str)>,
}

impl Ctx<'_> {
    pub(super) fn why_skipped(&self) -> String {
        let who = self.who;
        match self.ident.skip {
            Some(Skip::Status) => format!(
                "Okta has {who} {}, a status users.statuses leaves out",
                self.f.user.status
            ),
            Some(Skip::MissingAttribute) => format!(
                "{who} has no {} in Okta, so q-group-sync gives them no Q user id",
                self.f.id_attribute
            ),
            Some(Skip::InvalidId) => format!(
                "{who}'s {} in Okta is not a user id Q Business accepts",
                self.f.id_attribute
            ),
            None => format!("{who} is eligible"),
        }
    }

    pub(super) fn consistent(&self, has: bool, deny_q: bool, names: &[&str]) -> String {
        let (who, doc) = (self.who, self.f.document);
        let groups = &self.f.answer.user_groups;
        if has {
            let through: Vec<&str> = names
                .iter()
                .copied()
                .filter(|g| groups.iter().any(|q| q == g))
                .collect();
            if through.is_empty() {
                format!("Consistent: {who} can see {doc}: the ACL names them directly.")
            } else {
                format!(
                    "Consistent: {who} can see {doc} through {}.",
                    quote_list(&through)
                )
            }
        } else if deny_q {
            format!("Consistent: {who} cannot see {doc}: its deny list names them.")
        } else if self.ident.skip.is_some() {
            format!(
                "Consistent: {who} cannot see {doc}: {}, and Q agrees.",
                self.why_skipped()
            )
        } else if names.is_empty() {
            format!("Consistent: {who} cannot see {doc}: its ACL names no group they are in.")
        } else {
            format!(
                "Consistent: {who} cannot see {doc}: they are in none of its groups ({}) in Okta or in Q.",
                quote_list(names)
            )
        }
    }

    /// Okta puts the user in `g` (in scope, eligible), Q does not.
    pub(super) fn missing(&self, g: &str) -> (Cause, String) {
        let who = self.who;
        let fix = format!("`q-group-sync sync --group {}` fixes it now", shell(g));
        let okta_name = self
            .okta_in_scope
            .get(g)
            .map_or(g.to_owned(), |o| o.name.clone());
        match self.f.snapshot.groups.get(&GroupName::new(g)) {
            None => (
                Cause::NotYetSynced,
                format!(
                    "Not yet synced: {who} is in Okta group \"{okta_name}\", but q-group-sync has not written \"{g}\" yet (new, or its first write failed); {fix}."
                ),
            ),
            Some(s) if s.unconfirmed => (
                Cause::UnconfirmedWrite,
                format!(
                    "An unconfirmed put: the last write of \"{g}\" ({}) was not confirmed by Q Business (failed or still processing); the next pass writes it again, {fix}.",
                    when(s.pushed_at)
                ),
            ),
            Some(s) if s.members.contains(&self.ident.checked_as) => (
                Cause::FailedWrite,
                format!(
                    "A failed put: q-group-sync last wrote \"{g}\" with {who} ({}), but Q Business does not hold them: the put failed after it was recorded, or someone changed the group in Q; check GetGroup's status of \"{g}\", and `q-group-sync reconcile --adopt` makes the next sync rewrite it.",
                    when(s.pushed_at)
                ),
            ),
            Some(s) => (
                Cause::NotYetSynced,
                format!(
                    "Not yet synced: {who} joined Okta group \"{okta_name}\" after q-group-sync last wrote \"{g}\" ({}); {fix}.",
                    when(s.pushed_at)
                ),
            ),
        }
    }

    /// Q puts the user in `g`, Okta does not (or the user is skipped).
    pub(super) fn extra(&self, g: &str) -> (Cause, String) {
        let who = self.who;
        let checked = self.ident.checked_as.as_str();
        let fix = format!("`q-group-sync sync --group {}`", shell(g));
        let Some(s) = self.f.snapshot.groups.get(&GroupName::new(g)) else {
            if let Some((o, scope)) = self.okta_out.get(g) {
                let rule = if *scope == "excluded" {
                    "groups.exclude"
                } else {
                    "groups.include"
                };
                return (
                    Cause::OutOfScope,
                    format!(
                        "Out of scope: Okta group \"{}\" is left out by {rule}, so q-group-sync does not manage \"{g}\"; its members in Q come from elsewhere.",
                        o.name
                    ),
                );
            }
            return (
                Cause::NotOwned,
                format!(
                    "Not owned: \"{g}\" is not a q-group-sync group (not in its snapshot); Q Business holds {who} in it, and whoever manages that group must change it."
                ),
            );
        };
        if let Some(held) = self.f.held {
            let removal = held
                .removals
                .get(&GroupName::new(g))
                .is_some_and(|m| m.contains(checked));
            let delete = held.deletes.iter().any(|d| d.group.as_str() == g);
            if removal || delete {
                let what = if delete {
                    format!("the deletion of \"{g}\"")
                } else {
                    format!("the removal of {who} from \"{g}\"")
                };
                return (
                    Cause::Held,
                    format!(
                        "Held by the circuit breaker: plan {} holds {what}; `q-group-sync approve {}` applies it.",
                        held.id, held.id
                    ),
                );
            }
        }
        if s.unconfirmed {
            return (
                Cause::UnconfirmedWrite,
                format!(
                    "An unconfirmed put: the last write of \"{g}\" ({}) was not confirmed by Q Business; the next pass writes it again, {fix} now.",
                    when(s.pushed_at)
                ),
            );
        }
        let in_last = s.members.contains(checked);
        if self.okta_in_scope.contains_key(g) && self.ident.skip.is_some() {
            let verdict = if in_last {
                format!(
                    "User skipped: {}, but \"{g}\" in Q still holds them from the write of {}: not yet synced; {fix} removes them now.",
                    self.why_skipped(),
                    when(s.pushed_at)
                )
            } else {
                format!(
                    "User skipped: {}, yet \"{g}\" in Q holds {checked} although q-group-sync's last write ({}) did not: someone changed the group in Q; {fix} --full rewrites it.",
                    self.why_skipped(),
                    when(s.pushed_at)
                )
            };
            return (Cause::UserSkipped, verdict);
        }
        if in_last {
            return (
                Cause::NotYetSynced,
                format!(
                    "Not yet synced: Okta no longer has {who} in the group behind \"{g}\", but q-group-sync last wrote it with them ({}); {fix} removes them now.",
                    when(s.pushed_at)
                ),
            );
        }
        (
            Cause::ChangedInQ,
            format!(
                "Changed in Q: \"{g}\" in Q Business holds {checked}, but q-group-sync's last write ({}) did not include them and Okta does not either; someone changed the group in Q, and its next write replaces the members.",
                when(s.pushed_at)
            ),
        )
    }

    /// Q denies through the deny list where Okta would not.
    pub(super) fn denied(
        &self,
        deny_names: &BTreeSet<&str>,
        q_in_group: &dyn Fn(&str) -> bool,
        q_is_user: &dyn Fn(&str) -> bool,
        deny: Option<&AclList>,
    ) -> (Cause, String) {
        let who = self.who;
        let okta_in = |g: &str| self.ident.written.is_some() && self.okta_in_scope.contains_key(g);
        if let Some(g) = deny_names.iter().find(|g| q_in_group(g) && !okta_in(g)) {
            let (_, why) = self.extra(g);
            return (
                Cause::DenyList,
                format!(
                    "A deny list entry: the document's deny list names \"{g}\", and Q Business has {who} in it while Okta does not; {}",
                    lower_first(&why)
                ),
            );
        }
        if let Some(u) = list_users(deny).find(|u| q_is_user(u)) {
            return (
                Cause::DenyList,
                format!(
                    "A deny list entry: the document's deny list names {u} directly; deny entries come with the document from its data source, not from q-group-sync."
                ),
            );
        }
        (
            Cause::DenyList,
            format!("A deny list entry: Q Business denies {who} through the document's deny list."),
        )
    }

    /// The ACL names the user by another of their Okta identities.
    pub(super) fn id_mismatch(&self, allow: Option<&AclList>) -> Option<String> {
        let written = self.ident.written.as_deref()?;
        let rules = self.f.rules;
        let u = self.f.user;
        let others: BTreeSet<String> = [u.login.as_deref(), u.email.as_deref(), Some(&u.id)]
            .into_iter()
            .flatten()
            .map(|v| rules.normalise(v))
            .filter(|v| v != written)
            .collect();
        let named = list_users(allow).find(|a| others.contains(&rules.normalise(a)))?;
        Some(format!(
            "An id mismatch: the ACL names {} as {named}, but q-group-sync writes them (users.id_attribute = {}) as {written}, and Q Business treats them as two users; make the data source's ACL use {written}, or set users.id_attribute to match it.",
            self.who, self.f.id_attribute
        ))
    }

    pub(super) fn direct_entry(&self) -> (Cause, String) {
        let who = self.who;
        let checked = &self.ident.checked_as;
        let why = if self.ident.skip.is_some() {
            self.why_skipped()
        } else {
            format!("{who} is in none of its groups in Okta")
        };
        let cause = if self.ident.skip.is_some() {
            Cause::UserSkipped
        } else {
            Cause::Unexplained
        };
        (
            cause,
            format!(
                "The ACL names {checked} directly, so Q Business grants access although {why}; direct ACL entries come with the document from its data source, not from q-group-sync."
            ),
        )
    }

    pub(super) fn unexplained(&self, has: bool) -> (Cause, String) {
        let (yes, no) = if has {
            ("grants", "does not")
        } else {
            ("denies", "does")
        };
        (
            Cause::Unexplained,
            format!(
                "Q Business {yes} access and Okta {no} imply it, but no group of the ACL explains the difference; compare Q's groups for {} ({}) with the ACL.",
                self.ident.checked_as,
                quote_list(
                    &self
                        .f
                        .answer
                        .user_groups
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                )
            ),
        )
    }
}

/// `why` after a semicolon: its first letter in lower case.
pub(super) fn lower_first(why: &str) -> String {
    let mut chars = why.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn quote_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
