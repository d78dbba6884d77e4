//! Who may write: this process's leadership, shared by the pass runner, the snapshot store's
//! fence and `/status`.
//!
//! With SQLite the process always leads. With PostgreSQL an elector
//! ([`crate::store::postgres::Elector`]) holds a session-level advisory lock and sets the
//! [`Term`] here while it holds it. A term ends at once when the lock's session is lost (or a
//! heartbeat fails or is late): its token is cancelled, which stops the pass, and the store's
//! writes are refused. Every snapshot write also checks the term's epoch against the database
//! in its own transaction; this module is the fast path, not the fence itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// One uninterrupted period of leadership.
#[derive(Debug, Clone)]
pub struct Term {
    /// The leader record's epoch, raised by every new leader; writes check it.
    pub epoch: i64,
    /// The database backend (session) holding the lock; writes check it still does.
    pub lock_pid: i32,
    /// When this term began.
    pub since: DateTime<Utc>,
    /// Cancelled when the term ends (or the process shuts down): passes run under it.
    pub cancel: CancellationToken,
    /// The term counts only until then, unless a heartbeat extends it (`None`: no expiry).
    valid_until: Option<Instant>,
}

/// A replica as the leader record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderInfo {
    pub replica: String,
    /// The leader's `server.listen` address as bound, or `None` for a one-shot command.
    pub address: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub epoch: i64,
}

/// `leader` in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderView {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// This replica's name.
    pub replica: String,
    pub is_leader: bool,
    /// `leader`, `standby`, or `disconnected` (the database cannot be reached).
    pub role: &'static str,
    /// Who leads, as far as this replica can see (`None`: nobody holds the lock, or unknown).
    pub leader: Option<LeaderInfo>,
    /// When this replica became leader, while it leads.
    pub since: Option<DateTime<Utc>>,
    /// Why this replica stopped leading (and writing), if it lost leadership.
    pub fenced_reason: Option<String>,
    /// The last error talking to the database about leadership, if any.
    pub error: Option<String>,
    /// Leadership gained or lost by this replica since start.
    pub changes: u64,
}

#[derive(Debug, Default)]
struct State {
    term: Option<Term>,
    leader: Option<LeaderInfo>,
    fenced_reason: Option<String>,
    error: Option<String>,
    connected: bool,
    /// Whether the first election attempt was made (ready to say who leads).
    decided: bool,
    changes: u64,
    /// When this replica last saw another one hold the lock (or started, or lost its own):
    /// the lock-wait metric measures from there to acquiring it.
    waiting_since: Option<Instant>,
}

struct Inner {
    backend: &'static str,
    replica: String,
    /// Terms' tokens are children of this one (the process's shutdown).
    parent: CancellationToken,
    state: Mutex<State>,
    /// Bumped on every gain or loss.
    changed: watch::Sender<u64>,
}

/// This process's leadership; cheap to clone.
#[derive(Clone)]
pub struct Leadership(Arc<Inner>);

impl Leadership {
    /// A process that always leads (SQLite: one replica, one writer). Its term ends only with
    /// `shutdown`.
    pub fn always(replica: String, shutdown: &CancellationToken) -> Leadership {
        let l = Leadership::new("sqlite", replica.clone(), shutdown);
        {
            let mut st = l.state();
            st.connected = true;
            st.decided = true;
            st.term = Some(Term {
                epoch: 0,
                lock_pid: 0,
                since: DateTime::<Utc>::UNIX_EPOCH,
                cancel: shutdown.clone(),
                valid_until: None,
            });
            st.leader = Some(LeaderInfo {
                replica,
                address: None,
                since: None,
                epoch: 0,
            });
        }
        metrics::leader(true);
        l
    }

    /// A replica that must win an election before it writes; starts as a standby.
    pub fn elected(
        backend: &'static str,
        replica: String,
        shutdown: &CancellationToken,
    ) -> Leadership {
        let l = Leadership::new(backend, replica, shutdown);
        l.state().waiting_since = Some(Instant::now());
        metrics::leader(false);
        l
    }

    fn new(backend: &'static str, replica: String, parent: &CancellationToken) -> Leadership {
        Leadership(Arc::new(Inner {
            backend,
            replica,
            parent: parent.clone(),
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn backend(&self) -> &'static str {
        self.0.backend
    }

    pub fn replica(&self) -> &str {
        &self.0.replica
    }

    /// The current term, if this replica leads and its lease has not run out.
    pub fn current(&self) -> Option<Term> {
        let st = self.state();
        st.term
            .as_ref()
            .filter(|t| t.valid_until.is_none_or(|u| Instant::now() < u))
            .filter(|t| !t.cancel.is_cancelled() || self.0.parent.is_cancelled())
            .cloned()
    }

    pub fn is_leader(&self) -> bool {
        self.current().is_some()
    }

    /// Whether the first election attempt was made: this replica knows whether it leads.
    pub fn decided(&self) -> bool {
        self.state().decided
    }

    /// Changes of leadership (the value counts them); for tasks that react to a takeover.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.changed.subscribe()
    }

    /// Begins a term: the lock is held and the leader record carries `epoch`. The term is
    /// valid until `valid_until` unless renewed.
    pub fn gain(&self, epoch: i64, lock_pid: i32, me: LeaderInfo, valid_until: Instant) -> Term {
        let term = Term {
            epoch,
            lock_pid,
            since: me.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            cancel: self.0.parent.child_token(),
            valid_until: Some(valid_until),
        };
        let waited = {
            let mut st = self.state();
            st.term = Some(term.clone());
            st.leader = Some(me);
            st.fenced_reason = None;
            st.error = None;
            st.connected = true;
            st.decided = true;
            st.changes += 1;
            st.waiting_since.take().map(|t| t.elapsed())
        };
        metrics::leadership_change("acquired", waited);
        self.0.changed.send_modify(|n| *n += 1);
        term
    }

    /// Resolves once `term` no longer makes this replica the leader: it was lost, or its lease
    /// ran out without a heartbeat answered in time (from then on a standby may take over).
    /// A shutdown alone does not end it: the lease stands until the lock is released.
    pub async fn lost(&self, term: &Term) {
        let mut changes = self.subscribe();
        loop {
            let valid_until = {
                let st = self.state();
                match &st.term {
                    Some(t) if t.epoch == term.epoch && t.lock_pid == term.lock_pid => {
                        t.valid_until
                    }
                    _ => return,
                }
            };
            if valid_until.is_some_and(|u| Instant::now() >= u) {
                return;
            }
            let until = valid_until.map(tokio::time::Instant::from_std);
            tokio::select! {
                () = async {
                    match until {
                        Some(u) => tokio::time::sleep_until(u).await,
                        None => std::future::pending().await,
                    }
                } => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// Extends the current term after a heartbeat sent at `sent_at` was answered.
    pub fn renew(&self, epoch: i64, sent_at: Instant, lease: Duration) {
        let mut st = self.state();
        if let Some(t) = st.term.as_mut().filter(|t| t.epoch == epoch) {
            t.valid_until = Some(sent_at + lease);
        }
    }

    /// Ends the current term, if any, because of `reason`: the pass under it is cancelled and
    /// writes are refused from now on.
    pub fn lose(&self, reason: &str) {
        if let Some(epoch) = self.end(Some(reason)) {
            tracing::error!(epoch, reason, "leadership lost: stopped writing");
        }
    }

    /// Ends the current term on shutdown, after the lock was released.
    pub fn resign(&self) {
        self.end(None);
    }

    fn end(&self, reason: Option<&str>) -> Option<i64> {
        let term = {
            let mut st = self.state();
            let term = st.term.take()?;
            st.fenced_reason = reason.map(str::to_owned);
            st.changes += 1;
            st.waiting_since = Some(Instant::now());
            if st.leader.as_ref().is_some_and(|l| l.epoch == term.epoch) {
                st.leader = None;
            }
            term
        };
        term.cancel.cancel();
        metrics::leadership_change("lost", None);
        self.0.changed.send_modify(|n| *n += 1);
        Some(term.epoch)
    }

    /// What a standby sees: who leads (`None`: nobody holds the lock), and whether the
    /// database answered (`error`).
    pub fn observe(&self, leader: Option<LeaderInfo>, error: Option<String>) {
        let mut st = self.state();
        st.connected = error.is_none();
        st.decided = true;
        st.error = error;
        if st.term.is_none() && st.connected {
            if leader.is_some() {
                st.waiting_since = Some(Instant::now());
            }
            st.leader = leader;
        }
    }

    /// The term's fence, for the store: `Err` says why this replica must not write.
    pub fn fence(&self) -> Result<Term, String> {
        match self.current() {
            Some(t) => Ok(t),
            None => {
                let st = self.state();
                Err(match (&st.term, &st.fenced_reason) {
                    (Some(_), _) => {
                        "the leadership lease ran out (no heartbeat answered in time)".to_owned()
                    }
                    (None, Some(reason)) => format!("not the leader any more: {reason}"),
                    (None, None) => "not the leader (a standby does not write)".to_owned(),
                })
            }
        }
    }

    /// `leader` in `/status`.
    pub fn view(&self) -> LeaderView {
        let term = self.current();
        let st = self.state();
        LeaderView {
            backend: self.0.backend,
            replica: self.0.replica.clone(),
            is_leader: term.is_some(),
            role: match (&term, st.connected) {
                (Some(_), _) => "leader",
                (None, true) => "standby",
                (None, false) => "disconnected",
            },
            leader: st.leader.clone(),
            since: term.map(|t| t.since),
            fenced_reason: st.fenced_reason.clone(),
            error: st.error.clone(),
            changes: st.changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(epoch: i64) -> LeaderInfo {
        LeaderInfo {
            replica: "a".into(),
            address: None,
            since: None,
            epoch,
        }
    }

    #[test]
    fn a_lost_term_cancels_its_pass_and_fences_writes() {
        let shutdown = CancellationToken::new();
        let l = Leadership::elected("postgres", "a".into(), &shutdown);
        assert!(l.fence().expect_err("standby").contains("standby"));
        let term = l.gain(7, 42, me(7), Instant::now() + Duration::from_secs(60));
        assert_eq!(l.fence().expect("leads").epoch, 7);
        assert_eq!(l.view().role, "leader");
        l.lose("the database session ended");
        assert!(term.cancel.is_cancelled());
        assert!(!shutdown.is_cancelled());
        let why = l.fence().expect_err("lost");
        assert!(why.contains("the database session ended"), "{why}");
        let v = l.view();
        assert_eq!((v.is_leader, v.changes), (false, 2));
        assert_eq!(
            v.fenced_reason.as_deref(),
            Some("the database session ended")
        );
    }

    #[test]
    fn an_expired_lease_is_not_leadership() {
        let shutdown = CancellationToken::new();
        let l = Leadership::elected("postgres", "a".into(), &shutdown);
        l.gain(1, 1, me(1), Instant::now());
        assert!(!l.is_leader());
        assert!(l.fence().expect_err("expired").contains("lease"));
        // A heartbeat sent now and answered renews it.
        l.renew(1, Instant::now(), Duration::from_secs(60));
        assert!(l.is_leader());
    }

    #[tokio::test]
    async fn lost_resolves_on_loss_and_when_the_lease_runs_out_but_not_on_shutdown() {
        let shutdown = CancellationToken::new();
        let l = Leadership::elected("postgres", "a".into(), &shutdown);
        let term = l.gain(1, 1, me(1), Instant::now() + Duration::from_millis(300));
        // Renewed in time: still leading after the first validity.
        l.renew(1, Instant::now(), Duration::from_millis(400));
        let started = Instant::now();
        l.lost(&term).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_secs(2),
            "{took:?}"
        );

        let term = l.gain(2, 1, me(2), Instant::now() + Duration::from_secs(60));
        let waiting = tokio::spawn({
            let (l, term) = (l.clone(), term.clone());
            async move { l.lost(&term).await }
        });
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a shutdown keeps the lease");
        l.lose("the database session ended");
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("lost resolves on loss")
            .expect("task");

        let always = Leadership::always("a".into(), &CancellationToken::new());
        let term = always.current().expect("leads");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), always.lost(&term))
                .await
                .is_err(),
            "SQLite's leadership is never lost"
        );
    }

    #[test]
    fn sqlite_always_leads_until_shutdown() {
        let shutdown = CancellationToken::new();
        let l = Leadership::always("a".into(), &shutdown);
        assert!(l.is_leader());
        shutdown.cancel();
        // Shutting down is not losing leadership: writes in flight are still recorded.
        assert!(l.fence().is_ok());
    }
}
