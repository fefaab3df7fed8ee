-- valor schema, version 10: the git branch of each line of code work.
--
-- code_runs: one row per run branch. A delegated run (job) in a
-- conversation's workspace works in its own worktree on `branch`, created
-- from `base_branch` at `base_commit`; follow-ups of the same conversation
-- continue the newest `open` branch unless another job holds it (`job_id`).
-- A person ends it: `merged` into the base branch or `discarded` (worktree
-- and branch removed); `pushed_to` / `pull_request` record a push and a PR.
-- `action` is the one merge/push/discard in progress (first press wins;
-- a claim older than five minutes is free again after a crash).
-- Portable SQL; SQLite-only spots marked.

CREATE TABLE code_runs (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: identity column).
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace       TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    branch          TEXT NOT NULL,
    worktree        TEXT NOT NULL,
    base_branch     TEXT NOT NULL,
    base_commit     TEXT NOT NULL,
    head_commit     TEXT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'merged', 'discarded')),
    job_id          BIGINT NULL,
    last_job_id     BIGINT NOT NULL,
    action          TEXT NULL CHECK (action IN ('merge', 'push', 'discard')),
    action_at_ms    BIGINT NULL,
    pushed_to       TEXT NULL,
    pull_request    TEXT NULL,
    note            TEXT NULL,
    worktree_removed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    UNIQUE (workspace, branch)
);
CREATE INDEX code_runs_conversation ON code_runs (conversation_id, workspace, state);
