//! The Telegram channel's durable state: accepted inbound updates (with the
//! getUpdates offset) and the reply outbox.
//!
//! Invariants: an update row and the offset that acknowledges it are written
//! in one transaction, so an acknowledged update is always stored; the
//! `(chat_id, message_id)` pair is unique, so a duplicate lands once; a reply
//! is an outbox row before it is sent, and is `delivered` only with the
//! message id Telegram returned. Rows left `sending` by a crash become
//! `uncertain` and are never sent again (at most once beats twice).

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::{now_ms, sql_error};
use super::{StorageError, StorageResult, Store};

const OFFSET_KEY: &str = "telegram:offset";

/// One inbound message as accepted from `getUpdates` (or a webhook).
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramInbound {
    pub update_id: i64,
    pub chat_id: i64,
    pub message_id: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub text: String,
    /// The whole update as Telegram sent it.
    pub raw: serde_json::Value,
}

/// A stored inbound message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelegramUpdateRow {
    pub id: i64,
    pub update_id: i64,
    pub chat_id: i64,
    pub message_id: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub text: String,
    pub raw: serde_json::Value,
    pub status: String,
    pub received_at_ms: i64,
}

/// A reply to store in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTelegramReply {
    pub chat_id: i64,
    /// Forum topic (`message_thread_id`), if any.
    pub thread_id: Option<i64>,
    pub html: String,
    pub plain: String,
    pub reply_to_message_id: Option<i64>,
    pub edit_message_id: Option<i64>,
    /// Same key = same reply; a second insert is ignored.
    pub dedupe_key: Option<String>,
    /// Send this image (a data-dir reference, `media/…`) with sendPhoto;
    /// `html`/`plain` are then its caption.
    pub photo: Option<String>,
    /// Bot API `reply_markup` (an inline keyboard) as JSON text.
    pub reply_markup: Option<String>,
    /// Set this reaction (emoji) on that message of the chat once this row is delivered.
    pub reaction: Option<(i64, String)>,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TelegramOutboxRow {
    pub id: i64,
    pub chat_id: i64,
    pub thread_id: Option<i64>,
    pub html: String,
    pub plain: String,
    pub reply_to_message_id: Option<i64>,
    pub edit_message_id: Option<i64>,
    pub dedupe_key: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub message_id: Option<i64>,
    pub error: Option<String>,
    /// An image to send with sendPhoto (see [`NewTelegramReply::photo`]).
    pub photo: Option<String>,
    pub reply_markup: Option<String>,
    /// This row edits the message row `edit_of` sent (a status message);
    /// `edit_message_id` is resolved from it when the row is claimed.
    pub edit_of: Option<i64>,
    /// See [`NewTelegramReply::reaction`].
    pub reaction: Option<(i64, String)>,
}

// Macros (not consts) so `concat!` builds `&'static str` SQL.
macro_rules! update_columns {
    () => {
        "id, update_id, chat_id, message_id, user_id, username, text, raw, status, received_at_ms"
    };
}
macro_rules! outbox_columns {
    () => {
        "id, chat_id, thread_id, html, plain, reply_to_message_id, edit_message_id, dedupe_key, status, attempts, message_id, error, photo, reply_markup, edit_of, react_message_id, reaction"
    };
}

fn get<'r, T>(row: &'r SqliteRow, name: &str) -> StorageResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|error| sql_error(&format!("column {name}"), error))
}

fn update_row(row: &SqliteRow) -> StorageResult<TelegramUpdateRow> {
    let raw: String = get(row, "raw")?;
    Ok(TelegramUpdateRow {
        id: get(row, "id")?,
        update_id: get(row, "update_id")?,
        chat_id: get(row, "chat_id")?,
        message_id: get(row, "message_id")?,
        user_id: get(row, "user_id")?,
        username: get(row, "username")?,
        text: get(row, "text")?,
        raw: serde_json::from_str(&raw).map_err(|error| StorageError::Invalid(format!("update raw: {error}")))?,
        status: get(row, "status")?,
        received_at_ms: get(row, "received_at_ms")?,
    })
}

fn outbox_row(row: &SqliteRow) -> StorageResult<TelegramOutboxRow> {
    Ok(TelegramOutboxRow {
        id: get(row, "id")?,
        chat_id: get(row, "chat_id")?,
        thread_id: get(row, "thread_id")?,
        html: get(row, "html")?,
        plain: get(row, "plain")?,
        reply_to_message_id: get(row, "reply_to_message_id")?,
        edit_message_id: get(row, "edit_message_id")?,
        dedupe_key: get(row, "dedupe_key")?,
        status: get(row, "status")?,
        attempts: get(row, "attempts")?,
        message_id: get(row, "message_id")?,
        error: get(row, "error")?,
        photo: get(row, "photo")?,
        reply_markup: get(row, "reply_markup")?,
        edit_of: get(row, "edit_of")?,
        reaction: match (get::<Option<i64>>(row, "react_message_id")?, get::<Option<String>>(row, "reaction")?) {
            (Some(message_id), Some(emoji)) => Some((message_id, emoji)),
            _ => None,
        },
    })
}

/// Queue `replies`; how many were new (a repeated dedupe key inserts nothing).
pub(super) async fn insert_replies(
    connection: &mut sqlx::SqliteConnection,
    replies: &[NewTelegramReply],
    now: i64,
) -> StorageResult<u64> {
    let mut inserted = 0;
    for reply in replies {
        // Portable upsert-ignore: a repeated dedupe key inserts nothing.
        let result = sqlx::query(
            "INSERT INTO telegram_outbox (chat_id, html, plain, reply_to_message_id, edit_message_id, dedupe_key, \
                                          status, attempts, not_before_ms, created_at_ms, thread_id, photo, \
                                          reply_markup, react_message_id, reaction) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(reply.chat_id)
        .bind(&reply.html)
        .bind(&reply.plain)
        .bind(reply.reply_to_message_id)
        .bind(reply.edit_message_id)
        .bind(&reply.dedupe_key)
        .bind(now)
        .bind(reply.thread_id)
        .bind(&reply.photo)
        .bind(&reply.reply_markup)
        .bind(reply.reaction.as_ref().map(|(message_id, _)| *message_id))
        .bind(reply.reaction.as_ref().map(|(_, emoji)| emoji.as_str()))
        .execute(&mut *connection)
        .await
        .map_err(|error| sql_error("queue telegram reply", error))?;
        inserted += result.rows_affected();
    }
    Ok(inserted)
}

impl Store {
    /// The next `getUpdates` offset, if one was stored.
    pub async fn telegram_offset(&self) -> StorageResult<Option<i64>> {
        Ok(self.kv_get(OFFSET_KEY).await?.and_then(|value| value.parse().ok()))
    }

    /// Store the messages of one `getUpdates` answer (or one webhook update)
    /// and the offset that acknowledges them all, atomically: one commit per
    /// answer, not per update. Per message, whether it was new (a (chat,
    /// message id) seen before is not stored again).
    pub async fn telegram_accept_updates(
        &self,
        next_offset: i64,
        messages: &[TelegramInbound],
    ) -> StorageResult<Vec<bool>> {
        // Unacknowledged, Telegram keeps the updates until the database is usable again.
        self.check_file()?;
        let now = now_ms();
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin accept update", error))?;
        let mut inserted = Vec::with_capacity(messages.len());
        for message in messages {
            let raw = serde_json::to_string(&message.raw)
                .map_err(|error| StorageError::Invalid(format!("update raw: {error}")))?;
            let result = sqlx::query(
                "INSERT INTO telegram_updates (update_id, chat_id, message_id, user_id, username, text, raw, \
                                               status, received_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', $8, $8) \
                 ON CONFLICT (chat_id, message_id) DO NOTHING",
            )
            .bind(message.update_id)
            .bind(message.chat_id)
            .bind(message.message_id)
            .bind(message.user_id)
            .bind(&message.username)
            .bind(&message.text)
            .bind(&raw)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(|error| sql_error("store telegram update", error))?;
            inserted.push(result.rows_affected() == 1);
        }
        sqlx::query(
            "INSERT INTO kv_state (key, value, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(OFFSET_KEY)
        .bind(next_offset.to_string())
        .bind(now)
        .execute(&mut *transaction)
        .await
        .map_err(|error| sql_error("store telegram offset", error))?;
        transaction.commit().await.map_err(|error| sql_error("commit accept update", error))?;
        Ok(inserted)
    }

    /// After a restart: messages whose processing was cut short are handled again.
    pub async fn telegram_requeue_interrupted(&self) -> StorageResult<u64> {
        let result = sqlx::query(
            "UPDATE telegram_updates SET status = 'received', updated_at_ms = $1 WHERE status = 'processing'",
        )
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("requeue telegram updates", error))?;
        Ok(result.rows_affected())
    }

    /// Claim every `received` message (now `processing`), oldest first.
    pub async fn telegram_claim_received(&self) -> StorageResult<Vec<TelegramUpdateRow>> {
        let sql = concat!(
            "UPDATE telegram_updates SET status = 'processing', updated_at_ms = $1 \
             WHERE status = 'received' RETURNING ",
            update_columns!()
        );
        let found = sqlx::query(sql)
            .bind(now_ms())
            .fetch_all(&self.writer)
            .await
            .map_err(|error| sql_error("claim telegram updates", error))?;
        let mut rows = found.iter().map(update_row).collect::<StorageResult<Vec<_>>>()?;
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    /// Set a message's status (`processed` or `ignored`).
    pub async fn telegram_mark_update(&self, id: i64, status: &str) -> StorageResult<()> {
        sqlx::query("UPDATE telegram_updates SET status = $1, updated_at_ms = $2 WHERE id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("mark telegram update", error))?;
        Ok(())
    }

    /// Queue the replies to a message and mark it processed, in one transaction.
    pub async fn telegram_finish_update(&self, id: i64, replies: &[NewTelegramReply]) -> StorageResult<()> {
        self.telegram_finish_updates(&[id], replies).await
    }

    /// Queue one reply to several messages (a backlog answered together) and
    /// mark them all processed, in one transaction.
    pub async fn telegram_finish_updates(&self, ids: &[i64], replies: &[NewTelegramReply]) -> StorageResult<()> {
        let now = now_ms();
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin finish update", error))?;
        for id in ids {
            sqlx::query("UPDATE telegram_updates SET status = 'processed', updated_at_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(|error| sql_error("finish telegram update", error))?;
        }
        insert_replies(&mut transaction, replies, now).await?;
        transaction.commit().await.map_err(|error| sql_error("commit finish update", error))?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    /// Queue replies not tied to an inbound message (notices, refusals).
    pub async fn telegram_queue_replies(&self, replies: &[NewTelegramReply]) -> StorageResult<()> {
        let mut connection = self.writer.acquire().await.map_err(|error| sql_error("queue replies", error))?;
        insert_replies(&mut connection, replies, now_ms()).await?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    pub async fn telegram_updates(&self) -> StorageResult<Vec<TelegramUpdateRow>> {
        let sql = concat!("SELECT ", update_columns!(), " FROM telegram_updates ORDER BY id");
        let found = sqlx::query(sql)
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("list telegram updates", error))?;
        found.iter().map(update_row).collect()
    }

    /// After a restart: rows cut off mid-send may or may not have reached
    /// Telegram; they become `uncertain` and are not sent again.
    pub async fn telegram_outbox_recover(&self) -> StorageResult<u64> {
        let result = sqlx::query(
            "UPDATE telegram_outbox SET status = 'uncertain', \
                 error = 'interrupted while sending; not resent to avoid a duplicate' \
             WHERE status = 'sending'",
        )
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("recover telegram outbox", error))?;
        Ok(result.rows_affected())
    }

    /// Claim the oldest due `pending` row whose chat has no earlier row
    /// waiting (so parts of a reply keep their order); it becomes `sending`.
    /// A row editing another row's message gets that message's id now (the
    /// other row, earlier in the chat, is done by then; `None` if it failed).
    pub async fn telegram_outbox_claim(&self) -> StorageResult<Option<TelegramOutboxRow>> {
        let sql = concat!(
            "UPDATE telegram_outbox SET status = 'sending', attempts = attempts + 1, \
                 edit_message_id = COALESCE(edit_message_id, \
                     (SELECT s.message_id FROM telegram_outbox s WHERE s.id = telegram_outbox.edit_of)) \
             WHERE id = (SELECT o.id FROM telegram_outbox o \
                         WHERE o.status = 'pending' AND o.not_before_ms <= $1 \
                           AND NOT EXISTS (SELECT 1 FROM telegram_outbox e WHERE e.chat_id = o.chat_id \
                                           AND e.id < o.id AND e.status IN ('pending', 'sending')) \
                         ORDER BY o.id LIMIT 1) \
             RETURNING ",
            outbox_columns!()
        );
        let found = sqlx::query(sql)
            .bind(now_ms())
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("claim telegram outbox row", error))?;
        found.as_ref().map(outbox_row).transpose()
    }

    /// When the next rescheduled row (429, network error) becomes due, if one waits.
    pub async fn telegram_outbox_next_due_ms(&self) -> StorageResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(not_before_ms) FROM telegram_outbox WHERE status = 'pending' AND not_before_ms > $1",
        )
        .bind(now_ms())
        .fetch_one(&self.readers)
        .await
        .map_err(|error| sql_error("next due telegram outbox row", error))
    }

    pub async fn telegram_outbox_delivered(&self, id: i64, message_id: i64) -> StorageResult<()> {
        sqlx::query(
            "UPDATE telegram_outbox SET status = 'delivered', message_id = $1, delivered_at_ms = $2, error = NULL \
             WHERE id = $3",
        )
        .bind(message_id)
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("mark telegram reply delivered", error))?;
        Ok(())
    }

    /// Back to `pending`, not before `not_before_ms` (after a 429 or a network error).
    pub async fn telegram_outbox_retry_later(&self, id: i64, not_before_ms: i64, error: &str) -> StorageResult<()> {
        sqlx::query("UPDATE telegram_outbox SET status = 'pending', not_before_ms = $1, error = $2 WHERE id = $3")
            .bind(not_before_ms)
            .bind(error)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("reschedule telegram reply", error))?;
        Ok(())
    }

    /// The send may or may not have reached Telegram; never retried.
    pub async fn telegram_outbox_uncertain(&self, id: i64, error: &str) -> StorageResult<()> {
        self.telegram_outbox_end(id, "uncertain", error).await
    }

    /// Telegram refused the reply for good; never retried.
    pub async fn telegram_outbox_failed(&self, id: i64, error: &str) -> StorageResult<()> {
        self.telegram_outbox_end(id, "failed", error).await
    }

    async fn telegram_outbox_end(&self, id: i64, status: &'static str, error: &str) -> StorageResult<()> {
        sqlx::query("UPDATE telegram_outbox SET status = $1, error = $2 WHERE id = $3")
            .bind(status)
            .bind(error)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error(&format!("mark telegram reply {status}"), error))?;
        Ok(())
    }

    /// How many outbox rows are in each status.
    pub async fn telegram_outbox_counts(&self) -> StorageResult<Vec<(String, i64)>> {
        let found =
            sqlx::query("SELECT status, COUNT(*) AS count FROM telegram_outbox GROUP BY status ORDER BY status")
                .fetch_all(&self.readers)
                .await
                .map_err(|error| sql_error("count telegram outbox", error))?;
        found.iter().map(|row| Ok((get(row, "status")?, get(row, "count")?))).collect()
    }

    /// Oldest first.
    pub async fn telegram_outbox(&self) -> StorageResult<Vec<TelegramOutboxRow>> {
        let sql = concat!("SELECT ", outbox_columns!(), " FROM telegram_outbox ORDER BY id");
        let found = sqlx::query(sql)
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("list telegram outbox", error))?;
        found.iter().map(outbox_row).collect()
    }
}
