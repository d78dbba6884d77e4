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
    // v4: the SCIM record: users (deleted ones kept as tombstones), groups, memberships, and
    // the change sequence every SCIM write bumps (its row lock also orders SCIM writes from
    // every replica). Not fenced by leadership: any replica stores what the IdP pushes.
    r#"
CREATE TABLE {s}.scim_seq (
    id  integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL
);
INSERT INTO {s}.scim_seq (id, seq) VALUES (1, 0);
CREATE TABLE {s}.scim_users (
    id            text PRIMARY KEY,
    user_name     text NOT NULL,
    user_name_key text NOT NULL,
    external_id   text,
    email         text,
    email_key     text,
    active        boolean NOT NULL,
    deleted       boolean NOT NULL DEFAULT false,
    attrs         text NOT NULL,
    created       timestamptz NOT NULL,
    last_modified timestamptz NOT NULL,
    version       bigint NOT NULL
);
CREATE UNIQUE INDEX scim_users_user_name ON {s}.scim_users (user_name_key) WHERE NOT deleted;
CREATE INDEX scim_users_user_name_all ON {s}.scim_users (user_name_key);
CREATE INDEX scim_users_external_id ON {s}.scim_users (external_id);
CREATE INDEX scim_users_email ON {s}.scim_users (email_key);
CREATE INDEX scim_users_modified ON {s}.scim_users (last_modified);
CREATE TABLE {s}.scim_groups (
    id               text PRIMARY KEY,
    display_name     text NOT NULL,
    display_name_key text NOT NULL UNIQUE,
    external_id      text,
    attrs            text NOT NULL,
    created          timestamptz NOT NULL,
    last_updated     timestamptz NOT NULL,
    members_updated  timestamptz NOT NULL,
    last_modified    timestamptz NOT NULL,
    version          bigint NOT NULL
);
CREATE INDEX scim_groups_external_id ON {s}.scim_groups (external_id);
CREATE TABLE {s}.scim_members (
    group_id text NOT NULL REFERENCES {s}.scim_groups (id) ON DELETE CASCADE,
    user_id  text NOT NULL REFERENCES {s}.scim_users (id),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_members_user ON {s}.scim_members (user_id);
"#,
];

/// Highest schema version this build understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;
