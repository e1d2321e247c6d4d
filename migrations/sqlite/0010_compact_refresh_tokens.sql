-- What a refresh leaves behind (issue 24): about 30 bytes instead of about 300.
--
-- 1. Families get a compact integer key, `seq`, which tokens refer to instead of repeating the
--    36-character session id (`id`, still what clients and operators see) in every row.
-- 2. `refresh_tokens` keeps only each family's newest (unused) token: its full key, lifetimes,
--    and for a retry of its predecessor within the grace window, the predecessor's key prefix
--    and the sealed copy. A rotation deletes the presented token's row.
-- 3. `used_refresh_tokens` keeps, for the family's life, what reuse detection needs of a used
--    token: the first 16 bytes of its key (issue time and 64 bits of its hash; a collision of
--    two used tokens is recorded as a NULL family, which matches no family: harmless) and its
--    family. Its time is its successor's issue time, its successor the family's newest token.
--
-- Live sessions move as they are: every unused token stays usable, every used token is still
-- recognised as reuse, and a retry within the grace window still gets the same successor.

CREATE TABLE refresh_families_0010 (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT,
    source_addr    TEXT,
    user_agent     TEXT
);
INSERT INTO refresh_families_0010
    (id, user_id, created_at, expires_at, revoked_at, revoked_reason, source_addr, user_agent)
SELECT id, user_id, created_at, expires_at, revoked_at, revoked_reason, source_addr, user_agent
FROM refresh_families ORDER BY created_at, id;

CREATE TABLE refresh_tokens_0010 (
    hash                  BLOB PRIMARY KEY,   -- the token's 32-byte key
    family                INTEGER NOT NULL REFERENCES refresh_families_0010 (seq) ON DELETE CASCADE,
    issued_at             INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,   -- idle timeout
    predecessor           BLOB,               -- the previous token's 16-byte key prefix
    sealed_by_predecessor BLOB                -- this token sealed under a key derived from it
) WITHOUT ROWID;
INSERT INTO refresh_tokens_0010 (hash, family, issued_at, expires_at, sealed_by_predecessor)
SELECT t.hash, f.seq, t.issued_at, t.expires_at, t.sealed_by_predecessor
FROM refresh_tokens t JOIN refresh_families_0010 f ON f.id = t.family_id
WHERE t.used_at IS NULL;
UPDATE refresh_tokens_0010 AS h SET predecessor = substr(p.hash, 1, 16)
    FROM refresh_tokens AS p
    WHERE p.successor_hash = h.hash AND h.sealed_by_predecessor IS NOT NULL;

CREATE TABLE used_refresh_tokens (
    hash   BLOB PRIMARY KEY,                  -- the first 16 bytes of the token's key
    family INTEGER REFERENCES refresh_families_0010 (seq) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO used_refresh_tokens (hash, family)
SELECT substr(t.hash, 1, 16), f.seq
FROM refresh_tokens t JOIN refresh_families_0010 f ON f.id = t.family_id
WHERE t.used_at IS NOT NULL
ON CONFLICT (hash) DO UPDATE SET family = NULL;

DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
ALTER TABLE refresh_families_0010 RENAME TO refresh_families;
ALTER TABLE refresh_tokens_0010 RENAME TO refresh_tokens;

CREATE INDEX refresh_families_user_id ON refresh_families (user_id);
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX used_refresh_tokens_family ON used_refresh_tokens (family);
