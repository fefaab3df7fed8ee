-- valor schema, version 2: the Telegram channel's durable intake and outbox.
--
-- telegram_updates: every accepted inbound message, written (with the next
-- getUpdates offset, in one transaction) before Telegram is told it may
-- forget the update. UNIQUE (chat_id, message_id) makes redelivered or
-- duplicated updates land once.
-- telegram_outbox: every reply, stored before it is sent; `message_id` is set
-- only when Telegram returned one. Portable SQL; SQLite-only spots marked.

CREATE TABLE telegram_updates (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: identity column).
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id      BIGINT NOT NULL,
    chat_id        BIGINT NOT NULL,
    message_id     BIGINT NOT NULL,
    user_id        BIGINT NULL,
    username       TEXT NULL,
    text           TEXT NOT NULL,
    raw            TEXT NOT NULL,                -- the update's JSON as received
    status         TEXT NOT NULL CHECK (status IN ('received', 'processing', 'processed', 'ignored')),
    received_at_ms BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    UNIQUE (chat_id, message_id)
);
CREATE INDEX telegram_updates_status_id ON telegram_updates (status, id);

CREATE TABLE telegram_outbox (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: identity column).
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id             BIGINT NOT NULL,
    thread_id           BIGINT NULL,             -- forum topic (message_thread_id)
    html                TEXT NOT NULL,           -- the text with parse_mode HTML
    plain               TEXT NOT NULL,           -- fallback when Telegram rejects the entities
    reply_to_message_id BIGINT NULL,
    edit_message_id     BIGINT NULL,             -- deliver by editing this message (idempotent)
    dedupe_key          TEXT NULL UNIQUE,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'uncertain')),
    attempts            BIGINT NOT NULL DEFAULT 0,
    not_before_ms       BIGINT NOT NULL,
    message_id          BIGINT NULL,
    error               TEXT NULL,
    created_at_ms       BIGINT NOT NULL,
    delivered_at_ms     BIGINT NULL
);
CREATE INDEX telegram_outbox_status_id ON telegram_outbox (status, id);
CREATE INDEX telegram_outbox_chat_id ON telegram_outbox (chat_id, id);
