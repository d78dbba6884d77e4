//! `check-config --write-probe`: puts, confirms and deletes a canary group so an admin proves
//! PutGroup, GetGroup and DeleteGroup before the first sync, and asks Q Business the questions
//! its documentation leaves open ([`Readings`], recorded in the snapshot for the passes).

use std::time::{Duration, Instant};

use super::qbusiness::ProbeForm;
use super::{
    DeleteOutcome, GroupSink, GroupState, QBusinessSink, Readings, SinkError, SinkErrorKind,
};
use crate::model::GroupName;

/// The one member of the canary group: a reserved `.invalid` address (RFC 2606), so the group
/// grants nothing to anyone.
pub const PROBE_MEMBER: &str = "write-probe@q-group-sync.invalid";

/// The canary's name: `<name_prefix>q-group-sync-write-probe-<host>-<pid>-<unix seconds>`,
/// unlike any Okta group's and unique per run.
pub fn canary_name(prefix: Option<&str>, host: &str, pid: u32, unix_secs: i64) -> GroupName {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    GroupName::new(format!(
        "{}q-group-sync-write-probe-{host}-{pid}-{unix_secs}",
        prefix.unwrap_or_default()
    ))
}

/// What the write probe found: each step's line, in order, and whether it passed.
#[derive(Debug, Default)]
pub struct ProbeReport {
    /// `(passed, line)`: one line per step, saying ok or what is wrong and what to do.
    pub lines: Vec<(bool, String)>,
    /// A refusal that configuration or permissions fix (exit 2), rather than a service failure.
    pub misconfigured: bool,
    /// The answers to the questions the AWS documentation leaves open (one line each above).
    pub readings: Readings,
}

impl ProbeReport {
    fn ok(&mut self, line: String) {
        self.lines.push((true, line));
    }

    fn failed(&mut self, line: String, err: Option<&SinkError>) {
        if err.is_some_and(|e| {
            matches!(
                e.kind,
                SinkErrorKind::AccessDenied | SinkErrorKind::NotFound | SinkErrorKind::Validation
            )
        }) {
            self.misconfigured = true;
        }
        self.lines.push((false, line));
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|(ok, _)| *ok)
    }
}

/// How long to wait between GetGroup calls while the canary is PROCESSING.
const POLL: Duration = Duration::from_millis(500);

/// Puts `canary` (one [`PROBE_MEMBER`]), waits up to `timeout` for SUCCEEDED or FAILED, then
/// asks Q Business the questions its documentation leaves open, one line each (is PROCESSING
/// visible right after a put; does a put that changes nothing get a status; is an empty member
/// list accepted; is an empty group; is a ListGroups cutoff in the future), and deletes the
/// canary, whatever happened after the put was sent. Refuses to touch a group that already
/// exists under that name. `delete_hint` is the command that deletes it by hand.
pub async fn write_probe(
    sink: &QBusinessSink,
    canary: &GroupName,
    timeout: Duration,
    delete_hint: &str,
) -> ProbeReport {
    let mut report = ProbeReport::default();
    let iam = "allow it in the IAM policy of the role q-group-sync runs with";
    // Never overwrite: the canary name must be free.
    match sink.group_state(canary).await {
        Ok(GroupState::Missing | GroupState::Deleted) => {}
        Ok(state) => {
            report.failed(
                format!(
                    "write probe: FAILED: a group named {canary} already exists ({state:?}); it was not touched. Run the probe again (the name changes each second)"
                ),
                None,
            );
            return report;
        }
        Err(e) => {
            report.failed(
                format!("write probe: FAILED: GetGroup {canary}: {e}; {iam} (qbusiness:GetGroup)"),
                Some(&e),
            );
            return report;
        }
    }
    let put = sink.probe_put(canary, ProbeForm::User(PROBE_MEMBER)).await;
    let answered = Instant::now();
    match &put {
        Ok(()) => report.ok(format!("write probe: PutGroup ok (canary group {canary})")),
        Err(e) => report.failed(
            format!("write probe: FAILED: PutGroup {canary}: {e}; {iam} (qbusiness:PutGroup)"),
            Some(e),
        ),
    }
    if put.is_ok()
        && let Some(first_seen) = confirm(sink, canary, timeout, answered, &mut report).await
    {
        questions(sink, canary, timeout, first_seen.as_ref(), &mut report).await;
    }
    // Deleted in every case once a put was sent (a refused put may still have created it).
    match sink.delete_group(canary).await {
        Ok(DeleteOutcome::Deleted) => {
            report.ok(format!("write probe: DeleteGroup ok (canary {canary} deleted)"))
        }
        Ok(DeleteOutcome::AlreadyGone) if put.is_err() => {
            report.ok(format!("write probe: no canary left behind ({canary} does not exist)"))
        }
        Ok(DeleteOutcome::AlreadyGone) => report.failed(
            format!(
                "write probe: FAILED: DeleteGroup {canary}: Q Business no longer had the group it accepted; check the index's other writers"
            ),
            None,
        ),
        Err(e) => report.failed(
            format!(
                "write probe: FAILED: DeleteGroup {canary}: {e}; {iam} (qbusiness:DeleteGroup), then delete the canary by hand: {delete_hint}"
            ),
            Some(&e),
        ),
    }
    report.readings.probed_at = Some(super::qbusiness::wall_clock());
    report
}

/// GetGroup until the canary's put is SUCCEEDED or FAILED, or `timeout` passes; notes whether
/// the first GetGroup already showed the put, and how long it took to show. When it
/// SUCCEEDED, what the first GetGroup showed of it.
async fn confirm(
    sink: &QBusinessSink,
    canary: &GroupName,
    timeout: Duration,
    answered: Instant,
    report: &mut ProbeReport,
) -> Option<Option<GroupState>> {
    let mut first = None;
    loop {
        let seen = sink.put_status(canary).await;
        if let Ok(status) = &seen {
            if first.is_none() {
                report.readings.processing_visible = Some(status.is_some());
                first = Some(status.clone());
            }
            if status.is_some() && report.readings.status_visible_after_ms.is_none() {
                let ms = u64::try_from(answered.elapsed().as_millis()).unwrap_or(u64::MAX);
                report.readings.status_visible_after_ms = Some(ms);
            }
        }
        match seen {
            Ok(Some(GroupState::Succeeded)) => {
                report.ok(format!(
                    "write probe: GetGroup ok (SUCCEEDED after {:.1}s)",
                    answered.elapsed().as_secs_f64()
                ));
                return Some(first.flatten());
            }
            Ok(Some(GroupState::Failed { code, message })) => {
                report.failed(
                    format!(
                        "write probe: FAILED: Q Business accepted the PutGroup but processing FAILED ({code}: {message}); check the index is ACTIVE and its data source settings (qbusiness.data_source_id)"
                    ),
                    None,
                );
                return None;
            }
            Ok(Some(
                state @ (GroupState::Missing | GroupState::Deleted | GroupState::Deleting),
            )) => {
                report.failed(
                    format!(
                        "write probe: FAILED: GetGroup after PutGroup answered {state:?}; another writer may be deleting groups in this index"
                    ),
                    None,
                );
                return None;
            }
            Ok(_) if answered.elapsed() < timeout => {
                tokio::time::sleep(POLL).await;
            }
            Ok(_) => {
                report.failed(
                    format!(
                        "write probe: FAILED: the canary was not SUCCEEDED after {} (qbusiness.verify_timeout); Q Business is slow or stuck, try again later",
                        humantime::format_duration(timeout)
                    ),
                    None,
                );
                return None;
            }
            Err(e) => {
                report.failed(
                    format!(
                        "write probe: FAILED: GetGroup {canary}: {e}; allow it in the IAM policy (qbusiness:GetGroup)"
                    ),
                    Some(&e),
                );
                return None;
            }
        }
    }
}

/// What GetGroup shows of the last put of `canary` within `wait`: its outcome (SUCCEEDED or
/// FAILED), `Some(None)` while only PROCESSING, `None` when nothing of it showed.
async fn outcome_within(
    sink: &QBusinessSink,
    canary: &GroupName,
    wait: Duration,
) -> Result<Option<Option<GroupState>>, SinkError> {
    let started = Instant::now();
    let mut seen = None;
    loop {
        match sink.put_status(canary).await? {
            Some(state @ (GroupState::Succeeded | GroupState::Failed { .. })) => {
                return Ok(Some(Some(state)));
            }
            Some(_) => seen = Some(None),
            None => {}
        }
        if started.elapsed() >= wait {
            return Ok(seen);
        }
        tokio::time::sleep(POLL.min(wait)).await;
    }
}

/// A state as GetGroup names it.
fn state_name(state: &GroupState) -> &'static str {
    match state {
        GroupState::Processing => "PROCESSING",
        GroupState::Succeeded => "SUCCEEDED",
        GroupState::Failed { .. } => "FAILED",
        GroupState::Deleting => "DELETING",
        GroupState::Deleted => "DELETED",
        GroupState::Missing => "no group",
    }
}

/// `yes`/`no`.
fn yes(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

/// The open questions, one line each, asked with the confirmed canary; the answers go to
/// `report.readings`.
async fn questions(
    sink: &QBusinessSink,
    canary: &GroupName,
    timeout: Duration,
    first_seen: Option<&GroupState>,
    report: &mut ProbeReport,
) {
    let r = &mut report.readings;
    let mut lines = vec![processing_line(r, first_seen)];
    lines.push(noop_question(sink, canary, timeout, r).await);
    for (form, what) in [
        (
            ProbeForm::EmptyList,
            "empty member list (memberUsers: []) accepted",
        ),
        (
            ProbeForm::NoList,
            "empty group (groupMembers without a list) accepted",
        ),
    ] {
        let accepted = empty_form_question(sink, canary, form, timeout, &mut lines).await;
        let (answer, known) = match accepted {
            Ok(v) => (yes(v).to_owned(), Some(v)),
            Err(text) => {
                let known = text.starts_with("no").then_some(false);
                (text, known)
            }
        };
        match form {
            ProbeForm::EmptyList => r.empty_list = known,
            _ => r.empty_group = known,
        }
        lines.push(format!("write probe: {what}: {answer}"));
    }
    let emptied = match (r.empty_list, r.empty_group) {
        (Some(true), _) => "an emptied group is put with memberUsers: []",
        (_, Some(true)) => "an emptied group is put without a member list",
        _ => "an emptied group is deleted in Q Business (and created again when it has members)",
    };
    lines.push(format!("write probe: so {emptied}"));
    lines.push(cutoff_question(sink, r).await);
    for line in lines {
        report.ok(line);
    }
}

/// Whether GetGroup showed the canary's put right after it was accepted (read from the
/// canary's confirmation).
fn processing_line(r: &Readings, first_seen: Option<&GroupState>) -> String {
    match r.processing_visible {
        Some(true) => match first_seen {
            Some(GroupState::Processing) | None => {
                "write probe: PROCESSING visible right after a put: yes".to_owned()
            }
            Some(state) => format!(
                "write probe: PROCESSING visible right after a put: its outcome already ({}, on the first GetGroup)",
                state_name(state)
            ),
        },
        _ => {
            let shown = r
                .status_visible_after_ms
                .map_or_else(String::new, |ms| format!("{:.1}s", ms as f64 / 1000.0));
            format!(
                "write probe: PROCESSING visible right after a put: no (GetGroup answered the status from before the put; the put showed after {shown}); puts are confirmed only by a status newer than the put"
            )
        }
    }
}

/// Whether a put that changes nothing moves the group's status.
async fn noop_question(
    sink: &QBusinessSink,
    canary: &GroupName,
    timeout: Duration,
    r: &mut Readings,
) -> String {
    // Long enough for a status to show, going by the canary's first put.
    let settle = Duration::from_millis(r.status_visible_after_ms.unwrap_or(0))
        .saturating_mul(3)
        .max(Duration::from_secs(10))
        .min(timeout);
    match sink.probe_put(canary, ProbeForm::User(PROBE_MEMBER)).await {
        Ok(()) => match outcome_within(sink, canary, settle).await {
            Ok(Some(_)) => {
                r.noop_moves_status = Some(true);
                "write probe: status moves on a put that changes nothing: yes".to_owned()
            }
            Ok(None) => {
                r.noop_moves_status = Some(false);
                let confirmed = r.noop_settle().unwrap_or_default();
                format!(
                    "write probe: status moves on a put that changes nothing: no (no newer status within {}); such a put is confirmed when no newer status shows within {}",
                    humantime::format_duration(settle),
                    humantime::format_duration(confirmed)
                )
            }
            Err(e) => format!(
                "write probe: status moves on a put that changes nothing: not known (GetGroup: {e})"
            ),
        },
        Err(e) => format!(
            "write probe: status moves on a put that changes nothing: not known (PutGroup: {e})"
        ),
    }
}

/// Whether Q Business takes the canary emptied in `form`: `Ok(answer)`, or `Err` with the
/// reason the answer is no or not known. After a yes the member is put back, so the next
/// form's put changes something (a put that changes nothing may get no status at all).
async fn empty_form_question(
    sink: &QBusinessSink,
    canary: &GroupName,
    form: ProbeForm<'_>,
    timeout: Duration,
    lines: &mut Vec<String>,
) -> Result<bool, String> {
    match sink.probe_put(canary, form).await {
        Ok(()) => match outcome_within(sink, canary, timeout).await {
            Ok(Some(Some(GroupState::Succeeded))) => {
                let restored = match sink.probe_put(canary, ProbeForm::User(PROBE_MEMBER)).await {
                    Ok(()) => outcome_within(sink, canary, timeout).await.ok().flatten(),
                    Err(_) => None,
                };
                if restored.is_none() {
                    lines.push(
                        "write probe: the canary's member could not be put back; the next answer may be wrong".to_owned(),
                    );
                }
                Ok(true)
            }
            Ok(Some(Some(GroupState::Failed { code, message }))) => {
                Err(format!("no (accepted, then FAILED: {code}: {message})"))
            }
            Ok(_) => Err("not known (no outcome in time)".to_owned()),
            Err(e) => Err(format!("not known (GetGroup: {e})")),
        },
        Err(e) if e.kind == SinkErrorKind::Validation => Err(format!("no ({})", e.message)),
        Err(e) => Err(format!("not known (PutGroup: {e})")),
    }
}

/// Whether ListGroups takes a cutoff in the future.
async fn cutoff_question(sink: &QBusinessSink, r: &mut Readings) -> String {
    match sink.future_cutoff_accepted().await {
        Ok(v) => {
            r.future_cutoff = Some(v);
            if v {
                "write probe: future ListGroups cutoff accepted: yes; listings ask for every group written before an hour from now".to_owned()
            } else {
                "write probe: future ListGroups cutoff accepted: no; listings ask with the service's own time".to_owned()
            }
        }
        Err(e) => {
            format!("write probe: future ListGroups cutoff accepted: not known (ListGroups: {e})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_name_is_unmistakable_and_valid() {
        let name = canary_name(Some("okta-"), "Pod_7.example", 42, 1_700_000_000);
        assert_eq!(
            name.as_str(),
            "okta-q-group-sync-write-probe-pod-7-example-42-1700000000"
        );
        assert!(crate::model::check_q_id(name.as_str()).is_ok());
    }
}
