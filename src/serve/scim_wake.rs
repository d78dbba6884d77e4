//! The SCIM listener of `serve` (`[scim]`), and when SCIM changes become passes: once no change
//! has arrived for `scim.settle`, and at the latest `scim.max_delay` after the first change not
//! yet queued, the leader queues a full pass over the stored SCIM state.
//!
//! Changes arrive two ways: this replica's SCIM listener says so after each commit, and (for
//! changes stored through another replica, with PostgreSQL) the leader reads the store's change
//! counter every `poll`. Either only says "look again": the pass reads the whole stored state,
//! so a duplicate or spurious wake costs one pass that finds nothing to write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Daemon, ServeError, http};
use crate::clock::SystemClock;
use crate::config::ScimConfig;
use crate::report::Trigger;
use crate::scim::http::{ChangeHook, ScimSettings};
use crate::scim::record::ScimRecord;
use crate::store::Backend;

/// How often the leader reads the SCIM record's change counter (changes stored through a
/// standby reach Q within about this plus `scim.max_delay`).
pub const COUNTER_POLL: Duration = Duration::from_secs(1);

/// A SCIM request not answered within this gets 503 (a commit waiting on a busy store).
const SCIM_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The running SCIM listener and its waker.
pub struct ScimListener {
    server: JoinHandle<()>,
    waker: JoinHandle<()>,
    stop: CancellationToken,
}

impl ScimListener {
    /// Binds `scim.listen`, serves `/scim/v2` over `record`, and queues passes on `daemon` as
    /// changes settle. Logs `SCIM listening` with the bound address.
    pub async fn start(
        config: &ScimConfig,
        record: Backend,
        daemon: &Arc<Daemon>,
        shutdown: &CancellationToken,
    ) -> Result<ScimListener, ServeError> {
        let token = config.token()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError::ScimBind(config.listen, e))?;
        let addr = listener.local_addr().map_err(ServeError::Address)?;
        info!(addr = %addr, "SCIM listening");
        let record = Arc::new(record);
        let changed = Arc::new(Notify::new());
        let router = crate::scim::http::router(
            Arc::clone(&record),
            ScimSettings {
                body_limit: config.max_body,
                ..ScimSettings::new(token)
            },
            Arc::new(SystemClock),
            ChangeHook::notify(Arc::clone(&changed)),
        );
        let stop = CancellationToken::new();
        let server = tokio::spawn(http::serve_port(
            listener,
            router,
            http::PortLimits {
                header_read_timeout: config.header_read_timeout,
                request_timeout: SCIM_REQUEST_TIMEOUT,
                max_connections: config.max_connections,
            },
            stop.clone(),
            Duration::from_secs(2),
        ));
        let timing = WakeTiming {
            settle: config.settle,
            max_delay: config.max_delay,
            poll: COUNTER_POLL,
        };
        let (leader, queue) = (Arc::clone(daemon), Arc::clone(daemon));
        let waker = tokio::spawn(run(
            changed,
            move || {
                let record = Arc::clone(&record);
                async move { record.change_seq().await.ok() }
            },
            timing,
            move || leader.is_leader(),
            move || {
                queue.enqueue(Trigger::Scim, None);
            },
            shutdown.clone(),
        ));
        Ok(ScimListener {
            server,
            waker,
            stop,
        })
    }

    /// Stops accepting SCIM requests and lets those in flight finish (up to 2 s).
    pub async fn stop(self) {
        self.waker.abort();
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.server).await;
    }
}

/// The timing of [`run`].
#[derive(Debug, Clone, Copy)]
pub struct WakeTiming {
    /// Quiet time after the last change before a pass is queued.
    pub settle: Duration,
    /// Longest wait from the first change not yet queued.
    pub max_delay: Duration,
    /// How often the leader reads the store's change counter.
    pub poll: Duration,
}

/// Runs until `shutdown`: waits for `changed` (this replica's listener) or a moved `counter`
/// (read every `timing.poll` while `is_leader()`), then calls `queue` when the changes have
/// settled. `queue` runs only on the leader; a standby's own changes reach the leader through
/// the counter.
pub async fn run<C, F>(
    changed: Arc<Notify>,
    counter: C,
    timing: WakeTiming,
    is_leader: impl Fn() -> bool,
    queue: impl Fn(),
    shutdown: CancellationToken,
) where
    C: Fn() -> F,
    F: Future<Output = Option<u64>>,
{
    // Everything stored before start-up is covered by the start-up (or takeover) pass.
    let mut seen = counter().await;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut poll = tokio::time::interval(timing.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = first.map(|f| (last + timing.settle).min(f + timing.max_delay));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed.notified() => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            _ = poll.tick() => {
                if is_leader() {
                    let now_seen = counter().await;
                    if now_seen.is_some() && now_seen != seen {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                    }
                    seen = now_seen.or(seen);
                }
            }
            _ = sleep_until_opt(due) => {
                if is_leader() {
                    // Read before queueing: a change committed after this read moves the
                    // counter again and wakes another pass.
                    seen = counter().await.or(seen);
                    queue();
                }
                first = None;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    struct Rig {
        changed: Arc<Notify>,
        counter: Arc<AtomicU64>,
        leader: Arc<AtomicBool>,
        queued: Arc<AtomicUsize>,
        stop: CancellationToken,
    }

    fn start(settle_ms: u64, max_ms: u64) -> Rig {
        let rig = Rig {
            changed: Arc::new(Notify::new()),
            counter: Arc::new(AtomicU64::new(7)),
            leader: Arc::new(AtomicBool::new(true)),
            queued: Arc::new(AtomicUsize::new(0)),
            stop: CancellationToken::new(),
        };
        let (c, l, q) = (
            Arc::clone(&rig.counter),
            Arc::clone(&rig.leader),
            Arc::clone(&rig.queued),
        );
        tokio::spawn(run(
            Arc::clone(&rig.changed),
            move || {
                let c = Arc::clone(&c);
                async move { Some(c.load(Ordering::SeqCst)) }
            },
            WakeTiming {
                settle: Duration::from_millis(settle_ms),
                max_delay: Duration::from_millis(max_ms),
                poll: Duration::from_millis(1000),
            },
            move || l.load(Ordering::SeqCst),
            move || {
                q.fetch_add(1, Ordering::SeqCst);
            },
            rig.stop.clone(),
        ));
        rig
    }

    async fn advance(ms: u64) {
        for _ in 0..ms / 10 {
            tokio::time::advance(Duration::from_millis(10)).await;
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_pass_after_it_settles() {
        let rig = start(500, 3000);
        advance(20).await;
        for _ in 0..10 {
            rig.changed.notify_one();
            advance(100).await;
        }
        assert_eq!(rig.queued.load(Ordering::SeqCst), 0, "still arriving");
        advance(500).await;
        assert_eq!(rig.queued.load(Ordering::SeqCst), 1);
        advance(5000).await;
        assert_eq!(rig.queued.load(Ordering::SeqCst), 1, "nothing new, no pass");
        rig.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_still_gets_a_pass_every_max_delay() {
        let rig = start(500, 2000);
        advance(20).await;
        for _ in 0..60 {
            rig.changed.notify_one();
            advance(100).await;
        }
        // 6 s of changes 100 ms apart: a pass at 2, 4 and 6 s.
        let n = rig.queued.load(Ordering::SeqCst);
        assert!((2..=3).contains(&n), "{n} passes");
        advance(600).await;
        assert_eq!(rig.queued.load(Ordering::SeqCst), n + 1, "the tail settles");
        rig.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_sees_changes_stored_through_another_replica() {
        let rig = start(200, 1000);
        advance(20).await;
        rig.counter.store(9, Ordering::SeqCst);
        advance(1300).await;
        assert_eq!(rig.queued.load(Ordering::SeqCst), 1);
        advance(3000).await;
        assert_eq!(
            rig.queued.load(Ordering::SeqCst),
            1,
            "an unmoved counter wakes nothing"
        );
        rig.stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_queues_nothing() {
        let rig = start(200, 1000);
        rig.leader.store(false, Ordering::SeqCst);
        advance(20).await;
        rig.changed.notify_one();
        rig.counter.store(12, Ordering::SeqCst);
        advance(3000).await;
        assert_eq!(rig.queued.load(Ordering::SeqCst), 0);
        rig.stop.cancel();
    }
}
