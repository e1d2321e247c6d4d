-- The same layout as SQLite's 0006 (fewer pages and statements per rotation):
-- 1. The grace-window copy of a token, sealed under a key derived from its predecessor, moves
--    from the predecessor's row (successor_sealed) to the token's own row
--    (sealed_by_predecessor), so a rotation clears it in the row it updates anyway; the index
--    on successor_hash, used only to find the predecessor's row, goes.
-- 2. A session's last use is MAX(used_at) over its tokens (used tokens are kept while the
--    family lives) instead of a column rewritten at every rotation.
ALTER TABLE refresh_tokens ADD COLUMN sealed_by_predecessor BYTEA;
UPDATE refresh_tokens AS s SET sealed_by_predecessor = p.successor_sealed
    FROM refresh_tokens AS p
    WHERE p.successor_hash = s.hash AND p.successor_sealed IS NOT NULL;
DROP INDEX IF EXISTS refresh_tokens_successor_hash;
ALTER TABLE refresh_tokens DROP COLUMN successor_sealed;
ALTER TABLE refresh_families DROP COLUMN last_used_at;
