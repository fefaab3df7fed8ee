-- valor schema, version 11: one live status message per code run.
--
-- job_status_messages: the state a job's status message shows (phase,
-- current tool, files touched, …, as JSON written by `jobs::status`), one
-- row per job and round (`jobs.retries`: a manual retry is a new round with
-- a new message; a re-run after a crash is the same round and the same
-- message). `ended_at_ms` is set with the end state; later updates of the
-- round are ignored. Removed with its job.
CREATE TABLE job_status_messages (
    job_id          BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    round           BIGINT NOT NULL,
    conversation_id TEXT NOT NULL,
    state           TEXT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT NULL,
    PRIMARY KEY (job_id, round)
);

-- A Telegram outbox row that edits the message another row sent: its
-- `edit_message_id` is taken from that row's `message_id` when it is
-- claimed (rows of a chat go out in order, so the other row is done by
-- then). Without one (that send failed), the edit fails: never a new message.
ALTER TABLE telegram_outbox ADD COLUMN edit_of BIGINT NULL;
