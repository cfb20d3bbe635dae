-- Gatehouse schema, SQLite.
--
-- Times are UTC text written by the store as 'YYYY-MM-DD HH:MM:SS[.ffffff]+00:00'
-- (microseconds, trailing zeros trimmed). That form sorts and compares
-- chronologically as plain text, so indexes and range conditions work on it.
-- Hashes are BLOBs; booleans are 0/1.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL,
    last_login_at TEXT
);

CREATE TABLE sessions (
    id           TEXT NOT NULL PRIMARY KEY,
    token_hash   BLOB NOT NULL,
    email        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX sessions_token_hash_idx ON sessions (token_hash);
CREATE INDEX sessions_email_idx ON sessions (email);

CREATE TABLE login_codes (
    id          INTEGER PRIMARY KEY,
    email       TEXT    NOT NULL,
    code_hash   BLOB    NOT NULL,
    link_hash   BLOB,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    consumed_at TEXT,
    voided_at   TEXT
);
CREATE INDEX login_codes_email_created_at_idx ON login_codes (email, created_at);
CREATE INDEX login_codes_link_hash_idx ON login_codes (link_hash);

CREATE TABLE rate_counters (
    rate_key     TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (rate_key, window_start)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    occurred_at TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    email       TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX events_email_occurred_at_idx ON events (email, occurred_at);

CREATE TABLE server_secret (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    secret     BLOB    NOT NULL,
    created_at TEXT    NOT NULL
);
