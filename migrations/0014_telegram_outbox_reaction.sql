-- valor schema, version 14: the "done" reaction is set when the answer is delivered.
--
-- The last outbox row of a turn's reply carries the reaction that ends the
-- turn (👍, or 👎 after a failure) and the user's message it goes on. The
-- deliverer sets it once Telegram accepted that row, so the reaction never
-- shows before the answer does (in a burst the answer may wait for
-- Telegram's limits for seconds after the turn ended).
ALTER TABLE telegram_outbox ADD COLUMN react_message_id BIGINT NULL;
ALTER TABLE telegram_outbox ADD COLUMN reaction TEXT NULL;
