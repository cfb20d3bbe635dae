-- Gatehouse schema, PostgreSQL.
--
-- Times are timestamptz (microsecond precision); hashes are bytea.

CREATE TABLE users (
    id            BIGSERIAL   PRIMARY KEY,
    email         TEXT        NOT NULL UNIQUE,
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);

CREATE TABLE sessions (
    id           TEXT        NOT NULL PRIMARY KEY,
    token_hash   BYTEA       NOT NULL,
    email        TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    ip           TEXT        NOT NULL DEFAULT '',
    user_agent   TEXT        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX sessions_token_hash_idx ON sessions (token_hash);
CREATE INDEX sessions_email_idx ON sessions (email);

CREATE TABLE login_codes (
    id          BIGSERIAL   PRIMARY KEY,
    email       TEXT        NOT NULL,
    code_hash   BYTEA       NOT NULL,
    link_hash   BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    consumed_at TIMESTAMPTZ,
    voided_at   TIMESTAMPTZ
);
CREATE INDEX login_codes_email_created_at_idx ON login_codes (email, created_at);
CREATE INDEX login_codes_link_hash_idx ON login_codes (link_hash);

CREATE TABLE rate_counters (
    rate_key     TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    hits         BIGINT      NOT NULL,
    PRIMARY KEY (rate_key, window_start)
);

CREATE TABLE events (
    id          BIGSERIAL   PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    event_type  TEXT        NOT NULL,
    email       TEXT        NOT NULL DEFAULT '',
    ip          TEXT        NOT NULL DEFAULT '',
    user_agent  TEXT        NOT NULL DEFAULT '',
    outcome     TEXT        NOT NULL DEFAULT '',
    detail      TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_email_occurred_at_idx ON events (email, occurred_at);

CREATE TABLE server_secret (
    id         SMALLINT    NOT NULL PRIMARY KEY CHECK (id = 1),
    secret     BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
