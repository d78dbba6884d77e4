//! From what Okta reported to the desired Q Business state: scope, Q names, member ids.
//!
//! Pure: no I/O, no clock. Deterministic for the same input.

use arcstr::ArcStr;
use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use super::IssueKind;
use super::input::{MemberRead, OktaGroup, OktaMember};
use crate::config::Config;
use crate::model::{
    GroupName, IdProblem, Members, OktaGroupId, UserId, check_q_id, normalise_user_id,
};

/// Which Okta groups are in scope and how users map to Q ids: the `[groups]` and `[users]` config.
#[derive(Debug, Clone)]
pub struct Rules {
    include: GlobSet,
    exclude: GlobSet,
    name_prefix: String,
    statuses: BTreeSet<String>,
    fold_subaddress: bool,
}

impl Rules {
    /// Builds the rules from a validated config.
    pub fn from_config(config: &Config) -> Result<Rules, globset::Error> {
        Rules::new(
            &config.groups.include,
            &config.groups.exclude,
            config.groups.name_prefix.as_deref().unwrap_or(""),
            &config.users.statuses,
            config.users.fold_subaddress,
        )
    }

    pub fn new(
        include: &[String],
        exclude: &[String],
        name_prefix: &str,
        statuses: &[String],
        fold_subaddress: bool,
    ) -> Result<Rules, globset::Error> {
        fn set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(Glob::new(p)?);
            }
            b.build()
        }
        Ok(Rules {
            include: set(include)?,
            exclude: set(exclude)?,
            name_prefix: name_prefix.to_owned(),
            statuses: statuses.iter().cloned().collect(),
            fold_subaddress,
        })
    }

    /// The scope decision for one listed Okta group.
    pub fn scope(&self, group: &OktaGroup) -> Scope {
        if !self.include.is_match(&group.name) {
            return Scope::Out(OutReason::NotIncluded);
        }
        if self.exclude.is_match(&group.name) {
            return Scope::Out(OutReason::Excluded);
        }
        let q_name = format!("{}{}", self.name_prefix, group.name);
        match check_q_id(&q_name) {
            Ok(()) => Scope::In(GroupName::new(q_name)),
            Err(problem) => Scope::Invalid(problem),
        }
    }

    /// The Q id of an Okta user under the `users.*` rules, or why the user is left out.
    pub fn q_id(&self, user: &OktaMember) -> Result<String, Skip> {
        if !self.eligible(&user.status) {
            return Err(Skip::Status);
        }
        self.id_of(user.attribute.as_deref())
    }

    /// Whether a user with this Okta status counts as a member (`users.statuses`).
    pub fn eligible(&self, status: &str) -> bool {
        self.statuses.contains(status)
    }

    /// The Q id a raw `users.id_attribute` value becomes, whatever the user's status.
    pub fn id_of(&self, attribute: Option<&str>) -> Result<String, Skip> {
        let Some(raw) = attribute.filter(|v| !v.trim().is_empty()) else {
            return Err(Skip::MissingAttribute);
        };
        let normalised = self.normalise(raw);
        if check_q_id(&normalised).is_err() {
            return Err(Skip::InvalidId);
        }
        Ok(normalised)
    }

    /// A user id as Q Business compares it (trimmed; an email also lowercased, with `+tag`
    /// folded when configured).
    pub fn normalise(&self, raw: &str) -> String {
        normalise_user_id(raw, self.fold_subaddress)
    }

    /// `groups.name_prefix`.
    pub fn name_prefix(&self) -> &str {
        &self.name_prefix
    }
}

/// Why an Okta user has no Q id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its status is not in `users.statuses`.
    Status,
    /// It has no `users.id_attribute` value.
    MissingAttribute,
    /// Its id breaks Q's rules.
    InvalidId,
}

/// Where a listed Okta group stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Synced, under this Q name.
    In(GroupName),
    /// Not synced.
    Out(OutReason),
    /// In scope, but its Q name breaks Q's rules; reported, never pushed.
    Invalid(IdProblem),
}

/// Why a group is out of scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutReason {
    NotIncluded,
    Excluded,
}

/// The outcome of reading one in-scope group's members, as the engine hands it to [`desired`].
#[derive(Debug)]
pub enum GroupRead {
    Read(MemberRead),
    /// Not read this pass: Okta reports no membership change since the snapshot's read, so the
    /// snapshot's members stand (incremental reads).
    Unchanged(Members),
    /// Read and already mapped by the [`Mapper`] handed to [`desired_with`]; `okta_members`
    /// is how many users Okta listed (before the `users.*` rules).
    Mapped {
        members: Members,
        okta_members: usize,
    },
    /// Some page failed for good; carries the error kind and message for the report.
    Failed {
        kind: &'static str,
        message: String,
    },
}

/// A group as it should be in Q Business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredGroup {
    pub okta_id: OktaGroupId,
    pub okta_name: String,
    pub members: Members,
}

/// An in-scope group that cannot be synced this pass, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub okta_id: OktaGroupId,
    pub okta_name: String,
    pub kind: IssueKind,
    pub detail: String,
}

/// Two or more Okta users that Q Business would see as one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    pub user_id: UserId,
    pub okta_user_ids: BTreeSet<String>,
}

/// Members that were left out, by reason, counted once per Okta user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Users whose status is not in `users.statuses`, by status.
    pub by_status: BTreeMap<String, usize>,
    /// Users without the `users.id_attribute` profile attribute.
    pub missing_attribute: usize,
    /// Users whose id breaks Q's rules (too long, control characters).
    pub invalid_id: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.by_status.values().sum::<usize>() + self.missing_attribute + self.invalid_id
    }
}

/// Everything the planner needs from Okta, already scoped and mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// In-scope, fully read groups by Q name.
    pub groups: BTreeMap<GroupName, DesiredGroup>,
    /// In-scope groups that cannot be synced now, by Q name when they have a valid one.
    pub blocked: BTreeMap<GroupName, Blocked>,
    /// Blocked groups whose Q name is itself invalid (so they have no key in `blocked`).
    pub invalid: Vec<Blocked>,
    /// Okta ids of listed groups that are out of scope.
    pub out_of_scope: BTreeSet<OktaGroupId>,
    /// Okta ids of groups that were listed but were gone (404) when their members were read.
    pub gone: BTreeSet<OktaGroupId>,
    /// Groups whose members could not be read; any makes the pass delete nothing.
    pub unread: usize,
    pub collisions: Vec<Collision>,
    pub skipped: Skipped,
    /// Groups returned by Okta's listing.
    pub listed: usize,
    /// In-scope groups for which Okta listed no user at all this pass (not even users the
    /// `users.*` rules leave out): the only emptiness the circuit breaker finds suspicious.
    pub okta_empty: BTreeSet<GroupName>,
}

/// Builds the desired state from the listing, the scope decisions and the member reads.
///
/// `reads` holds one entry per group whose scope was [`Scope::In`]; a missing entry counts as
/// unread, so a bug upstream can only make the pass more careful, never delete.
pub fn desired(groups: &[OktaGroup], rules: &Rules, reads: BTreeMap<String, GroupRead>) -> Desired {
    desired_with(groups, rules, reads, Mapper::new(rules))
}

/// Like [`desired`], with a [`Mapper`] that already mapped the [`GroupRead::Mapped`] reads
/// (the engine maps each group as it arrives, so raw member lists are never all held at once).
pub fn desired_with(
    groups: &[OktaGroup],
    rules: &Rules,
    reads: BTreeMap<String, GroupRead>,
    mapper: Mapper<'_>,
) -> Desired {
    let mut out = Desired {
        listed: groups.len(),
        ..Desired::default()
    };
    let mut reads = reads;
    let mut mapper = mapper;
    // Q name -> Okta groups claiming it, to catch two Okta groups with one Q name.
    let mut claims: BTreeMap<GroupName, Vec<DesiredGroup>> = BTreeMap::new();
    for group in groups {
        let okta_id = OktaGroupId::new(&group.id);
        let q_name = match rules.scope(group) {
            Scope::Out(_) => {
                out.out_of_scope.insert(okta_id);
                continue;
            }
            Scope::Invalid(problem) => {
                out.invalid.push(Blocked {
                    okta_id,
                    okta_name: group.name.clone(),
                    kind: IssueKind::InvalidName,
                    detail: format!("Q group name {problem}"),
                });
                continue;
            }
            Scope::In(name) => name,
        };
        match reads.remove(&group.id) {
            Some(GroupRead::Read(MemberRead::Members(members))) => {
                if members.is_empty() {
                    out.okta_empty.insert(q_name.clone());
                }
                let members = mapper.map_group(&group.id, &members);
                claims.entry(q_name).or_default().push(DesiredGroup {
                    okta_id,
                    okta_name: group.name.clone(),
                    members,
                });
            }
            Some(GroupRead::Mapped {
                members,
                okta_members,
            }) => {
                if okta_members == 0 {
                    out.okta_empty.insert(q_name.clone());
                }
                claims.entry(q_name).or_default().push(DesiredGroup {
                    okta_id,
                    okta_name: group.name.clone(),
                    members,
                });
            }
            Some(GroupRead::Unchanged(members)) => {
                claims.entry(q_name).or_default().push(DesiredGroup {
                    okta_id,
                    okta_name: group.name.clone(),
                    members,
                });
            }
            Some(GroupRead::Read(MemberRead::GroupGone)) => {
                out.gone.insert(okta_id);
            }
            Some(GroupRead::Failed { kind, message }) => {
                out.unread += 1;
                out.blocked.insert(
                    q_name,
                    Blocked {
                        okta_id,
                        okta_name: group.name.clone(),
                        kind: IssueKind::Unread,
                        detail: format!("{kind}: {message}"),
                    },
                );
            }
            None => {
                out.unread += 1;
                out.blocked.insert(
                    q_name,
                    Blocked {
                        okta_id,
                        okta_name: group.name.clone(),
                        kind: IssueKind::Unread,
                        detail: "members were not read".to_owned(),
                    },
                );
            }
        }
    }
    for (q_name, mut claimants) in claims {
        if out.blocked.contains_key(&q_name) || claimants.len() > 1 {
            // Two Okta groups (e.g. an OKTA_GROUP and an APP_GROUP) map to one Q name: pushing either
            // would give one group's members the other's access. Block both.
            let ids: Vec<String> = claimants.iter().map(|c| c.okta_id.to_string()).collect();
            let detail = format!(
                "more than one Okta group maps to this Q name ({})",
                ids.join(", ")
            );
            if let Some(first) = claimants.first() {
                let entry = out.blocked.entry(q_name).or_insert_with(|| Blocked {
                    okta_id: first.okta_id.clone(),
                    okta_name: first.okta_name.clone(),
                    kind: IssueKind::NameConflict,
                    detail: detail.clone(),
                });
                if entry.kind != IssueKind::Unread {
                    entry.kind = IssueKind::NameConflict;
                    entry.detail = detail;
                }
            }
            continue;
        }
        if let Some(group) = claimants.pop() {
            out.groups.insert(q_name, group);
        }
    }
    let (collisions, skipped) = mapper.finish();
    out.collisions = collisions;
    out.skipped = skipped;
    out
}

/// Maps Okta members to Q user ids. Each Okta user is decided once (status, attribute,
/// normalisation) and every membership after that is a lookup, and ids are interned, so a
/// user in many groups costs one string.
pub struct Mapper<'a> {
    rules: &'a Rules,
    /// Okta user id -> its Q id, or `None` when the user is skipped.
    users: BTreeMap<ArcStr, Option<UserId>>,
    /// Q ids produced by more than one Okta user, with all of them.
    collisions: BTreeMap<UserId, BTreeSet<String>>,
    skipped_status: BTreeMap<String, usize>,
    missing: usize,
    invalid: usize,
    /// One shared string per Q id, seeded with the ids held elsewhere (the snapshot), so a
    /// decided id equal to one of those shares it instead of allocating its own copy; with
    /// the first Okta user this pass that produced it (the same string as its key in
    /// `users`), `None` for an id only held elsewhere so far.
    known: BTreeMap<UserId, Option<ArcStr>>,
    /// Okta group id -> the member list a read of it is kept relative to (the snapshot's).
    bases: BTreeMap<String, Members>,
}

impl<'a> Mapper<'a> {
    pub fn new(rules: &'a Rules) -> Self {
        Mapper {
            rules,
            users: BTreeMap::new(),
            collisions: BTreeMap::new(),
            skipped_status: BTreeMap::new(),
            missing: 0,
            invalid: 0,
            known: BTreeMap::new(),
            bases: BTreeMap::new(),
        }
    }

    /// Lets decided ids share the ones in `lists` (e.g. the snapshot's), so a user known to
    /// both costs one string.
    pub fn share_ids<'m>(&mut self, lists: impl IntoIterator<Item = &'m Members>) {
        for id in lists.into_iter().flatten() {
            if !self.known.contains_key(id) {
                self.known.insert(id.clone(), None);
            }
        }
    }

    /// Prepares reading against `snapshot`: decided ids share the snapshot's strings, and a
    /// group read again is kept as its changes against the members recorded for it
    /// ([`Members::relative_to`]), so a pass that re-reads many groups for a few users holds
    /// those users, not a second copy of every list.
    pub fn read_against(&mut self, snapshot: &super::Snapshot) {
        self.share_ids(snapshot.groups.values().map(|g| &g.members));
        for (_, g) in snapshot.families() {
            self.bases
                .insert(g.okta_id.as_str().to_owned(), g.members.clone());
        }
    }

    /// Every Okta user decided so far: its Q id, or `None` when the `users.*` rules leave it
    /// out. What the snapshot records as each user's effective identity.
    pub fn decisions(&self) -> impl Iterator<Item = (&ArcStr, Option<&UserId>)> {
        self.users.iter().map(|(id, q)| (id, q.as_ref()))
    }

    /// The users skipped so far (each Okta user counted once).
    pub fn skipped(&self) -> Skipped {
        Skipped {
            by_status: self.skipped_status.clone(),
            missing_attribute: self.missing,
            invalid_id: self.invalid,
        }
    }

    /// Maps the members read for Okta group `okta_id`, relative to what the snapshot holds
    /// for it (see [`Mapper::read_against`]).
    pub fn map_group(&mut self, okta_id: &str, members: &[OktaMember]) -> Members {
        let mapped = self.map(members);
        match self.bases.get(okta_id) {
            Some(base) => mapped.relative_to(base),
            None => mapped,
        }
    }

    /// Maps one group's members to Q ids, counting skips and collisions across groups.
    pub fn map(&mut self, members: &[OktaMember]) -> Members {
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            let id = match self.users.get(m.id.as_str()) {
                Some(known) => known.clone(),
                None => {
                    let okta = ArcStr::from(m.id.as_str());
                    let decided = self.decide(m, &okta);
                    self.users.insert(okta, decided.clone());
                    decided
                }
            };
            if let Some(id) = id {
                out.push(id);
            }
        }
        Members::from(out)
    }

    /// The Q id of a user seen for the first time, or `None` (counted) when it is skipped.
    fn decide(&mut self, m: &OktaMember, okta: &ArcStr) -> Option<UserId> {
        let normalised = match self.rules.q_id(m) {
            Ok(id) => id,
            Err(Skip::Status) => {
                *self.skipped_status.entry(m.status.clone()).or_default() += 1;
                return None;
            }
            Err(Skip::MissingAttribute) => {
                self.missing += 1;
                return None;
            }
            Err(Skip::InvalidId) => {
                self.invalid += 1;
                return None;
            }
        };
        let (id, first) = match self.known.get_key_value(normalised.as_str()) {
            Some((id, first)) => (id.clone(), first.clone()),
            None => (UserId::from_normalised(&normalised), None),
        };
        match first {
            Some(first) => {
                let all = self.collisions.entry(id.clone()).or_default();
                all.insert(first.to_string());
                all.insert(m.id.clone());
            }
            None => {
                self.known.insert(id.clone(), Some(okta.clone()));
            }
        }
        Some(id)
    }

    fn finish(self) -> (Vec<Collision>, Skipped) {
        let collisions = self
            .collisions
            .into_iter()
            .map(|(user_id, okta_user_ids)| Collision {
                user_id,
                okta_user_ids,
            })
            .collect();
        let skipped = Skipped {
            by_status: self.skipped_status,
            missing_attribute: self.missing,
            invalid_id: self.invalid,
        };
        (collisions, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::input::GroupType;

    fn rules() -> Rules {
        Rules::new(
            &["*".into()],
            &["Excluded*".into()],
            "",
            &[
                "ACTIVE".into(),
                "PASSWORD_EXPIRED".into(),
                "LOCKED_OUT".into(),
                "RECOVERY".into(),
            ],
            true,
        )
        .expect("rules")
    }

    fn group(id: &str, name: &str) -> OktaGroup {
        OktaGroup {
            id: id.into(),
            name: name.into(),
            kind: GroupType::Okta,
            last_membership_updated: None,
            last_updated: None,
        }
    }

    fn member(id: &str, status: &str, email: Option<&str>) -> OktaMember {
        OktaMember {
            id: id.into(),
            status: status.into(),
            attribute: email.map(Into::into),
        }
    }

    fn ids(members: &Members) -> Vec<&str> {
        members.iter().map(UserId::as_str).collect()
    }

    #[test]
    fn a_group_read_again_is_held_as_its_changes_against_the_snapshot() {
        let r = rules();
        let recorded: Members = (0..40)
            .map(|i| UserId::from_normalised(format!("u{i:02}@x.test")))
            .collect();
        let mut snapshot = crate::plan::Snapshot::default();
        snapshot.groups.insert(
            GroupName::new("Engineering"),
            crate::plan::SnapshotGroup {
                okta_id: OktaGroupId::new("00gENG"),
                members: recorded.clone(),
                pushed_at: chrono::DateTime::UNIX_EPOCH,
                unconfirmed: false,
                read: None,
                layout: crate::plan::Layout::Inline,
            },
        );
        let mut mapper = Mapper::new(&r);
        mapper.read_against(&snapshot);
        // One member left, one joined: the read holds those two, shares the rest.
        let read: Vec<OktaMember> = (1..41)
            .map(|i| {
                member(
                    &format!("00u{i}"),
                    "ACTIVE",
                    Some(&format!("U{i:02}@x.test")),
                )
            })
            .collect();
        let mapped = mapper.map_group("00gENG", &read);
        assert!(!mapped.shares(&recorded));
        let want: Vec<String> = (1..41).map(|i| format!("u{i:02}@x.test")).collect();
        assert_eq!(ids(&mapped), want);
        assert_eq!(mapped.difference(&recorded).count(), 1);
        assert_eq!(recorded.difference(&mapped).count(), 1);
        // Unchanged: the snapshot's own list. Another group: a list of its own.
        let same: Vec<OktaMember> = (0..40)
            .map(|i| {
                member(
                    &format!("00u{i}"),
                    "ACTIVE",
                    Some(&format!("u{i:02}@x.test")),
                )
            })
            .collect();
        assert!(mapper.map_group("00gENG", &same).shares(&recorded));
        assert!(!mapper.map_group("00gOTHER", &same).shares(&recorded));
        assert_eq!(mapper.map_group("00gOTHER", &same), recorded);
    }

    #[test]
    fn decided_ids_share_the_strings_already_held() {
        let r = rules();
        let held: Members = [UserId::from_normalised("ana@x.test")]
            .into_iter()
            .collect();
        let mut mapper = Mapper::new(&r);
        mapper.share_ids([&held]);
        let member = |id: &str, email: &str| OktaMember {
            id: id.into(),
            status: "ACTIVE".into(),
            attribute: Some(email.into()),
        };
        let mapped = mapper.map(&[member("00u1", "Ana@X.test"), member("00u2", "bo@x.test")]);
        let ana = mapped
            .iter()
            .find(|m| m.as_str() == "ana@x.test")
            .expect("ana");
        assert!(ana.is_same(held.iter().next().expect("held")));
        assert_eq!(mapped.len(), 2);
    }

    #[test]
    fn maps_statuses_attributes_and_normalises() {
        let groups = [group("g1", "Eng")];
        let reads = BTreeMap::from([(
            "g1".to_owned(),
            GroupRead::Read(MemberRead::Members(vec![
                member("u1", "ACTIVE", Some("Ana@X.test")),
                member("u2", "DEPROVISIONED", Some("bo@x.test")),
                member("u3", "SUSPENDED", Some("cy@x.test")),
                member("u4", "ACTIVE", None),
                member("u5", "LOCKED_OUT", Some("dee+work@x.test")),
                member("u6", "ACTIVATING", Some("eve@x.test")),
                member(
                    "u7",
                    "ACTIVE",
                    Some(&format!("{}@x.test", "a".repeat(1100))),
                ),
                member("u8", "ACTIVE", Some("   ")),
            ])),
        )]);
        let d = desired(&groups, &rules(), reads);
        let g = &d.groups[&GroupName::new("Eng")];
        assert_eq!(ids(&g.members), ["ana@x.test", "dee@x.test"]);
        assert_eq!(d.skipped.by_status.get("DEPROVISIONED"), Some(&1));
        assert_eq!(d.skipped.by_status.get("SUSPENDED"), Some(&1));
        assert_eq!(d.skipped.by_status.get("ACTIVATING"), Some(&1));
        assert_eq!(d.skipped.missing_attribute, 2);
        assert_eq!(d.skipped.invalid_id, 1);
        assert!(d.collisions.is_empty());
    }

    #[test]
    fn collisions_are_reported_once_across_groups() {
        let groups = [group("g1", "A"), group("g2", "B")];
        let reads = BTreeMap::from([
            (
                "g1".to_owned(),
                GroupRead::Read(MemberRead::Members(vec![member(
                    "u1",
                    "ACTIVE",
                    Some("ana@x.test"),
                )])),
            ),
            (
                "g2".to_owned(),
                GroupRead::Read(MemberRead::Members(vec![
                    member("u2", "ACTIVE", Some("Ana+alt@x.test")),
                    member("u1", "ACTIVE", Some("ana@x.test")),
                ])),
            ),
        ]);
        let d = desired(&groups, &rules(), reads);
        assert_eq!(d.collisions.len(), 1);
        assert_eq!(d.collisions[0].user_id.as_str(), "ana@x.test");
        assert_eq!(
            d.collisions[0].okta_user_ids,
            BTreeSet::from(["u1".to_owned(), "u2".to_owned()])
        );
    }

    #[test]
    fn scope_failures_and_conflicts() {
        let groups = [
            group("g1", "Excluded stuff"),
            group("g2", "Dup"),
            group("g3", "Dup"),
            group("g4", "Bad\u{7}name"),
            group("g5", "Unread"),
            group("g6", "Gone"),
        ];
        let reads = BTreeMap::from([
            (
                "g2".to_owned(),
                GroupRead::Read(MemberRead::Members(vec![])),
            ),
            (
                "g3".to_owned(),
                GroupRead::Read(MemberRead::Members(vec![])),
            ),
            (
                "g5".to_owned(),
                GroupRead::Failed {
                    kind: "server",
                    message: "HTTP 500".into(),
                },
            ),
            ("g6".to_owned(), GroupRead::Read(MemberRead::GroupGone)),
        ]);
        let d = desired(&groups, &rules(), reads);
        assert!(d.groups.is_empty());
        assert_eq!(d.out_of_scope, BTreeSet::from([OktaGroupId::new("g1")]));
        assert_eq!(
            d.blocked[&GroupName::new("Dup")].kind,
            IssueKind::NameConflict
        );
        assert_eq!(d.blocked[&GroupName::new("Unread")].kind, IssueKind::Unread);
        assert_eq!(d.invalid.len(), 1);
        assert_eq!(d.unread, 1);
        assert_eq!(d.gone, BTreeSet::from([OktaGroupId::new("g6")]));
    }

    #[test]
    fn prefix_and_missing_read_is_unread() {
        let r =
            Rules::new(&["Eng*".into()], &[], "okta:", &["ACTIVE".into()], false).expect("rules");
        let groups = [group("g1", "Eng / α"), group("g2", "Sales")];
        let d = desired(&groups, &r, BTreeMap::new());
        assert_eq!(
            d.blocked[&GroupName::new("okta:Eng / α")].kind,
            IssueKind::Unread
        );
        assert_eq!(d.unread, 1);
        assert!(d.out_of_scope.contains(&OktaGroupId::new("g2")));
    }
}
