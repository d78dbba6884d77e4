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

use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::app::{Built, Exit, ProductEngine, StartError, build, open_state};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::engine::NoProgress;
use crate::leader::{LeaderInfo, LeaderView, Leadership};
use crate::metrics;
use crate::report::Trigger;
use crate::report::{Mode, PassRequest, RunReport};
use crate::sink::QBusinessSink;
use crate::store::StoreError;
use crate::store::postgres::Elector;

pub mod feed;
pub mod http;
mod queue;
pub mod scim_wake;

use scim_wake::ScimListener;
mod status;

pub use queue::{Daemon, Enqueued, PassTicket, Polling};
pub use status::{HeldView, LastPass, PassCounts, PublicStatus, Status};

/// Why `serve` could not start: the step that failed, with the cause in the chain.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("installing the metrics recorder: {0}")]
    Metrics(String),
    #[error("reading the run log")]
    RunLog(#[source] StoreError),
    #[error("reading held plans")]
    HeldPlans(#[source] StoreError),
    #[error("binding server.listen {0}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    #[error("reading the bound address")]
    Address(#[source] std::io::Error),
    #[error("binding scim.listen {0}")]
    ScimBind(std::net::SocketAddr, #[source] std::io::Error),
    /// Creating, filling or starting the scheduler; the text says which.
    #[error("{0}")]
    Schedule(String, #[source] JobSchedulerError),
}

impl ServeError {
    /// The configuration error this is, if it is one (exit 2).
    pub fn config(&self) -> Option<&ConfigError> {
        match self {
            ServeError::Config(e) => Some(e),
            ServeError::Start(e) => e.config(),
            _ => None,
        }
    }
}

/// Runs `serve` until `shutdown` is cancelled, then drains within `server.shutdown_grace`.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<Exit, ServeError> {
    // Cancelled by the caller, or here when the setup refused the first pass.
    let shutdown = shutdown.child_token();
    let admin_token = config.admin_token()?;
    let handle = metrics::install().map_err(ServeError::Metrics)?;
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let opened = open_state(&config, Mode::Apply, &shutdown).await?;
    let leadership = opened.leadership.clone();
    // The SCIM listener stores pushes in the same store the passes read them from.
    let scim_record = opened.store.clone();
    let Built { engine, feed } = build(&config, sink, opened.store)?;
    let polling = polling_of(&config);
    let cron = config.schedule.cron_with_seconds();
    let daemon = daemon_over(
        &config,
        engine,
        polling,
        DaemonParts {
            leadership: leadership.clone(),
            admin_token,
            metrics: handle.clone(),
            shutdown: shutdown.clone(),
        },
    )
    .await?;

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| ServeError::Bind(config.server.listen, e))?;
    let addr = listener.local_addr().map_err(ServeError::Address)?;
    info!(addr = %addr, "listening");

    let runner = tokio::spawn(Arc::clone(&daemon).run());
    let scim = match &config.scim {
        Some(scim) => Some(ScimListener::start(scim, scim_record, &daemon, &shutdown).await?),
        None => None,
    };
    let poller = spawn_feed(&daemon, feed, &config, &shutdown);
    let scheduler = match polling {
        Some(p) => Cadence::Polling(start_polling(&daemon, p.every)),
        None => Cadence::Cron(start_scheduler(&daemon, &cron).await?),
    };
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
            daemon.enqueue(Trigger::Startup, None);
        } else {
            daemon.ready.store(true, Ordering::SeqCst);
        }
    }

    let upkeep = spawn_upkeep(handle.clone(), shutdown.clone());

    let server_stop = CancellationToken::new();
    let server = {
        let router = http::router(Arc::clone(&daemon));
        let limits = http::PortLimits::from_config(&config.server);
        tokio::spawn(http::serve_port(
            listener,
            router,
            limits,
            server_stop.clone(),
            Duration::from_secs(1),
        ))
    };

    let refused = tokio::select! {
        _ = shutdown.cancelled() => None,
        refused = daemon.first_pass_refused() => Some(refused),
    };
    shutdown.cancel();
    info!(grace = ?config.server.shutdown_grace, "shutting down: no new passes; letting writes in flight finish");
    daemon.scheduler_alive.store(false, Ordering::SeqCst);
    let drained = Running {
        scheduler,
        poller,
        scim,
        runner,
        elector_stop,
        elector,
        follower,
        upkeep,
        server_stop,
        server,
    }
    .stop(config.server.shutdown_grace)
    .await;
    if let Some((error, fix)) = refused {
        // One line that names the fix; exit 2 makes the rollout fail instead of a pod that
        // looks healthy and never syncs.
        error!(error = %error, fix, "the first pass was refused: {fix}; exiting (2) until the setup is fixed");
        return Ok(Exit::Setup);
    }
    match drained {
        Ok(()) => {
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

/// What a daemon is wired with besides its engine.
struct DaemonParts {
    leadership: Leadership,
    admin_token: Option<SecretString>,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
}

/// The daemon over `engine`: incremental listing with `polling`, and the last success and
/// the held plan read from the snapshot so that `/status` and the metrics start from them.
async fn daemon_over(
    config: &Config,
    engine: ProductEngine,
    polling: Option<Polling>,
    parts: DaemonParts,
) -> Result<Arc<Daemon>, ServeError> {
    let engine = match polling {
        Some(p) => engine.with_incremental_listing(
            p.full_listing_every,
            p.full_rate,
            config.okta("serve").map_or(200, |o| o.page_size as usize),
            config.sync.margin(),
        ),
        None => engine,
    };
    let last_success = engine.last_success().await.map_err(ServeError::RunLog)?;
    let engine_held = engine
        .held_plan(None)
        .await
        .map_err(ServeError::HeldPlans)?;
    let daemon = Daemon::new(
        engine,
        parts.leadership,
        parts.admin_token,
        Some(parts.metrics),
        config.schedule.cron.clone(),
        polling,
        parts.shutdown,
    );
    let held = engine_held.map(|r| HeldView::new(&r.held, r.created_at));
    metrics::held(held.as_ref().map_or((0, 0), |h| (h.deletes, h.removals)));
    {
        let mut state = daemon.state();
        state.last_success = last_success;
        state.held = held;
    }
    daemon.update_freshness();
    metrics::pass_in_progress(false);
    Ok(daemon)
}

/// `serve`'s default with Okta: no `schedule.cron` set, so scheduled passes come every
/// `sync.poll_every` and list only what changed, with every group listed every
/// `sync.full_listing_every`. With `[scim]` (pushed, and woken by the pushes) or an explicit
/// `schedule.cron`, passes run on the cron schedule and list every group, as configured.
pub fn polling_of(config: &Config) -> Option<Polling> {
    (config.okta.is_some() && !config.schedule.cron.configured()).then_some(Polling {
        every: config.sync.poll_every,
        full_listing_every: config.sync.full_listing_every,
        full_rate: (config.sync.full_listing_rate > 0.0).then_some(config.sync.full_listing_rate),
    })
}

/// What queues the scheduled passes.
enum Cadence {
    Cron(JobScheduler),
    Polling(tokio::task::JoinHandle<()>),
}

impl Cadence {
    /// Queues no more passes.
    async fn stop(self) {
        match self {
            Cadence::Cron(mut scheduler) => {
                if let Err(e) = scheduler.shutdown().await {
                    warn!(error = %e, "stopping the scheduler");
                }
            }
            Cadence::Polling(task) => task.abort(),
        }
    }
}

/// The tasks `serve` runs, stopped in order at shutdown.
struct Running {
    scheduler: Cadence,
    poller: Option<tokio::task::JoinHandle<()>>,
    scim: Option<ScimListener>,
    runner: tokio::task::JoinHandle<()>,
    elector_stop: CancellationToken,
    elector: Option<tokio::task::JoinHandle<()>>,
    follower: Option<tokio::task::JoinHandle<()>>,
    upkeep: tokio::task::JoinHandle<()>,
    server_stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the schedule, the change feed and the SCIM listener, lets the pass runner finish
    /// within `grace` (`Err` when it did not), then releases the leader lock and stops the
    /// port.
    async fn stop(self, grace: Duration) -> Result<(), tokio::time::error::Elapsed> {
        self.scheduler.stop().await;
        if let Some(poller) = self.poller {
            poller.abort();
        }
        // Every change stored before this is applied by the next pass (this one's, or the next
        // start's): the record is the IdP's state.
        if let Some(scim) = self.scim {
            scim.stop().await;
        }
        let drained = tokio::time::timeout(grace, self.runner).await.map(|_| ());
        // Only now is the lock released: writes in flight were recorded under the term.
        self.elector_stop.cancel();
        if let Some(elector) = self.elector {
            let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
        }
        if let Some(follower) = self.follower {
            follower.abort();
        }
        self.upkeep.abort();
        self.server_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.server).await;
        drained
    }
}

/// The System Log feed's poller (`[okta.events]`), polling while this replica leads.
fn spawn_feed(
    daemon: &Arc<Daemon>,
    feed: Option<crate::source::okta::events::OktaChangeFeed>,
    config: &Config,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let events = config.okta.as_ref().map(|o| o.events.clone());
    feed.zip(events).map(|(feed, events)| {
        tokio::spawn(feed::run(
            Arc::clone(daemon),
            feed,
            events,
            {
                let d = Arc::clone(daemon);
                move || d.is_leader()
            },
            shutdown.clone(),
        ))
    })
}

/// The metrics exporter's upkeep every 5 s until `stop`.
fn spawn_upkeep(handle: PrometheusHandle, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                _ = stop.cancelled() => break,
            }
        }
    })
}

/// Queues a scheduled pass every `every` (the first one `every` after start: the start-up
/// pass comes first). A pass still running when the next is due is joined, not stacked.
fn start_polling(daemon: &Arc<Daemon>, every: Duration) -> tokio::task::JoinHandle<()> {
    let d = Arc::clone(daemon);
    let next = move |d: &Daemon| {
        let at = d.clock.now() + chrono::TimeDelta::from_std(every).unwrap_or_default();
        d.state().next_poll = Some(at);
    };
    next(&d);
    daemon.scheduler_alive.store(true, Ordering::SeqCst);
    info!(every = ?every, "checking Okta for changes (schedule.cron not set)");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    next(&d);
                    d.enqueue(Trigger::Schedule, None);
                }
                _ = d.shutdown.cancelled() => break,
            }
        }
    })
}

/// Starts the cron job that queues scheduled passes.
async fn start_scheduler(daemon: &Arc<Daemon>, cron: &str) -> Result<JobScheduler, ServeError> {
    let failed = |what: String| move |e| ServeError::Schedule(what, e);
    let scheduler = JobScheduler::new()
        .await
        .map_err(failed("creating the scheduler".into()))?;
    let d = Arc::clone(daemon);
    let job = Job::new_async(cron, move |_id, _lock| {
        let d = Arc::clone(&d);
        Box::pin(async move {
            d.enqueue(Trigger::Schedule, None);
        })
    })
    .map_err(failed(format!("schedule.cron {cron:?}")))?;
    scheduler
        .add(job)
        .await
        .map_err(failed("adding the scheduled job".into()))?;
    scheduler
        .start()
        .await
        .map_err(failed("starting the scheduler".into()))?;
    daemon.scheduler_alive.store(true, Ordering::SeqCst);
    info!(cron, next = ?crate::schedule::next_fire(&daemon.cron, daemon.clock.now()), "schedule started");
    Ok(scheduler)
}
