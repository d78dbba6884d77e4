//! `/status`: the views built from the last run report, the held plan and the queue.

use super::*;

/// The held plan waiting for approval, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldView {
    pub plan_id: String,
    pub hash: String,
    pub reasons: Vec<String>,
    pub deletes: usize,
    pub removals: usize,
    /// Groups to delete (first 50).
    pub delete_groups: Vec<String>,
    /// Since when a pass holds this plan.
    pub since: DateTime<Utc>,
}

impl HeldView {
    pub(super) fn new(held: &crate::plan::safety::Held, since: DateTime<Utc>) -> HeldView {
        HeldView {
            plan_id: held.id.clone(),
            hash: held.hash.clone(),
            reasons: held.reasons.clone(),
            deletes: held.deletes.len(),
            removals: held.removal_count(),
            delete_groups: held
                .deletes
                .iter()
                .take(50)
                .map(|d| d.group.to_string())
                .collect(),
            since,
        }
    }
}

/// What a pass did, in numbers: names nothing, so `/status` shows it with or without the token.
#[derive(Debug, Clone, Serialize)]
pub struct PassCounts {
    pub groups_listed: usize,
    pub groups_in_scope: usize,
    pub groups_unread: usize,
    pub puts_applied: usize,
    pub deletes_applied: usize,
    pub unchanged: usize,
    pub users_added: usize,
    pub users_removed: usize,
    pub failed: usize,
    /// Failures by bounded kind (`throttled`, `unread`, `over_member_limit`, ...).
    pub errors_by_kind: BTreeMap<String, usize>,
}

/// The last finished pass, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastPass {
    pub pass_id: Option<String>,
    pub run_id: Option<i64>,
    pub trigger: Trigger,
    pub group: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    /// The pass's counts (the same in the public view).
    #[serde(flatten)]
    pub counts: PassCounts,
    /// Groups Q Business already has that q-group-sync did not create, left untouched (not
    /// failures; `reconcile --adopt` or `groups.take_over` lets q-group-sync manage them).
    pub not_owned: Vec<String>,
    /// How the pass checked users' status and id changes.
    pub users: crate::report::UserCheck,
    /// When the next full member read is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_full_read_at: Option<DateTime<Utc>>,
    /// Step by step, for a one-group pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::Trace>,
}

impl LastPass {
    pub(super) fn from_report(trigger: Trigger, r: &RunReport) -> LastPass {
        let mut errors_by_kind = BTreeMap::new();
        for f in &r.failures {
            *errors_by_kind.entry(f.kind.clone()).or_insert(0) += 1;
        }
        if let Some(kind) = r.error_kind {
            *errors_by_kind.entry(kind.to_owned()).or_insert(0) += 1;
        }
        LastPass {
            pass_id: r.pass_id.clone(),
            run_id: r.run_id,
            trigger,
            group: r.group.clone(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome.as_str(),
            error: r.error.clone(),
            error_kind: r.error_kind,
            counts: PassCounts {
                groups_listed: r.groups_listed,
                groups_in_scope: r.groups_in_scope,
                groups_unread: r.groups_unread,
                puts_applied: r.puts_applied,
                deletes_applied: r.deletes_applied,
                unchanged: r.plan.unchanged,
                users_added: r.users_added,
                users_removed: r.users_removed,
                failed: r.failures.len(),
                errors_by_kind,
            },
            not_owned: r
                .plan
                .issues
                .iter()
                .filter(|i| i.kind == crate::plan::IssueKind::NotOwned)
                .map(|i| i.group.clone())
                .collect(),
            users: r.users.clone(),
            next_full_read_at: r.next_full_read_at,
            trace: r.trace.clone(),
        }
    }
}

/// `/status` as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub ready: bool,
    pub shutting_down: bool,
    pub pass_running: bool,
    pub current_pass: Option<PassTicket>,
    pub queued_passes: Vec<PassTicket>,
    pub next_scheduled_pass: Option<DateTime<Utc>>,
    pub schedule: String,
    /// Without `schedule.cron`: when the next pass lists every group (finding deleted ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_full_listing: Option<DateTime<Utc>>,
    pub last_pass: Option<LastPass>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Destructive changes waiting for approval (`q-group-sync approve <plan_id>` or POST /approve).
    pub held_plan: Option<HeldView>,
    /// Seconds since the snapshot was last confirmed equal to Okta (last successful full pass).
    pub snapshot_age_seconds: Option<f64>,
    /// Who leads, and whether this replica does (always with SQLite).
    pub leader: LeaderView,
}

impl Daemon {
    /// The `/status` document.
    pub fn status(&self) -> Status {
        let now = self.clock.now();
        let state = self.state();
        Status {
            ready: self.is_ready(),
            shutting_down: self.shutdown.is_cancelled(),
            pass_running: state.running.is_some(),
            current_pass: state.running.clone(),
            queued_passes: state.queue.iter().cloned().collect(),
            next_scheduled_pass: match self.polling {
                _ if !self.scheduler_alive.load(Ordering::SeqCst) => None,
                Some(_) => state.next_poll,
                None => crate::schedule::next_fire(&self.cron, now),
            },
            next_full_listing: self.engine.next_full_listing_at(),
            schedule: self.schedule.clone(),
            last_pass: state.last.clone(),
            last_success_at: state.last_success,
            held_plan: state.held.clone(),
            snapshot_age_seconds: state
                .last_success
                .map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0),
            leader: self.leadership.view(),
        }
    }
}

/// `/status` without the admin token: counts, times, outcomes and the leader role. No group
/// names, Okta ids, error texts, traces, replica names or addresses.
#[derive(Debug, Clone, Serialize)]
pub struct PublicStatus {
    pub ready: bool,
    pub shutting_down: bool,
    pub pass_running: bool,
    /// The running pass: its id, trigger and when it was requested.
    pub current_pass: Option<PublicTicket>,
    pub queued_passes: usize,
    pub next_scheduled_pass: Option<DateTime<Utc>>,
    pub schedule: String,
    pub last_pass: Option<PublicLastPass>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Counts of the held plan, and since when it waits.
    pub held_plan: Option<PublicHeld>,
    pub snapshot_age_seconds: Option<f64>,
    pub leader: PublicLeader,
    /// How to see the rest.
    pub detail: &'static str,
}

/// A pass ticket without its group or the held plan it approves.
#[derive(Debug, Clone, Serialize)]
pub struct PublicTicket {
    pub pass_id: String,
    pub trigger: Trigger,
    /// Limited to one group (which one is in the detail).
    pub one_group: bool,
    pub requested_at: DateTime<Utc>,
}

/// The last pass: times, outcome and counts; the error's kind, not its text.
#[derive(Debug, Clone, Serialize)]
pub struct PublicLastPass {
    pub pass_id: Option<String>,
    pub trigger: Trigger,
    pub one_group: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: &'static str,
    pub error_kind: Option<&'static str>,
    #[serde(flatten)]
    pub counts: PassCounts,
}

/// The held plan's counts.
#[derive(Debug, Clone, Serialize)]
pub struct PublicHeld {
    pub deletes: usize,
    pub removals: usize,
    pub since: DateTime<Utc>,
}

/// The leader role of this replica.
#[derive(Debug, Clone, Serialize)]
pub struct PublicLeader {
    pub backend: &'static str,
    pub is_leader: bool,
    pub role: &'static str,
}

impl PublicTicket {
    fn from(t: &PassTicket) -> PublicTicket {
        PublicTicket {
            pass_id: t.pass_id.clone(),
            trigger: t.trigger,
            one_group: t.group.is_some(),
            requested_at: t.requested_at,
        }
    }
}

impl Status {
    /// What `/status` shows without the admin token.
    pub fn public(self) -> PublicStatus {
        PublicStatus {
            ready: self.ready,
            shutting_down: self.shutting_down,
            pass_running: self.pass_running,
            current_pass: self.current_pass.as_ref().map(PublicTicket::from),
            queued_passes: self.queued_passes.len(),
            next_scheduled_pass: self.next_scheduled_pass,
            schedule: self.schedule,
            last_pass: self.last_pass.map(|l| PublicLastPass {
                pass_id: l.pass_id,
                trigger: l.trigger,
                one_group: l.group.is_some(),
                started_at: l.started_at,
                finished_at: l.finished_at,
                outcome: l.outcome,
                error_kind: l.error_kind,
                counts: l.counts,
            }),
            last_success_at: self.last_success_at,
            held_plan: self.held_plan.map(|h| PublicHeld {
                deletes: h.deletes,
                removals: h.removals,
                since: h.since,
            }),
            snapshot_age_seconds: self.snapshot_age_seconds,
            leader: PublicLeader {
                backend: self.leader.backend,
                is_leader: self.leader.is_leader,
                role: self.leader.role,
            },
            detail: "names, ids, errors and traces: send Authorization: Bearer <server.admin_token>",
        }
    }
}
