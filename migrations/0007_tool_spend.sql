-- valor schema, version 7: what tool calls that cost money (image
-- generation, web search, image analysis, link summaries…) were estimated to
-- cost, per payer, so non-admins can be held to a daily spending limit.
--
-- Portability: as in 0001; timestamps are UNIX milliseconds (UTC).

CREATE TABLE tool_spend (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payer           TEXT NOT NULL,               -- 'telegram:<chat id>' or 'conversation:<id>'
    tool            TEXT NOT NULL,
    cost_microusd   BIGINT NOT NULL,             -- the tool's estimate, millionths of a US dollar
    conversation_id TEXT NOT NULL,               -- no foreign key: deleting a conversation keeps the spend
    turn_id         TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX tool_spend_payer_created ON tool_spend (payer, created_at_ms);
