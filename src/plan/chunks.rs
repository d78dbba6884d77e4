//! Groups over the inline member limit: a parent group whose `memberGroups` are chunk
//! sub-groups, each holding at most the limit of users.
//!
//! Users are assigned to chunks by a stable hash of their id, so one user joining or leaving
//! rewrites one chunk. A group is re-chunked only when a chunk would overflow or the group has
//! shrunk far below its chunk count; a new chunk count gives new chunk names, so Q keeps
//! serving the old chunks until the parent switches to the new ones (nobody is briefly missing),
//! and the old chunks are deleted after that.
//!
//! Pure: the layout is a function of the member list, the group's current layout and the
//! limit.

use serde::Serialize;

use super::{Change, DeleteReason, LargeGroups, Plan, Policy, PutReason, Snapshot};
use crate::model::{GroupName, MAX_Q_ID_CHARS, Members, OktaGroupId, UserId};
use std::collections::{BTreeMap, BTreeSet};

/// How a group's members are carried in Q Business.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Layout {
    /// The users are the group's own `memberUsers`.
    #[default]
    Inline,
    /// The group's `memberGroups` are `chunks` sub-groups named by [`chunk_name`].
    Chunked { chunks: u32 },
}

impl Layout {
    /// As stored in the snapshot: 0 for inline, else the chunk count.
    pub fn chunk_count(self) -> u32 {
        match self {
            Layout::Inline => 0,
            Layout::Chunked { chunks } => chunks,
        }
    }

    pub fn from_chunk_count(n: u32) -> Layout {
        if n == 0 {
            Layout::Inline
        } else {
            Layout::Chunked { chunks: n }
        }
    }

    /// The chunk names of `parent` under this layout (none when inline).
    pub fn chunk_names(self, parent: &GroupName) -> Vec<GroupName> {
        (0..self.chunk_count())
            .map(|i| chunk_name(parent, i, self.chunk_count()))
            .collect()
    }
}

/// One PutGroup of a plan: a group's own users, or its chunk sub-groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    pub group: GroupName,
    /// `memberUsers` sent.
    #[serde(skip)]
    pub users: Members,
    pub user_count: usize,
    /// `memberGroups` sent (the chunks, for a chunked group).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub member_groups: Vec<GroupName>,
    pub role: WriteRole,
}

/// Which group a [`Write`] puts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteRole {
    /// The group that stands for the Okta group.
    Group,
    /// One of its chunk sub-groups.
    Chunk,
}

impl Write {
    fn users(group: GroupName, users: Members, role: WriteRole) -> Write {
        Write {
            group,
            user_count: users.len(),
            users,
            member_groups: Vec::new(),
            role,
        }
    }
}

const CHUNK_MARK: &str = " (q-group-sync chunk ";

/// The Q name of chunk `index` (0-based) of `count` of `parent`, e.g.
/// `All Staff (q-group-sync chunk 2 of 6)`. A parent name too long to fit Q's 1024-character
/// limit is shortened and followed by a hash of the whole name, so names stay distinct.
pub fn chunk_name(parent: &GroupName, index: u32, count: u32) -> GroupName {
    let suffix = format!("{CHUNK_MARK}{} of {count})", index + 1);
    let name = parent.as_str();
    if name.chars().count() + suffix.chars().count() <= MAX_Q_ID_CHARS {
        return GroupName::new(format!("{name}{suffix}"));
    }
    let tag = format!("~{:016x}", mix(fnv1a(name.as_bytes())));
    let keep = MAX_Q_ID_CHARS - suffix.chars().count() - tag.chars().count();
    let short: String = name.chars().take(keep).collect();
    GroupName::new(format!("{short}{tag}{suffix}"))
}

/// Whether `name` has the shape of a chunk name (reserved: such Okta names are not synced).
pub fn is_chunk_name(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(')') else {
        return false;
    };
    let Some(at) = rest.rfind(CHUNK_MARK) else {
        return false;
    };
    let mut parts = rest[at + CHUNK_MARK.len()..].split(" of ");
    let ok =
        |p: Option<&str>| p.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The group a chunk name belongs to, when the name was not shortened.
pub fn chunk_parent(name: &str) -> Option<&str> {
    if !is_chunk_name(name) {
        return None;
    }
    name.rfind(CHUNK_MARK).map(|at| &name[..at])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads similar ids (`user1@`, `user2@`) across buckets.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The chunk (0-based) of `count` that `user` belongs to. Stable across versions: changing it
/// re-chunks every large group.
pub fn bucket(user: &UserId, count: u32) -> u32 {
    (mix(fnv1a(user.as_str().as_bytes())) % u64::from(count.max(1))) as u32
}

/// `members` split into `count` chunks by [`bucket`].
pub fn split(members: &Members, count: u32) -> Vec<Members> {
    let mut out: Vec<Vec<UserId>> = vec![Vec::new(); count.max(1) as usize];
    for m in members {
        out[bucket(m, count) as usize].push(m.clone());
    }
    out.into_iter().map(Members::from).collect()
}

/// The layout of a group of `members` that is `current` now, under `limit` users per group.
///
/// Keeps `current` while it still fits: inline up to the limit; chunked while no chunk
/// overflows, the chunks are on average at least a quarter full and the group is over half the
/// limit. Otherwise a fresh layout: inline up to the limit, else chunks filled to three quarters
/// of the limit on average (headroom for growth), more if the hash packs one too full.
pub fn choose(members: &Members, current: Layout, limit: usize) -> Layout {
    let n = members.len();
    let limit = limit.max(1);
    let fits = |count: u32| split(members, count).iter().all(|c| c.len() <= limit);
    match current {
        Layout::Inline if n <= limit => return Layout::Inline,
        Layout::Chunked { chunks }
            if chunks >= 2 && n * 4 >= chunks as usize * limit && n * 2 > limit && fits(chunks) =>
        {
            return current;
        }
        _ => {}
    }
    if n <= limit {
        return Layout::Inline;
    }
    let per_chunk = (limit * 3 / 4).max(1);
    let mut chunks = u32::try_from(n.div_ceil(per_chunk))
        .unwrap_or(u32::MAX)
        .max(2);
    while !fits(chunks) {
        chunks += 1;
    }
    Layout::Chunked { chunks }
}

/// Turns each put of `plan` into its Q writes (chunks first, then the group), and each delete
/// into the group plus its chunks. Chunk groups the snapshot knows only from an unfinished
/// write (orphans) are deleted once their group no longer references them.
pub fn expand(plan: &mut Plan, snapshot: &Snapshot, policy: &Policy) {
    let limit = policy.inline_member_limit;
    // Chunk names recorded as being written or deleted, by the Okta group they belong to.
    let mut orphans: BTreeMap<&OktaGroupId, BTreeSet<&GroupName>> = BTreeMap::new();
    for (name, g) in &snapshot.groups {
        if is_chunk_name(name.as_str()) {
            orphans.entry(&g.okta_id).or_default().insert(name);
        }
    }
    let mut handled: BTreeSet<&GroupName> = BTreeSet::new();
    for change in plan.changes.iter_mut() {
        match change {
            Change::Put {
                group,
                okta_id,
                members,
                reason,
                writes,
                stale_chunks,
                layout,
                ..
            } => {
                let have = snapshot.groups.get(group).filter(|_| {
                    matches!(reason, PutReason::MembersChanged | PutReason::Unconfirmed)
                });
                let current = have.map_or(Layout::Inline, |h| h.layout);
                let next = match policy.large_groups {
                    LargeGroups::Chunks => choose(members, current, limit),
                    // One write: inline, or as a member file when over the limit.
                    LargeGroups::File | LargeGroups::Refuse => Layout::Inline,
                };
                let mine = orphans.get(okta_id);
                let new_names: BTreeSet<GroupName> = next.chunk_names(group).into_iter().collect();
                writes.clear();
                match next {
                    Layout::Inline => writes.push(Write::users(
                        group.clone(),
                        members.clone(),
                        WriteRole::Group,
                    )),
                    Layout::Chunked { chunks } => {
                        let parts = split(members, chunks);
                        // The old contents of each chunk, when the group keeps its chunks and
                        // what Q holds is known.
                        let before = have
                            .filter(|h| h.layout == next && !h.unconfirmed)
                            .map(|h| split(&h.members, chunks));
                        let names = next.chunk_names(group);
                        for (i, (name, part)) in names.iter().zip(parts).enumerate() {
                            let unfinished = mine.is_some_and(|o| o.contains(name));
                            let same = before.as_ref().is_some_and(|b| b[i] == part);
                            if !same || unfinished {
                                writes.push(Write::users(name.clone(), part, WriteRole::Chunk));
                            }
                        }
                        if current != next || have.is_none_or(|h| h.unconfirmed) {
                            writes.push(Write {
                                group: group.clone(),
                                users: Members::new(),
                                user_count: 0,
                                member_groups: names,
                                role: WriteRole::Group,
                            });
                        }
                    }
                }
                *layout = next;
                let old = have.map_or_else(Vec::new, |h| h.layout.chunk_names(group));
                let stale: BTreeSet<GroupName> = old
                    .into_iter()
                    .chain(mine.into_iter().flatten().map(|n| (*n).clone()))
                    .filter(|n| !new_names.contains(n))
                    .collect();
                *stale_chunks = stale.into_iter().collect();
                if let Some(o) = mine {
                    handled.extend(o.iter().copied());
                }
            }
            Change::Delete {
                group,
                okta_id,
                chunks,
                reason,
            } => {
                if matches!(reason, DeleteReason::StaleChunk) {
                    continue;
                }
                let recorded = snapshot
                    .groups
                    .get(group)
                    .map_or_else(Vec::new, |h| h.layout.chunk_names(group));
                let mut all: BTreeSet<GroupName> = recorded.into_iter().collect();
                if let Some(o) = orphans.get(okta_id) {
                    all.extend(o.iter().map(|n| (*n).clone()));
                    handled.extend(o.iter().copied());
                }
                *chunks = all.into_iter().collect();
            }
        }
    }
    // Orphans of groups not written this pass: delete those their group's confirmed record
    // does not reference (an unconfirmed group may still point at them in Q).
    for (okta_id, names) in &orphans {
        let family = snapshot
            .groups
            .iter()
            .find(|(n, g)| &g.okta_id == *okta_id && !is_chunk_name(n.as_str()));
        for name in names {
            if handled.contains(name) {
                continue;
            }
            let deletable = match family {
                None => true,
                Some((parent, g)) => !g.unconfirmed && !g.layout.chunk_names(parent).contains(name),
            };
            let already = plan.changes.iter().any(|c| c.group() == *name);
            if deletable && !already {
                plan.changes.push(Change::Delete {
                    group: (*name).clone(),
                    okta_id: (*okta_id).clone(),
                    reason: DeleteReason::StaleChunk,
                    chunks: Vec::new(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Members {
        (0..n)
            .map(|i| UserId::from_normalised(format!("user{i}@x.test")))
            .collect()
    }

    #[test]
    fn chunk_names_are_recognisable_and_fit_q() {
        let g = GroupName::new("All Staff");
        let name = chunk_name(&g, 1, 6);
        assert_eq!(name.as_str(), "All Staff (q-group-sync chunk 2 of 6)");
        assert!(is_chunk_name(name.as_str()));
        assert_eq!(chunk_parent(name.as_str()), Some("All Staff"));
        assert!(!is_chunk_name("All Staff"));
        assert_eq!(chunk_parent("All Staff"), None);
        assert!(!is_chunk_name("x (q-group-sync chunk two of 6)"));
        let long = GroupName::new("é".repeat(1024));
        let a = chunk_name(&long, 0, 2);
        assert_eq!(a.as_str().chars().count(), MAX_Q_ID_CHARS);
        assert!(is_chunk_name(a.as_str()));
        let other = GroupName::new(format!("{}x", "é".repeat(1023)));
        assert_ne!(
            a,
            chunk_name(&other, 0, 2),
            "the hash keeps shortened names apart"
        );
    }

    #[test]
    fn layouts_follow_size_with_hysteresis() {
        assert_eq!(choose(&users(1000), Layout::Inline, 1000), Layout::Inline);
        let big = choose(&users(4500), Layout::Inline, 1000);
        assert_eq!(big, Layout::Chunked { chunks: 6 });
        let parts = split(&users(4500), 6);
        assert_eq!(parts.iter().map(Members::len).sum::<usize>(), 4500);
        assert!(
            parts.iter().all(|p| p.len() <= 1000 && p.len() > 500),
            "{:?}",
            parts.iter().map(Members::len).collect::<Vec<_>>()
        );
        // Small changes keep the chunks; shrinking far below them goes back inline.
        assert_eq!(choose(&users(4501), big, 1000), big);
        assert_eq!(choose(&users(3000), big, 1000), big);
        assert_eq!(choose(&users(500), big, 1000), Layout::Inline);
        assert_eq!(
            choose(&users(1400), big, 1000),
            Layout::Chunked { chunks: 2 }
        );
        // Growing past what the chunks hold re-chunks.
        assert_eq!(
            choose(&users(9000), big, 1000),
            Layout::Chunked { chunks: 12 }
        );
    }

    use crate::plan::select::{Desired, DesiredGroup};
    use crate::plan::{SnapshotGroup, plan};

    fn desired(name: &str, members: Members) -> Desired {
        let mut d = Desired::default();
        d.groups.insert(
            GroupName::new(name),
            DesiredGroup {
                okta_id: OktaGroupId::new("00gbig"),
                okta_name: name.to_owned(),
                members,
            },
        );
        d
    }

    /// The snapshot after applying `p` (as the engine records it).
    fn applied(p: &Plan, mut s: Snapshot) -> Snapshot {
        for c in &p.changes {
            match c {
                Change::Put {
                    group,
                    okta_id,
                    members,
                    layout,
                    ..
                } => {
                    s.groups.insert(
                        group.clone(),
                        SnapshotGroup {
                            okta_id: okta_id.clone(),
                            members: members.clone(),
                            pushed_at: chrono::DateTime::UNIX_EPOCH,
                            unconfirmed: false,
                            read: None,
                            layout: *layout,
                        },
                    );
                }
                Change::Delete { group, .. } => {
                    s.groups.remove(group);
                }
            }
        }
        s
    }

    fn writes(p: &Plan) -> Vec<(String, WriteRole, usize)> {
        p.changes
            .iter()
            .flat_map(|c| match c {
                Change::Put { writes, .. } => writes
                    .iter()
                    .map(|w| {
                        (
                            w.group.to_string(),
                            w.role,
                            w.user_count + w.member_groups.len(),
                        )
                    })
                    .collect(),
                Change::Delete { .. } => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_large_group_grows_shrinks_and_leaves_no_stale_chunks() {
        let policy = Policy::default();
        let big = users(4500);
        let p = plan(&desired("All", big.clone()), &Snapshot::default(), &policy);
        let w = writes(&p);
        assert_eq!(w.len(), 7, "{w:?}");
        assert!(
            w[..6]
                .iter()
                .all(|(_, role, n)| *role == WriteRole::Chunk && *n <= 1000)
        );
        assert_eq!(w[6], ("All".to_owned(), WriteRole::Group, 6));
        let s = applied(&p, Snapshot::default());

        // One newcomer: one chunk rewritten, the group itself untouched.
        let more: Members = big
            .iter()
            .cloned()
            .chain([UserId::from_normalised("newcomer@x.test")])
            .collect();
        let p = plan(&desired("All", more), &s, &policy);
        let w = writes(&p);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].1, WriteRole::Chunk);

        // 4,000 leave: back inline, all six chunks deleted after the group stops using them.
        let fewer: Members = big.iter().take(500).collect();
        let p = plan(&desired("All", fewer), &s, &policy);
        let Change::Put {
            writes,
            stale_chunks,
            removed,
            ..
        } = &p.changes[0]
        else {
            panic!("a put")
        };
        assert_eq!(writes.len(), 1);
        assert_eq!(
            (writes[0].role, writes[0].user_count),
            (WriteRole::Group, 500)
        );
        assert_eq!(
            stale_chunks,
            &Layout::Chunked { chunks: 6 }.chunk_names(&GroupName::new("All"))
        );
        assert_eq!(
            removed.len(),
            4000,
            "removals are counted on the whole group"
        );

        // The Okta group goes away: the group and its chunks are deleted.
        let p = plan(&Desired::default(), &s, &policy);
        let Change::Delete { chunks, .. } = &p.changes[0] else {
            panic!("a delete")
        };
        assert_eq!(chunks.len(), 6);
    }

    #[test]
    fn chunks_left_by_an_unfinished_write_are_cleaned_up() {
        let policy = Policy::default();
        let big = users(4500);
        let s = applied(
            &plan(&desired("All", big.clone()), &Snapshot::default(), &policy),
            Snapshot::default(),
        );
        // A re-chunk wrote "1 of 9" and stopped before the group switched to it.
        let mut crashed = s.clone();
        let orphan = chunk_name(&GroupName::new("All"), 0, 9);
        crashed.groups.insert(
            orphan.clone(),
            SnapshotGroup {
                okta_id: OktaGroupId::new("00gbig"),
                members: Members::new(),
                pushed_at: chrono::DateTime::UNIX_EPOCH,
                unconfirmed: true,
                read: None,
                layout: Layout::Inline,
            },
        );
        // Nothing else changed: the orphan is deleted on its own (the group never used it).
        let p = plan(&desired("All", big.clone()), &crashed, &policy);
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        assert!(matches!(
            &p.changes[0],
            Change::Delete { group, reason: DeleteReason::StaleChunk, .. } if *group == orphan
        ));
        // The orphan is a chunk, not a group of its own (safety's Managed counts groups so).
        assert_eq!(crashed.families().count(), 1);
        // The group is also unconfirmed: everything is rewritten, then the orphan goes.
        crashed
            .groups
            .get_mut(&GroupName::new("All"))
            .expect("group")
            .unconfirmed = true;
        let p = plan(&desired("All", big), &crashed, &policy);
        assert_eq!(writes(&p).len(), 7);
        let Change::Put { stale_chunks, .. } = &p.changes[0] else {
            panic!("a put")
        };
        assert_eq!(stale_chunks, &vec![orphan]);
        assert_eq!(p.changes.len(), 1);
    }

    #[test]
    fn one_user_moves_one_chunk() {
        let before = users(4500);
        let after: Members = before
            .iter()
            .cloned()
            .chain([UserId::from_normalised("newcomer@x.test")])
            .collect();
        let a = split(&before, 6);
        let b = split(&after, 6);
        let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(changed, 1);
    }
}
