-- Users, refresh families and tokens, signing keys: the PostgreSQL twin of
-- migrations/sqlite/0001_initial.sql. Times are Unix milliseconds (BIGINT). Refresh tokens are
-- stored only as SHA-256 hashes. Plain SQL that CockroachDB also accepts.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,       -- PRECIS UsernameCaseMapped form
    password_hash TEXT NOT NULL,              -- argon2id PHC string
    roles         TEXT NOT NULL DEFAULT '',   -- space-separated, sorted
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE refresh_families (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,           -- absolute lifetime
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);
-- For the purge job: ended families.
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    hash             BYTEA PRIMARY KEY,       -- SHA-256 of the token
    family_id        TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,         -- idle timeout
    used_at          BIGINT,                  -- set when rotated
    successor_hash   BYTEA,
    successor_sealed BYTEA                    -- successor encrypted under a key derived from this token
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
-- For the grace window: find the token whose successor is the presented one.
CREATE INDEX refresh_tokens_successor_hash ON refresh_tokens (successor_hash);
-- For the purge job: idle-expired tokens.
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,              -- PKCS#8 DER
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at   BIGINT
);
