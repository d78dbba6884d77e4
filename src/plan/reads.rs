//! Which groups a pass reads from Okta, and why: incremental reads and lifecycle changes.
//!
//! Pure: no I/O, no clock. Okta moves a group's `lastMembershipUpdated` when someone joins or
//! leaves it, but not when a member is suspended, deactivated or changes the attribute their Q
//! id comes from: Okta keeps listing such users as members. So an incremental pass has two
//! inputs: the groups whose `lastMembershipUpdated` moved, and the users whose `lastUpdated`
//! moved ([`user_changes`]). The second only matters when the user's *effective* Q identity
//! changed (eligible or not, and under which id); a profile touched without such a change (a
//! nightly HR import) reads no group again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::input::{OktaGroup, OktaMember};
use super::{Change, Desired, Plan, ReadMark, Snapshot, select::Rules, select::Scope};
use crate::model::{GroupName, Members};

/// A user's effective Q identity as last recorded: the Q id its memberships are written under,
/// or `None` when the `users.*` rules leave it out (status, no id attribute, unusable id).
pub type KnownUser = Option<String>;

/// A user whose effective Q identity changed since it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    /// Okta user id.
    pub okta_id: String,
    /// The recorded Q id (`None`: the user was left out).
    pub before: Option<String>,
    /// The Q id now (`None`: the user is left out now, e.g. deactivated or suspended).
    pub after: Option<String>,
}

impl UserChange {
    /// Whether finding the user's groups needs Okta: a user who was left out is in no
    /// recorded member list, so only Okta knows which groups now gain them.
    pub fn needs_lookup(&self) -> bool {
        self.before.is_none() && self.after.is_some()
    }
}

/// The users of `listed` (Okta users whose `lastUpdated` moved) whose effective Q identity
/// differs from `known` (what the snapshot recorded). Users the snapshot never saw in a group
/// are no one's member as far as Q is concerned, and are not changes.
pub fn user_changes(
    rules: &Rules,
    listed: &[OktaMember],
    known: &BTreeMap<String, KnownUser>,
) -> Vec<UserChange> {
    let mut out: BTreeMap<&str, UserChange> = BTreeMap::new();
    for user in listed {
        let Some(before) = known.get(&user.id) else {
            continue;
        };
        let after = rules.q_id(user).ok();
        if &after != before {
            out.insert(
                &user.id,
                UserChange {
                    okta_id: user.id.clone(),
                    before: before.clone(),
                    after,
                },
            );
        }
    }
    out.into_values().collect()
}

/// The managed groups whose recorded member lists hold a Q id that one of `changes` no longer
/// has: each must be read again (and so will be written with the user removed or renamed).
pub fn holding(snapshot: &Snapshot, changes: &[UserChange]) -> BTreeSet<GroupName> {
    let before: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.before != c.after)
        .filter_map(|c| c.before.as_deref())
        .collect();
    if before.is_empty() {
        return BTreeSet::new();
    }
    snapshot
        .families()
        .filter(|(_, g)| holds_any(&g.members, &before))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether `members` holds one of `ids`: a binary search per id when there are few, one walk
/// of the list otherwise.
fn holds_any(members: &Members, ids: &BTreeSet<&str>) -> bool {
    if ids.len() < 64 {
        ids.iter().any(|id| members.contains(id))
    } else {
        members.iter().any(|m| ids.contains(m.as_str()))
    }
}

/// The Q names that `okta_group_ids` (a user's groups, as Okta lists them) stand for: in-scope
/// listed groups, and managed groups recorded under those Okta ids.
pub fn names_of(
    okta_group_ids: &BTreeSet<String>,
    listed: &[OktaGroup],
    rules: &Rules,
    snapshot: &Snapshot,
) -> BTreeSet<GroupName> {
    let mut out: BTreeSet<GroupName> = listed
        .iter()
        .filter(|g| okta_group_ids.contains(&g.id))
        .filter_map(|g| match rules.scope(g) {
            Scope::In(name) => Some(name),
            Scope::Out(_) | Scope::Invalid(_) => None,
        })
        .collect();
    out.extend(
        snapshot
            .families()
            .filter(|(_, g)| okta_group_ids.contains(g.okta_id.as_str()))
            .map(|(name, _)| name.clone()),
    );
    out
}

/// Where the users listing of an incremental pass starts: the last recorded check less
/// `overlap` (this process's clock against Okta's stamps: the margin also absorbs clock skew),
/// or, when later, the newest `lastUpdated` the last recorded listing returned less `margin`
/// (Okta's own clock on both sides, so only whole-second stamps and a change made visible a
/// moment late need covering). The second keeps a burst (a nightly job touching every
/// profile) from being listed again by every pass within `overlap`.
pub fn users_since(
    checked_at: DateTime<Utc>,
    newest_listed: Option<DateTime<Utc>>,
    overlap: TimeDelta,
    margin: TimeDelta,
) -> DateTime<Utc> {
    let by_clock = checked_at - overlap;
    match newest_listed {
        Some(newest) => by_clock.max(newest - margin),
        None => by_clock,
    }
}

/// Which in-scope groups a pass reads, and which keep the snapshot's members.
#[derive(Debug, Default)]
pub struct ReadChoice<'g> {
    /// Groups whose members are read from Okta this pass.
    pub read: Vec<&'g OktaGroup>,
    /// Okta group id -> the snapshot's members, for groups that are not read.
    pub unchanged: BTreeMap<String, Members>,
}

/// Chooses the reads of a pass. A group keeps the snapshot's members only when the pass is not
/// `full`, its last write is confirmed, it is recorded under the same Okta id, its read mark is
/// still current for its `lastMembershipUpdated` (see [`super::ReadMark::still_current`]), and
/// no lifecycle change touches it (`stale`).
pub fn choose<'g>(
    groups: &'g [OktaGroup],
    rules: &Rules,
    snapshot: &Snapshot,
    full: bool,
    overlap: TimeDelta,
    stale: &BTreeSet<GroupName>,
) -> ReadChoice<'g> {
    let mut out = ReadChoice::default();
    for g in groups {
        let Scope::In(q_name) = rules.scope(g) else {
            continue;
        };
        let current = snapshot.groups.get(&q_name).filter(|have| {
            !full
                && !stale.contains(&q_name)
                && !have.unconfirmed
                && have.okta_id.as_str() == g.id
                && have
                    .read
                    .zip(g.last_membership_updated)
                    .is_some_and(|(mark, lmu)| mark.still_current(lmu, overlap))
        });
        match current {
            Some(have) => {
                out.unchanged.insert(g.id.clone(), have.members.clone());
            }
            None => out.read.push(g),
        }
    }
    out
}

/// The read marks this pass's reads are worth for the next pass: one per group in `read`
/// whose members were read in full (`read_ok`) and whose `lastMembershipUpdated` is known.
pub fn marks(
    read: &[&OktaGroup],
    read_ok: impl Fn(&str) -> bool,
    rules: &Rules,
    at: DateTime<Utc>,
) -> BTreeMap<GroupName, ReadMark> {
    read.iter()
        .filter(|g| read_ok(&g.id))
        .filter_map(|g| {
            let Scope::In(name) = rules.scope(g) else {
                return None;
            };
            let lmu = g.last_membership_updated?;
            Some((
                name,
                ReadMark {
                    source_updated: lmu,
                    read_at: at,
                },
            ))
        })
        .collect()
}

/// The marks of groups read and found equal to the snapshot (no write): they keep their
/// members and get the new read mark.
pub fn unchanged_marks(
    marks: &BTreeMap<GroupName, ReadMark>,
    plan: &Plan,
    snapshot: &Snapshot,
    desired: &Desired,
) -> Vec<(GroupName, ReadMark)> {
    let put: BTreeSet<&GroupName> = plan.changes.iter().map(Change::group).collect();
    marks
        .iter()
        .filter(|(name, _)| {
            !put.contains(name)
                && snapshot.groups.get(*name).is_some_and(|have| {
                    !have.unconfirmed
                        && desired
                            .groups
                            .get(*name)
                            .is_some_and(|want| want.members == have.members)
                })
        })
        .map(|(name, mark)| (name.clone(), *mark))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::{OktaGroupId, UserId};
    use crate::plan::input::GroupType;
    use crate::plan::{ReadMark, SnapshotGroup};

    fn rules() -> Rules {
        Rules::new(
            &["*".into()],
            &[],
            "",
            &["ACTIVE".into(), "PASSWORD_EXPIRED".into()],
            false,
        )
        .expect("rules")
    }

    fn user(id: &str, status: &str, email: Option<&str>) -> OktaMember {
        OktaMember {
            id: id.into(),
            status: status.into(),
            attribute: email.map(Into::into),
        }
    }

    fn known(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, KnownUser> {
        pairs
            .iter()
            .map(|(id, q)| ((*id).to_owned(), q.map(str::to_owned)))
            .collect()
    }

    fn at(secs: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + secs, 0)
            .single()
            .expect("date")
    }

    fn snapshot(groups: &[(&str, &str, &[&str])]) -> Snapshot {
        let mut s = Snapshot::default();
        for (name, okta_id, ids) in groups {
            s.groups.insert(
                GroupName::new(*name),
                SnapshotGroup {
                    okta_id: OktaGroupId::new(*okta_id),
                    members: ids.iter().map(|i| UserId::from_normalised(*i)).collect(),
                    pushed_at: at(0),
                    unconfirmed: false,
                    read: Some(ReadMark {
                        source_updated: at(0),
                        read_at: at(600),
                    }),
                    layout: Default::default(),
                },
            );
        }
        s
    }

    fn group(id: &str, name: &str) -> OktaGroup {
        OktaGroup {
            id: id.into(),
            name: name.into(),
            kind: GroupType::Okta,
            last_membership_updated: Some(at(0)),
            last_updated: None,
        }
    }

    #[test]
    fn users_since_starts_at_the_later_of_the_two_marks() {
        let overlap = TimeDelta::seconds(120);
        let margin = TimeDelta::seconds(5);
        // Nothing listed yet: the recorded check less the overlap.
        assert_eq!(users_since(at(600), None, overlap, margin), at(480));
        // An old stamp (a quiet org): the overlap still applies.
        assert_eq!(
            users_since(at(600), Some(at(100)), overlap, margin),
            at(480)
        );
        // A burst listed up to the previous pass: only its last seconds are listed again.
        assert_eq!(
            users_since(at(600), Some(at(590)), overlap, margin),
            at(585)
        );
    }

    #[test]
    fn only_changes_of_the_effective_identity_count() {
        let k = known(&[
            ("u1", Some("ana@x.test")),
            ("u2", Some("bo@x.test")),
            ("u3", None),
            ("u4", Some("cy@x.test")),
            ("u5", None),
        ]);
        let listed = [
            // Deactivated: loses access.
            user("u1", "DEPROVISIONED", Some("ana@x.test")),
            // Profile touched, nothing that matters changed (case is normalised away).
            user("u2", "ACTIVE", Some("BO@x.test")),
            // Reactivated: gains access.
            user("u3", "ACTIVE", Some("dee@x.test")),
            // New email: renamed.
            user("u4", "PASSWORD_EXPIRED", Some("cyrus@x.test")),
            // Suspended while already left out: nothing changes in Q.
            user("u5", "SUSPENDED", Some("eve@x.test")),
            // Never seen in a group: no one's member.
            user("u6", "DEPROVISIONED", Some("fay@x.test")),
        ];
        let changes = user_changes(&rules(), &listed, &k);
        let got: Vec<(&str, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.okta_id.as_str(), c.before.as_deref(), c.after.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("u1", Some("ana@x.test"), None),
                ("u3", None, Some("dee@x.test")),
                ("u4", Some("cy@x.test"), Some("cyrus@x.test")),
            ]
        );
        assert_eq!(
            changes
                .iter()
                .map(UserChange::needs_lookup)
                .collect::<Vec<_>>(),
            vec![false, true, false]
        );
    }

    #[test]
    fn a_nightly_profile_touch_changes_nothing() {
        let k: BTreeMap<String, KnownUser> = (0..1000)
            .map(|i| (format!("u{i}"), Some(format!("p{i}@x.test"))))
            .collect();
        let listed: Vec<OktaMember> = (0..1000)
            .map(|i| user(&format!("u{i}"), "ACTIVE", Some(&format!("p{i}@x.test"))))
            .collect();
        assert!(user_changes(&rules(), &listed, &k).is_empty());
    }

    #[test]
    fn holding_finds_every_group_with_the_old_id_and_only_those() {
        let s = snapshot(&[
            ("a", "g1", &["ana@x.test", "bo@x.test"]),
            ("b", "g2", &["ana@x.test"]),
            ("c", "g3", &["bo@x.test"]),
            ("d", "g4", &[]),
        ]);
        let change = UserChange {
            okta_id: "u1".into(),
            before: Some("ana@x.test".into()),
            after: None,
        };
        let names: Vec<String> = holding(&s, &[change])
            .into_iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        // Many changed users at once take the one-walk path and find the same groups.
        let many: Vec<UserChange> = (0..100)
            .map(|i| UserChange {
                okta_id: format!("u{i}"),
                before: Some(if i == 7 {
                    "bo@x.test".to_owned()
                } else {
                    format!("z{i}@x.test")
                }),
                after: None,
            })
            .collect();
        let names: Vec<String> = holding(&s, &many)
            .into_iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["a", "c"]);
    }

    #[test]
    fn names_of_covers_listed_and_managed_groups() {
        let s = snapshot(&[("Old name", "g1", &[])]);
        let listed = [group("g1", "New name"), group("g2", "Other")];
        let ids: BTreeSet<String> = ["g1".to_owned(), "g9".to_owned()].into();
        let names: Vec<String> = names_of(&ids, &listed, &rules(), &s)
            .into_iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["New name", "Old name"]);
    }

    #[test]
    fn choose_reuses_current_groups_unless_stale_or_full() {
        let s = snapshot(&[("a", "g1", &["ana@x.test"]), ("b", "g2", &[])]);
        let listed = [group("g1", "a"), group("g2", "b"), group("g3", "c")];
        let overlap = TimeDelta::seconds(120);
        let none = BTreeSet::new();
        let c = choose(&listed, &rules(), &s, false, overlap, &none);
        let read: Vec<&str> = c.read.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(read, vec!["g3"]);
        assert_eq!(c.unchanged.len(), 2);

        let stale: BTreeSet<GroupName> = [GroupName::new("a")].into();
        let c = choose(&listed, &rules(), &s, false, overlap, &stale);
        let read: Vec<&str> = c.read.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(read, vec!["g1", "g3"]);

        let c = choose(&listed, &rules(), &s, true, overlap, &none);
        assert_eq!(c.read.len(), 3);
        assert!(c.unchanged.is_empty());

        // A group whose membership moved after the read is read again.
        let mut moved = listed.clone();
        moved[1].last_membership_updated = Some(at(30));
        let c = choose(&moved, &rules(), &s, false, overlap, &none);
        let read: Vec<&str> = c.read.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(read, vec!["g2", "g3"]);
    }
}
