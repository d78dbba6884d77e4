//! Domain types shared by the core and the edges: Q user ids, Q group names, Okta ids.
//!
//! A [`UserId`] is always normalised the way Q Business compares users (an email address
//! lowercased with its sub-address folded, any other id exactly as given), so two values that
//! Q treats as one user are equal here too.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

/// Longest user id or group name Q Business accepts (characters).
pub const MAX_Q_ID_CHARS: usize = 1024;

/// A Q Business user id, already normalised. Cheap to clone: ids are shared, not copied.
///
/// One pointer wide and one allocation (a shared string with its count and length inline), so
/// a member list costs 8 bytes per membership and a user about 16 bytes plus the id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(ArcStr);

impl UserId {
    /// Wraps an id that is already normalised (e.g. read back from the snapshot).
    pub fn from_normalised(id: impl AsRef<str>) -> Self {
        UserId(ArcStr::from(id.as_ref()))
    }

    /// The id as sent to Q Business.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same shared string (not just equal ones).
    pub fn is_same(&self, other: &UserId) -> bool {
        ArcStr::ptr_eq(&self.0, &other.0)
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

/// Shown with control and other invisible characters escaped ([`printable`]): a name from
/// Okta must not move a terminal's cursor or forge a line of a text log.
impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.0))
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
///
/// A set read again may be kept as its few changes against the list it was read against
/// ([`Members::relative_to`], e.g. the snapshot's list of the same group): a pass that re-reads
/// thousands of groups for a few hundred deactivated users then holds those users, not a
/// second copy of every list. Both forms behave the same everywhere (order, equality, hash).
#[derive(Clone, Default)]
pub struct Members(Repr);

#[derive(Clone)]
enum Repr {
    List(Arc<[UserId]>),
    Edited(Arc<Edit>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::List(Arc::from([]))
    }
}

/// A set as `base` without `removed`, with `added`.
struct Edit {
    base: Arc<[UserId]>,
    /// Ids of `base` not in the set, sorted.
    removed: Box<[UserId]>,
    /// Ids of the set not in `base`, sorted.
    added: Box<[UserId]>,
    len: usize,
}

/// A set is kept relative to another list when its changes against it are at most this share
/// of its size (1/`RELATIVE_AT_MOST`): then the changes cost less than a list of its own, and
/// walking the set stays one merge.
const RELATIVE_AT_MOST: usize = 4;

impl Members {
    pub fn new() -> Members {
        Members::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::List(list) => list.len(),
            Repr::Edited(edit) => edit.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// In sorted order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::List(list) => Iter(IterRepr::List(list.iter())),
            Repr::Edited(edit) => Iter(IterRepr::Edited {
                base: edit.base.iter().peekable(),
                removed: edit.removed.iter().peekable(),
                added: edit.added.iter().peekable(),
                left: edit.len,
            }),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        let find = |list: &[UserId]| list.binary_search_by(|m| m.as_str().cmp(id)).is_ok();
        match &self.0 {
            Repr::List(list) => find(list),
            Repr::Edited(edit) => find(&edit.added) || (find(&edit.base) && !find(&edit.removed)),
        }
    }

    /// The members of `self` that are not in `other`, in sorted order (one merge walk).
    pub fn difference<'a>(&'a self, other: &'a Members) -> Difference<'a> {
        Difference {
            left: self.iter().peekable(),
            right: other.iter().peekable(),
        }
    }

    /// Whether both are the same shared list (then they are certainly equal).
    pub fn shares(&self, other: &Members) -> bool {
        match (&self.0, &other.0) {
            (Repr::List(a), Repr::List(b)) => Arc::ptr_eq(a, b),
            (Repr::Edited(a), Repr::Edited(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The same set, held as its changes against `base` when they are few (see
    /// [`RELATIVE_AT_MOST`]), or as `base` itself when equal; otherwise unchanged. Only a
    /// list of its own is re-expressed, and only against a list of its own.
    pub fn relative_to(self, base: &Members) -> Members {
        let (Repr::List(list), Repr::List(base_list)) = (&self.0, &base.0) else {
            return self;
        };
        if Arc::ptr_eq(list, base_list) {
            return self;
        }
        let budget = list.len() / RELATIVE_AT_MOST;
        let removed: Box<[UserId]> = base.difference(&self).take(budget + 1).cloned().collect();
        if removed.len() > budget {
            return self;
        }
        let added: Box<[UserId]> = self
            .difference(base)
            .take(budget + 1 - removed.len())
            .cloned()
            .collect();
        if removed.len() + added.len() > budget {
            return self;
        }
        if removed.is_empty() && added.is_empty() {
            return base.clone();
        }
        Members(Repr::Edited(Arc::new(Edit {
            base: base_list.clone(),
            removed,
            added,
            len: list.len(),
        })))
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Members) -> bool {
        self.shares(other) || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl Eq for Members {}

impl std::hash::Hash for Members {
    /// As a slice hashes: the length, then each id in order.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for id in self {
            id.hash(state);
        }
    }
}

/// The ids of a [`Members`], in sorted order.
#[derive(Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    List(std::slice::Iter<'a, UserId>),
    Edited {
        base: std::iter::Peekable<std::slice::Iter<'a, UserId>>,
        removed: std::iter::Peekable<std::slice::Iter<'a, UserId>>,
        added: std::iter::Peekable<std::slice::Iter<'a, UserId>>,
        left: usize,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a UserId;

    fn next(&mut self) -> Option<&'a UserId> {
        match &mut self.0 {
            IterRepr::List(list) => list.next(),
            IterRepr::Edited {
                base,
                removed,
                added,
                left,
            } => {
                // `removed` is a sorted subset of `base`, `added` is disjoint from it.
                while let (Some(b), Some(r)) = (base.peek(), removed.peek()) {
                    if b != r {
                        break;
                    }
                    base.next();
                    removed.next();
                }
                let next = match (base.peek(), added.peek()) {
                    (Some(b), Some(a)) if a < b => added.next(),
                    (Some(_), _) => base.next(),
                    (None, _) => added.next(),
                };
                if next.is_some() {
                    *left -= 1;
                }
                next
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {
    fn len(&self) -> usize {
        match &self.0 {
            IterRepr::List(list) => list.len(),
            IterRepr::Edited { left, .. } => *left,
        }
    }
}

/// See [`Members::difference`].
pub struct Difference<'a> {
    left: std::iter::Peekable<Iter<'a>>,
    right: std::iter::Peekable<Iter<'a>>,
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
        Members(Repr::List(Arc::from(ids)))
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a UserId;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        Vec::<UserId>::deserialize(d).map(Members::from)
    }
}

impl Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
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

/// `value` with every Unicode "Other" character (controls such as ESC or a line feed, format
/// characters such as a right-to-left override, private-use and unassigned ones) written as
/// `\u{..}`, for terminals and text logs. Names Q Business accepts have none, so they are
/// shown unchanged.
pub fn printable(value: &str) -> std::borrow::Cow<'_, str> {
    forbidden_chars().replace_all(value, |caps: &regex::Captures<'_>| {
        caps[0]
            .chars()
            .map(|c| c.escape_unicode().to_string())
            .collect::<String>()
    })
}

fn forbidden_chars() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\p{C}").expect("static regex compiles"))
}

/// Normalises a raw id attribute value (any source's: Okta's `users.id_attribute`, a SCIM
/// user's email or `userName`) into the user id Q Business compares: trimmed always; and only
/// when the value is an email address ([`is_email`]), lowercased and, with `fold_subaddress`,
/// with a `+tag` removed from the local part (`Ana+work@X.test` -> `ana@x.test`). Any other
/// value (a login that is not an email, an employee number, a custom attribute) is sent as the
/// source has it: ACLs may compare it case-sensitively.
///
/// NB: AWS documents that Q Business compares *email addresses* case-insensitively and folds
/// their sub-addresses (since Dec 2024,
/// <https://docs.aws.amazon.com/amazonq/latest/qbusiness-ug/user-group-management-api.html>);
/// it says nothing of other ids.
pub fn normalise_user_id(raw: &str, fold_subaddress: bool) -> String {
    let trimmed = raw.trim();
    if !is_email(trimmed) {
        return trimmed.to_owned();
    }
    let lower = trimmed.to_lowercase();
    if !fold_subaddress {
        return lower;
    }
    match lower.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => lower,
        },
        None => lower,
    }
}

/// Whether an id is an email address, by its value alone (so one rule serves every source and
/// every attribute): exactly one `@`, a non-empty local part, a domain of two or more
/// non-empty dot-separated labels, and no whitespace. `ana@x.test` and `Élodie+hr@Mail.Example`
/// are; `jdoe`, `CORP\jdoe`, `jdoe@corp` (no dot), `E12345` and `a@@b.c` are not.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !value.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
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

    fn is_relative(m: &Members) -> bool {
        matches!(m.0, Repr::Edited(_))
    }

    fn hash_of(m: &Members) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        m.hash(&mut h);
        h.finish()
    }

    /// Every way of looking at `relative` gives what its list form `list` gives.
    fn assert_same_set(relative: &Members, list: &Members, probes: &[UserId]) {
        let got: Vec<&UserId> = relative.iter().collect();
        let want: Vec<&UserId> = list.iter().collect();
        assert_eq!(got, want);
        assert_eq!(relative.len(), list.len());
        assert_eq!(relative.iter().len(), list.len());
        assert_eq!(relative.is_empty(), list.is_empty());
        assert_eq!(relative, list);
        assert_eq!(list, relative);
        assert_eq!(hash_of(relative), hash_of(list));
        for p in probes {
            assert_eq!(
                relative.contains(p.as_str()),
                list.contains(p.as_str()),
                "{p:?}"
            );
        }
        let other: Members = probes.iter().step_by(3).collect();
        assert!(relative.difference(&other).eq(list.difference(&other)));
        assert!(other.difference(relative).eq(other.difference(list)));
        assert_eq!(
            serde_json::to_string(relative).expect("json"),
            serde_json::to_string(list).expect("json")
        );
        assert_eq!(format!("{relative:?}"), format!("{list:?}"));
    }

    #[test]
    fn a_set_kept_relative_to_another_behaves_as_its_own_list() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let universe: Vec<UserId> = (0..400)
            .map(|i| UserId::from_normalised(format!("u{i:04}@x.test")))
            .collect();
        let mut relative_seen = 0;
        for _ in 0..300 {
            let size = rng.random_range(0..300);
            let base: Members = (0..size)
                .map(|_| universe[rng.random_range(0..universe.len())].clone())
                .collect();
            // A few removed and added, sometimes none, sometimes many.
            let changes = rng.random_range(0..40);
            let mut next: Vec<UserId> = base.iter().cloned().collect();
            for _ in 0..changes {
                if rng.random_bool(0.5) && !next.is_empty() {
                    let at = rng.random_range(0..next.len());
                    next.remove(at);
                } else {
                    next.push(universe[rng.random_range(0..universe.len())].clone());
                }
            }
            let list = Members::from(next);
            let relative = list.clone().relative_to(&base);
            let changed = base.difference(&list).count() + list.difference(&base).count();
            if changed == 0 {
                assert!(relative.shares(&base), "an equal set is the base itself");
            } else if changed <= list.len() / RELATIVE_AT_MOST {
                assert!(
                    is_relative(&relative),
                    "{changed} changes of {}",
                    list.len()
                );
                relative_seen += 1;
            } else {
                assert!(relative.shares(&list), "too many changes: its own list");
            }
            assert_same_set(&relative, &list, &universe);
            // Relative sets compare and diff against each other too.
            let again = list.clone().relative_to(&base);
            assert!(relative == again);
            assert!(relative.difference(&again).next().is_none());
        }
        assert!(relative_seen > 50, "only {relative_seen} relative sets");
    }

    #[test]
    fn only_lists_are_kept_relative_and_only_to_lists() {
        let base = ids(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        let next = ids(&["a", "b", "c", "d", "e", "f", "g", "i"]);
        let relative = next.clone().relative_to(&base);
        assert!(is_relative(&relative));
        // A relative set stays as it is, and nothing is kept relative to it.
        assert!(relative.clone().relative_to(&next).shares(&relative));
        let other = ids(&["a", "b", "c", "d", "e", "f", "g", "j"]);
        assert!(other.clone().relative_to(&relative).shares(&other));
        assert!(next.clone().relative_to(&next).shares(&next));
        let added: Vec<&str> = relative.difference(&base).map(UserId::as_str).collect();
        assert_eq!(added, ["i"]);
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
        // Not an email: exactly as the source has it (trimmed only).
        assert_eq!(normalise_user_id("Login+Name", true), "Login+Name");
        assert_eq!(normalise_user_id(" E12345 ", true), "E12345");
        assert_eq!(normalise_user_id("CORP\\JDoe", true), "CORP\\JDoe");
        assert_eq!(normalise_user_id("JDoe@CORP", true), "JDoe@CORP");
        assert_eq!(normalise_user_id("A@@B.C", true), "A@@B.C");
        // An empty base before '+' is kept as is rather than producing "@domain".
        assert_eq!(normalise_user_id("+tag@x.test", true), "+tag@x.test");
        assert_eq!(normalise_user_id("a+b+c@x.test", true), "a@x.test");
        assert_eq!(normalise_user_id("ÉLODIE@X.TEST", true), "élodie@x.test");
    }

    #[test]
    fn names_print_without_control_characters() {
        assert_eq!(printable("Sales & Marketing"), "Sales & Marketing");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        let hostile = "Eng\u{1b}[31mRED\n2026-01-01 INFO forged\u{202e}";
        let shown = printable(hostile);
        assert_eq!(
            shown,
            "Eng\\u{1b}[31mRED\\u{a}2026-01-01 INFO forged\\u{202e}"
        );
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(GroupName::new(hostile).to_string(), shown);
    }

    #[test]
    fn emails_are_told_by_their_value() {
        for yes in [
            "ana@x.test",
            "Élodie+hr@Mail.Example",
            "a.b-c@sub.example.co.uk",
        ] {
            assert!(is_email(yes), "{yes}");
        }
        for no in [
            "jdoe",
            "E12345",
            "jdoe@corp",
            "a@@b.c",
            "@x.test",
            "a@.test",
            "a@x.",
            "a b@x.test",
            "",
        ] {
            assert!(!is_email(no), "{no}");
        }
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
