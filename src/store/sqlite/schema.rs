//! The SQLite snapshot's schema: migrations, and the check that a file is ours.

use rusqlite::Connection;

use super::{APPLICATION_ID, classify};
use crate::store::StoreError;

/// Schema migrations; entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE groups (
    q_name         TEXT PRIMARY KEY NOT NULL,
    okta_id        TEXT NOT NULL,
    members        TEXT NOT NULL,
    member_count   INTEGER NOT NULL,
    members_sha256 TEXT NOT NULL,
    pushed_at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX groups_okta_id ON groups (okta_id);
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    outcome         TEXT,
    groups_in_scope INTEGER,
    puts            INTEGER,
    deletes         INTEGER,
    failed          INTEGER,
    unchanged       INTEGER,
    users_added     INTEGER,
    users_removed   INTEGER,
    error           TEXT
);
CREATE TABLE audit (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    at            TEXT NOT NULL,
    q_name        TEXT NOT NULL,
    okta_id       TEXT NOT NULL,
    op            TEXT NOT NULL,
    users_added   INTEGER NOT NULL,
    users_removed INTEGER NOT NULL,
    added         TEXT NOT NULL,
    removed       TEXT NOT NULL
);
CREATE INDEX audit_run ON audit (run_id);
"#,
    r#"
ALTER TABLE runs ADD COLUMN pass_id TEXT;
ALTER TABLE runs ADD COLUMN trigger TEXT;
ALTER TABLE runs ADD COLUMN scope TEXT;
CREATE INDEX runs_outcome ON runs (outcome, finished_at);
"#,
    r#"
CREATE TABLE pending (
    q_name  TEXT PRIMARY KEY NOT NULL,
    okta_id TEXT NOT NULL,
    op      TEXT NOT NULL,
    run_id  INTEGER,
    at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE held_plans (
    id           TEXT PRIMARY KEY NOT NULL,
    hash         TEXT NOT NULL,
    status       TEXT NOT NULL,
    body         TEXT NOT NULL,
    deletes      INTEGER NOT NULL,
    removals     INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at  TEXT,
    resolved_by  TEXT
) WITHOUT ROWID;
CREATE INDEX held_plans_status ON held_plans (status);
"#,
    r#"
ALTER TABLE groups ADD COLUMN source_updated_at TEXT;
ALTER TABLE groups ADD COLUMN read_at TEXT;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // v5: chunked groups (how many chunk sub-groups carry a group's members; 0 = inline).
    r#"
ALTER TABLE groups ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0
"#,
    // v6: each Okta user's effective Q identity, to tell a user change that matters (status,
    // id attribute) from a profile touched. Until a full read fills it, passes read in full.
    r#"
CREATE TABLE users (
    okta_id TEXT PRIMARY KEY NOT NULL,
    q_id    TEXT
) WITHOUT ROWID
"#,
    // v7: the SCIM record: users (deleted ones kept as tombstones), groups, memberships, and
    // the change sequence every SCIM write bumps. Times are RFC 3339 text to the millisecond.
    r#"
CREATE TABLE scim_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO scim_seq (id, seq) VALUES (1, 0);
CREATE TABLE scim_users (
    id            TEXT PRIMARY KEY NOT NULL,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    email         TEXT,
    email_key     TEXT,
    active        INTEGER NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    attrs         TEXT NOT NULL,
    created       TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    version       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (user_name_key) WHERE deleted = 0;
CREATE INDEX scim_users_user_name_all ON scim_users (user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (external_id);
CREATE INDEX scim_users_email ON scim_users (email_key);
CREATE INDEX scim_users_modified ON scim_users (last_modified);
CREATE TABLE scim_groups (
    id               TEXT PRIMARY KEY NOT NULL,
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL UNIQUE,
    external_id      TEXT,
    attrs            TEXT NOT NULL,
    created          TEXT NOT NULL,
    last_updated     TEXT NOT NULL,
    members_updated  TEXT NOT NULL,
    last_modified    TEXT NOT NULL,
    version          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX scim_groups_external_id ON scim_groups (external_id);
CREATE TABLE scim_members (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES scim_users (id),
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX scim_members_user ON scim_members (user_id)
"#,
];

/// Highest schema version this build understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that the file is a q-group-sync snapshot (or a new, empty database) and returns
/// its schema version.
pub(super) fn check_ours(conn: &Connection, p: &str) -> Result<i64, StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(p, "read schema version", e))?;
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| classify(p, "read application id", e))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| classify(p, "read schema", e))?;
    if version == 0 && app == 0 && tables == 0 {
        return Ok(0);
    }
    if app != APPLICATION_ID {
        return Err(StoreError::Corrupt {
            path: p.to_owned(),
            detail: "the file is an SQLite database of another application".into(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: p.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| classify(p, "quick check", e))?;
    if ok != "ok" {
        return Err(StoreError::Corrupt {
            path: p.to_owned(),
            detail: format!("integrity check: {ok}"),
        });
    }
    Ok(version)
}

pub(super) fn migrate(conn: &Connection, p: &str) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(p, "read schema version", e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = i as i64 + 1;
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {next}; COMMIT;"
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(classify(p, "migrate schema", e));
        }
    }
    Ok(())
}
