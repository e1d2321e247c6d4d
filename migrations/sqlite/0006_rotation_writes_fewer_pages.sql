-- Fewer B-tree pages written per rotation (each one is a 4 KiB WAL frame; see BENCHMARKS.md).
--
-- 1. The grace-window copy of a token, sealed under a key derived from its predecessor, moves
--    from the predecessor's row (successor_sealed) to the token's own row
--    (sealed_by_predecessor). A rotation then clears the presented token's copy in the row it
--    updates anyway, instead of finding the predecessor's row through an index on
--    successor_hash: that index and its random-page writes go.
-- 2. A session's last use is the time its newest used token was rotated, MAX(used_at) over its
--    tokens (used tokens are kept while the family lives), instead of a column rewritten on the
--    family row at every rotation.
ALTER TABLE refresh_tokens ADD COLUMN sealed_by_predecessor BLOB;
UPDATE refresh_tokens AS s SET sealed_by_predecessor = p.successor_sealed
    FROM refresh_tokens AS p
    WHERE p.successor_hash = s.hash AND p.successor_sealed IS NOT NULL;
DROP INDEX refresh_tokens_successor_hash;
ALTER TABLE refresh_tokens DROP COLUMN successor_sealed;
ALTER TABLE refresh_families DROP COLUMN last_used_at;
