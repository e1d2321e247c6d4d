-- API keys, revoked access tokens (logout), and session details on refresh families.
-- Times are Unix milliseconds (BIGINT). API key secrets are stored only as SHA-256 hashes.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,            -- the lookup id printed in the key (24 hex digits)
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,              -- SHA-256 of the 256-bit secret
    roles        TEXT NOT NULL DEFAULT '',    -- space-separated, sorted; a subset of the user's
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,                      -- NULL: never
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

-- Access tokens revoked by Logout, kept until they expire (purged lazily on the next insert).
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL                -- the token's exp
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

-- A refresh family is a session: where it started and when it was last refreshed.
ALTER TABLE refresh_families ADD COLUMN last_used_at BIGINT;
ALTER TABLE refresh_families ADD COLUMN source_addr TEXT;
ALTER TABLE refresh_families ADD COLUMN user_agent TEXT;
