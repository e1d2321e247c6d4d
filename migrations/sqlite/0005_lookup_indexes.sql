-- Indexes PostgreSQL got in 0001: the grace-window bookkeeping looks tokens up by
-- successor_hash on every rotation, and the purge job scans by expiry.
CREATE INDEX IF NOT EXISTS refresh_tokens_successor_hash ON refresh_tokens (successor_hash);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS refresh_families_expires_at ON refresh_families (expires_at);
