-- Brings SQLite level with PostgreSQL's 0001 indexes (successor_hash, expires_at); here they
-- already exist, so this is a no-op kept for the one numbered sequence of both backends.
CREATE INDEX IF NOT EXISTS refresh_tokens_successor_hash ON refresh_tokens (successor_hash);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS refresh_families_expires_at ON refresh_families (expires_at);
