-- Login throttling counters and the audit trail. Times are Unix milliseconds.

-- One row per normalised username that failed recently, whether or not such a user exists.
CREATE TABLE login_throttle (
    username        TEXT PRIMARY KEY,        -- PRECIS UsernameCaseMapped form
    failures        INTEGER NOT NULL,        -- consecutive failures
    last_failure_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX login_throttle_last_failure_at ON login_throttle (last_failure_at);

-- Never holds a password, token, key or hash.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    user_id    TEXT,
    username   TEXT,
    source     TEXT,
    request_id TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_username ON audit_events (username, id);
