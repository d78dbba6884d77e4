//! `serve`: passes on a cron schedule and on demand, one at a time, plus the HTTP port.
//!
//! Every pass request (the schedule, start-up, an admin's POST /sync) goes into one queue. A
//! single runner takes passes from it one at a time; a request that arrives while an equal one
//! is queued joins it (one follow-up pass, however many requests). Dry runs wait for the pass
//! lock too, so Okta never sees two passes at once.
//!
//! Only the leader ([`Leadership`]) runs passes. With SQLite the process always leads; with
//! PostgreSQL a standby drops its scheduled ticks, refuses admin requests (naming the leader),
//! and runs a `takeover` pass as soon as it becomes leader, which finishes whatever the old
//! leader left (its intents mark those groups for rewriting). A pass runs under its term's
//! token, so losing leadership stops it between writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::cli::{Exit, ProductEngine, build_engine, open_state};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{Mode, NoProgress, PassRequest, RunReport};
use crate::leader::{LeaderInfo, LeaderView, Leadership};
use crate::metrics;
use crate::sink::QBusinessSink;
use crate::source::events::{FeedSettings, OktaChangeFeed};
use crate::store::SnapshotStore;
use crate::store::postgres::Elector;

/// A pass waiting to run or running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassTicket {
    pub pass_id: String,
    /// `schedule`, `startup` or `admin`.
    pub trigger: &'static str,
    /// The one group it is limited to, if any.
    pub group: Option<String>,
    /// The held plan this pass approves, if it is an approval.
    pub approve: Option<String>,
    /// Okta group ids changed according to the System Log (trigger `events`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The System Log position recorded once this pass has synced the changes before it.
    #[serde(skip)]
    pub events_cursor: Option<String>,
    pub requested_at: DateTime<Utc>,
}

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
    fn new(held: &crate::plan::safety::Held, since: DateTime<Utc>) -> HeldView {
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

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new pass was queued.
    Queued(String),
    /// An equal pass was already queued; this request joins it.
    Coalesced(String),
    /// The daemon is shutting down.
    ShuttingDown,
    /// This replica is a standby; the leader (if known) runs passes.
    Standby(Option<LeaderInfo>),
}

/// The last finished pass, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastPass {
    pub pass_id: Option<String>,
    pub run_id: Option<i64>,
    pub trigger: &'static str,
    pub group: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
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
    /// How the pass checked users' status and id changes.
    pub users: crate::engine::UserCheck,
    /// When the next full member read is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_full_read_at: Option<DateTime<Utc>>,
    /// Step by step, for a one-group pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::Trace>,
}

impl LastPass {
    fn from_report(trigger: &'static str, r: &RunReport) -> LastPass {
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
            users: r.users.clone(),
            next_full_read_at: r.next_full_read_at,
            trace: r.trace.clone(),
        }
    }
}

/// Mutable daemon state behind a std `Mutex`: every critical section is a few field updates,
/// never held across an `.await`.
#[derive(Debug, Default)]
struct State {
    queue: VecDeque<PassTicket>,
    running: Option<PassTicket>,
    last: Option<LastPass>,
    last_success: Option<DateTime<Utc>>,
    held: Option<HeldView>,
    passes_started: u64,
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
    pub last_pass: Option<LastPass>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Destructive changes waiting for approval (`q-group-sync approve <plan_id>` or POST /approve).
    pub held_plan: Option<HeldView>,
    /// Seconds since the snapshot was last confirmed equal to Okta (last successful full pass).
    pub snapshot_age_seconds: Option<f64>,
    /// Who leads, and whether this replica does (always with SQLite).
    pub leader: LeaderView,
}

/// What the HTTP handlers and the runner share.
pub struct Daemon {
    engine: Arc<ProductEngine>,
    leadership: Leadership,
    state: Mutex<State>,
    /// Held for the whole of any pass, dry runs included.
    pass_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    ready: AtomicBool,
    scheduler_alive: AtomicBool,
    runner_alive: AtomicBool,
    shutdown: CancellationToken,
    /// SHA-256 of the admin token; compared in constant time.
    admin_token_digest: Option<[u8; 32]>,
    metrics: Option<PrometheusHandle>,
    clock: Arc<dyn Clock>,
    schedule: String,
    cron: croner::Cron,
}

impl Daemon {
    /// Wires a daemon over an engine. `metrics` is the installed exporter's handle, if any.
    pub fn new(
        engine: ProductEngine,
        leadership: Leadership,
        admin_token: Option<SecretString>,
        metrics: Option<PrometheusHandle>,
        schedule: crate::schedule::Schedule,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Daemon>> {
        let cron = schedule.cron().clone();
        Ok(Arc::new(Daemon {
            engine: Arc::new(engine),
            leadership,
            state: Mutex::new(State::default()),
            pass_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            ready: AtomicBool::new(false),
            scheduler_alive: AtomicBool::new(false),
            runner_alive: AtomicBool::new(false),
            shutdown,
            admin_token_digest: admin_token.map(|t| digest(t.expose_secret())),
            metrics,
            clock: Arc::new(SystemClock),
            schedule: schedule.with_seconds().to_owned(),
            cron,
        }))
    }

    /// The engine passes run on.
    pub fn engine(&self) -> &ProductEngine {
        &self.engine
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a pass, or joins an equal one already queued (a full pass, or the same group).
    pub fn enqueue(&self, trigger: &'static str, group: Option<String>) -> Enqueued {
        self.enqueue_ticket(trigger, group, None)
    }

    /// Queues the approval of held plan `plan_id` (it runs as a pass, never beside another).
    pub fn enqueue_approval(&self, plan_id: String) -> Enqueued {
        self.enqueue_ticket("admin", None, Some(plan_id))
    }

    fn enqueue_ticket(
        &self,
        trigger: &'static str,
        group: Option<String>,
        approve: Option<String>,
    ) -> Enqueued {
        if self.shutdown.is_cancelled() {
            return Enqueued::ShuttingDown;
        }
        if !self.leadership.is_leader() {
            metrics::trigger(trigger, "standby");
            return Enqueued::Standby(self.leadership.view().leader);
        }
        let now = self.clock.now();
        let result = {
            let mut state = self.state();
            // A queued full pass covers a group pass; approvals only join the same approval;
            // event-driven passes are neither.
            if let Some(same) = state.queue.iter().find(|t| {
                t.approve == approve
                    && t.groups.is_empty()
                    && (t.group == group || (t.group.is_none() && approve.is_none()))
            }) {
                Enqueued::Coalesced(same.pass_id.clone())
            } else {
                state.passes_started += 1;
                let pass_id = new_pass_id(now, state.passes_started);
                state.queue.push_back(PassTicket {
                    pass_id: pass_id.clone(),
                    trigger,
                    group,
                    approve,
                    groups: Vec::new(),
                    events_cursor: None,
                    requested_at: now,
                });
                Enqueued::Queued(pass_id)
            }
        };
        match &result {
            Enqueued::Queued(id) => {
                info!(pass_id = %id, trigger, "pass queued");
                metrics::trigger(trigger, "started");
                self.wake.notify_one();
            }
            Enqueued::Coalesced(id) => {
                info!(pass_id = %id, trigger, "pass request joined the queued pass");
                metrics::trigger(trigger, "coalesced");
            }
            Enqueued::ShuttingDown | Enqueued::Standby(_) => {}
        }
        result
    }

    /// Queues a pass over the Okta groups the System Log reports changed (joining a queued one),
    /// to record `cursor` once it has synced them.
    pub fn enqueue_changed(&self, groups: BTreeSet<String>, cursor: String) -> Enqueued {
        if self.shutdown.is_cancelled() {
            return Enqueued::ShuttingDown;
        }
        if !self.leadership.is_leader() {
            metrics::trigger("events", "standby");
            return Enqueued::Standby(self.leadership.view().leader);
        }
        let now = self.clock.now();
        let result = {
            let mut state = self.state();
            if let Some(queued) = state.queue.iter_mut().find(|t| t.trigger == "events") {
                let mut all: BTreeSet<String> = queued.groups.drain(..).collect();
                all.extend(groups);
                queued.groups = all.into_iter().collect();
                queued.events_cursor = Some(cursor);
                Enqueued::Coalesced(queued.pass_id.clone())
            } else {
                state.passes_started += 1;
                let pass_id = new_pass_id(now, state.passes_started);
                state.queue.push_back(PassTicket {
                    pass_id: pass_id.clone(),
                    trigger: "events",
                    group: None,
                    approve: None,
                    groups: groups.into_iter().collect(),
                    events_cursor: Some(cursor),
                    requested_at: now,
                });
                Enqueued::Queued(pass_id)
            }
        };
        match &result {
            Enqueued::Queued(id) => {
                info!(pass_id = %id, trigger = "events", "pass queued");
                metrics::trigger("events", "started");
                self.wake.notify_one();
            }
            Enqueued::Coalesced(id) => {
                debug!(pass_id = %id, "changed groups joined the queued events pass");
                metrics::trigger("events", "coalesced");
            }
            Enqueued::ShuttingDown | Enqueued::Standby(_) => {}
        }
        result
    }

    /// Whether an events pass is queued or running (it records the System Log position itself
    /// once it has synced the changes before it).
    pub fn events_pending(&self) -> bool {
        let state = self.state();
        state
            .queue
            .iter()
            .chain(state.running.as_ref())
            .any(|t| t.trigger == "events")
    }

    /// Runs a dry run now (after any running pass) and returns its report.
    pub async fn dry_run(&self, group: Option<String>) -> RunReport {
        metrics::trigger("admin", "dry_run");
        let _pass = self.pass_lock.lock().await;
        let now = self.clock.now();
        let pass_id = {
            let mut state = self.state();
            state.passes_started += 1;
            new_pass_id(now, state.passes_started)
        };
        let request = PassRequest {
            mode: Mode::Plan,
            group,
            pass_id: Some(pass_id),
            trigger: "admin",
            approve: None,
            full: false,
            groups: Vec::new(),
        };
        self.engine
            .run_once(&request, &NoProgress, &self.shutdown.child_token())
            .await
    }

    /// The runner: takes queued passes one at a time until shutdown.
    async fn run(self: Arc<Self>) {
        self.runner_alive.store(true, Ordering::SeqCst);
        loop {
            let next = self.state().queue.front().cloned();
            let Some(ticket) = next else {
                if self.shutdown.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = self.shutdown.cancelled() => break,
                }
            };
            let _pass = self.pass_lock.lock().await;
            let Some(term) = self.leadership.current() else {
                // Leadership was lost since the pass was queued: the new leader runs passes.
                let dropped = std::mem::take(&mut self.state().queue);
                info!(
                    passes = dropped.len(),
                    "not the leader any more: queued passes dropped"
                );
                continue;
            };
            {
                let mut state = self.state();
                state.queue.pop_front();
                state.running = Some(ticket.clone());
            }
            let request = PassRequest {
                mode: Mode::Apply,
                group: ticket.group.clone(),
                pass_id: Some(ticket.pass_id.clone()),
                trigger: ticket.trigger,
                approve: ticket.approve.clone(),
                full: false,
                groups: ticket.groups.clone(),
            };
            let mut report = self
                .engine
                .run_once(&request, &NoProgress, &term.cancel)
                .await;
            if term.cancel.is_cancelled() && !self.shutdown.is_cancelled() {
                // Stopped because leadership was lost, whatever the engine saw first.
                let why = self.leadership.fence().err().unwrap_or_default();
                report.error_kind = Some("fenced");
                report.error = Some(format!(
                    "stopped: {why}; the new leader finishes the pass ({})",
                    report.error.as_deref().unwrap_or("no error before")
                ));
                if report.outcome != crate::engine::Outcome::Failed {
                    report.outcome = crate::engine::Outcome::Failed;
                }
            }
            if let Some(cursor) = &ticket.events_cursor
                && report.error.is_none()
                && let Err(e) = self.engine.store().set_events_cursor(cursor).await
            {
                warn!(error = %e, "could not record the System Log position; events are read again after a restart");
            }
            {
                let mut state = self.state();
                state.running = None;
                let full = report.group.is_none() && ticket.approve.is_none();
                if report.outcome == crate::engine::Outcome::Success && full {
                    state.last_success = Some(report.finished_at);
                }
                if report.error.is_none() && (full || ticket.approve.is_some()) {
                    let since = state
                        .held
                        .as_ref()
                        .filter(|h| report.plan.held.as_ref().is_some_and(|n| n.id == h.plan_id))
                        .map(|h| h.since);
                    state.held = report
                        .plan
                        .held
                        .as_ref()
                        .map(|h| HeldView::new(h, since.unwrap_or(report.finished_at)));
                }
                state.last = Some(LastPass::from_report(ticket.trigger, &report));
            }
            self.update_freshness();
            self.ready.store(true, Ordering::SeqCst);
            if self.shutdown.is_cancelled() {
                break;
            }
        }
        self.runner_alive.store(false, Ordering::SeqCst);
    }

    fn update_freshness(&self) {
        let last = self.state().last_success;
        metrics::freshness(
            last.map(|t| t.timestamp_millis() as f64 / 1000.0),
            self.clock.now().timestamp_millis() as f64 / 1000.0,
        );
    }

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
            next_scheduled_pass: if self.scheduler_alive.load(Ordering::SeqCst) {
                crate::schedule::next_fire(&self.cron, now)
            } else {
                None
            },
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

    /// `/readyz` (latches): config loaded, snapshot open, and first pass attempted (SQLite) or
    /// first election attempt made (PostgreSQL: a standby is ready too; it serves /status and
    /// /metrics).
    pub fn is_ready(&self) -> bool {
        if !self.ready.load(Ordering::SeqCst)
            && self.leadership.backend() != "sqlite"
            && self.leadership.decided()
        {
            self.ready.store(true, Ordering::SeqCst);
        }
        self.ready.load(Ordering::SeqCst)
    }

    /// Who leads, as `/status` shows it; admin endpoints refuse on a standby.
    pub fn leader_view(&self) -> LeaderView {
        self.leadership.view()
    }

    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Reloads what the run log and held plans say (another replica may have led).
    async fn refresh_from_store(&self) {
        let store = self.engine.store();
        match (store.last_success().await, store.held_plan(None).await) {
            (Ok(last_success), Ok(held)) => {
                let held = held.map(|r| HeldView::new(&r.held, r.created_at));
                metrics::held(held.as_ref().map_or((0, 0), |h| (h.deletes, h.removals)));
                let mut state = self.state();
                state.last_success = last_success.max(state.last_success);
                state.held = held;
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %crate::engine::error_chain(&e), "cannot read the run log and held plans");
            }
        }
        self.update_freshness();
    }

    /// Follows leadership: on becoming leader, reloads the shared state and queues a
    /// `takeover` pass; while a standby, reloads the shared state every 10 s for /status.
    async fn follow_leadership(self: Arc<Self>) {
        let mut changes = self.leadership.subscribe();
        // The epoch of the term a takeover pass was queued for.
        let mut seen_epoch = None;
        loop {
            let term = self.leadership.current();
            if let Some(term) = &term
                && seen_epoch != Some(term.epoch)
            {
                seen_epoch = Some(term.epoch);
                self.refresh_from_store().await;
                self.enqueue("takeover", None);
            }
            let leading = term.is_some();
            let wait = async {
                if leading {
                    changes.changed().await
                } else {
                    tokio::time::timeout(Duration::from_secs(10), changes.changed())
                        .await
                        .unwrap_or(Ok(()))
                }
            };
            tokio::select! {
                changed = wait => if changed.is_err() { break },
                _ = self.shutdown.cancelled() => break,
            }
            if !self.leadership.is_leader() {
                self.refresh_from_store().await;
            }
        }
    }

    /// `/livez`: the runner and the scheduler are alive (Okta or AWS being down does not matter).
    pub fn is_live(&self) -> bool {
        self.runner_alive.load(Ordering::SeqCst) && self.scheduler_alive.load(Ordering::SeqCst)
    }

    /// The status of held plan `id` (`held`, `applied`, `superseded`), if it exists.
    pub async fn held_status(&self, id: &str) -> Result<Option<String>, String> {
        match self.engine.store().held_plan(Some(id)).await {
            Ok(found) => Ok(found.map(|r| r.status)),
            Err(e) => Err(crate::engine::error_chain(&e)),
        }
    }

    /// Whether POST /sync is enabled.
    pub fn admin_enabled(&self) -> bool {
        self.admin_token_digest.is_some()
    }

    /// Checks a presented admin token in constant time.
    pub fn admin_token_matches(&self, presented: &str) -> bool {
        match &self.admin_token_digest {
            Some(expected) => constant_time_eq::constant_time_eq_32(expected, &digest(presented)),
            None => false,
        }
    }

    /// Prometheus text, with the freshness gauges brought up to date.
    pub fn render_metrics(&self) -> Option<String> {
        self.update_freshness();
        self.metrics.as_ref().map(PrometheusHandle::render)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Pass ids: time-ordered and unique within the process (`20261126T031500Z-3`).
fn new_pass_id(now: DateTime<Utc>, n: u64) -> String {
    format!("{}-{n}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Runs `serve` until `shutdown` is cancelled, then drains within `server.shutdown_grace`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<Exit> {
    let admin_token = config.admin_token()?;
    let handle =
        metrics::install().map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let opened = open_state(&config, Mode::Apply, &shutdown).await?;
    let leadership = opened.leadership.clone();
    let engine = build_engine(&config, sink, opened.store)?;
    let last_success = engine
        .store()
        .last_success()
        .await
        .context("reading the run log")?;
    let engine_held = engine
        .store()
        .held_plan(None)
        .await
        .context("reading held plans")?;
    let cron = config.schedule.cron_with_seconds();
    let daemon = Daemon::new(
        engine,
        leadership.clone(),
        admin_token,
        Some(handle.clone()),
        config.schedule.cron.clone(),
        shutdown.clone(),
    )?;
    let held = engine_held.map(|r| HeldView::new(&r.held, r.created_at));
    metrics::held(held.as_ref().map_or((0, 0), |h| (h.deletes, h.removals)));
    {
        let mut state = daemon.state();
        state.last_success = last_success;
        state.held = held;
    }
    daemon.update_freshness();
    metrics::pass_in_progress(false);

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    info!(addr = %addr, "listening");

    let runner = tokio::spawn(Arc::clone(&daemon).run());
    let poller = config.okta.events.enabled.then(|| {
        let feed = OktaChangeFeed::new(
            Arc::clone(daemon.engine().source()),
            FeedSettings::from_config(&config),
            Arc::new(SystemClock),
        );
        tokio::spawn(crate::events::run(
            Arc::clone(&daemon),
            feed,
            config.okta.events.clone(),
            {
                let d = Arc::clone(&daemon);
                move || d.is_leader()
            },
            shutdown.clone(),
        ))
    });
    let mut scheduler = start_scheduler(&daemon, &cron).await?;
    // With PostgreSQL, becoming leader queues the first pass (follow_leadership).
    let elector_stop = CancellationToken::new();
    let elector = opened.postgres.as_ref().map(|settings| {
        let elector = Elector::new(settings, leadership.clone(), Some(addr.to_string()));
        tokio::spawn(elector.run(elector_stop.clone()))
    });
    let follower = elector
        .is_some()
        .then(|| tokio::spawn(Arc::clone(&daemon).follow_leadership()));
    if elector.is_none() {
        if config.schedule.run_on_start {
            daemon.enqueue("startup", None);
        } else {
            daemon.ready.store(true, Ordering::SeqCst);
        }
    }

    let upkeep = {
        let handle = handle.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                    _ = stop.cancelled() => break,
                }
            }
        })
    };

    let server_stop = CancellationToken::new();
    let server = {
        let router = crate::http::router(Arc::clone(&daemon));
        let stop = server_stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };

    shutdown.cancelled().await;
    info!(grace = ?config.server.shutdown_grace, "shutting down: no new passes; letting writes in flight finish");
    daemon.scheduler_alive.store(false, Ordering::SeqCst);
    if let Err(e) = scheduler.shutdown().await {
        warn!(error = %e, "stopping the scheduler");
    }
    if let Some(poller) = poller {
        poller.abort();
    }
    let drained = tokio::time::timeout(config.server.shutdown_grace, runner).await;
    // Only now is the lock released: writes in flight were recorded under the term.
    elector_stop.cancel();
    if let Some(elector) = elector {
        let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
    }
    if let Some(follower) = follower {
        follower.abort();
    }
    upkeep.abort();
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    match drained {
        Ok(_) => {
            info!("stopped");
            Ok(Exit::Success)
        }
        Err(_) => {
            error!(
                "shutdown grace exceeded with a write still in flight; the next pass repeats it"
            );
            Ok(Exit::Failed)
        }
    }
}

/// Starts the cron job that queues scheduled passes.
async fn start_scheduler(daemon: &Arc<Daemon>, cron: &str) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("creating the scheduler")?;
    let d = Arc::clone(daemon);
    let job = Job::new_async(cron, move |_id, _lock| {
        let d = Arc::clone(&d);
        Box::pin(async move {
            d.enqueue("schedule", None);
        })
    })
    .with_context(|| format!("schedule.cron {cron:?}"))?;
    scheduler
        .add(job)
        .await
        .context("adding the scheduled job")?;
    scheduler.start().await.context("starting the scheduler")?;
    daemon.scheduler_alive.store(true, Ordering::SeqCst);
    info!(cron, next = ?crate::schedule::next_fire(&daemon.cron, daemon.clock.now()), "schedule started");
    Ok(scheduler)
}
