-- Service tokens and the keys that sign identity assertions.
--
-- A service token's secret is never stored, only its SHA-256 (secret_hash);
-- groups is a JSON array of group names. expires_at and last_used_at are
-- NULL for "never".
--
-- A signing key's private half is sealed (AES-256-GCM under a key derived
-- from the server secret) before it reaches this table; public_jwk is the
-- public half as a JWK. retired_at is NULL until the key is rotated out.

CREATE TABLE service_tokens (
    id           TEXT NOT NULL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL UNIQUE,
    "groups"     TEXT NOT NULL DEFAULT '[]',
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT
);

CREATE TABLE signing_keys (
    kid            TEXT NOT NULL PRIMARY KEY,
    alg            TEXT NOT NULL,
    sealed_private BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    activates_at   TEXT NOT NULL,
    retired_at     TEXT
);
