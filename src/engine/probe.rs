//! `check-config --write-probe`: puts, confirms and deletes a canary group so an admin proves
//! PutGroup, GetGroup and DeleteGroup before the first sync. A write to Q Business outside a
//! pass, so it lives with the engine; it touches nothing but its own canary.

use std::time::{Duration, Instant};

use crate::model::{GroupName, Members, UserId};
use crate::sink::{DeleteOutcome, GroupSink, GroupState, SinkError, SinkErrorKind};

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
/// deletes it, whatever happened after the put was sent. Refuses to touch a group that
/// already exists under that name. `delete_hint` is the command that deletes it by hand.
pub async fn write_probe(
    sink: &impl GroupSink,
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
    let members = Members::from_iter([UserId::from_normalised(PROBE_MEMBER)]);
    let started = Instant::now();
    let put = sink.put_group(canary, &members, &[]).await;
    match &put {
        Ok(()) => report.ok(format!("write probe: PutGroup ok (canary group {canary})")),
        Err(e) => report.failed(
            format!("write probe: FAILED: PutGroup {canary}: {e}; {iam} (qbusiness:PutGroup)"),
            Some(e),
        ),
    }
    if put.is_ok() {
        confirm(sink, canary, timeout, started, &mut report).await;
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
    report
}

/// GetGroup until the canary is SUCCEEDED or FAILED, or `timeout` passes.
async fn confirm(
    sink: &impl GroupSink,
    canary: &GroupName,
    timeout: Duration,
    started: Instant,
    report: &mut ProbeReport,
) {
    loop {
        match sink.group_state(canary).await {
            Ok(GroupState::Succeeded) => {
                report.ok(format!(
                    "write probe: GetGroup ok (SUCCEEDED after {:.1}s)",
                    started.elapsed().as_secs_f64()
                ));
                return;
            }
            Ok(GroupState::Failed { code, message }) => {
                report.failed(
                    format!(
                        "write probe: FAILED: Q Business accepted the PutGroup but processing FAILED ({code}: {message}); check the index is ACTIVE and its data source settings (qbusiness.data_source_id)"
                    ),
                    None,
                );
                return;
            }
            Ok(state @ (GroupState::Missing | GroupState::Deleted | GroupState::Deleting)) => {
                report.failed(
                    format!(
                        "write probe: FAILED: GetGroup after PutGroup answered {state:?}; another writer may be deleting groups in this index"
                    ),
                    None,
                );
                return;
            }
            Ok(GroupState::Processing) if started.elapsed() < timeout => {
                tokio::time::sleep(POLL).await;
            }
            Ok(GroupState::Processing) => {
                report.failed(
                    format!(
                        "write probe: FAILED: the canary was still PROCESSING after {} (qbusiness.verify_timeout); Q Business is slow or stuck, try again later",
                        humantime::format_duration(timeout)
                    ),
                    None,
                );
                return;
            }
            Err(e) => {
                report.failed(
                    format!(
                        "write probe: FAILED: GetGroup {canary}: {e}; allow it in the IAM policy (qbusiness:GetGroup)"
                    ),
                    Some(&e),
                );
                return;
            }
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
