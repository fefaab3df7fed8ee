-- valor schema, version 3: the durable job queue ("promises") and the record
-- of notices delivered for each job.
--
-- Portability: as in 0001, types and constraints are what PostgreSQL also
-- accepts; SQLite-only spots are marked. Timestamps are UNIX milliseconds
-- (UTC); JSON is TEXT.

CREATE TABLE jobs (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,                -- JSON
    priority         BIGINT NOT NULL DEFAULT 0,    -- higher runs first
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    run_at_ms        BIGINT NOT NULL,              -- not claimed before this time
    attempts         BIGINT NOT NULL DEFAULT 0,    -- claims so far (this round)
    max_attempts     BIGINT NOT NULL,
    retries          BIGINT NOT NULL DEFAULT 0,    -- manual retries (rounds) so far
    worker_id        TEXT NULL,                    -- who holds the lease while running
    lease_until_ms   BIGINT NULL,                  -- an expired lease makes the job claimable again
    cancel_requested BIGINT NOT NULL DEFAULT 0,    -- 1: the running worker must stop
    progress_text    TEXT NULL,
    progress_percent BIGINT NULL,
    result           TEXT NULL,                    -- JSON
    error            TEXT NULL,                    -- last error
    conversation_id  TEXT NULL REFERENCES conversations (id) ON DELETE SET NULL,
    idempotency_key  TEXT NULL UNIQUE,
    created_at_ms    BIGINT NOT NULL,
    started_at_ms    BIGINT NULL,
    finished_at_ms   BIGINT NULL,
    updated_at_ms    BIGINT NOT NULL
);
-- The claim walks this index in claim order and stops at the first due job.
CREATE INDEX jobs_claim_order ON jobs (status, priority DESC, run_at_ms, id);
CREATE INDEX jobs_running_lease ON jobs (status, lease_until_ms);
CREATE INDEX jobs_conversation_id ON jobs (conversation_id, id);
CREATE INDEX jobs_finished_at_ms ON jobs (finished_at_ms);

-- One row per notice of a job (key e.g. "final:0", "progress:0:3"). A
-- deliverer first claims the row (claimed_by + claimed_until_ms, so two
-- workers or processes never post the same notice at once; a crashed
-- deliverer's claim expires), posts to the outbox, then sets delivered_at_ms.
-- The outbox dedupes by key, so a crash between posting and marking repeats
-- nothing and loses nothing.
CREATE TABLE job_notices (
    job_id           BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    notice_key       TEXT NOT NULL,
    delivered_at_ms  BIGINT NULL,
    claimed_by       TEXT NULL,
    claimed_until_ms BIGINT NULL,
    PRIMARY KEY (job_id, notice_key)
);

-- Cron schedules from `[[schedule]]` in valor.toml: the persisted next and
-- last run. The scheduler enqueues with the idempotency key
-- "schedule:<name>:<next_run_at_ms>" and then advances next_run_at_ms with a
-- compare-and-swap on its old value, so neither a restart nor two processes
-- on one database run a slot twice.
CREATE TABLE schedules (
    name           TEXT PRIMARY KEY NOT NULL,
    cron           TEXT NOT NULL,
    next_run_at_ms BIGINT NOT NULL,
    last_run_at_ms BIGINT NULL,
    last_job_id    BIGINT NULL,
    updated_at_ms  BIGINT NOT NULL
);
