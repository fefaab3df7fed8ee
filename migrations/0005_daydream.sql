-- valor schema, version 5: the daydream self-review. Child processes valor
-- started (so a later cleanup can stop stale ones) and one record per
-- daydream session with its phases.
--
-- Portability: as in 0001; timestamps are UNIX milliseconds (UTC); JSON is TEXT.

CREATE TABLE child_processes (
    pid           BIGINT PRIMARY KEY NOT NULL,
    command       TEXT NOT NULL,                 -- what was started (argv joined by spaces, for people)
    started_at_ms BIGINT NOT NULL
);

CREATE TABLE daydream_sessions (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger        TEXT NOT NULL,                -- 'schedule' | 'manual' | 'job'
    outcome        TEXT NOT NULL CHECK (outcome IN ('completed', 'skipped', 'failed')),
    reason         TEXT NULL,                    -- why it was skipped or failed
    phases         TEXT NOT NULL,                -- JSON array: [{name, status, duration_ms, detail}]
    insight_files  TEXT NOT NULL,                -- JSON array of paths written
    summary        TEXT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL
);
CREATE INDEX daydream_sessions_started ON daydream_sessions (started_at_ms);
