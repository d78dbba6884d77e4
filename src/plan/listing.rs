//! Which group listing a pass asks Okta for: every group, or only those changed since the last
//! listing, merged into the groups listed before.
//!
//! Pure: no I/O, no clock (the pass's start comes in as data). A listing of changes (`filter`
//! on `lastUpdated` and `lastMembershipUpdated`) costs one request while the org is quiet,
//! whatever its size, but never returns a deleted group; so a full listing runs at least every
//! `full_every` (and whenever no earlier listing is known), and only it makes a group that is
//! gone from Okta disappear from the listing the plan sees.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::input::OktaGroup;

/// The groups as last listed, and when the last full listing was.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Every group of the last full listing, updated by the listings of changes since, by id.
    groups: BTreeMap<String, OktaGroup>,
    /// The newest `lastUpdated` or `lastMembershipUpdated` any listing returned (Okta's clock).
    newest: Option<DateTime<Utc>>,
    /// When the last full listing started (this process's clock).
    full_at: DateTime<Utc>,
}

/// What a pass asks Okta for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStep {
    /// Every group (`GET /api/v1/groups`, all pages).
    Full,
    /// The groups whose profile or membership changed after `since` (Okta's clock).
    Changed { since: DateTime<Utc> },
}

/// When a full listing is due, and what a listing of changes looks back over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingPolicy {
    /// A full listing at least this often (it finds deleted groups).
    pub full_every: TimeDelta,
    /// How far before the newest stamp already seen a listing of changes starts: Okta's stamps
    /// may be whole seconds, and a change may become visible a moment after a later one. The
    /// groups listed again cost no extra request unless more than a page changed within it.
    pub look_back: TimeDelta,
}

impl Listing {
    /// A full listing that started at `at`.
    pub fn full(groups: Vec<OktaGroup>, at: DateTime<Utc>) -> Listing {
        let newest = newest_stamp(&groups);
        Listing {
            groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
            newest,
            full_at: at,
        }
    }

    /// Merges a listing of changes: each group listed replaces the one of the same id (or is
    /// added); the others stay as last listed.
    pub fn merge(&mut self, changed: Vec<OktaGroup>) {
        self.newest = self.newest.max(newest_stamp(&changed));
        for g in changed {
            self.groups.insert(g.id.clone(), g);
        }
    }

    /// The groups, ordered by Okta id.
    pub fn groups(&self) -> Vec<OktaGroup> {
        self.groups.values().cloned().collect()
    }

    /// How many groups the listing holds.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether the listing holds no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// When the last full listing started.
    pub fn full_at(&self) -> DateTime<Utc> {
        self.full_at
    }

    /// The newest stamp seen.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.newest
    }
}

/// The listing a pass starting at `now` asks for: a full one when `incremental` is not
/// allowed (a pass that must see every group), when nothing was listed before, or when the last
/// full listing is `full_every` old; otherwise the changes since the newest stamp seen, less
/// the look-back. With no stamp seen at all (an org whose groups carry none), every listing
/// is full.
pub fn next_step(
    last: Option<&Listing>,
    now: DateTime<Utc>,
    policy: &ListingPolicy,
    incremental: bool,
) -> ListingStep {
    let Some(last) = last.filter(|_| incremental) else {
        return ListingStep::Full;
    };
    if now - last.full_at >= policy.full_every {
        return ListingStep::Full;
    }
    match last.newest {
        Some(newest) => ListingStep::Changed {
            since: newest - policy.look_back,
        },
        None => ListingStep::Full,
    }
}

/// When the next full listing is due, if one was made.
pub fn next_full_at(last: Option<&Listing>, policy: &ListingPolicy) -> Option<DateTime<Utc>> {
    last.and_then(|l| l.full_at.checked_add_signed(policy.full_every))
}

/// The newest `lastUpdated` or `lastMembershipUpdated` of `groups`.
fn newest_stamp(groups: &[OktaGroup]) -> Option<DateTime<Utc>> {
    groups
        .iter()
        .flat_map(|g| [g.last_updated, g.last_membership_updated])
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::plan::input::GroupType;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + secs, 0)
            .single()
            .expect("date")
    }

    fn group(id: &str, name: &str, lu: i64, lmu: i64) -> OktaGroup {
        OktaGroup {
            id: id.into(),
            name: name.into(),
            kind: GroupType::Okta,
            last_membership_updated: Some(at(lmu)),
            last_updated: Some(at(lu)),
        }
    }

    fn policy() -> ListingPolicy {
        ListingPolicy {
            full_every: TimeDelta::minutes(15),
            look_back: TimeDelta::seconds(120),
        }
    }

    #[test]
    fn the_first_listing_and_a_pass_that_must_see_everything_are_full() {
        assert_eq!(next_step(None, at(0), &policy(), true), ListingStep::Full);
        let l = Listing::full(vec![group("g1", "a", 10, 20)], at(30));
        assert_eq!(
            next_step(Some(&l), at(60), &policy(), false),
            ListingStep::Full
        );
    }

    #[test]
    fn changes_since_the_newest_stamp_less_the_look_back_until_the_full_listing_is_due() {
        let l = Listing::full(
            vec![group("g1", "a", 10, 20), group("g2", "b", 40, 5)],
            at(50),
        );
        assert_eq!(l.newest(), Some(at(40)));
        assert_eq!(
            next_step(Some(&l), at(80), &policy(), true),
            ListingStep::Changed { since: at(-80) }
        );
        // 15 minutes after the full listing started, the next is full again.
        assert_eq!(
            next_step(Some(&l), at(50 + 899), &policy(), true),
            ListingStep::Changed { since: at(-80) }
        );
        assert_eq!(
            next_step(Some(&l), at(50 + 900), &policy(), true),
            ListingStep::Full
        );
        assert_eq!(next_full_at(Some(&l), &policy()), Some(at(950)));
    }

    #[test]
    fn groups_without_stamps_are_always_listed_in_full() {
        let mut g = group("g1", "a", 0, 0);
        g.last_updated = None;
        g.last_membership_updated = None;
        let l = Listing::full(vec![g], at(0));
        assert_eq!(
            next_step(Some(&l), at(10), &policy(), true),
            ListingStep::Full
        );
    }

    #[test]
    fn a_merge_replaces_and_adds_and_keeps_what_a_full_listing_alone_removes() {
        let mut l = Listing::full(
            vec![group("g1", "a", 10, 20), group("g2", "b", 10, 20)],
            at(30),
        );
        l.merge(vec![
            group("g2", "b renamed", 60, 20),
            group("g3", "c", 70, 70),
        ]);
        let names: Vec<(String, String)> = l.groups().into_iter().map(|g| (g.id, g.name)).collect();
        assert_eq!(
            names,
            vec![
                ("g1".into(), "a".into()),
                ("g2".into(), "b renamed".into()),
                ("g3".into(), "c".into())
            ]
        );
        assert_eq!(l.newest(), Some(at(70)));
        // An empty listing of changes moves nothing back.
        l.merge(Vec::new());
        assert_eq!(l.newest(), Some(at(70)));
        assert_eq!(l.len(), 3);
    }
}
