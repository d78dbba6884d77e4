//! The PostgreSQL snapshot's schema, as migrations run once under a lock.

/// Schema migrations; entry `n` takes the schema from version `n` to `n + 1`. `{s}` is the
/// quoted schema name.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE {s}.groups (
    q_name            text PRIMARY KEY,
    okta_id           text NOT NULL,
    members           text NOT NULL,
    member_count      bigint NOT NULL,
    members_sha256    text NOT NULL,
    pushed_at         timestamptz NOT NULL,
    source_updated_at timestamptz,
    read_at           timestamptz
);
CREATE INDEX groups_okta_id ON {s}.groups (okta_id);
CREATE TABLE {s}.runs (
    id              bigserial PRIMARY KEY,
    pass_id         text,
    trigger         text,
    scope           text,
    replica         text,
    epoch           bigint,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    outcome         text,
    groups_in_scope bigint,
    puts            bigint,
    deletes         bigint,
    failed          bigint,
    unchanged       bigint,
    users_added     bigint,
    users_removed   bigint,
    error           text
);
CREATE INDEX runs_outcome ON {s}.runs (outcome, finished_at);
CREATE TABLE {s}.audit (
    id            bigserial PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES {s}.runs (id),
    epoch         bigint NOT NULL,
    at            timestamptz NOT NULL,
    q_name        text NOT NULL,
    okta_id       text NOT NULL,
    op            text NOT NULL,
    users_added   bigint NOT NULL,
    users_removed bigint NOT NULL,
    added         text NOT NULL,
    removed       text NOT NULL
);
CREATE INDEX audit_run ON {s}.audit (run_id);
CREATE TABLE {s}.pending (
    q_name  text PRIMARY KEY,
    okta_id text NOT NULL,
    op      text NOT NULL,
    run_id  bigint,
    epoch   bigint NOT NULL,
    at      timestamptz NOT NULL
);
CREATE TABLE {s}.held_plans (
    id           text PRIMARY KEY,
    hash         text NOT NULL,
    status       text NOT NULL,
    body         text NOT NULL,
    deletes      bigint NOT NULL,
    removals     bigint NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolved_by  text
);
CREATE INDEX held_plans_status ON {s}.held_plans (status);
CREATE TABLE {s}.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE {s}.leader (
    id      integer PRIMARY KEY CHECK (id = 1),
    epoch   bigint NOT NULL,
    replica text,
    address text,
    pid     integer,
    since   timestamptz
);
INSERT INTO {s}.leader (id, epoch) VALUES (1, 0);
"#,
    // v2: chunked groups (how many chunk sub-groups carry a group's members; 0 = inline).
    r#"
ALTER TABLE {s}.groups ADD COLUMN chunks bigint NOT NULL DEFAULT 0;
"#,
    // v3: each Okta user's effective Q identity, to tell a user change that matters (status,
    // id attribute) from a profile touched. Until a full read fills it, passes read in full.
    r#"
CREATE TABLE {s}.users (
    okta_id text PRIMARY KEY,
    q_id    text
);
"#,
];

/// Highest schema version this build understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;
