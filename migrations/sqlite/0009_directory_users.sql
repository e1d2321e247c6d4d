-- Users whose password a directory checks (issue 19). source: where the password is checked
-- ('local': password_hash; 'ldap': the directory, and password_hash is '' — never usable).
-- external_id: the directory entry's stable id (entryUUID, or objectGUID as hex).
-- directory_checked_at: when the entry and its groups were last read (Unix milliseconds), at a
-- login or a refresh's recheck.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'
    CHECK (source IN ('local', 'ldap'));
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN directory_checked_at INTEGER;
CREATE UNIQUE INDEX users_external_id ON users (source, external_id)
    WHERE external_id IS NOT NULL;
