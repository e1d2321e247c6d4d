-- The same layout as SQLite's 0010 (what a refresh leaves behind, issue 24):
-- 1. families get a compact integer key, `seq`, which tokens refer to instead of the
--    36-character session id (`id`, still what clients and operators see);
-- 2. `refresh_tokens` keeps only each family's newest (unused) token, with, for a retry of its
--    predecessor within the grace window, the predecessor's 16-byte key prefix and the sealed
--    copy; a rotation deletes the presented token's row;
-- 3. `used_refresh_tokens` keeps what reuse detection needs of a used token for its family's
--    life: the first 16 bytes of its key and its family (a collision of two used tokens is
--    recorded as a NULL family, which matches no family: harmless).
-- Live sessions move as they are.

ALTER TABLE refresh_families ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE refresh_families ADD CONSTRAINT refresh_families_seq_key UNIQUE (seq);

CREATE TABLE used_refresh_tokens (
    hash   BYTEA PRIMARY KEY,                 -- the first 16 bytes of the token's key
    family BIGINT REFERENCES refresh_families (seq) ON DELETE CASCADE
);
INSERT INTO used_refresh_tokens (hash, family)
SELECT substring(t.hash FROM 1 FOR 16), CASE WHEN COUNT(*) = 1 THEN MIN(f.seq) END
FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
WHERE t.used_at IS NOT NULL
GROUP BY 1;
CREATE INDEX used_refresh_tokens_family ON used_refresh_tokens (family);

CREATE TABLE refresh_tokens_0010 (
    hash                  BYTEA PRIMARY KEY,  -- the token's 32-byte key
    family                BIGINT NOT NULL REFERENCES refresh_families (seq) ON DELETE CASCADE,
    issued_at             BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,    -- idle timeout
    predecessor           BYTEA,              -- the previous token's 16-byte key prefix
    sealed_by_predecessor BYTEA               -- this token sealed under a key derived from it
);
INSERT INTO refresh_tokens_0010 (hash, family, issued_at, expires_at, predecessor,
                                 sealed_by_predecessor)
SELECT t.hash, f.seq, t.issued_at, t.expires_at,
       CASE WHEN t.sealed_by_predecessor IS NOT NULL THEN substring(p.hash FROM 1 FOR 16) END,
       t.sealed_by_predecessor
FROM refresh_tokens t
JOIN refresh_families f ON f.id = t.family_id
LEFT JOIN refresh_tokens p ON p.successor_hash = t.hash
WHERE t.used_at IS NULL;

DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_0010 RENAME TO refresh_tokens;
ALTER TABLE refresh_tokens RENAME CONSTRAINT refresh_tokens_0010_pkey TO refresh_tokens_pkey;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
