-- valor schema, version 15: a change feed over each conversation's messages.
--
-- messages.revision: per conversation, raised to the conversation's highest
-- revision + 1 whenever a message is appended or changed in place (a job's
-- live status message). A client that saw revision N asks for `revision > N`
-- and gets every new and every changed message (the web chat's
-- `/api/conversations/{id}/events`, resumed with Last-Event-ID). Messages
-- stored before this migration keep 0: they are older than any cursor.
-- Portable SQL.

ALTER TABLE messages ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_conversation_revision ON messages (conversation_id, revision);
