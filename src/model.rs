//! Domain types shared by the core and the edges: Q user ids, Q group names, Okta ids.
//!
//! A [`UserId`] is always normalised the way Q Business compares users (lowercase, sub-address
//! folded), so two values that Q treats as one user are equal here too.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest user id or group name Q Business accepts (characters).
pub const MAX_Q_ID_CHARS: usize = 1024;

/// A Q Business user id, already normalised. Cheap to clone: ids are shared, not copied.
///
/// One pointer wide (a shared boxed string), so a member list costs 8 bytes per membership.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<Box<str>>);

impl UserId {
    /// Wraps an id that is already normalised (e.g. read back from the snapshot).
    pub fn from_normalised(id: impl Into<Box<str>>) -> Self {
        UserId(Arc::new(id.into()))
    }

    /// The id as sent to Q Business.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same shared string (not just equal ones).
    pub fn is_same(&self, other: &UserId) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The name of a group in Q Business (the name document ACLs refer to).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupName(String);

impl GroupName {
    pub fn new(name: impl Into<String>) -> Self {
        GroupName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An Okta group id (immutable, e.g. `00g1emaKYZTWRYYRRTSK`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OktaGroupId(String);

impl OktaGroupId {
    pub fn new(id: impl Into<String>) -> Self {
        OktaGroupId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OktaGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OktaGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Hands out one shared [`UserId`] per distinct id, so a user in many groups costs one
/// string, not one per membership.
#[derive(Debug, Default)]
pub struct Interner(BTreeSet<UserId>);

impl Interner {
    /// The shared id for `id` (already normalised).
    pub fn intern(&mut self, id: &str) -> UserId {
        if let Some(known) = self.0.get(id) {
            return known.clone();
        }
        let new = UserId::from_normalised(id);
        self.0.insert(new.clone());
        new
    }

    /// Makes `id` the shared one for its string (when none is known yet).
    pub fn adopt(&mut self, id: &UserId) {
        if !self.0.contains(id) {
            self.0.insert(id.clone());
        }
    }
}

impl std::borrow::Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// A member set: sorted, without duplicates, immutable and shared.
///
/// Sorted order makes plans, hashes and snapshots reproducible. A clone shares the list (one
/// reference count), so the desired state, the plan and the snapshot can hold the same list
/// without copying it; at 8 bytes per membership a million memberships take 8 MB.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Members(Arc<[UserId]>);

impl Members {
    pub fn new() -> Members {
        Members::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In sorted order.
    pub fn iter(&self) -> std::slice::Iter<'_, UserId> {
        self.0.iter()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.binary_search_by(|m| m.as_str().cmp(id)).is_ok()
    }

    /// The members of `self` that are not in `other`, in sorted order (one merge walk).
    pub fn difference<'a>(&'a self, other: &'a Members) -> Difference<'a> {
        Difference {
            left: self.0.iter().peekable(),
            right: other.0.iter().peekable(),
        }
    }

    /// Whether both are the same shared list (then they are certainly equal).
    pub fn shares(&self, other: &Members) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// See [`Members::difference`].
pub struct Difference<'a> {
    left: std::iter::Peekable<std::slice::Iter<'a, UserId>>,
    right: std::iter::Peekable<std::slice::Iter<'a, UserId>>,
}

impl<'a> Iterator for Difference<'a> {
    type Item = &'a UserId;

    fn next(&mut self) -> Option<&'a UserId> {
        loop {
            let l = *self.left.peek()?;
            match self.right.peek() {
                None => return self.left.next(),
                Some(r) => match l.cmp(r) {
                    std::cmp::Ordering::Less => return self.left.next(),
                    std::cmp::Ordering::Equal => {
                        self.left.next();
                        self.right.next();
                    }
                    std::cmp::Ordering::Greater => {
                        self.right.next();
                    }
                },
            }
        }
    }
}

impl FromIterator<UserId> for Members {
    fn from_iter<I: IntoIterator<Item = UserId>>(iter: I) -> Members {
        Members::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> FromIterator<&'a UserId> for Members {
    fn from_iter<I: IntoIterator<Item = &'a UserId>>(iter: I) -> Members {
        iter.into_iter().cloned().collect()
    }
}

impl From<Vec<UserId>> for Members {
    /// Sorts and removes duplicates.
    fn from(mut ids: Vec<UserId>) -> Members {
        if !ids.is_sorted_by(|a, b| a < b) {
            ids.sort_unstable();
            ids.dedup();
        }
        Members(Arc::from(ids))
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a UserId;
    type IntoIter = std::slice::Iter<'a, UserId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        Vec::<UserId>::deserialize(d).map(Members::from)
    }
}

impl Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// Why a string cannot be used as a Q Business id or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    Empty,
    TooLong,
    /// Contains a Unicode "Other" character (control, format, private use, unassigned...),
    /// which Q's pattern `\P{C}*` forbids.
    ForbiddenCharacter,
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdProblem::Empty => "is empty",
            IdProblem::TooLong => "is longer than 1024 characters",
            IdProblem::ForbiddenCharacter => "contains a control or other non-printable character",
        })
    }
}

/// Checks a user id or group name against Q Business's rules: 1-1024 characters of `\P{C}`.
pub fn check_q_id(value: &str) -> Result<(), IdProblem> {
    if value.is_empty() {
        return Err(IdProblem::Empty);
    }
    if value.chars().count() > MAX_Q_ID_CHARS {
        return Err(IdProblem::TooLong);
    }
    if forbidden_chars().is_match(value) {
        return Err(IdProblem::ForbiddenCharacter);
    }
    Ok(())
}

fn forbidden_chars() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\p{C}").expect("static regex compiles"))
}

/// Normalises a raw Okta attribute value into the user id Q Business would use for it:
/// trimmed, lowercased, and, when `fold_subaddress` is set and the value looks like an email,
/// with any `+tag` removed from the local part (`Ana+work@X.test` -> `ana@x.test`).
///
/// NB: Q Business treats emails case-insensitively and folds sub-addresses since Dec 2024
/// (<https://docs.aws.amazon.com/amazonq/latest/qbusiness-ug/user-group-management-api.html>).
pub fn normalise_user_id(raw: &str, fold_subaddress: bool) -> String {
    let lower = raw.trim().to_lowercase();
    if !fold_subaddress {
        return lower;
    }
    match lower.rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() => match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => lower,
        },
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Members {
        list.iter().map(|s| UserId::from_normalised(*s)).collect()
    }

    #[test]
    fn members_are_sorted_and_unique_whatever_the_input_order() {
        let m = ids(&["c", "a", "b", "a", "c"]);
        let got: Vec<&str> = m.iter().map(UserId::as_str).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(m, ids(&["a", "b", "c"]));
        assert!(m.contains("b") && !m.contains("d"));
        assert_eq!(serde_json::to_string(&m).expect("json"), r#"["a","b","c"]"#);
        let back: Members = serde_json::from_str(r#"["b","a","b"]"#).expect("json");
        assert_eq!(back, ids(&["a", "b"]));
    }

    #[test]
    fn difference_walks_both_lists_once() {
        let left = ids(&["a", "c", "d", "f", "z"]);
        let right = ids(&["b", "c", "f", "g"]);
        let d: Vec<&str> = left.difference(&right).map(UserId::as_str).collect();
        assert_eq!(d, ["a", "d", "z"]);
        let d: Vec<&str> = right.difference(&left).map(UserId::as_str).collect();
        assert_eq!(d, ["b", "g"]);
        assert_eq!(left.difference(&Members::new()).count(), 5);
        assert_eq!(Members::new().difference(&left).count(), 0);
        assert_eq!(left.difference(&left.clone()).count(), 0);
        assert!(left.shares(&left.clone()) && !left.shares(&ids(&["a"])));
    }

    #[test]
    fn normalises_case_and_subaddress() {
        assert_eq!(
            normalise_user_id("Ana+Work@Example.TEST", true),
            "ana@example.test"
        );
        assert_eq!(
            normalise_user_id("ana+work@example.test", false),
            "ana+work@example.test"
        );
        assert_eq!(normalise_user_id(" Bo@x.test ", true), "bo@x.test");
        // Not email-like: only lowercased.
        assert_eq!(normalise_user_id("Login+Name", true), "login+name");
        // An empty base before '+' is kept as is rather than producing "@domain".
        assert_eq!(normalise_user_id("+tag@x.test", true), "+tag@x.test");
        assert_eq!(normalise_user_id("a+b+c@x.test", true), "a@x.test");
        assert_eq!(normalise_user_id("ÉLODIE@X.TEST", true), "élodie@x.test");
    }

    #[test]
    fn q_id_rules() {
        assert_eq!(check_q_id(""), Err(IdProblem::Empty));
        assert_eq!(check_q_id(&"a".repeat(1024)), Ok(()));
        assert_eq!(check_q_id(&"a".repeat(1025)), Err(IdProblem::TooLong));
        assert_eq!(check_q_id(&"é".repeat(1024)), Ok(()));
        assert_eq!(check_q_id("a\nb"), Err(IdProblem::ForbiddenCharacter));
        assert_eq!(check_q_id("a\u{200b}b"), Err(IdProblem::ForbiddenCharacter));
        assert_eq!(check_q_id("Eng Team/α"), Ok(()));
    }
}
