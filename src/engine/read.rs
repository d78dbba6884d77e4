//! The select and read steps: which groups a pass reads (every one, or those Okta reports
//! changed and those a user's status or id change touches, found by [`super::users`]), then
//! their members, mapped to Q ids as they arrive.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tracing::{info, warn};

use super::context::Pass;
use super::pipeline::{EarlyFeed, EarlyOutcome, EarlyPlan};
use super::{Engine, Error};
use crate::model::GroupName;
use crate::plan::select::{GroupRead, Mapper};
use crate::plan::{self, ReadMark, Snapshot};
use crate::report::UserCheck;
use crate::sink::GroupSink;
use crate::source::{DirectorySource, MemberRead, OktaGroup, SourceError};
use crate::store::Store;

/// What the select step chose.
pub(super) struct Selection<'g> {
    /// Every group is read, not only those Okta reports changed.
    pub(super) full: bool,
    /// The in-scope groups whose members are read from Okta.
    pub(super) read: Vec<&'g OktaGroup>,
    /// Okta group id -> the snapshot's members, for groups not read.
    pub(super) unchanged: BTreeMap<String, GroupRead>,
}

/// What the read step leaves for the rest of the pass.
pub(super) struct Read<'p> {
    /// Every in-scope group's read, by Okta id (the unchanged ones with the snapshot's members).
    pub(super) groups: BTreeMap<String, GroupRead>,
    /// The Okta users the reads met, and their Q ids.
    pub(super) mapper: Mapper<'p>,
    pub(super) record: ReadRecord,
}

/// What the apply and record steps need of the reads.
pub(super) struct ReadRecord {
    /// What this pass's reads are worth for the next one, recorded with each group.
    pub(super) marks: BTreeMap<GroupName, ReadMark>,
    /// Every group was read (a full read is recorded once the pass completes).
    pub(super) full: bool,
    /// What the early writer did (its puts are not written again).
    pub(super) early: EarlyOutcome,
}

impl<S: DirectorySource, K: GroupSink, T: Store> Engine<S, K, T> {
    /// The select step: a full or incremental read, and which groups it reads.
    pub(super) async fn select<'g>(
        &self,
        pass: &mut Pass<'_>,
        groups: &'g [OktaGroup],
        snapshot: &Snapshot,
    ) -> Result<Selection<'g>, Error> {
        let (full, stale) = self.read_scope(pass, groups, snapshot).await?;
        let settings = pass.settings;
        let choice = plan::reads::choose(
            groups,
            &settings.rules,
            snapshot,
            full,
            settings.overlap,
            &stale,
        );
        let unchanged: BTreeMap<String, GroupRead> = choice
            .unchanged
            .into_iter()
            .map(|(id, members)| (id, GroupRead::Unchanged(members)))
            .collect();
        info!(
            listed = groups.len(),
            to_read = choice.read.len(),
            unchanged = unchanged.len(),
            full,
            users_changed = pass.report.users.users_changed,
            "listed Okta groups"
        );
        pass.report.groups_read = choice.read.len();
        pass.progress.listed(choice.read.len());
        Ok(Selection {
            full,
            read: choice.read,
            unchanged,
        })
    }

    /// The read step: the selected groups' members, mapped as they arrive, while the puts
    /// that may go early (`early`) are written. Only an error that no other request can escape
    /// (credentials, permissions) stops the pass; other failures leave that group unread.
    pub(super) async fn read<'p>(
        &self,
        pass: &mut Pass<'p>,
        selection: Selection<'_>,
        early: Option<&EarlyPlan>,
        snapshot: &Snapshot,
    ) -> Result<Read<'p>, Error> {
        let settings = pass.settings;
        let Selection {
            full,
            read: to_read,
            unchanged: mut reused,
        } = selection;
        let mut mapper = Mapper::new(&settings.rules);
        if !to_read.is_empty() {
            mapper.read_against(snapshot);
        }
        let (reads, mut early) = match early {
            Some(plan) => {
                self.read_pipelined(pass, &to_read, plan, snapshot, &mut mapper)
                    .await
            }
            None => {
                let reads = self.read_members(pass, &to_read, &mut mapper, None);
                let reads = pass.unless_cancelled(reads).await.and_then(|r| r);
                (reads, EarlyOutcome::default())
            }
        };
        std::mem::take(&mut early.tally).add_to(&mut pass.report);
        if let Some(err) = early.fatal.take() {
            return Err(err);
        }
        let mut reads = reads?;
        if !early.sent.is_empty() {
            info!(
                written = early.sent.len() - early.failed.len(),
                failed = early.failed.len(),
                "puts written while reading"
            );
        }
        if pass.tracing() {
            let skipped = mapper.skipped();
            pass.trace("mapping", || {
                format!(
                    "{} Okta user(s) skipped by users.* rules (by status {:?}, without the id attribute {}, unusable id {})",
                    skipped.total(),
                    skipped.by_status,
                    skipped.missing_attribute,
                    skipped.invalid_id
                )
            });
        }
        let marks = plan::reads::marks(
            &to_read,
            |id| matches!(reads.get(id), Some(GroupRead::Mapped { .. })),
            &settings.rules,
            pass.started_at(),
        );
        reads.append(&mut reused);
        Ok(Read {
            groups: reads,
            mapper,
            record: ReadRecord { marks, full, early },
        })
    }

    /// Whether this pass reads every group (`true`) or incrementally, and the groups a user
    /// change makes it read again. Incremental reads: a group whose lastMembershipUpdated has
    /// not moved since the read its snapshot members come from keeps them, unless a member's
    /// status or id attribute changed since (Okta does not move lastMembershipUpdated for
    /// those); a full read runs every `full_every`, and whenever the snapshot has no record of
    /// user changes yet.
    async fn read_scope(
        &self,
        pass: &mut Pass<'_>,
        groups: &[OktaGroup],
        snapshot: &Snapshot,
    ) -> Result<(bool, BTreeSet<GroupName>), Error> {
        let request = pass.request;
        let settings = pass.settings;
        let users_checked_at = self.store.users_checked_at().await?;
        let full_read_at = self.store.full_read_at().await?;
        let full_read_due = full_read_at.is_none_or(|at| {
            (pass.started_at() - at).to_std().unwrap_or_default() >= settings.full_every
        });
        let full = request.full || request.limited() || users_checked_at.is_none() || full_read_due;
        if !full {
            pass.report.next_full_read_at = full_read_at.and_then(|at| {
                chrono::TimeDelta::from_std(settings.full_every)
                    .ok()
                    .and_then(|every| at.checked_add_signed(every))
            });
        }
        let mut stale = BTreeSet::new();
        let users = if request.limited() {
            UserCheck::not_checked("a pass limited to some groups reads them in full")
        } else if full {
            UserCheck::full_read()
        } else {
            let since = users_checked_at.unwrap_or(pass.started_at());
            let changes = self.user_changes(pass, groups, snapshot, since);
            let (check, changed) = pass.unless_cancelled(changes).await??;
            stale = changed;
            check
        };
        pass.report.users = users;
        Ok((full, stale))
    }

    /// Reads every in-scope group's members. Only an error that no other request can escape
    /// (credentials, permissions) stops the pass; other failures leave that group unread.
    /// Each group is mapped to Q ids as soon as it arrives, so the raw member lists of a large
    /// org are never all in memory at once, and offered to the `early` writer, if any.
    pub(super) async fn read_members(
        &self,
        pass: &Pass<'_>,
        groups: &[&OktaGroup],
        mapper: &mut Mapper<'_>,
        early: Option<&EarlyFeed<'_>>,
    ) -> Result<BTreeMap<String, GroupRead>, Error> {
        let mut reads = BTreeMap::new();
        let mut pending = groups.iter();
        let mut in_flight = FuturesUnordered::new();
        let limit = pass.settings.read_concurrency.max(1);
        loop {
            while in_flight.len() < limit {
                match pending.next() {
                    Some(g) => in_flight.push(self.read_one(g)),
                    None => break,
                }
            }
            let Some((group, result)) = in_flight.next().await else {
                break;
            };
            pass.progress.group_read();
            let read = match result {
                Ok(MemberRead::Members(members)) => {
                    let mapped = mapper.map_group(&group.id, &members);
                    pass.trace("read", || {
                        format!(
                            "{:?}: {} Okta member(s) read, {} Q user id(s) after mapping",
                            group.name,
                            members.len(),
                            mapped.len()
                        )
                    });
                    GroupRead::Mapped {
                        members: mapped,
                        okta_members: members.len(),
                    }
                }
                Ok(gone @ MemberRead::GroupGone) => GroupRead::Read(gone),
                Err(e) if e.is_fatal() => return Err(Error::Okta(e)),
                Err(e) => {
                    warn!(okta_group = %group.id, group = %group.name, kind = e.kind().as_str(), error = %e, "group unread");
                    GroupRead::Failed {
                        kind: e.kind().as_str(),
                        message: e.to_string(),
                    }
                }
            };
            if let Some(feed) = early {
                feed.offer(pass.settings, group, &read).await;
            }
            reads.insert(group.id.clone(), read);
        }
        Ok(reads)
    }

    async fn read_one<'a>(
        &self,
        group: &'a OktaGroup,
    ) -> (&'a OktaGroup, Result<MemberRead, SourceError>) {
        let result = self.source.list_members(&group.id).await;
        (group, result)
    }
}
