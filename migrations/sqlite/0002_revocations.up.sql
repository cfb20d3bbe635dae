-- The revocation feed: one row per session deleted or revoked, written in
-- the transaction that deleted it. Running servers follow it by increasing
-- id, so ids must never be reused: AUTOINCREMENT keeps them growing even
-- after old rows are pruned. Writers are serialized, so ids become visible
-- in order.

CREATE TABLE revocations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    revoked_at TEXT NOT NULL
);
CREATE INDEX revocations_revoked_at_idx ON revocations (revoked_at);
