//! What the Q Business sink keeps between calls: the service's clock (from the `Date` of its
//! answers), the puts awaiting confirmation, the [`Readings`] in force, and the guard that
//! bounds every write.
//!
//! A put is confirmed only by a status of that put: GetGroup may go on answering the status
//! of an earlier put for a while (eventual consistency), and an earlier SUCCEEDED must not
//! confirm a put that later FAILS. A status counts as the put's when its `lastUpdatedAt` is
//! not earlier than the second of the put's answer on the service's clock (its `Date`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_qbusiness::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_qbusiness::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_qbusiness::error::BoxError;
use aws_sdk_qbusiness::types::GroupStatusDetail;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;

use super::readings::Readings;
use super::{GroupState, SinkError, SinkErrorKind};
use crate::leader::Leadership;
use crate::model::GroupName;

/// Loads the write probe's readings from the snapshot (`None`: none recorded, or unreadable).
pub type ReadingsLoader = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Shared by the clones of one sink.
#[derive(Default)]
pub(super) struct Tracker {
    /// The service's clock as last seen: a `Date` (epoch seconds) and when it arrived.
    clock: Mutex<Option<(i64, Instant)>>,
    /// Puts sent by this process that GetGroup has not confirmed yet, by group.
    puts: Mutex<BTreeMap<GroupName, PutMark>>,
    /// The newest `lastUpdatedAt` this process has seen of each group: a status seen before a
    /// put was sent is never that put's, even within the second of its answer.
    seen: Mutex<BTreeMap<GroupName, f64>>,
    /// What is known of Q Business's behaviour.
    readings: Mutex<Readings>,
    /// The listing in progress: the cutoff asked for, and the one sent in its place.
    listing: Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>,
    /// Loads the snapshot's readings, once, before they are first needed.
    loader: Mutex<Option<ReadingsLoader>>,
    loaded: tokio::sync::OnceCell<()>,
    /// Whether a status without `lastUpdatedAt` was reported already (once per process).
    warned_untimed: AtomicBool,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("readings", &*lock(&self.readings))
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose data stays valid if a holder panicked (plain values, no invariants).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A put awaiting its confirmation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PutMark {
    /// The service's `Date` on the put's answer (epoch seconds).
    pub at: i64,
    /// When that answer arrived here.
    pub answered: Instant,
    /// Q Business keeps no empty group, so the group was deleted instead: gone is done.
    pub deleted: bool,
    /// The newest status of the group seen before the put was sent.
    pub seen_before: Option<f64>,
}

impl Tracker {
    /// Notes a `Date` Q Business answered with. Each is a lower bound of the service's time
    /// (whole seconds, rounded down); the highest estimate is kept.
    pub fn note_clock(&self, date: i64) {
        let mut clock = lock(&self.clock);
        let keep = clock.is_some_and(|(secs, seen)| {
            secs.saturating_add(i64::try_from(seen.elapsed().as_secs()).unwrap_or(i64::MAX)) > date
        });
        if !keep {
            *clock = Some((date, Instant::now()));
        }
    }

    /// The service's time now, never ahead of it (`None` before its first answer).
    pub fn service_now(&self) -> Option<DateTime<Utc>> {
        let (secs, seen) = (*lock(&self.clock))?;
        let base = DateTime::<Utc>::from_timestamp(secs, 0)?;
        base.checked_add_signed(TimeDelta::from_std(seen.elapsed()).ok()?)
    }

    /// The service's time in whole seconds (rounded down), for a put's mark.
    pub fn service_secs(&self) -> Option<i64> {
        self.service_now().map(|t| t.timestamp())
    }

    pub fn mark(&self, group: &GroupName) -> Option<PutMark> {
        lock(&self.puts).get(group).copied()
    }

    pub fn set_mark(&self, group: &GroupName, mark: PutMark) {
        lock(&self.puts).insert(group.clone(), mark);
    }

    /// Notes the newest status time of one GetGroup answer for `group`.
    pub fn note_seen(&self, group: &GroupName, at: f64) {
        let mut seen = lock(&self.seen);
        let newest = seen.get(group).map_or(at, |known| known.max(at));
        seen.insert(group.clone(), newest);
    }

    /// The newest status time seen of `group`.
    pub fn seen(&self, group: &GroupName) -> Option<f64> {
        lock(&self.seen).get(group).copied()
    }

    pub fn clear_mark(&self, group: &GroupName) {
        lock(&self.puts).remove(group);
    }

    pub fn readings(&self) -> Readings {
        lock(&self.readings).clone()
    }

    pub fn set_readings(&self, readings: Readings) {
        *lock(&self.readings) = readings;
    }

    /// Changes the readings in force (what the sink learnt while working).
    pub fn learn(&self, change: impl FnOnce(&mut Readings)) {
        change(&mut lock(&self.readings));
    }

    pub fn set_loader(&self, loader: ReadingsLoader) {
        *lock(&self.loader) = Some(loader);
    }

    /// Loads the snapshot's readings once (if a loader was given); what the sink learnt
    /// since takes precedence over nothing, the probe's answers over the sink's guesses.
    pub async fn ensure_loaded(&self) {
        self.loaded
            .get_or_init(|| async {
                let loader = lock(&self.loader).clone();
                if let Some(loader) = loader
                    && let Some(text) = loader().await
                {
                    let recorded = Readings::from_json(&text);
                    tracing::info!(
                        probed_at = recorded.probed_at.map(|t| t.to_rfc3339()),
                        "using what the write probe learnt of Q Business (recorded in the snapshot)"
                    );
                    self.set_readings(recorded);
                }
            })
            .await;
    }

    /// The cutoff sent for the pages of the listing asked with `asked`.
    pub fn listing_cutoff(&self, asked: DateTime<Utc>) -> DateTime<Utc> {
        lock(&self.listing)
            .filter(|(a, _)| *a == asked)
            .map_or(asked, |(_, sent)| sent)
    }

    /// Replaces the cutoff of the listing asked with `asked`.
    pub fn set_listing_cutoff(&self, asked: DateTime<Utc>, sent: DateTime<Utc>) {
        *lock(&self.listing) = Some((asked, sent));
    }

    /// Whether a status without `lastUpdatedAt` is the first one seen (to warn once).
    pub fn first_untimed(&self) -> bool {
        !self.warned_untimed.swap(true, Ordering::Relaxed)
    }
}

/// Notes the `Date` of every answer to the tracker, and keeps the last one of this call.
#[derive(Debug, Clone)]
pub(super) struct Observe {
    tracker: Arc<Tracker>,
    last: Arc<Mutex<Option<i64>>>,
}

impl Observe {
    pub fn new(tracker: &Arc<Tracker>) -> Observe {
        Observe {
            tracker: Arc::clone(tracker),
            last: Arc::default(),
        }
    }

    /// The `Date` of this call's last answer (epoch seconds).
    pub fn date(&self) -> Option<i64> {
        *lock(&self.last)
    }
}

impl Intercept for Observe {
    fn name(&self) -> &'static str {
        "QGroupSyncServiceClock"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = context
            .response()
            .and_then(|r| r.headers().get("date"))
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        if let Some(date) = date {
            self.tracker.note_clock(date);
            *lock(&self.last) = Some(date);
        }
        Ok(())
    }
}

/// One entry of GetGroup's answer: a state and when it was reached (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub state: GroupState,
    pub at: Option<f64>,
}

impl Entry {
    pub fn of(detail: &GroupStatusDetail) -> Entry {
        Entry {
            state: state_of(Some(detail)),
            at: detail.last_updated_at().map(|t| t.as_secs_f64()),
        }
    }
}

/// The state of a put answered in second `put_at` (service clock): the newest entry
/// (current status, or one of `statusHistory`) updated in that second or later, and later than
/// `seen_before` (the newest status seen before the put was sent). `None`: the answer shows
/// nothing of the put yet (only statuses from before it, or none with a time).
pub(super) fn since_put(
    put_at: i64,
    seen_before: Option<f64>,
    current: Option<&Entry>,
    history: &[Entry],
) -> Option<GroupState> {
    #[allow(clippy::cast_precision_loss)]
    let from = put_at as f64;
    let is_new = |at: f64| at >= from && seen_before.is_none_or(|seen| at > seen);
    current
        .into_iter()
        .chain(history)
        .filter_map(|e| e.at.filter(|at| is_new(*at)).map(|at| (at, e)))
        // The newest; on a tie the current status (listed first) wins.
        .fold(None::<(f64, &Entry)>, |best, (at, e)| match best {
            Some((b, _)) if b >= at => best,
            _ => Some((at, e)),
        })
        .map(|(_, e)| e.state.clone())
}

/// Bounds every write: a deadline, and with leader election the lease, so that no write of a
/// replica lands after another one could have taken over.
#[derive(Clone)]
pub(super) struct WriteGuard {
    pub timeout: Duration,
    pub leadership: Option<Leadership>,
}

impl WriteGuard {
    /// Runs `write` unless this replica does not lead; abandons it (dropping the request and
    /// its retries) after the deadline or as soon as the lease could pass to another replica.
    pub async fn run<T>(
        &self,
        operation: &'static str,
        write: impl Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        let term = match &self.leadership {
            Some(l) => match l.current() {
                Some(term) => Some((l, term)),
                None => {
                    return Err(SinkError {
                        kind: SinkErrorKind::Fenced,
                        operation,
                        message: "not sent: this replica does not lead".to_owned(),
                    });
                }
            },
            None => None,
        };
        let lost = async {
            match &term {
                Some((l, term)) => l.lost(term).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = write => result,
            () = tokio::time::sleep(self.timeout) => Err(SinkError {
                kind: SinkErrorKind::Timeout,
                operation,
                message: format!(
                    "abandoned after {} (the write timeout); written again next pass",
                    humantime::format_duration(self.timeout)
                ),
            }),
            () = lost => Err(SinkError {
                kind: SinkErrorKind::Fenced,
                operation,
                message: "abandoned: this replica's leadership lease ended, so another replica may be writing".to_owned(),
            }),
        }
    }
}

/// Maps GetGroup's status onto [`GroupState`].
pub(super) fn state_of(status: Option<&aws_sdk_qbusiness::types::GroupStatusDetail>) -> GroupState {
    use aws_sdk_qbusiness::types::GroupStatus;
    let Some(detail) = status else {
        return GroupState::Processing;
    };
    match detail.status() {
        Some(GroupStatus::Succeeded) => GroupState::Succeeded,
        Some(GroupStatus::Failed) => {
            let (code, message) = detail.error_detail().map_or_else(
                || ("unknown".to_owned(), "no error detail".to_owned()),
                |d| {
                    (
                        d.error_code()
                            .map_or_else(|| "unknown".to_owned(), |c| c.as_str().to_owned()),
                        d.error_message().unwrap_or("no error message").to_owned(),
                    )
                },
            );
            GroupState::Failed { code, message }
        }
        Some(GroupStatus::Deleting) => GroupState::Deleting,
        Some(GroupStatus::Deleted) => GroupState::Deleted,
        // PROCESSING, or a status this SDK does not know yet: not done.
        _ => GroupState::Processing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: GroupState, at: f64) -> Entry {
        Entry {
            state,
            at: Some(at),
        }
    }

    #[test]
    fn an_earlier_success_does_not_confirm_a_later_put() {
        let old = entry(GroupState::Succeeded, 1_000.4);
        assert_eq!(
            since_put(1_005, None, Some(&old), std::slice::from_ref(&old)),
            None
        );
        let failed = entry(
            GroupState::Failed {
                code: "InternalError".into(),
                message: "x".into(),
            },
            1_005.7,
        );
        let history = [
            old.clone(),
            entry(GroupState::Processing, 1_005.2),
            failed.clone(),
        ];
        assert_eq!(
            since_put(1_005, None, Some(&old), &history),
            Some(failed.state)
        );
        // The put's own status in the second of its answer counts.
        let now = entry(GroupState::Succeeded, 1_005.0);
        assert_eq!(
            since_put(1_005, None, Some(&now), &[]),
            Some(GroupState::Succeeded)
        );
        // ... unless it was seen before the put was sent.
        assert_eq!(since_put(1_005, Some(1_005.0), Some(&now), &[]), None);
        let later = entry(GroupState::Succeeded, 1_005.3);
        assert_eq!(
            since_put(1_005, Some(1_005.0), Some(&later), &[]),
            Some(GroupState::Succeeded)
        );
        // Without a time nothing can be told apart: not confirmed.
        let untimed = Entry {
            state: GroupState::Succeeded,
            at: None,
        };
        assert_eq!(since_put(1_005, None, Some(&untimed), &[]), None);
        // The newest entry decides; the current status wins a tie.
        let processing = entry(GroupState::Processing, 1_006.0);
        let done = entry(GroupState::Succeeded, 1_006.0);
        assert_eq!(
            since_put(1_005, None, Some(&done), std::slice::from_ref(&processing)),
            Some(GroupState::Succeeded)
        );
    }

    #[test]
    fn the_service_clock_keeps_the_highest_estimate() {
        let t = Tracker::default();
        assert_eq!(t.service_now(), None);
        t.note_clock(2_000);
        t.note_clock(1_990);
        assert_eq!(t.service_secs(), Some(2_000));
        t.note_clock(2_010);
        assert_eq!(t.service_secs(), Some(2_010));
    }
}
