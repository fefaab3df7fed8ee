-- valor schema, version 1: conversations, messages (+ FTS5 index), turns,
-- users, chats, audit events and key-value state.
--
-- Portability: column types and constraints are kept to what PostgreSQL also
-- accepts. SQLite-only spots are marked "SQLite-only" below; the PostgreSQL
-- migration set will replace them (identity columns, tsvector search).
-- Timestamps are UNIX milliseconds (UTC) in BIGINT columns; JSON is TEXT.

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY NOT NULL,   -- UUID v7 text
    title         TEXT NOT NULL,
    channel       TEXT NOT NULL,
    chat_id       BIGINT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX conversations_updated_at_ms ON conversations (updated_at_ms);
CREATE INDEX conversations_title ON conversations (title);

CREATE TABLE messages (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'system')),
    content         TEXT NOT NULL,                -- JSON
    text            TEXT NOT NULL,
    turn_id         TEXT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX messages_conversation_id_id ON messages (conversation_id, id);

-- SQLite-only: FTS5 external-content index over messages.text, rowid = messages.id,
-- kept in sync by the three triggers below (PostgreSQL: a tsvector column + GIN index).
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = 'messages', content_rowid = 'id');

-- SQLite-only: trigger bodies use FTS5's special insert commands.
CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TABLE turns (
    id              TEXT PRIMARY KEY NOT NULL,   -- UUID v7 text
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    intent          TEXT NOT NULL,
    intent_source   TEXT NOT NULL,
    tier            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    steps           BIGINT NOT NULL DEFAULT 0,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    error           TEXT NULL,
    started_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT NULL
);
CREATE INDEX turns_conversation_id_started ON turns (conversation_id, started_at_ms);

CREATE TABLE users (
    -- SQLite-only: INTEGER PRIMARY KEY is the rowid alias (PostgreSQL: identity column).
    id            INTEGER PRIMARY KEY,
    channel       TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    username      TEXT NULL,
    display_name  TEXT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    UNIQUE (channel, external_id)
);

CREATE TABLE chats (
    -- SQLite-only: INTEGER PRIMARY KEY is the rowid alias (PostgreSQL: identity column).
    id            INTEGER PRIMARY KEY,
    channel       TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    title         TEXT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    UNIQUE (channel, external_id)
);

CREATE TABLE audit_events (
    -- SQLite-only: INTEGER PRIMARY KEY AUTOINCREMENT (PostgreSQL: identity column).
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    subject       TEXT NOT NULL,
    decision      TEXT NOT NULL,
    detail        TEXT NOT NULL,                -- JSON
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_events_kind_id ON audit_events (kind, id);

CREATE TABLE kv_state (
    key           TEXT PRIMARY KEY NOT NULL,
    value         TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
