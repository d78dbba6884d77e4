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
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Wraps an id that is already normalised (e.g. read back from the snapshot).
    pub fn from_normalised(id: impl Into<Arc<str>>) -> Self {
        UserId(id.into())
    }

    /// The id as sent to Q Business.
    pub fn as_str(&self) -> &str {
        &self.0
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
pub struct Interner(std::collections::BTreeSet<Arc<str>>);

impl Interner {
    /// The shared id for `id` (already normalised).
    pub fn intern(&mut self, id: &str) -> UserId {
        if let Some(known) = self.0.get(id) {
            return UserId(Arc::clone(known));
        }
        let new: Arc<str> = Arc::from(id);
        self.0.insert(Arc::clone(&new));
        UserId(new)
    }
}

/// A sorted member set. Sorted order makes plans, hashes and snapshots reproducible.
pub type Members = BTreeSet<UserId>;

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
