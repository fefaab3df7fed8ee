//! Live status messages (migration 0011): the state a job's status message
//! shows (`job_status_messages`, one row per job and round), and the one
//! message per status key that each channel keeps up to date in place — a
//! transcript `system` message (its id under a `kv_state` key) or a Telegram
//! message (an outbox row keyed `status:{key}` sends it, later rows edit it).
//!
//! Invariants: one status key never makes a second message, also after a
//! restart (the first row or message is found by its key in the same
//! transaction that would create it); a Telegram status update waiting to
//! be sent is replaced by a newer one instead of queueing behind it; an
//! ended round's state is never overwritten.

use sqlx::Row;

use super::conversations::append_on;
use super::rows::{now_ms, sql_error};
use super::telegram::insert_replies;
use super::{Change, NewMessage, NewTelegramReply, StorageError, StorageResult, Store};

/// The kv key holding the transcript message id of a status key.
fn transcript_key(key: &str) -> String {
    format!("status-message:{key}")
}

/// The dedupe key of the outbox row that sends a status key's Telegram message.
pub fn telegram_status_row_key(key: &str) -> String {
    format!("status:{key}")
}

impl Store {
    /// A job round's stored status state and whether it has ended.
    pub async fn job_status_state(&self, job_id: i64, round: i64) -> StorageResult<Option<(serde_json::Value, bool)>> {
        let found = sqlx::query("SELECT state, ended_at_ms FROM job_status_messages WHERE job_id = $1 AND round = $2")
            .bind(job_id)
            .bind(round)
            .fetch_optional(&self.readers)
            .await
            .map_err(|error| sql_error("read job status", error))?;
        let Some(row) = found else { return Ok(None) };
        let state: String = row.try_get("state").map_err(|error| sql_error("job status state", error))?;
        let ended: Option<i64> = row.try_get("ended_at_ms").map_err(|error| sql_error("job status end", error))?;
        let state =
            serde_json::from_str(&state).map_err(|error| StorageError::Invalid(format!("job status: {error}")))?;
        Ok(Some((state, ended.is_some())))
    }

    /// Store a round's status state; `end` also marks it ended. False (nothing
    /// written) when the round has already ended.
    pub async fn save_job_status_state(
        &self,
        (job_id, round): (i64, i64),
        conversation_id: &str,
        state: &serde_json::Value,
        end: bool,
    ) -> StorageResult<bool> {
        let now = now_ms();
        let ended = end.then_some(now);
        let written = sqlx::query(
            "INSERT INTO job_status_messages (job_id, round, conversation_id, state, updated_at_ms, ended_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (job_id, round) DO UPDATE SET state = excluded.state, \
                 updated_at_ms = excluded.updated_at_ms, ended_at_ms = excluded.ended_at_ms \
             WHERE job_status_messages.ended_at_ms IS NULL",
        )
        .bind(job_id)
        .bind(round)
        .bind(conversation_id)
        .bind(state.to_string())
        .bind(now)
        .bind(ended)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("save job status", error))?;
        Ok(written.rows_affected() == 1)
    }

    /// The transcript message of status `key`: appended by the first call,
    /// its text and content replaced by later ones (one transaction each).
    pub async fn put_status_message(&self, message: NewMessage, key: &str) -> StorageResult<()> {
        self.check_file()?;
        let kv = transcript_key(key);
        let conversation = message.conversation_id.clone();
        let content = serde_json::to_string(&message.content)
            .map_err(|error| StorageError::Invalid(format!("message content: {error}")))?;
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin status message", error))?;
        let existing = sqlx::query("SELECT value FROM kv_state WHERE key = $1")
            .bind(&kv)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(|error| sql_error("find status message", error))?;
        match existing {
            Some(row) => {
                let id: String = row.try_get("value").map_err(|error| sql_error("status message id", error))?;
                sqlx::query(concat!(
                    "UPDATE messages SET content = $1, text = $2, revision = ",
                    next_revision!(4),
                    " WHERE id = $3 AND conversation_id = $4"
                ))
                .bind(&content)
                .bind(&message.text)
                .bind(id.parse::<i64>().unwrap_or(-1))
                .bind(&message.conversation_id)
                .execute(&mut *transaction)
                .await
                .map_err(|error| sql_error("update status message", error))?;
            }
            None => {
                let stored = append_on(&mut transaction, message, None).await?;
                let id = stored.map(|stored| stored.id).unwrap_or_default();
                sqlx::query("INSERT INTO kv_state (key, value, updated_at_ms) VALUES ($1, $2, $3)")
                    .bind(&kv)
                    .bind(id.to_string())
                    .bind(now_ms())
                    .execute(&mut *transaction)
                    .await
                    .map_err(|error| sql_error("remember status message", error))?;
            }
        }
        transaction.commit().await.map_err(|error| sql_error("commit status message", error))?;
        self.changed(Change::Messages(conversation.into()));
        Ok(())
    }

    /// The Telegram message of status `key` shows `reply` (its text and
    /// `reply_markup`). The first call queues the row that sends it; later
    /// calls change that row while it waits, else replace any waiting edit
    /// with one edit row whose target is the sent row's message id.
    pub async fn telegram_put_status(&self, key: &str, reply: &NewTelegramReply) -> StorageResult<()> {
        let dedupe = telegram_status_row_key(key);
        let send = NewTelegramReply { dedupe_key: Some(dedupe.clone()), edit_message_id: None, ..reply.clone() };
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin status row", error))?;
        let inserted = insert_replies(&mut transaction, std::slice::from_ref(&send), now_ms()).await?;
        if inserted == 0 {
            let row = sqlx::query("SELECT id FROM telegram_outbox WHERE dedupe_key = $1")
                .bind(&dedupe)
                .fetch_one(&mut *transaction)
                .await
                .map_err(|error| sql_error("find status row", error))?;
            let sent: i64 = row.try_get("id").map_err(|error| sql_error("status row id", error))?;
            let waiting = sqlx::query(
                "UPDATE telegram_outbox SET html = $1, plain = $2, reply_markup = $3 \
                 WHERE id = $4 AND status = 'pending'",
            )
            .bind(&reply.html)
            .bind(&reply.plain)
            .bind(&reply.reply_markup)
            .bind(sent)
            .execute(&mut *transaction)
            .await
            .map_err(|error| sql_error("update waiting status row", error))?;
            if waiting.rows_affected() == 0 {
                replace_edit(&mut transaction, sent, reply).await?;
            }
        }
        transaction.commit().await.map_err(|error| sql_error("commit status row", error))?;
        self.outbox_ready.notify_one();
        Ok(())
    }
}

/// Drop the edits of row `sent` still waiting, then queue one with the newest text.
async fn replace_edit(
    connection: &mut sqlx::SqliteConnection,
    sent: i64,
    reply: &NewTelegramReply,
) -> StorageResult<()> {
    sqlx::query("DELETE FROM telegram_outbox WHERE edit_of = $1 AND status = 'pending'")
        .bind(sent)
        .execute(&mut *connection)
        .await
        .map_err(|error| sql_error("drop superseded status edits", error))?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO telegram_outbox (chat_id, html, plain, reply_to_message_id, edit_message_id, dedupe_key, \
                                      status, attempts, not_before_ms, created_at_ms, thread_id, photo, \
                                      reply_markup, edit_of) \
         VALUES ($1, $2, $3, NULL, (SELECT message_id FROM telegram_outbox WHERE id = $4), NULL, \
                 'pending', 0, $5, $5, $6, NULL, $7, $4)",
    )
    .bind(reply.chat_id)
    .bind(&reply.html)
    .bind(&reply.plain)
    .bind(sent)
    .bind(now)
    .bind(reply.thread_id)
    .bind(&reply.reply_markup)
    .execute(&mut *connection)
    .await
    .map_err(|error| sql_error("queue status edit", error))?;
    Ok(())
}
