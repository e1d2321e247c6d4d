-- When a user's password was last changed (Unix milliseconds; NULL: not since this column
-- exists). Introspect reports access tokens issued before it inactive.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
