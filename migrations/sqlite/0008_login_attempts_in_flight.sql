-- Login attempts admitted and not yet finished, counted apart from failures (issue 16): delays
-- come from completed failures only, the hard stop counts both. in_flight_at: when the last
-- attempt was admitted (Unix milliseconds); the count is stale a while after it.
ALTER TABLE login_throttle ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_throttle ADD COLUMN in_flight_at INTEGER NOT NULL DEFAULT 0;
