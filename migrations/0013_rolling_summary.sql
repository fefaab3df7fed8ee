-- valor schema, version 13: one rolling summary per conversation.
--
-- context_rolling_summaries replaces context_summaries (one summary per
-- exact dropped span, so a new one — and a model request — every turn once
-- the span moved). The rolling summary covers the messages up to and
-- including `last_message_id` that fell out of the context; newly dropped
-- turns are folded into it (previous summary + the new turns, bounded)
-- once enough of them are pending. `text` holds the summary lines without
-- the header. Removed with its conversation.
DROP TABLE context_summaries;

CREATE TABLE context_rolling_summaries (
    conversation_id  TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    method           TEXT NOT NULL CHECK (method IN ('model', 'extractive')),
    text             TEXT NOT NULL,
    first_message_id INTEGER NOT NULL,
    last_message_id  INTEGER NOT NULL,
    -- Messages folded in so far (all folds together).
    message_count    INTEGER NOT NULL,
    -- How many times new turns were folded in.
    folds            INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL
);

-- Tokens a turn spent on writing summaries (model summary requests, input
-- and output; 0 when no request was made).
ALTER TABLE turns ADD COLUMN summary_tokens INTEGER NOT NULL DEFAULT 0;
