//! Which group listing a pass asks Okta for: every group, or only those changed since the last
//! listing, merged into the groups listed before.
//!
//! Pure: no I/O, no clock (the pass's start comes in as data). A listing of changes (`filter`
//! on `lastUpdated` and `lastMembershipUpdated`) costs one request while the org is quiet,
//! whatever its size, but never returns a deleted group; so a full listing runs every
//! [`ListingPolicy::full_interval`] (and whenever no earlier listing is known), and only it
//! makes a group that is gone from Okta disappear from the listing the plan sees. In a large
//! org that interval is stretched past `full_every` so that the full listing's pages average at
//! most `full_rate` requests a minute: a quiet org costs a few requests a minute at any size.

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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListingPolicy {
    /// A full listing this often (it finds deleted groups), unless `full_rate` stretches it.
    pub full_every: TimeDelta,
    /// The requests a minute the full listing may average: with more groups than
    /// `full_every` allows at that rate, the interval is the listing's pages divided by it.
    /// `None`: never stretched.
    pub full_rate: Option<f64>,
    /// Groups per page of a full listing (the `limit` the client sends; Okta may send fewer,
    /// never more, so the pages are counted high, and the interval with them).
    pub page_size: usize,
    /// How far before the newest stamp already seen a listing of changes starts: Okta's stamps
    /// may be whole seconds, and a change may become visible a moment after a later one. The
    /// groups listed again cost no extra request unless more than a page changed within it.
    pub look_back: TimeDelta,
}

impl ListingPolicy {
    /// How often a full listing of `groups` groups runs: `full_every`, or longer when its
    /// pages at `full_rate` a minute take longer.
    pub fn full_interval(&self, groups: usize) -> TimeDelta {
        let Some(rate) = self.full_rate.filter(|r| *r > 0.0) else {
            return self.full_every;
        };
        let pages = groups.div_ceil(self.page_size.max(1)).max(1) as f64;
        let stretched = TimeDelta::milliseconds((pages / rate * 60_000.0).ceil() as i64);
        self.full_every.max(stretched)
    }
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
/// full listing is [`ListingPolicy::full_interval`] old (sized by the groups it holds); otherwise the changes since the newest stamp seen, less
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
    if now - last.full_at >= policy.full_interval(last.len()) {
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
    last.and_then(|l| l.full_at.checked_add_signed(policy.full_interval(l.len())))
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
            full_rate: Some(2.0),
            page_size: 200,
            look_back: TimeDelta::seconds(120),
        }
    }

    #[test]
    fn a_large_org_lists_every_group_less_often_so_the_full_listing_averages_the_rate() {
        let p = policy();
        // Up to 6,000 groups (30 pages) the full listing fits 2 requests a minute in 15 minutes.
        for groups in [0, 1, 300, 5_000, 6_000] {
            assert_eq!(p.full_interval(groups), TimeDelta::minutes(15), "{groups}");
        }
        // 6,001 groups: 31 pages, 15.5 minutes.
        assert_eq!(p.full_interval(6_001), TimeDelta::seconds(930));
        // 50,000 groups: 250 pages at 2 a minute, 125 minutes.
        assert_eq!(p.full_interval(50_000), TimeDelta::minutes(125));
        let every_15 = ListingPolicy {
            full_rate: None,
            ..p
        };
        assert_eq!(every_15.full_interval(50_000), TimeDelta::minutes(15));
        let zero = ListingPolicy {
            full_rate: Some(0.0),
            ..p
        };
        assert_eq!(zero.full_interval(50_000), TimeDelta::minutes(15));
        // The due time follows the listing's size.
        let groups: Vec<OktaGroup> = (0..50_000)
            .map(|i| group(&format!("g{i}"), &format!("n{i}"), 10, 20))
            .collect();
        let l = Listing::full(groups, at(0));
        assert_eq!(next_full_at(Some(&l), &p), Some(at(125 * 60)));
        assert_eq!(
            next_step(Some(&l), at(124 * 60), &p, true),
            ListingStep::Changed { since: at(-100) }
        );
        assert_eq!(
            next_step(Some(&l), at(125 * 60), &p, true),
            ListingStep::Full
        );
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
