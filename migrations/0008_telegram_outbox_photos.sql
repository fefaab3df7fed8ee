-- valor schema, version 8: photos through the Telegram outbox.
--
-- A row with `photo` set is sent with sendPhoto (multipart upload of that
-- image; `html`/`plain` are its caption) instead of sendMessage, with the
-- same guarantees as text replies: stored before sending, `delivered` only
-- with the message id Telegram returned, retried after 429s and restarts.
-- The value is a reference relative to the data directory
-- (`media/generated/<id>.png`); the file is read when the row is sent.

ALTER TABLE telegram_outbox ADD COLUMN photo TEXT NULL;
