//! High availability on PostgreSQL: two `serve` processes (the real binary) against the
//! emulators and one database. Each replica signs its Q Business calls with its own access
//! key, so the emulator's call log says which replica wrote what.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, Served, TOKEN, expected};
use q_group_sync_emulator::{OktaOptions, OktaOrg, QFault, QFaultAction};

const ADMIN: &str = "admin-token-0123456789abcdef";
const TAKEOVER: Duration = Duration::from_secs(5);

fn org(groups: usize) -> OktaOrg {
    common::org_with(groups, 10, |g| format!("team {g}"), |u, g| (u + g) % 3 != 0)
}

/// Emulators and a config for replicas sharing schema `schema` at `url`; Q Business puts take
/// `put_delay` and at most two are in flight per replica.
async fn harness(
    org: OktaOrg,
    url: &str,
    schema: &str,
    cron: &str,
    put_delay: Duration,
) -> Harness {
    let options = OktaOptions {
        token: TOKEN.into(),
        ..OktaOptions::default()
    };
    let extra = format!(
        "{}\n[schedule]\ncron = \"{cron}\"\n[server]\nadmin_token = \"{ADMIN}\"\nshutdown_grace = \"5s\"\n",
        common::postgres::state_toml(url, schema, &format!("{}s", TAKEOVER.as_secs()))
    );
    let h = Harness::start_with(org, options, &extra).await;
    let text = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text.replace("[qbusiness]", "[qbusiness]\nmax_concurrency = 2"),
    )
    .unwrap();
    if !put_delay.is_zero() {
        h.q.add_fault(QFault::always(QFaultAction::Delay(put_delay)).on_op("PutGroup"));
    }
    h
}

fn access_key(replica: &str) -> String {
    format!("AKIDREPLICA{}", replica.to_ascii_uppercase())
}

async fn replica(h: &Harness, name: &str) -> Served {
    let key = access_key(name);
    h.serve(&[
        ("Q_GROUP_SYNC_STATE__REPLICA", name),
        ("AWS_ACCESS_KEY_ID", key.as_str()),
    ])
    .await
}

/// Successful PutGroup calls: group -> the access keys that sent them, in order.
fn puts_by_group(h: &Harness) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in h.q.calls() {
        if c.op == "PutGroup" && c.status == 200 {
            out.entry(c.group.unwrap_or_default())
                .or_default()
                .push(c.access_key.unwrap_or_default());
        }
    }
    out
}

fn puts_from(h: &Harness, replica: &str) -> usize {
    let key = access_key(replica);
    h.q.calls()
        .iter()
        .filter(|c| c.op == "PutGroup" && c.status == 200 && c.access_key.as_deref() == Some(&key))
        .count()
}

/// Starts replica a, waits until it leads, then b, until it names a as the leader.
async fn leader_then_standby(h: &Harness) -> (Served, Served) {
    let a = replica(h, "a").await;
    a.wait_status(20, "a to lead", |st| st["leader"]["is_leader"] == true)
        .await;
    let b = replica(h, "b").await;
    b.wait_status(20, "b to see a lead", |st| {
        st["leader"]["leader"]["replica"] == "a"
    })
    .await;
    (a, b)
}

/// Waits until replica a has had `n` puts applied (mid-pass).
async fn wait_for_puts_from_a(h: &Harness, a: &Served, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while puts_from(h, "a") < n {
        assert!(
            Instant::now() < deadline,
            "a wrote nothing; logs:\n{}",
            a.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn leader_of(s: &Served) -> serde_json::Value {
    s.status().await["leader"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leads_both_name_it_and_the_standby_refuses_admin_requests() {
    let Some(url) = common::postgres::url("two_replicas") else {
        return;
    };
    let schema = common::postgres::schema("two_replicas");
    let h = harness(org(4), &url, &schema, "*/2 * * * * *", Duration::ZERO).await;
    let (a, b) = leader_then_standby(&h).await;
    let st = b.status().await;
    assert_eq!(st["leader"]["is_leader"], false);
    assert_eq!(st["leader"]["role"], "standby");
    assert_eq!(st["leader"]["backend"], "postgres");
    assert_eq!(
        st["leader"]["leader"]["address"],
        a.addr.to_string(),
        "the standby names the leader's address"
    );
    assert_eq!(b.get("/readyz").await.status(), 200, "a standby is ready");
    assert_eq!(b.get("/livez").await.status(), 200);

    // Scheduled passes run on the leader only.
    a.wait_status(20, "scheduled passes on a", |st| {
        st["last_pass"]["trigger"] == "schedule" && st["last_pass"]["outcome"] == "success"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sb = b.status().await;
    assert!(sb["last_pass"].is_null(), "b ran no pass: {sb:#}");
    assert_eq!(puts_from(&h, "b"), 0);
    assert_eq!(h.q_state(), expected(&h.okta.org()));
    let la = leader_of(&a).await;
    assert_eq!(
        (la["is_leader"].clone(), la["leader"]["replica"].clone()),
        (true.into(), "a".into())
    );

    // Admin requests on the standby: 503, naming the leader (after authentication).
    let resp = b.http.post(b.url("/sync")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    for path in ["/sync", "/sync?dry_run=true", "/approve?plan_id=abc"] {
        let resp = b
            .http
            .post(b.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains("standby") && msg.contains("replica a"),
            "{msg}"
        );
        assert_eq!(v["leader"]["leader"]["replica"], "a");
    }
    let resp = a
        .http
        .post(a.url("/sync"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    let ma = a.get("/metrics").await.text().await.unwrap();
    let mb = b.get("/metrics").await.text().await.unwrap();
    assert!(ma.contains("\nq_group_sync_leader 1\n"), "{ma}");
    assert!(mb.contains("\nq_group_sync_leader 0\n"), "{mb}");
    assert!(
        ma.contains("q_group_sync_leadership_changes_total{event=\"acquired\"} 1"),
        "{ma}"
    );
    assert!(
        ma.contains("q_group_sync_leader_lock_wait_seconds_count 1"),
        "{ma}"
    );
    assert!(
        mb.contains("q_group_sync_triggers_total{source=\"schedule\",result=\"standby\"}"),
        "{mb}"
    );
    // The password of the database URL is never logged.
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    for s in [&a, &b] {
        assert!(
            !s.logs().contains(&password),
            "the database password was logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_mid_pass_the_standby_takes_over_and_finishes() {
    let Some(url) = common::postgres::url("sigkill_leader") else {
        return;
    };
    let schema = common::postgres::schema("sigkill");
    let groups = 40;
    let h = harness(
        org(groups),
        &url,
        &schema,
        "0 0 0 1 1 *",
        Duration::from_millis(300),
    )
    .await;
    let (mut a, b) = leader_then_standby(&h).await;
    // Mid-pass: a few groups written, most not.
    wait_for_puts_from_a(&h, &a, 6).await;
    a.signal("-KILL");
    let killed = Instant::now();
    a.child.wait().await.unwrap();
    let applied_by_a = puts_from(&h, "a");
    assert!(
        applied_by_a < groups,
        "killed mid-pass ({applied_by_a} puts)"
    );

    let st = b
        .wait_status(TAKEOVER.as_secs() + 1, "b to lead", |st| {
            st["leader"]["is_leader"] == true
        })
        .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL of the leader: {takeover:?} (limit {TAKEOVER:?})");
    assert!(takeover <= TAKEOVER, "took {takeover:?}");
    assert_eq!(st["leader"]["leader"]["replica"], "b");
    let st = b
        .wait_status(60, "b's takeover pass", |st| {
            st["last_pass"]["trigger"] == "takeover" && st["pass_running"] == false
        })
        .await;
    assert_eq!(st["last_pass"]["outcome"], "success", "{st:#}");
    assert_eq!(h.q_state(), expected(&h.okta.org()), "Q ends equal to Okta");

    // Who wrote what. a recorded some puts in its term (the audit trail, by epoch); a group
    // Q accepted from a but that a did not record (its write or confirmation was in flight at
    // the kill, its intent left pending) is the only kind b may write again.
    let raw = common::postgres::raw(&url).await;
    let recorded_by_a: BTreeSet<String> = raw
        .query(
            &format!(
                "SELECT a.q_name FROM \"{schema}\".audit a JOIN \"{schema}\".runs r ON r.id = a.run_id
                 WHERE r.replica = 'a' AND a.op = 'put'"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let puts = puts_by_group(&h);
    let (key_a, key_b) = (access_key("a"), access_key("b"));
    let mut by_both = BTreeSet::new();
    for (group, keys) in &puts {
        let from_a = keys.iter().filter(|k| **k == key_a).count();
        let from_b = keys.iter().filter(|k| **k == key_b).count();
        assert!(
            from_a <= 1 && from_b <= 1,
            "{group} put {keys:?}: no replica repeats a change"
        );
        assert_eq!(
            from_a + from_b,
            keys.len(),
            "{group}: only the replicas write"
        );
        if from_a == 1 && from_b == 1 {
            by_both.insert(group.clone());
        }
    }
    eprintln!(
        "a applied {applied_by_a} puts and recorded {}; written by both (in flight at the kill): {by_both:?}",
        recorded_by_a.len()
    );
    assert!(
        by_both.is_disjoint(&recorded_by_a),
        "b rewrote groups a had recorded: {:?}",
        by_both.intersection(&recorded_by_a).collect::<Vec<_>>()
    );
    assert!(
        by_both.len() <= 2,
        "only a's writes in flight at the kill (at most max_concurrency = 2) are written twice: {by_both:?}"
    );
    assert_eq!(puts.len(), groups, "every group was written");
    assert!(
        !recorded_by_a.is_empty(),
        "a recorded its applied puts before the kill"
    );
    // b's takeover pass wrote exactly the groups a had not recorded.
    let written_by_b: BTreeSet<String> = puts
        .iter()
        .filter(|(_, k)| k.contains(&key_b))
        .map(|(g, _)| g.clone())
        .collect();
    let all: BTreeSet<String> = puts.keys().cloned().collect();
    assert_eq!(written_by_b, &all - &recorded_by_a);
    assert_eq!(
        raw.query_one(&format!("SELECT count(*) FROM \"{schema}\".pending"), &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        0,
        "no intent left behind"
    );
}

/// A TCP forwarder to the database that the test can cut (every connection closed, new ones
/// refused) and restore: the database going away, as the replicas see it.
struct DbProxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Notified to stop forwarding while keeping every connection open (a silent partition).
    hole: Arc<tokio::sync::Notify>,
}

impl DbProxy {
    async fn start(target: std::net::SocketAddr) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let hole = Arc::new(tokio::sync::Notify::new());
        let (up2, conns2, hole2) = (up.clone(), conns.clone(), hole.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let hole = hole2.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            () = hole.notified() => {
                                // Nothing passes any more, and neither side is told.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                }));
            }
        });
        DbProxy {
            addr,
            up,
            conns,
            hole,
        }
    }

    /// A silent partition: new connections are dropped, open ones stay open but carry
    /// nothing, so neither end learns of it until its own timeouts run out.
    fn blackhole(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.hole.notify_waiters();
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_fences_the_leader_and_one_replica_resumes() {
    let Some(url) = common::postgres::url("database_loss") else {
        return;
    };
    let mut parsed = url::Url::parse(&url).unwrap();
    let target = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap())
        .parse()
        .unwrap();
    let proxy = DbProxy::start(target).await;
    parsed.set_port(Some(proxy.addr.port())).unwrap();
    let schema = common::postgres::schema("db_loss");
    let groups = 30;
    let h = harness(
        org(groups),
        parsed.as_str(),
        &schema,
        "0 0 0 1 1 *",
        Duration::from_millis(300),
    )
    .await;
    let (a, b) = leader_then_standby(&h).await;
    wait_for_puts_from_a(&h, &a, 4).await;

    proxy.cut();
    let cut = Instant::now();
    let st = a
        .wait_status(TAKEOVER.as_secs(), "a to be fenced", |st| {
            st["leader"]["is_leader"] == false
        })
        .await;
    eprintln!(
        "leader fenced {:?} after the database went away",
        cut.elapsed()
    );
    let reason = st["leader"]["fenced_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!reason.is_empty(), "/status says why: {st:#}");
    // Writes in flight finish (at most two, 300 ms each); then nothing more is written.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after_fence = h.q.put_count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.q.put_count(),
        after_fence,
        "a fenced leader stops writing"
    );
    let st = a.status().await;
    assert_eq!(st["pass_running"], false);
    assert_eq!(st["last_pass"]["error_kind"], "fenced", "{st:#}");
    let sb = b.status().await;
    assert_eq!(
        sb["leader"]["is_leader"], false,
        "nobody leads without the database"
    );
    assert_eq!(
        b.http
            .post(b.url("/sync"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert!(
        h.q_state() != expected(&h.okta.org()),
        "the pass was cut short"
    );

    // The database comes back: exactly one replica leads and finishes the work.
    proxy.restore();
    let restored = Instant::now();
    let deadline = restored + TAKEOVER * 2;
    let (leader, standby) = loop {
        let (la, lb) = (leader_of(&a).await, leader_of(&b).await);
        if la["is_leader"] == true || lb["is_leader"] == true {
            assert!(la["is_leader"] != lb["is_leader"], "one leader: {la} {lb}");
            break if la["is_leader"] == true {
                (&a, &b)
            } else {
                (&b, &a)
            };
        }
        assert!(Instant::now() < deadline, "nobody resumed: {la} {lb}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "a replica led again {:?} after the database came back",
        restored.elapsed()
    );
    let st = leader
        .wait_status(60, "the resumed pass", |st| {
            st["last_pass"]["trigger"] == "takeover"
                && st["pass_running"] == false
                && st["last_pass"]["outcome"] == "success"
        })
        .await;
    assert_eq!(st["leader"]["fenced_reason"], serde_json::Value::Null);
    let name = st["leader"]["replica"].as_str().unwrap().to_owned();
    standby
        .wait_status(10, "the standby to name the new leader", |st| {
            st["leader"]["leader"]["replica"] == name.as_str()
        })
        .await;
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}

/// A call's position in the emulator's call log: whether any PutGroup signed by `replica`
/// comes after index `from`.
fn puts_from_after(h: &Harness, replica: &str, from: usize) -> Vec<(String, u16)> {
    let key = access_key(replica);
    h.q.calls()
        .into_iter()
        .skip(from)
        .filter(|c| c.op == "PutGroup" && c.access_key.as_deref() == Some(&key))
        .map(|c| (c.group.unwrap_or_default(), c.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_writes_nothing_after_the_takeover() {
    let Some(url) = common::postgres::url("deposed_leader") else {
        return;
    };
    // a reaches PostgreSQL through a proxy the test cuts; b directly.
    let mut parsed = url::Url::parse(&url).unwrap();
    let target = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap())
        .parse()
        .unwrap();
    let proxy = DbProxy::start(target).await;
    parsed.set_port(Some(proxy.addr.port())).unwrap();
    let via_proxy = parsed.to_string();
    let schema = common::postgres::schema("deposed");
    let groups = 6;
    let h = harness(org(groups), &url, &schema, "0 0 0 1 1 *", Duration::ZERO).await;
    // The SDK may retry a throttled put for about two minutes (10 attempts, backoff to 20 s).
    let text = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text.replace(
            "retry_initial_backoff = \"10ms\"",
            "retry_initial_backoff = \"1s\"\nmax_attempts = 10",
        ),
    )
    .unwrap();
    // Q Business throttles every put of a.
    h.q.add_fault(
        QFault::always(QFaultAction::Throttle)
            .on_op("PutGroup")
            .on_access_key(&access_key("a")),
    );
    let key_a = access_key("a");
    let a = h
        .serve(&[
            ("Q_GROUP_SYNC_STATE__REPLICA", "a"),
            ("AWS_ACCESS_KEY_ID", key_a.as_str()),
            ("Q_GROUP_SYNC_STATE__URL", via_proxy.as_str()),
        ])
        .await;
    a.wait_status(20, "a to lead", |st| st["leader"]["is_leader"] == true)
        .await;
    let b = replica(&h, "b").await;
    b.wait_status(20, "b to see a lead", |st| {
        st["leader"]["leader"]["replica"] == "a"
    })
    .await;
    // a's pass is retrying its throttled puts; then a loses the database.
    let deadline = Instant::now() + Duration::from_secs(20);
    while puts_from_after(&h, "a", 0).is_empty() {
        assert!(Instant::now() < deadline, "a sent no put; {}", a.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.blackhole();
    let cut = Instant::now();
    b.wait_status(TAKEOVER.as_secs() * 4, "b to take over", |st| {
        st["leader"]["is_leader"] == true
    })
    .await;
    let took_over = cut.elapsed();
    let at_takeover = h.q.calls().len();
    // From now on Q Business would accept a's puts: a write a were still retrying would land.
    h.q.clear_faults();
    b.wait_status(30, "b's takeover pass", |st| {
        st["last_pass"]["trigger"] == "takeover" && st["pass_running"] == false
    })
    .await;
    assert_eq!(h.q_state(), expected(&h.okta.org()), "b wrote every group");
    // Longer than a retry's backoff (20 s at most) would take to land.
    tokio::time::sleep(Duration::from_secs(21)).await;
    let late = puts_from_after(&h, "a", at_takeover);
    eprintln!("b took over {took_over:?} after a lost the database; a's puts after that: {late:?}");
    assert_eq!(
        late,
        Vec::new(),
        "a wrote after the takeover; a's logs:\n{}",
        a.logs()
    );
    assert!(
        puts_from_after(&h, "a", 0)
            .iter()
            .all(|(_, status)| *status == 429),
        "no put of a was ever applied"
    );
    assert!(
        a.logs().contains("abandoned"),
        "a says it abandoned its write: {}",
        a.logs()
    );
    assert_eq!(h.q_state(), expected(&h.okta.org()));
}
