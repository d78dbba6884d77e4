//! Every Prometheus series q-group-sync exports, named and described here and nowhere else.
//!
//! Label values come from small fixed sets (outcomes, phases, operations, error kinds), never a
//! group name or user id. Without an installed recorder (one-shot commands) every call is a
//! no-op, so the engine and clients record unconditionally.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::plan::IssueKind;
use crate::report::{Outcome, RunReport};

pub const PASSES: &str = "q_group_sync_passes_total";
pub const PASS_FAILURES: &str = "q_group_sync_pass_failures_total";
pub const PASS_DURATION: &str = "q_group_sync_pass_duration_seconds";
pub const PHASE_DURATION: &str = "q_group_sync_phase_duration_seconds";
pub const PASS_IN_PROGRESS: &str = "q_group_sync_pass_in_progress";
pub const GROUPS_IN_SCOPE: &str = "q_group_sync_groups_in_scope";
pub const GROUPS_UNREAD: &str = "q_group_sync_groups_unread";
pub const GROUP_ISSUES: &str = "q_group_sync_group_issues";
pub const USERS_SKIPPED: &str = "q_group_sync_users_skipped";
pub const USER_COLLISIONS: &str = "q_group_sync_user_collisions";
pub const MEMBERSHIP_CHANGES: &str = "q_group_sync_membership_changes_total";
pub const GROUP_WRITES: &str = "q_group_sync_group_writes_total";
pub const API_REQUESTS: &str = "q_group_sync_api_requests_total";
pub const OKTA_REQUESTS: &str = "q_group_sync_okta_requests_total";
pub const RATE_LIMITED: &str = "q_group_sync_rate_limited_total";
pub const RATE_LIMIT_WAIT: &str = "q_group_sync_rate_limit_wait_seconds";
pub const OKTA_RATE_LIMIT_REMAINING: &str = "q_group_sync_okta_rate_limit_remaining";
pub const OKTA_RATE_LIMIT_LIMIT: &str = "q_group_sync_okta_rate_limit_limit";
pub const LAST_SUCCESS: &str = "q_group_sync_last_success_timestamp_seconds";
pub const SNAPSHOT_AGE: &str = "q_group_sync_snapshot_age_seconds";
pub const TRIGGERS: &str = "q_group_sync_triggers_total";
pub const USER_CHECKS: &str = "q_group_sync_user_checks_total";
pub const USER_CHANGES: &str = "q_group_sync_user_changes_total";
pub const HELD_CHANGES: &str = "q_group_sync_held_changes";
pub const EVENT_POLLS: &str = "q_group_sync_event_polls_total";
pub const EVENTS: &str = "q_group_sync_events_total";
pub const EVENT_GROUPS: &str = "q_group_sync_event_groups_total";
pub const EVENT_DEADLINES: &str = "q_group_sync_event_deadlines_total";
pub const LEADER: &str = "q_group_sync_leader";
pub const LEADERSHIP_CHANGES: &str = "q_group_sync_leadership_changes_total";
pub const LEADER_LOCK_WAIT: &str = "q_group_sync_leader_lock_wait_seconds";
pub const SCIM_REQUESTS: &str = "q_group_sync_scim_requests_total";

/// Histogram buckets for pass and phase durations (seconds): a pass takes from under a second
/// (no change) to tens of minutes (first sync of a large org at Okta's rate limit).
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Histogram buckets for rate-limit waits (seconds): Okta windows are 60 s long.
const WAIT_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0];

/// Histogram buckets for the leader lock wait (seconds): a takeover takes about a second
/// after a crash and up to `state.leader_takeover` (15 s) after a network loss.
const LOCK_WAIT_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0];

/// Installs the global recorder and describes every series. Call once, in `serve`.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".into()),
            DURATION_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(Matcher::Full(RATE_LIMIT_WAIT.into()), WAIT_BUCKETS)
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(Matcher::Full(LEADER_LOCK_WAIT.into()), LOCK_WAIT_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    register_known_series();
    Ok(handle)
}

/// Every `Outcome`, in the order `as_str` lists them.
const OUTCOMES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::Partial,
    Outcome::Held,
    Outcome::Failed,
];

/// The values of `engine::Error::kind`, the `kind` of [`PASS_FAILURES`].
pub const PASS_FAILURE_KINDS: &[&str] = &[
    "okta",
    "fenced",
    "snapshot",
    "qbusiness",
    "cancelled",
    "unknown_group",
    "approval",
];

/// A new `Outcome` variant stops compiling here, so that [`OUTCOMES`] gets it too.
fn _every_outcome_listed(outcome: Outcome) {
    match outcome {
        Outcome::Success | Outcome::Partial | Outcome::Held | Outcome::Failed => {}
    }
}

/// Exports at 0 every labelled counter the alerts and dashboard count with `increase()`, for
/// each value of its closed label sets, so that the first event is an increase Prometheus
/// sees (a series that first appears at 1 is not). Also the group-issue gauges, at 0 until the
/// first pass sets them.
pub fn register_known_series() {
    for outcome in OUTCOMES {
        for mode in ["sync", "plan"] {
            counter!(PASSES, "outcome" => outcome.as_str(), "mode" => mode).increment(0);
        }
    }
    for kind in PASS_FAILURE_KINDS {
        counter!(PASS_FAILURES, "kind" => *kind).increment(0);
    }
    for service in ["okta", "qbusiness"] {
        counter!(RATE_LIMITED, "service" => service).increment(0);
    }
    for bucket in OKTA_BUCKETS {
        counter!(OKTA_REQUESTS, "bucket" => bucket).increment(0);
    }
    for event in ["acquired", "lost"] {
        counter!(LEADERSHIP_CHANGES, "event" => event).increment(0);
    }
    for outcome in ["ok", "error", "reset"] {
        counter!(EVENT_POLLS, "outcome" => outcome).increment(0);
    }
    counter!(EVENTS).increment(0);
    counter!(EVENT_GROUPS).increment(0);
    for outcome in ["met", "missed"] {
        counter!(EVENT_DEADLINES, "outcome" => outcome).increment(0);
    }
    for result in USER_CHECK_RESULTS {
        counter!(USER_CHECKS, "result" => result).increment(0);
    }
    counter!(USER_CHANGES).increment(0);
    for change in ["added", "removed"] {
        counter!(MEMBERSHIP_CHANGES, "change" => change).increment(0);
    }
    for kind in IssueKind::ALL {
        gauge!(GROUP_ISSUES, "kind" => kind.as_str()).set(0.0);
    }
}

/// `result` of [`USER_CHECKS`].
const USER_CHECK_RESULTS: [&str; 3] = ["listing", "full_read", "failed"];

/// How a pass checked users' status and id changes (passes limited to some groups do not).
fn user_check(report: &RunReport) {
    use crate::report::UserCheckHow;
    let result = match (report.users.how, &report.users.error) {
        (UserCheckHow::NotChecked, _) => return,
        (UserCheckHow::FullRead, _) => "full_read",
        (UserCheckHow::Listing, None) => "listing",
        (UserCheckHow::Listing, Some(_)) => "failed",
    };
    counter!(USER_CHECKS, "result" => result).increment(1);
    counter!(USER_CHANGES).increment(report.users.users_changed as u64);
}

/// Help text and units of every series.
pub fn describe() {
    describe_counter!(
        USER_CHECKS,
        "Passes by how they found users whose status or id attribute changed: listing (Okta's users listing), full_read, failed (the listing or a lookup failed; the next pass retries)."
    );
    describe_counter!(
        USER_CHANGES,
        "Okta users whose effective Q identity (eligible, id) changed, found by the users listing; their groups are read again."
    );
    describe_counter!(
        EVENT_POLLS,
        "System Log polls (okta.events), by outcome (ok, error, reset: the saved position was unusable)."
    );
    describe_counter!(
        EVENTS,
        "Relevant System Log events read (membership, group and user lifecycle, profile updates)."
    );
    describe_counter!(
        EVENT_GROUPS,
        "Okta groups queued for a pass because the System Log reported them changed."
    );
    describe_counter!(
        EVENT_DEADLINES,
        "Events passes by whether they synced the System Log changes within okta.events.max_delay of the oldest change (met, missed)."
    );
    describe_gauge!(
        LEADER,
        "1 while this replica leads (runs passes and writes), else 0. Always 1 with SQLite."
    );
    describe_counter!(
        LEADERSHIP_CHANGES,
        "Leadership changes of this replica, by event (acquired, lost)."
    );
    describe_histogram!(
        LEADER_LOCK_WAIT,
        Unit::Seconds,
        "Time from when this replica last saw another hold the leader lock (or started, or lost it) until it acquired the lock."
    );
    describe_gauge!(
        HELD_CHANGES,
        "Destructive changes held by the circuit breaker and waiting for approval, by kind (delete, removal); 0 when nothing is held."
    );
    describe_counter!(
        PASSES,
        "Sync passes finished, by outcome (success, partial, held, failed) and mode (sync, plan)."
    );
    describe_counter!(PASS_FAILURES, "Passes that stopped early, by error kind.");
    describe_histogram!(PASS_DURATION, Unit::Seconds, "Duration of a whole pass.");
    describe_histogram!(
        PHASE_DURATION,
        Unit::Seconds,
        "Duration of each phase of a pass (okta_read, plan, apply)."
    );
    describe_gauge!(PASS_IN_PROGRESS, "1 while a pass is running, else 0.");
    describe_gauge!(GROUPS_IN_SCOPE, "Okta groups in scope in the last pass.");
    describe_gauge!(
        GROUPS_UNREAD,
        "In-scope groups whose members could not be read in the last pass."
    );
    describe_gauge!(
        GROUP_ISSUES,
        "In-scope groups not synced in the last pass, by kind (unread, over_member_limit, name_conflict, invalid_name, reserved_name, not_owned: Q already has a group of that name that q-group-sync did not create, ownership_unchecked: whether it has could not be checked)."
    );
    describe_gauge!(
        USERS_SKIPPED,
        "Okta users left out of groups in the last pass, by reason (status, missing_attribute, invalid_id)."
    );
    describe_gauge!(
        USER_COLLISIONS,
        "Q user ids claimed by more than one Okta user in the last pass."
    );
    describe_counter!(
        MEMBERSHIP_CHANGES,
        "Memberships applied to Q Business, by change (added, removed)."
    );
    describe_counter!(
        GROUP_WRITES,
        "Group writes to Q Business, by op (put, delete) and result (ok or an error kind)."
    );
    describe_counter!(
        API_REQUESTS,
        "HTTP requests sent, by service (okta, qbusiness), operation and status class (2xx, 3xx, 4xx, 429, 5xx, error)."
    );
    describe_counter!(
        OKTA_REQUESTS,
        "Okta requests sent (retries included), by rate-limit bucket (groups, logs, users, user, user_groups, oauth, other); rate() over a minute is the requests per minute each bucket gets from q-group-sync."
    );
    describe_counter!(RATE_LIMITED, "429 answers received, by service.");
    describe_histogram!(
        RATE_LIMIT_WAIT,
        Unit::Seconds,
        "Each wait for a rate limit before a retry, by service (_sum is the total time waited)."
    );
    describe_gauge!(
        OKTA_RATE_LIMIT_REMAINING,
        "X-Rate-Limit-Remaining of the last Okta answer, by bucket."
    );
    describe_gauge!(
        OKTA_RATE_LIMIT_LIMIT,
        "X-Rate-Limit-Limit of the last Okta answer, by bucket."
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time when the last successful sync pass finished."
    );
    describe_gauge!(
        SNAPSHOT_AGE,
        Unit::Seconds,
        "Seconds since the snapshot was last confirmed equal to Okta (the last successful sync pass)."
    );
    describe_counter!(
        TRIGGERS,
        "Pass requests received, by source (schedule, startup, admin) and result (started, coalesced, dry_run)."
    );
    describe_counter!(
        SCIM_REQUESTS,
        "SCIM requests answered, by method, route template and status class (2xx, 4xx, 5xx; 401 on its own)."
    );
}

/// Records a SCIM request's answer. `route` is the route template (a bounded set).
pub fn scim_request(method: &str, route: &str, status: u16) {
    let class = match status {
        401 => "401",
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let method = match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "other",
    };
    counter!(SCIM_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => class)
        .increment(1);
}

/// Records a finished pass.
pub fn pass_finished(report: &RunReport, elapsed: Duration) {
    let mode = match report.mode {
        crate::report::Mode::Plan => "plan",
        crate::report::Mode::Apply => "sync",
    };
    counter!(PASSES, "outcome" => report.outcome.as_str(), "mode" => mode).increment(1);
    if let Some(kind) = report.error_kind {
        counter!(PASS_FAILURES, "kind" => kind).increment(1);
    }
    histogram!(PASS_DURATION, "mode" => mode).record(elapsed.as_secs_f64());
    if report.mode == crate::report::Mode::Apply {
        user_check(report);
    }
    // Gauges describe the org as last synced: a dry run, a failed or a single-group pass leaves
    // them as they were.
    if report.mode == crate::report::Mode::Plan
        || report.group.is_some()
        || (report.groups_listed == 0 && report.error.is_some())
    {
        return;
    }
    gauge!(GROUPS_IN_SCOPE).set(report.groups_in_scope as f64);
    gauge!(GROUPS_UNREAD).set(report.groups_unread as f64);
    for kind in IssueKind::ALL {
        let n = report.plan.issues.iter().filter(|i| i.kind == kind).count();
        gauge!(GROUP_ISSUES, "kind" => kind.as_str()).set(n as f64);
    }
    let s = &report.plan.skipped;
    gauge!(USERS_SKIPPED, "reason" => "status").set(s.by_status.values().sum::<usize>() as f64);
    gauge!(USERS_SKIPPED, "reason" => "missing_attribute").set(s.missing_attribute as f64);
    gauge!(USERS_SKIPPED, "reason" => "invalid_id").set(s.invalid_id as f64);
    gauge!(USER_COLLISIONS).set(report.plan.collisions.len() as f64);
    held(
        report
            .plan
            .held
            .as_ref()
            .map_or((0, 0), |h| (h.deletes.len(), h.removal_count())),
    );
}

/// Sets the held-changes gauges (deletions, removals).
pub fn held((deletes, removals): (usize, usize)) {
    gauge!(HELD_CHANGES, "kind" => "delete").set(deletes as f64);
    gauge!(HELD_CHANGES, "kind" => "removal").set(removals as f64);
}

/// Records one phase's duration.
pub fn phase(phase: &'static str, elapsed: Duration) {
    histogram!(PHASE_DURATION, "phase" => phase).record(elapsed.as_secs_f64());
}

/// Records one applied or failed group write. `result` is `ok` or an error kind.
pub fn group_write(op: &'static str, result: &'static str, added: usize, removed: usize) {
    counter!(GROUP_WRITES, "op" => op, "result" => result).increment(1);
    if result == "ok" {
        counter!(MEMBERSHIP_CHANGES, "change" => "added").increment(added as u64);
        counter!(MEMBERSHIP_CHANGES, "change" => "removed").increment(removed as u64);
    }
}

/// Records one HTTP request's answer (`status` None: no answer, e.g. a connection error).
pub fn api_request(service: &'static str, operation: &'static str, status: Option<u16>) {
    let class = match status {
        Some(429) => "429",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) | None => "error",
    };
    counter!(API_REQUESTS, "service" => service, "operation" => operation, "status_class" => class)
        .increment(1);
    if status == Some(429) {
        counter!(RATE_LIMITED, "service" => service).increment(1);
    }
}

/// The buckets [`OKTA_REQUESTS`] counts by (`source::budget::bucket_of`'s answers).
pub const OKTA_BUCKETS: [&str; 7] = [
    "groups",
    "logs",
    "users",
    "user",
    "user_groups",
    "oauth",
    "other",
];

/// Counts one Okta request (retries included) against its rate-limit bucket.
pub fn okta_request(bucket: &'static str) {
    counter!(OKTA_REQUESTS, "bucket" => bucket).increment(1);
}

/// Records time spent waiting for a rate limit: `cause` is `throttled` (after a 429) or
/// `pacing` (staying within the budget).
pub fn rate_limit_wait(service: &'static str, cause: &'static str, waited: Duration) {
    histogram!(RATE_LIMIT_WAIT, "service" => service, "cause" => cause)
        .record(waited.as_secs_f64());
}

/// Records Okta's rate-limit headers for a bucket.
pub fn okta_rate_limit(bucket: &'static str, limit: Option<u64>, remaining: Option<u64>) {
    if let Some(limit) = limit {
        gauge!(OKTA_RATE_LIMIT_LIMIT, "bucket" => bucket).set(limit as f64);
    }
    if let Some(remaining) = remaining {
        gauge!(OKTA_RATE_LIMIT_REMAINING, "bucket" => bucket).set(remaining as f64);
    }
}

/// Sets whether a pass is running.
pub fn pass_in_progress(running: bool) {
    gauge!(PASS_IN_PROGRESS).set(if running { 1.0 } else { 0.0 });
}

/// Sets the last success time and the snapshot age (seconds).
pub fn freshness(last_success_unix: Option<f64>, now_unix: f64) {
    if let Some(t) = last_success_unix {
        gauge!(LAST_SUCCESS).set(t);
        gauge!(SNAPSHOT_AGE).set((now_unix - t).max(0.0));
    }
}

/// Sets whether this replica leads.
pub fn leader(is_leader: bool) {
    gauge!(LEADER).set(if is_leader { 1.0 } else { 0.0 });
}

/// Records a gain (`acquired`, with the time waited for the lock) or loss (`lost`) of
/// leadership.
pub fn leadership_change(event: &'static str, waited: Option<Duration>) {
    counter!(LEADERSHIP_CHANGES, "event" => event).increment(1);
    if let Some(waited) = waited {
        histogram!(LEADER_LOCK_WAIT).record(waited.as_secs_f64());
    }
    leader(event == "acquired");
}

/// One System Log poll: its outcome, the events read and the groups queued.
pub fn event_poll(outcome: &'static str, events: usize, groups: usize) {
    counter!(EVENT_POLLS, "outcome" => outcome).increment(1);
    counter!(EVENTS).increment(events as u64);
    counter!(EVENT_GROUPS).increment(groups as u64);
}

/// An events pass finished: whether it synced its changes within `okta.events.max_delay`.
pub fn event_deadline(met: bool) {
    counter!(EVENT_DEADLINES, "outcome" => if met { "met" } else { "missed" }).increment(1);
}

/// Records a pass request.
pub fn trigger(source: &'static str, result: &'static str) {
    counter!(TRIGGERS, "source" => source, "result" => result).increment(1);
}
