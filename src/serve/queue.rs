//! The daemon's pass queue: one pass at a time, equal requests coalesced, the leader only.

use super::*;

/// A pass waiting to run or running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassTicket {
    pub pass_id: String,
    /// `schedule`, `startup` or `admin`.
    pub trigger: Trigger,
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
    /// The oldest change this events pass syncs plus `okta.events.max_delay`: when it must
    /// have finished.
    #[serde(skip)]
    pub events_deadline: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
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

/// Mutable daemon state behind a std `Mutex`: every critical section is a few field updates,
/// never held across an `.await`.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) queue: VecDeque<PassTicket>,
    pub(super) running: Option<PassTicket>,
    pub(super) last: Option<LastPass>,
    pub(super) last_success: Option<DateTime<Utc>>,
    pub(super) held: Option<HeldView>,
    pub(super) passes_started: u64,
    /// When the next light pass is due (without `schedule.cron`).
    pub(super) next_poll: Option<DateTime<Utc>>,
}

/// What the HTTP handlers and the runner share.
pub struct Daemon {
    pub(super) engine: Arc<ProductEngine>,
    pub(super) leadership: Leadership,
    pub(super) state: Mutex<State>,
    /// Held for the whole of any pass, dry runs included.
    pub(super) pass_lock: tokio::sync::Mutex<()>,
    pub(super) wake: Notify,
    pub(super) ready: AtomicBool,
    /// Set once this process's first start-up (or takeover) pass has ended.
    pub(super) first_pass_done: AtomicBool,
    /// That pass's error and fix when the setup refused it (credentials, permissions): `serve`
    /// then exits 2 instead of retrying on the schedule. Cancelled once it is set.
    pub(super) setup_refused: CancellationToken,
    pub(super) refusal: Mutex<Option<(String, &'static str)>>,
    pub(super) scheduler_alive: AtomicBool,
    pub(super) runner_alive: AtomicBool,
    pub(super) shutdown: CancellationToken,
    /// SHA-256 of the admin token; compared in constant time.
    pub(super) admin_token_digest: Option<[u8; 32]>,
    pub(super) metrics: Option<PrometheusHandle>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) schedule: String,
    pub(super) cron: croner::Cron,
    /// Without `schedule.cron` (Okta): scheduled passes every `sync.poll_every`, not on `cron`.
    pub(super) polling: Option<Polling>,
}

/// `serve`'s default cadence with Okta: a light pass every `every`, a full listing every
/// `full_listing_every`, stretched in a large org so that it averages at most `full_rate`
/// requests a minute (`schedule.cron` not set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polling {
    pub every: Duration,
    pub full_listing_every: Duration,
    /// `sync.full_listing_rate`; `None` (0): never stretched.
    pub full_rate: Option<f64>,
}

impl Daemon {
    /// Wires a daemon over an engine. `metrics` is the installed exporter's handle, if any.
    pub fn new(
        engine: ProductEngine,
        leadership: Leadership,
        admin_token: Option<SecretString>,
        metrics: Option<PrometheusHandle>,
        schedule: crate::schedule::Schedule,
        polling: Option<Polling>,
        shutdown: CancellationToken,
    ) -> Arc<Daemon> {
        let cron = schedule.cron().clone();
        let written = match polling {
            Some(p) => {
                let stretch = p.full_rate.map_or(String::new(), |rate| {
                    format!(", or as its pages allow at {rate} requests a minute")
                });
                format!(
                    "every {} (every group listed every {}{stretch})",
                    humantime::format_duration(p.every),
                    humantime::format_duration(p.full_listing_every)
                )
            }
            None => schedule.with_seconds().to_owned(),
        };
        Arc::new(Daemon {
            engine: Arc::new(engine),
            leadership,
            state: Mutex::new(State::default()),
            pass_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            ready: AtomicBool::new(false),
            first_pass_done: AtomicBool::new(false),
            setup_refused: CancellationToken::new(),
            refusal: Mutex::new(None),
            scheduler_alive: AtomicBool::new(false),
            runner_alive: AtomicBool::new(false),
            shutdown,
            admin_token_digest: admin_token.map(|t| digest(t.expose_secret())),
            metrics,
            clock: Arc::new(SystemClock),
            schedule: written,
            cron,
            polling,
        })
    }

    /// The engine passes run on.
    pub fn engine(&self) -> &ProductEngine {
        &self.engine
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a pass, or joins an equal one already queued (a full pass, or the same group).
    pub fn enqueue(&self, trigger: Trigger, group: Option<String>) -> Enqueued {
        self.enqueue_ticket(trigger, group, None)
    }

    /// Queues the approval of held plan `plan_id` (it runs as a pass, never beside another).
    pub fn enqueue_approval(&self, plan_id: String) -> Enqueued {
        self.enqueue_ticket(Trigger::Admin, None, Some(plan_id))
    }

    fn enqueue_ticket(
        &self,
        trigger: Trigger,
        group: Option<String>,
        approve: Option<String>,
    ) -> Enqueued {
        if self.shutdown.is_cancelled() {
            return Enqueued::ShuttingDown;
        }
        if !self.leadership.is_leader() {
            metrics::trigger(trigger.as_str(), "standby");
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
                    events_deadline: None,
                    requested_at: now,
                });
                Enqueued::Queued(pass_id)
            }
        };
        match &result {
            Enqueued::Queued(id) => {
                info!(pass_id = %id, trigger = trigger.as_str(), "pass queued");
                metrics::trigger(trigger.as_str(), "started");
                self.wake.notify_one();
            }
            Enqueued::Coalesced(id) => {
                info!(pass_id = %id, trigger = trigger.as_str(), "pass request joined the queued pass");
                metrics::trigger(trigger.as_str(), "coalesced");
            }
            Enqueued::ShuttingDown | Enqueued::Standby(_) => {}
        }
        result
    }

    /// Queues a pass over the Okta groups the System Log reports changed (joining a queued one),
    /// to record `cursor` once it has synced them, by `deadline` (the oldest change plus
    /// `okta.events.max_delay`).
    pub fn enqueue_changed(
        &self,
        groups: BTreeSet<String>,
        cursor: String,
        deadline: Option<DateTime<Utc>>,
    ) -> Enqueued {
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
            if let Some(queued) = state
                .queue
                .iter_mut()
                .find(|t| t.trigger == Trigger::Events)
            {
                let mut all: BTreeSet<String> = queued.groups.drain(..).collect();
                all.extend(groups);
                queued.groups = all.into_iter().collect();
                queued.events_cursor = Some(cursor);
                queued.events_deadline = match (queued.events_deadline, deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Enqueued::Coalesced(queued.pass_id.clone())
            } else {
                state.passes_started += 1;
                let pass_id = new_pass_id(now, state.passes_started);
                state.queue.push_back(PassTicket {
                    pass_id: pass_id.clone(),
                    trigger: Trigger::Events,
                    group: None,
                    approve: None,
                    groups: groups.into_iter().collect(),
                    events_cursor: Some(cursor),
                    events_deadline: deadline,
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

    /// Resolves when this process's first start-up (or takeover) pass ended on the setup
    /// (credentials or permissions refused): its error and what to change.
    pub async fn first_pass_refused(&self) -> (String, &'static str) {
        self.setup_refused.cancelled().await;
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Whether an events pass is queued or running (it records the System Log position itself
    /// once it has synced the changes before it).
    pub fn events_pending(&self) -> bool {
        let state = self.state();
        state
            .queue
            .iter()
            .chain(state.running.as_ref())
            .any(|t| t.trigger == Trigger::Events)
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
            trigger: Trigger::Admin,
            approve: None,
            full: false,
            groups: Vec::new(),
        };
        self.engine
            .run_once(&request, &NoProgress, &self.shutdown.child_token())
            .await
    }

    /// The runner: takes queued passes one at a time until shutdown.
    pub(super) async fn run(self: Arc<Self>) {
        self.runner_alive.store(true, Ordering::SeqCst);
        // However the runner ends, a panic included, /livez fails from then on.
        let _alive = AliveGuard(Arc::clone(&self));
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
                if report.outcome != crate::report::Outcome::Failed {
                    report.outcome = crate::report::Outcome::Failed;
                }
            }
            if let Some(deadline) = ticket.events_deadline {
                report_deadline(&report, deadline);
            }
            if let Some(cursor) = &ticket.events_cursor
                && report.error.is_none()
                && let Err(e) = self.engine.record_events_cursor(cursor).await
            {
                warn!(error = %e, "could not record the System Log position; events are read again after a restart");
            }
            {
                let mut state = self.state();
                state.running = None;
                let full = report.group.is_none() && ticket.approve.is_none();
                if report.outcome == crate::report::Outcome::Success && full {
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
            let first = matches!(ticket.trigger, Trigger::Startup | Trigger::Takeover)
                && !self.first_pass_done.swap(true, Ordering::SeqCst);
            if let (true, Some(fix)) = (first, report.fix) {
                // Not ready: every pass would fail the same way until the setup is fixed.
                *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((report.error.clone().unwrap_or_default(), fix));
                self.setup_refused.cancel();
                break;
            }
            self.ready.store(true, Ordering::SeqCst);
            if self.shutdown.is_cancelled() {
                break;
            }
        }
    }

    pub(super) fn update_freshness(&self) {
        let last = self.state().last_success;
        metrics::freshness(
            last.map(|t| t.timestamp_millis() as f64 / 1000.0),
            self.clock.now().timestamp_millis() as f64 / 1000.0,
        );
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
    pub(super) async fn refresh_from_store(&self) {
        let engine = &self.engine;
        match (engine.last_success().await, engine.held_plan(None).await) {
            (Ok(last_success), Ok(held)) => {
                let held = held.map(|r| HeldView::new(&r.held, r.created_at));
                metrics::held(held.as_ref().map_or((0, 0), |h| (h.deletes, h.removals)));
                let mut state = self.state();
                state.last_success = last_success.max(state.last_success);
                state.held = held;
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %crate::error::error_chain(&e), "cannot read the run log and held plans");
            }
        }
        self.update_freshness();
    }

    /// Follows leadership: on becoming leader, reloads the shared state and queues a
    /// `takeover` pass; while a standby, reloads the shared state every 10 s for /status.
    pub(super) async fn follow_leadership(self: Arc<Self>) {
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
                self.enqueue(Trigger::Takeover, None);
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

    /// The status of held plan `id`, if it exists.
    pub async fn held_status(&self, id: &str) -> Result<Option<crate::store::HoldStatus>, String> {
        match self.engine.held_plan(Some(id)).await {
            Ok(found) => Ok(found.map(|r| r.status)),
            Err(e) => Err(crate::error::error_chain(&e)),
        }
    }

    /// `GET /explain`: why a user can or cannot see a document. Reads Okta, the snapshot and
    /// CheckDocumentAccess; never writes, never waits for a pass.
    pub async fn explain(
        &self,
        question: &crate::explain::Question<'_>,
    ) -> Result<crate::plan::explain::Explanation, crate::explain::ExplainError> {
        self.engine.explain(question).await
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

pub(super) fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Pass ids: time-ordered and unique within the process (`20261126T031500Z-3`).
pub(super) fn new_pass_id(now: DateTime<Utc>, n: u64) -> String {
    format!("{}-{n}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Clears `runner_alive` when the runner ends, by return or by panic.
struct AliveGuard(Arc<Daemon>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.runner_alive.store(false, Ordering::SeqCst);
        if std::thread::panicking() {
            error!("the pass runner stopped on a panic; /livez fails so the process is restarted");
        }
    }
}

/// Says whether an events pass synced its changes by `deadline` (`okta.events.max_delay` after
/// the oldest of them): a metric always, a warning when it did not.
fn report_deadline(report: &RunReport, deadline: DateTime<Utc>) {
    let synced = report.outcome == crate::report::Outcome::Success;
    let met = synced && report.finished_at <= deadline;
    metrics::event_deadline(met);
    if !met {
        let late = (report.finished_at - deadline)
            .to_std()
            .map(|d| {
                humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
            })
            .unwrap_or_else(|_| "0s".to_owned());
        warn!(
            pass_id = report.pass_id.as_deref().unwrap_or_default(),
            outcome = report.outcome.as_str(),
            late_by = %late,
            "okta.events.max_delay missed: the changes this events pass was queued for were not synced in time{}",
            if synced {
                " (the pass, or the System Log's delivery of the events, took longer; see q_group_sync_event_deadlines_total)"
            } else {
                "; the next scheduled pass syncs them"
            }
        );
    }
}
