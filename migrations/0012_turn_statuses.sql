-- valor schema, version 12: a turn can end `cancelled` (a person pressed
-- Stop, Ctrl-C or /stop) or `interrupted` (valor stopped before the turn
-- ended: a shutdown, or a crash found by the sweep at start-up), beside
-- `completed` and `failed`. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt with the same columns and index; nothing
-- references `turns`.
CREATE TABLE turns_v12 (
    id              TEXT PRIMARY KEY NOT NULL,   -- UUID v7 text
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    intent          TEXT NOT NULL,
    intent_source   TEXT NOT NULL,
    tier            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'interrupted')),
    steps           BIGINT NOT NULL DEFAULT 0,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    error           TEXT NULL,
    started_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT NULL,
    context_tokens  INTEGER NOT NULL DEFAULT 0,
    tokens_saved    INTEGER NOT NULL DEFAULT 0
);

INSERT INTO turns_v12 (
    id, conversation_id, intent, intent_source, tier, provider, model, status, steps,
    input_tokens, output_tokens, error, started_at_ms, finished_at_ms, context_tokens, tokens_saved
)
SELECT
    id, conversation_id, intent, intent_source, tier, provider, model,
    -- Turns stopped or cut short before this version were recorded as failed.
    CASE
        WHEN status = 'failed' AND error LIKE 'cancelled:%' THEN 'cancelled'
        WHEN status = 'failed' AND error LIKE 'interrupted:%' THEN 'interrupted'
        ELSE status
    END,
    steps, input_tokens, output_tokens, error, started_at_ms, finished_at_ms, context_tokens, tokens_saved
FROM turns;

DROP TABLE turns;
ALTER TABLE turns_v12 RENAME TO turns;
CREATE INDEX turns_conversation_id_started ON turns (conversation_id, started_at_ms);
