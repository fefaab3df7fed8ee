//! Conversations and their messages, including full-text search. Appending a
//! message and bumping its conversation's `updated_at_ms` happen in one
//! transaction whose first statement is a write, so a second process's
//! writer queues on SQLite's busy timeout instead of failing a read-to-write
//! lock upgrade (valor's own writers already queue on the one writer connection).

use std::time::Duration;

use futures::TryStreamExt as _;

use super::bounded::{self, BoundedRead};
use super::rows::{self, now_ms, sql_error};
use super::{
    Change, Conversation, ConversationSummary, NewConversation, NewMessage, SearchHit, StorageError, StorageResult,
    Store, StoredMessage, fts,
};

/// A search that runs longer is stopped (an FTS5 query of 16 common words
/// over a large history takes well under a second).
const SEARCH_BUDGET: Duration = Duration::from_secs(5);

fn limit_bind(limit: u32) -> i64 {
    i64::from(limit)
}

impl Store {
    pub async fn create_conversation(&self, new: NewConversation) -> StorageResult<Conversation> {
        let now = now_ms();
        let conversation = Conversation {
            id: uuid::Uuid::now_v7().to_string(),
            title: new.title,
            channel: new.channel,
            chat_id: new.chat_id,
            created_at_ms: now,
            updated_at_ms: now,
        };
        sqlx::query(
            "INSERT INTO conversations (id, title, channel, chat_id, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&conversation.id)
        .bind(&conversation.title)
        .bind(&conversation.channel)
        .bind(conversation.chat_id)
        .bind(conversation.created_at_ms)
        .bind(conversation.updated_at_ms)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("create conversation", error))?;
        Ok(conversation)
    }

    pub async fn get_conversation(&self, id: &str) -> StorageResult<Conversation> {
        let row = sqlx::query(concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1"))
            .bind(id)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error(&format!("conversation {id}"), error))?;
        rows::conversation(&row)
    }

    /// By id first, then by exact title (newest wins); `None` when neither matches.
    pub async fn find_conversation(&self, id_or_title: &str) -> StorageResult<Option<Conversation>> {
        match self.get_conversation(id_or_title).await {
            Ok(conversation) => return Ok(Some(conversation)),
            Err(StorageError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE title = $1 \
              ORDER BY updated_at_ms DESC, id DESC LIMIT 1"
        ))
        .bind(id_or_title)
        .fetch_optional(&self.readers)
        .await
        .map_err(|error| sql_error("find conversation by title", error))?;
        row.as_ref().map(rows::conversation).transpose()
    }

    /// Newest activity first.
    pub async fn list_conversations(&self, limit: u32) -> StorageResult<Vec<ConversationSummary>> {
        let found = sqlx::query(
            "SELECT c.id, c.title, c.channel, c.chat_id, c.created_at_ms, c.updated_at_ms, \
                    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count \
             FROM conversations c \
             ORDER BY c.updated_at_ms DESC, c.id DESC \
             LIMIT $1",
        )
        .bind(limit_bind(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list conversations", error))?;
        found
            .iter()
            .map(|row| {
                let message_count = sqlx::Row::try_get(row, "message_count")
                    .map_err(|error| sql_error("column message_count", error))?;
                Ok(ConversationSummary { conversation: rows::conversation(row)?, message_count })
            })
            .collect()
    }

    /// Give a conversation a new title. NotFound for an unknown id.
    pub async fn rename_conversation(&self, id: &str, title: &str) -> StorageResult<Conversation> {
        let done = sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2")
            .bind(title)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("rename conversation", error))?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound { what: format!("conversation {id}") });
        }
        self.get_conversation(id).await
    }

    /// Delete a conversation with its messages, turns and context summaries
    /// (foreign keys cascade; its jobs stay, without a conversation). NotFound for an unknown id.
    pub async fn delete_conversation(&self, id: &str) -> StorageResult<()> {
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("delete conversation", error))?;
        match done.rows_affected() {
            0 => Err(StorageError::NotFound { what: format!("conversation {id}") }),
            _ => {
                self.changed(Change::Deleted(id.into()));
                Ok(())
            }
        }
    }

    /// Conversations whose title contains `query` (case-insensitive), then
    /// those whose messages match it (full-text, best first), each once, with
    /// the best matching message's snippet. At most `limit`.
    pub async fn search_conversations(
        &self,
        query: &str,
        limit: u32,
    ) -> StorageResult<Vec<(ConversationSummary, Option<String>)>> {
        let query = query.trim();
        let mut found: Vec<(ConversationSummary, Option<String>)> = Vec::new();
        if query.is_empty() {
            return Ok(found);
        }
        let pattern = format!("%{}%", query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let titled: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE title LIKE $1 ESCAPE '\\' ORDER BY updated_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(&pattern)
        .bind(limit_bind(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("search conversation titles", error))?;
        for id in titled {
            found.push((self.conversation_summary(&id).await?, None));
        }
        for hit in self.search_messages(None, query, limit.saturating_mul(4)).await? {
            if found.len() >= limit as usize {
                break;
            }
            if found.iter().any(|(summary, _)| summary.conversation.id == hit.message.conversation_id) {
                continue;
            }
            found.push((self.conversation_summary(&hit.message.conversation_id).await?, Some(hit.snippet)));
        }
        Ok(found)
    }

    /// One conversation with its message count.
    pub async fn conversation_summary(&self, id: &str) -> StorageResult<ConversationSummary> {
        let message_count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
            .bind(id)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error("count messages", error))?;
        Ok(ConversationSummary { conversation: self.get_conversation(id).await?, message_count })
    }

    /// Appends and bumps the conversation's `updated_at_ms`. Fails with NotFound for an unknown conversation.
    pub async fn append_message(&self, new: NewMessage) -> StorageResult<StoredMessage> {
        let stored = self.append(new, None).await?;
        stored.ok_or_else(|| StorageError::Invalid("a message without a dedupe key was skipped".into()))
    }

    /// Appends unless a message was already appended under `dedupe_key`
    /// (then `None`). The key and the message are written in one transaction,
    /// so a crash can never leave one without the other.
    pub async fn append_message_once(&self, new: NewMessage, dedupe_key: &str) -> StorageResult<Option<StoredMessage>> {
        self.append(new, Some(dedupe_key)).await
    }

    async fn append(&self, new: NewMessage, dedupe_key: Option<&str>) -> StorageResult<Option<StoredMessage>> {
        // Never into a file that is gone: the message would vanish at restart.
        self.check_file()?;
        let appended = self.append_checked(new, dedupe_key).await;
        self.note_write(appended)
    }

    async fn append_checked(&self, new: NewMessage, dedupe_key: Option<&str>) -> StorageResult<Option<StoredMessage>> {
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin append", error))?;
        let stored = append_on(&mut transaction, new, dedupe_key).await?;
        if let Some(message) = &stored {
            transaction.commit().await.map_err(|error| sql_error("commit append", error))?;
            self.changed(Change::Messages(message.conversation_id.as_str().into()));
        }
        Ok(stored)
    }

    /// The last `limit` messages, returned oldest first. Every turn reads its
    /// history here, so rows are converted as they arrive: a long
    /// conversation never holds all its raw rows and all its messages at once.
    pub async fn recent_messages(&self, conversation_id: &str, limit: u32) -> StorageResult<Vec<StoredMessage>> {
        let mut found = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM (SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2) AS recent \
              ORDER BY id ASC"
        ))
        .bind(conversation_id)
        .bind(limit_bind(limit))
        .fetch(&self.readers);
        let mut messages = Vec::new();
        while let Some(row) = found.try_next().await.map_err(|error| sql_error("recent messages", error))? {
            messages.push(rows::message(&row)?);
        }
        Ok(messages)
    }

    /// Messages with id greater than `after_id`, oldest first, at most `limit`.
    pub async fn list_messages(
        &self,
        conversation_id: &str,
        after_id: i64,
        limit: u32,
    ) -> StorageResult<Vec<StoredMessage>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"
        ))
        .bind(conversation_id)
        .bind(after_id)
        .bind(limit_bind(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list messages", error))?;
        found.iter().map(rows::message).collect()
    }

    /// Full-text search. `query` is user text: it is turned into quoted FTS5
    /// terms (never passed through as FTS syntax). Best match first. Text with
    /// no searchable token gives an empty result.
    pub async fn search_messages(
        &self,
        conversation_id: Option<&str>,
        query: &str,
        limit: u32,
    ) -> StorageResult<Vec<SearchHit>> {
        let Some(expression) = fts::match_expression(query) else {
            return Ok(Vec::new());
        };
        // SQLite-only: FTS5 MATCH, bm25() and snippet(); PostgreSQL will use
        // tsvector/ts_rank/ts_headline behind the same method.
        let found = sqlx::query(
            "SELECT m.id, m.conversation_id, m.role, m.content, m.text, m.turn_id, m.created_at_ms, \
                    snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet \
             FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid \
             WHERE messages_fts MATCH $1 AND ($2 IS NULL OR m.conversation_id = $2) \
             ORDER BY bm25(messages_fts), m.id DESC \
             LIMIT $3",
        )
        .bind(&expression)
        .bind(conversation_id)
        .bind(limit_bind(limit));
        // Bounded: a caller that gives up (a tool timeout) stops the statement too.
        let mut read = BoundedRead::acquire(&self.readers, SEARCH_BUDGET).await?;
        let found = found.fetch_all(read.connection()).await;
        read.finish().await;
        let found = found.map_err(|error| {
            if bounded::interrupted(&error) {
                StorageError::Invalid(format!(
                    "the search ran longer than {} s and was stopped; use fewer or rarer words",
                    SEARCH_BUDGET.as_secs()
                ))
            } else {
                sql_error("search messages", error)
            }
        })?;
        found
            .iter()
            .map(|row| {
                let snippet = sqlx::Row::try_get(row, "snippet").map_err(|error| sql_error("column snippet", error))?;
                Ok(SearchHit { message: rows::message(row)?, snippet })
            })
            .collect()
    }
}

/// Appends `new` on an open transaction (the caller commits), bumping the
/// conversation's `updated_at_ms`; `None` when `dedupe_key` was used before.
pub(super) async fn append_on(
    connection: &mut sqlx::SqliteConnection,
    new: NewMessage,
    dedupe_key: Option<&str>,
) -> StorageResult<Option<StoredMessage>> {
    let content = serde_json::to_string(&new.content)
        .map_err(|error| StorageError::Invalid(format!("message content: {error}")))?;
    let now = now_ms();
    // The write comes first: it takes the write lock and proves the conversation exists.
    let bumped = sqlx::query("UPDATE conversations SET updated_at_ms = $1 WHERE id = $2")
        .bind(now)
        .bind(&new.conversation_id)
        .execute(&mut *connection)
        .await
        .map_err(|error| sql_error("bump conversation", error))?;
    if bumped.rows_affected() == 0 {
        return Err(StorageError::NotFound { what: format!("conversation {}", new.conversation_id) });
    }
    if let Some(key) = dedupe_key {
        let claimed = sqlx::query(
            "INSERT INTO kv_state (key, value, updated_at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&new.conversation_id)
        .bind(now)
        .execute(&mut *connection)
        .await
        .map_err(|error| sql_error("claim message dedupe key", error))?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
    }
    let row = sqlx::query(concat!(
        "INSERT INTO messages (conversation_id, role, content, text, turn_id, created_at_ms, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, ",
        next_revision!(1),
        ") RETURNING ",
        message_columns!()
    ))
    .bind(&new.conversation_id)
    .bind(new.role.as_str())
    .bind(&content)
    .bind(&new.text)
    .bind(&new.turn_id)
    .bind(now)
    .fetch_one(&mut *connection)
    .await
    .map_err(|error| sql_error("insert message", error))?;
    Ok(Some(rows::message(&row)?))
}
