-- The revocation feed: one row per session deleted or revoked, written in
-- the transaction that deleted it (which also sends the session ID with
-- NOTIFY, the channel PostgreSQL replicas listen on).

CREATE TABLE revocations (
    id         BIGSERIAL   PRIMARY KEY,
    session_id TEXT        NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
