//! Leader election: exactly one replica holds a session-level advisory lock on a dedicated
//! connection (not from the pool) and leads.
//!
//! A standby tries the lock every `retry` and reads the leader record to show who leads. On
//! acquiring it, a replica raises the leader record's epoch (the fence every write checks) and
//! writes its name and address there. The leader then checks every `heartbeat` that it still
//! holds the lock and the epoch is its own; a failed, late or unanswered heartbeat, or the
//! session closing, ends its term at once (the pass is cancelled and writes are refused), and
//! it goes back to contending as a standby on a new session.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connect::PgSettings;
use crate::leader::{LeaderInfo, Leadership};
use crate::store::StoreError;

/// First key of the advisory locks (`"QGS1"`); the second is derived from the schema, so
/// deployments in different schemas of one database do not contend.
pub const LOCK_NAMESPACE: i32 = 0x5147_5331;

/// The schema's lock key: FNV-1a of its name, as a non-negative `int4`.
pub fn lock_key(schema: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in schema.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

/// A connection of its own that holds (or tries) the lock.
struct Session {
    client: tokio_postgres::Client,
    /// The connection task; it ends when the server closes the session.
    conn: JoinHandle<()>,
    /// Cancelled when the connection task ended, with why in `ended`.
    closed: CancellationToken,
    ended: Arc<Mutex<Option<String>>>,
}

impl Session {
    fn end_reason(&self) -> String {
        let why = self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match why {
            Some(e) => format!("the database closed the session: {e}"),
            None => "the database closed the session".to_owned(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the socket: the server ends the session and releases the lock.
        self.conn.abort();
    }
}

enum Standby {
    Acquired(Session, i64),
    Failed(String),
    Stopped,
}

enum Lead {
    Lost(String),
    Stopped,
}

/// Contends for and keeps leadership on behalf of a [`Leadership`].
pub struct Elector {
    settings: PgSettings,
    leadership: Leadership,
    /// This replica's HTTP address for the leader record (`None` for one-shot commands).
    address: Option<String>,
    schema: String,
    key: i32,
}

/// Leadership taken by a one-shot command; [`CommandLease::release`] gives it back.
pub struct CommandLease {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl CommandLease {
    /// Releases the lock (and waits until it is released).
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl Elector {
    pub fn new(settings: &PgSettings, leadership: Leadership, address: Option<String>) -> Elector {
        Elector {
            settings: settings.clone(),
            leadership,
            address,
            schema: format!("\"{}\"", settings.schema),
            key: lock_key(&settings.schema),
        }
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.schema)
    }

    /// `serve`: contends until `stop`, leading whenever this replica holds the lock. On `stop`
    /// a leader releases the lock, so a standby takes over at once.
    pub async fn run(self, stop: CancellationToken) {
        let mut delay = Duration::ZERO;
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => break,
            }
            delay = self.settings.timings.retry;
            let result = match self.connect().await {
                Ok(session) => self.stand_by(session, &stop).await,
                Err(e) => Standby::Failed(e),
            };
            let (session, epoch) = match result {
                Standby::Stopped => break,
                Standby::Failed(e) => {
                    if last_error.as_ref() != Some(&e) {
                        warn!(target = self.settings.target(), error = %e, "cannot reach the database for leader election; retrying");
                    }
                    self.leadership.observe(None, Some(e.clone()));
                    last_error = Some(e);
                    continue;
                }
                Standby::Acquired(session, epoch) => (session, epoch),
            };
            last_error = None;
            match self.lead(&session, epoch, &stop).await {
                Lead::Stopped => {
                    self.release(session).await;
                    break;
                }
                Lead::Lost(reason) => {
                    drop(session);
                    self.leadership.lose(&reason);
                }
            }
        }
    }

    /// One-shot commands (`sync`, `approve`, `reconcile --adopt`): takes the lock now, or fails
    /// naming the replica that holds it. Keeps it (with heartbeats) until released.
    pub async fn acquire(self) -> Result<CommandLease, StoreError> {
        let not_leader = |reason: String| StoreError::Fenced {
            op: "take the leader lock",
            reason,
        };
        let session = self.connect().await.map_err(not_leader)?;
        let epoch = match self.try_take(&session).await.map_err(not_leader)? {
            Some(epoch) => epoch,
            None => {
                let holder = match self.holder(&session).await {
                    Ok(Some(l)) => describe(&l),
                    _ => "another replica".to_owned(),
                };
                return Err(not_leader(format!(
                    "{holder} leads: run this through the leader (POST /sync or /approve), or stop it first"
                )));
            }
        };
        let stop = CancellationToken::new();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                match self.lead(&session, epoch, &stop).await {
                    Lead::Stopped => self.release(session).await,
                    Lead::Lost(reason) => self.leadership.lose(&reason),
                }
            })
        };
        Ok(CommandLease { stop, task })
    }

    async fn connect(&self) -> Result<Session, String> {
        let (client, conn) = self
            .settings
            .connect_lock_session()
            .await
            .map_err(|e| crate::error::error_chain(&e))?;
        let closed = CancellationToken::new();
        let ended = Arc::new(Mutex::new(None));
        let conn = {
            let (closed, ended) = (closed.clone(), Arc::clone(&ended));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    *ended.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(crate::error::error_chain(&e));
                }
                closed.cancel();
            })
        };
        Ok(Session {
            client,
            conn,
            closed,
            ended,
        })
    }

    /// Tries the lock every `retry` on `session`, showing who leads meanwhile.
    async fn stand_by(&self, session: Session, stop: &CancellationToken) -> Standby {
        loop {
            match self.try_take(&session).await {
                Ok(Some(epoch)) => return Standby::Acquired(session, epoch),
                Ok(None) => match self.holder(&session).await {
                    Ok(leader) => self.leadership.observe(leader, None),
                    Err(e) => return Standby::Failed(e),
                },
                Err(e) => return Standby::Failed(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.timings.retry) => {}
                _ = session.closed.cancelled() => return Standby::Failed(session.end_reason()),
                _ = stop.cancelled() => return Standby::Stopped,
            }
        }
    }

    /// `pg_try_advisory_lock`, then (when taken) a new epoch in the leader record and a new
    /// term. `None`: another session holds the lock.
    async fn try_take(&self, session: &Session) -> Result<Option<i64>, String> {
        let (ns, key) = (super::LOCK_NAMESPACE, self.key);
        let sent = Instant::now();
        let taken: bool = timeout(
            self.settings.timings.heartbeat_timeout,
            session
                .client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&ns, &key]),
        )
        .await?
        .get(0);
        if !taken {
            return Ok(None);
        }
        // Waits for any transaction of an old leader that checked the old epoch (FOR SHARE).
        let bumped = timeout(
            self.settings.timings.takeover,
            session.client.query_one(
                &self.sql(
                    "UPDATE {s}.leader SET epoch = epoch + 1, replica = $1, address = $2,
                       pid = pg_backend_pid(), since = now()
                     WHERE id = 1 RETURNING epoch, since, pid",
                ),
                &[&self.settings.replica, &self.address],
            ),
        )
        .await;
        let row = match bumped {
            Ok(row) => row,
            Err(e) => {
                let _ = session
                    .client
                    .execute("SELECT pg_advisory_unlock($1, $2)", &[&ns, &key])
                    .await;
                return Err(format!("raising the leader epoch: {e}"));
            }
        };
        let (epoch, since, pid): (i64, chrono::DateTime<chrono::Utc>, i32) =
            (row.get(0), row.get(1), row.get(2));
        let me = LeaderInfo {
            replica: self.settings.replica.clone(),
            address: self.address.clone(),
            since: Some(since),
            epoch,
        };
        self.leadership
            .gain(epoch, pid, me, sent + self.settings.timings.lease);
        info!(epoch, replica = %self.settings.replica, "leadership acquired: this replica runs the passes");
        Ok(Some(epoch))
    }

    /// Who holds the lock, per the leader record (`None`: nobody holds it now).
    async fn holder(&self, session: &Session) -> Result<Option<LeaderInfo>, String> {
        let row = timeout(
            self.settings.timings.heartbeat_timeout,
            session.client.query_one(
                &self.sql(
                    "SELECT l.replica, l.address, l.since, l.epoch, EXISTS (
                         SELECT 1 FROM pg_locks k
                         WHERE k.locktype = 'advisory' AND k.classid = $1::int4::oid
                           AND k.objid = $2::int4::oid AND k.objsubid = 2 AND k.pid = l.pid
                           AND k.granted)
                     FROM {s}.leader l WHERE l.id = 1",
                ),
                &[&super::LOCK_NAMESPACE, &self.key],
            ),
        )
        .await?;
        let holds: bool = row.get(4);
        Ok(holds.then(|| LeaderInfo {
            replica: row.get::<_, Option<String>>(0).unwrap_or_default(),
            address: row.get(1),
            since: row.get(2),
            epoch: row.get(3),
        }))
    }

    /// Heartbeats until the term ends (`Lost`) or `stop`.
    async fn lead(&self, session: &Session, epoch: i64, stop: &CancellationToken) -> Lead {
        let t = self.settings.timings;
        let heartbeat = self.sql(
            "SELECT l.epoch = $3 AND EXISTS (
                 SELECT 1 FROM pg_locks k
                 WHERE k.locktype = 'advisory' AND k.classid = $1::int4::oid
                   AND k.objid = $2::int4::oid AND k.objsubid = 2
                   AND k.pid = pg_backend_pid() AND k.granted)
             FROM {s}.leader l WHERE l.id = 1",
        );
        loop {
            tokio::select! {
                _ = tokio::time::sleep(t.heartbeat) => {}
                _ = stop.cancelled() => return Lead::Stopped,
                _ = session.closed.cancelled() => {
                    return Lead::Lost(format!("{} (it held the leader lock)", session.end_reason()));
                }
            }
            let sent = Instant::now();
            let answer = timeout(
                t.heartbeat_timeout,
                session
                    .client
                    .query_one(&heartbeat, &[&super::LOCK_NAMESPACE, &self.key, &epoch]),
            )
            .await;
            match answer {
                Ok(row) if row.get::<_, bool>(0) => {
                    self.leadership.renew(epoch, sent, t.lease);
                }
                Ok(_) => {
                    return Lead::Lost(
                        "another replica holds the leader lock or raised the epoch".to_owned(),
                    );
                }
                Err(e) => {
                    return Lead::Lost(format!(
                        "the database session holding the leader lock failed: {e}"
                    ));
                }
            }
        }
    }

    async fn release(&self, session: Session) {
        let _ = tokio::time::timeout(
            self.settings.timings.heartbeat_timeout,
            session.client.execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&super::LOCK_NAMESPACE, &self.key],
            ),
        )
        .await;
        drop(session);
        self.leadership.resign();
        info!("leader lock released");
    }
}

/// Runs a query with a timeout; the error is a message (never containing the URL).
async fn timeout<T>(
    limit: Duration,
    query: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(crate::error::error_chain(&e)),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

fn describe(l: &LeaderInfo) -> String {
    match &l.address {
        Some(a) => format!("replica {} ({a})", l.replica),
        None => format!("replica {}", l.replica),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ_by_schema() {
        assert_eq!(lock_key("q_group_sync"), lock_key("q_group_sync"));
        assert_ne!(lock_key("q_group_sync"), lock_key("q_group_sync_2"));
        assert!(lock_key("q_group_sync") >= 0);
    }
}
