-- Users, refresh families and tokens, signing keys.
-- Times are Unix milliseconds (INTEGER). Refresh tokens are stored only as SHA-256 hashes.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,       -- PRECIS UsernameCaseMapped form
    password_hash TEXT NOT NULL,              -- argon2id PHC string
    roles         TEXT NOT NULL DEFAULT '',   -- space-separated, sorted
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE refresh_families (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,          -- absolute lifetime
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    hash             BLOB PRIMARY KEY,        -- SHA-256 of the token
    family_id        TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,        -- idle timeout
    used_at          INTEGER,                 -- set when rotated
    successor_hash   BLOB,
    successor_sealed BLOB                     -- successor encrypted under a key derived from this token
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,               -- PKCS#8 DER
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retires_at   INTEGER
);
