-- valor schema, version 6: Claude Code permission requests asked in the chat,
-- and Telegram outbox rows that carry answer buttons.
--
-- approvals: one row per permission request a delegated run made (through
-- valor's `approve` MCP tool). `pending` until a person answers (allowed
-- with scope `once` or `run`, or denied) or it expires (`timed_out`, a
-- deny). Stored before the question is posted, so a restart does not lose
-- it. "Allow for this run" is an `allowed`/`run` row of the job and tool.
-- Portable SQL; SQLite-only spots marked.

CREATE TABLE approvals (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: identity column).
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    tool_name       TEXT NOT NULL,
    input           TEXT NOT NULL,               -- the tool input as JSON text
    status          TEXT NOT NULL CHECK (status IN ('pending', 'allowed', 'denied', 'timed_out')),
    scope           TEXT NULL CHECK (scope IN ('once', 'run')),
    decided_by      TEXT NULL,                   -- e.g. "telegram:42" or "api"
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    decided_at_ms   BIGINT NULL
);
CREATE INDEX approvals_status_id ON approvals (status, id);
CREATE INDEX approvals_job_tool ON approvals (job_id, tool_name);

-- Inline keyboard (Bot API `reply_markup` JSON) sent with the message.
ALTER TABLE telegram_outbox ADD COLUMN reply_markup TEXT NULL;

