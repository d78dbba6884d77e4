//! What both snapshot backends store the same way, so neither duplicates it: member lists
//! (sorted, `\n`-joined, counted and SHA-256 hashed, checked on load), audit entries, pending
//! writes and held plans (JSON with their own hash).
//!
//! Each backend maps its rows to and from these types in one place (`load`, `record_put`, ...);
//! a new column is a field here plus one line in each backend's SQL. No I/O here.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::{AppliedPut, HeldRecord, HoldStatus};
use crate::model::{GroupName, Interner, Members, OktaGroupId};
use crate::plan::safety::Held;
use crate::plan::{Layout, ReadMark, Snapshot, SnapshotGroup};

/// A member list as stored: ids in order, joined by `\n` (Q ids cannot contain control
/// characters, so the join is unambiguous).
pub fn join(members: &Members) -> String {
    let mut out = String::with_capacity(members.iter().map(|m| m.as_str().len() + 1).sum());
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(m.as_str());
    }
    out
}

/// The inverse of [`join`], sharing ids across groups through `ids`.
pub fn split(members: &str, ids: &mut Interner) -> Members {
    if members.is_empty() {
        return Members::new();
    }
    members.split('\n').map(|m| ids.intern(m)).collect()
}

/// Lowercase hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 with milliseconds, UTC (`2026-11-26T03:00:00.000Z`): timestamps kept as text.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a timestamp kept as text; `None` when it does not parse.
pub fn parse_ts(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The read mark of a row, when both of its times are known.
pub fn read_mark(
    source_updated: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
) -> Option<ReadMark> {
    Some(ReadMark {
        source_updated: source_updated?,
        read_at: read_at?,
    })
}

/// A `groups` row: one Q group q-group-sync wrote, with its member list as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub q_name: String,
    pub okta_id: String,
    /// [`join`]ed member ids.
    pub members: String,
    pub member_count: i64,
    pub members_sha256: String,
    pub pushed_at: DateTime<Utc>,
    /// The read the members come from; a mark that does not parse is `None` (it only costs a
    /// re-read, it is not corruption).
    pub read: Option<ReadMark>,
    /// Chunk sub-groups carrying the members (0: inline).
    pub chunks: i64,
}

impl GroupRow {
    /// The row recording a put that Q Business accepted at `at`.
    pub fn from_put(put: &AppliedPut<'_>, at: DateTime<Utc>) -> GroupRow {
        let members = join(put.members);
        GroupRow {
            q_name: put.group.as_str().to_owned(),
            okta_id: put.okta_id.as_str().to_owned(),
            members_sha256: sha256_hex(&members),
            member_count: put.members.len() as i64,
            members,
            pushed_at: at,
            read: put.read,
            chunks: i64::from(put.layout.chunk_count()),
        }
    }

    /// Checks the row against its hash and count and turns it into a snapshot entry. `Err` is
    /// what is wrong with it (the backend wraps it into [`super::StoreError::Corrupt`]).
    pub fn into_group(self, ids: &mut Interner) -> Result<(GroupName, SnapshotGroup), String> {
        let name = self.q_name;
        if sha256_hex(&self.members) != self.members_sha256 {
            return Err(format!(
                "group {name:?}: member list does not match its checksum"
            ));
        }
        let members = split(&self.members, ids);
        if members.len() as i64 != self.member_count {
            return Err(format!(
                "group {name:?}: member count {} does not match the list ({})",
                self.member_count,
                members.len()
            ));
        }
        let chunks = u32::try_from(self.chunks)
            .map_err(|_| format!("group {name:?}: bad chunk count {}", self.chunks))?;
        Ok((
            GroupName::new(name),
            SnapshotGroup {
                okta_id: OktaGroupId::new(self.okta_id),
                members,
                pushed_at: self.pushed_at,
                unconfirmed: false,
                read: self.read,
                layout: Layout::from_chunk_count(chunks),
            },
        ))
    }
}

/// The chunk groups of a put: those written (their intents are cleared with the put) and those
/// no longer referenced (recorded as pending deletions in the same transaction).
pub fn chunk_names(put: &AppliedPut<'_>) -> (Vec<String>, Vec<String>) {
    let names = |list: &[GroupName]| list.iter().map(|g| g.as_str().to_owned()).collect();
    (names(put.chunks_written), names(put.chunks_stale))
}

/// An `audit` row: one applied change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub q_name: String,
    pub okta_id: String,
    /// `put` or `delete`.
    pub op: &'static str,
    pub users_added: i64,
    pub users_removed: i64,
    /// [`join`]ed ids added and removed.
    pub added: String,
    pub removed: String,
}

impl AuditRow {
    pub fn put(put: &AppliedPut<'_>) -> AuditRow {
        AuditRow {
            q_name: put.group.as_str().to_owned(),
            okta_id: put.okta_id.as_str().to_owned(),
            op: "put",
            users_added: put.added.len() as i64,
            users_removed: put.removed.len() as i64,
            added: join(put.added),
            removed: join(put.removed),
        }
    }

    /// A deletion; `old` is the group's stored (members, member_count), if it was recorded.
    pub fn delete(
        group: &GroupName,
        okta_id: &OktaGroupId,
        old: Option<(String, i64)>,
    ) -> AuditRow {
        let (removed, users_removed) = old.unwrap_or_default();
        AuditRow {
            q_name: group.as_str().to_owned(),
            okta_id: okta_id.as_str().to_owned(),
            op: "delete",
            users_added: 0,
            users_removed,
            added: String::new(),
            removed,
        }
    }
}

/// A `pending` row: a write started and not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub q_name: String,
    pub okta_id: String,
    pub at: DateTime<Utc>,
}

/// Marks the groups of pending writes as unconfirmed (and owned): Q may hold anything for
/// them, so the next pass writes them again.
pub fn add_pending(snapshot: &mut Snapshot, rows: impl IntoIterator<Item = PendingRow>) {
    for row in rows {
        snapshot
            .groups
            .entry(GroupName::new(row.q_name))
            .and_modify(|g| g.unconfirmed = true)
            .or_insert_with(|| SnapshotGroup {
                okta_id: OktaGroupId::new(row.okta_id),
                members: Members::new(),
                pushed_at: row.at,
                unconfirmed: true,
                read: None,
                layout: Layout::Inline,
            });
    }
}

/// A `held_plans` row's content columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    pub id: String,
    pub hash: String,
    /// The plan as JSON.
    pub body: String,
    pub deletes: i64,
    pub removals: i64,
}

impl HeldRow {
    pub fn encode(held: &Held) -> Result<HeldRow, String> {
        Ok(HeldRow {
            id: held.id.clone(),
            hash: held.hash.clone(),
            body: serde_json::to_string(held).map_err(|e| format!("held plan as JSON: {e}"))?,
            deletes: held.deletes.len() as i64,
            removals: held.removal_count() as i64,
        })
    }
}

/// A stored held plan, checked against its own hash. `Err` is what is wrong with it.
pub fn decode_held(
    status: String,
    body: &str,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
) -> Result<HeldRecord, String> {
    let status = HoldStatus::parse(&status)
        .ok_or_else(|| format!("held plan status {status:?} is not held, applied or superseded"))?;
    let held: Held = serde_json::from_str(body).map_err(|e| format!("held plan: {e}"))?;
    if held.compute_hash() != held.hash {
        return Err(format!("held plan {} does not match its hash", held.id));
    }
    Ok(HeldRecord {
        status,
        created_at,
        last_seen_at,
        held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    #[test]
    fn members_round_trip_and_tampering_is_detected() {
        let members: Members = ["b@x.test", "a@x.test"]
            .into_iter()
            .map(UserId::from_normalised)
            .collect();
        let empty = Members::new();
        let (g, id) = (GroupName::new("g"), OktaGroupId::new("00g1"));
        let put = AppliedPut {
            group: &g,
            okta_id: &id,
            members: &members,
            added: &members,
            removed: &empty,
            read: None,
            layout: Layout::Chunked { chunks: 3 },
            chunks_written: &[],
            chunks_stale: &[],
        };
        let row = GroupRow::from_put(&put, DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(row.members, "a@x.test\nb@x.test");
        let mut ids = Interner::default();
        let (name, group) = row.clone().into_group(&mut ids).expect("valid");
        assert_eq!(group.layout, Layout::Chunked { chunks: 3 });
        assert_eq!((name, group.members), (g, members));
        let negative = GroupRow {
            chunks: -1,
            ..row.clone()
        };
        assert!(negative.into_group(&mut ids).is_err());

        let tampered = GroupRow {
            members: "mallory@x.test".into(),
            ..row.clone()
        };
        assert!(tampered.into_group(&mut ids).is_err());
        let miscounted = GroupRow {
            member_count: 3,
            ..row
        };
        let err = miscounted.into_group(&mut ids).expect_err("count");
        assert!(err.contains("member count 3"), "{err}");
        assert!(split("", &mut ids).is_empty());
    }
}
