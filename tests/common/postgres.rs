//! The PostgreSQL server the tests use: `Q_GROUP_SYNC_TEST_POSTGRES_URL` (started by
//! `scripts/test-postgres`, which `.ci/run` runs). Each test works in a schema of its own, so
//! tests run in parallel against one server.

use std::sync::atomic::{AtomicUsize, Ordering};

use q_group_sync::clock::{Clock, SystemClock};

/// The server's URL. Under CI (`CI` set) a missing URL fails the test; elsewhere the test is
/// skipped with a line saying so.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("Q_GROUP_SYNC_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: Q_GROUP_SYNC_TEST_POSTGRES_URL is not set; CI must start PostgreSQL (scripts/test-postgres start)"
        ),
        _ => {
            eprintln!(
                "{test}: skipped: Q_GROUP_SYNC_TEST_POSTGRES_URL is not set (eval \"$(scripts/test-postgres start)\")"
            );
            None
        }
    }
}

/// A schema name no other test (or run) uses.
pub fn schema(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemClock.now().timestamp_subsec_nanos();
    let name: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "t_{name}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A plain connection for inspecting and tampering with the database.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// The `[state]` table for the PostgreSQL backend.
pub fn state_toml(url: &str, schema: &str, takeover: &str) -> String {
    format!(
        "backend = \"postgres\"\nurl = \"{url}\"\ntls = \"disable\"\nschema = \"{schema}\"\nleader_takeover = \"{takeover}\"\npool_size = 3\n"
    )
}

/// Terminates the sessions whose application_name contains `needle`; returns how many.
pub async fn terminate(url: &str, needle: &str) -> i64 {
    raw(url)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE '%' || $1 || '%'",
            &[&needle],
        )
        .await
        .expect("terminate")
        .get(0)
}
