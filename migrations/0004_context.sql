-- Context intelligence: stored summaries of dropped history (reused, not
-- recomputed) and per-turn context size.

CREATE TABLE context_summaries (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Identifies exactly which messages the summary covers.
    span_key TEXT NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('model', 'extractive')),
    text TEXT NOT NULL,
    first_message_id INTEGER NOT NULL,
    last_message_id INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, span_key)
);

ALTER TABLE turns ADD COLUMN context_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN tokens_saved INTEGER NOT NULL DEFAULT 0;
