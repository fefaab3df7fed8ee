//! The only module with SQL. [`Store`] is valor's whole persistence API:
//! conversations, messages (with an FTS5 index), turns, users and chats, the
//! audit log and key-value state. SQLite in WAL mode with foreign keys on and
//! a busy timeout; versioned migrations live in `migrations/`.
//!
//! Invariants: callers never see `sqlx` types or SQL; queries use portable SQL
//! with `$N` placeholders so a PostgreSQL implementation of the same API can
//! follow; timestamps are UNIX milliseconds (UTC).

mod types;

pub use types::*;

use std::path::Path;

/// Storage failures callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("invalid data: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Handle to the database; cheap to clone (a connection pool inside).
#[derive(Debug, Clone)]
pub struct Store {
    pool: sqlx::SqlitePool,
}

impl Store {
    /// Open (creating the file and parent directory if missing) and migrate.
    pub async fn open(path: &Path) -> StorageResult<Store> {
        todo!("{path:?}")
    }

    /// Apply pending migrations; returns the versions newly applied.
    pub async fn migrate(&self) -> StorageResult<Vec<i64>> {
        todo!()
    }

    /// A cheap query proving the database answers.
    pub async fn ping(&self) -> StorageResult<()> {
        todo!()
    }

    /// Consistent online copy of the whole database to `path` (must not exist).
    pub async fn backup_to(&self, path: &Path) -> StorageResult<()> {
        todo!("{path:?}")
    }

    /// Close the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_conversation(&self, new: NewConversation) -> StorageResult<Conversation> {
        todo!("{new:?}")
    }

    pub async fn get_conversation(&self, id: &str) -> StorageResult<Conversation> {
        todo!("{id}")
    }

    /// By id first, then by exact title (newest wins); `None` when neither matches.
    pub async fn find_conversation(&self, id_or_title: &str) -> StorageResult<Option<Conversation>> {
        todo!("{id_or_title}")
    }

    /// Newest activity first.
    pub async fn list_conversations(&self, limit: u32) -> StorageResult<Vec<ConversationSummary>> {
        todo!("{limit}")
    }

    /// Appends and bumps the conversation's `updated_at_ms`. Fails with NotFound for an unknown conversation.
    pub async fn append_message(&self, new: NewMessage) -> StorageResult<StoredMessage> {
        todo!("{new:?}")
    }

    /// The last `limit` messages, returned oldest first.
    pub async fn recent_messages(&self, conversation_id: &str, limit: u32) -> StorageResult<Vec<StoredMessage>> {
        todo!("{conversation_id}{limit}")
    }

    /// Messages with id greater than `after_id`, oldest first, at most `limit`.
    pub async fn list_messages(&self, conversation_id: &str, after_id: i64, limit: u32) -> StorageResult<Vec<StoredMessage>> {
        todo!("{conversation_id}{after_id}{limit}")
    }

    /// Full-text search. `query` is user text: it is turned into quoted FTS5
    /// terms (never passed through as FTS syntax). Best match first.
    pub async fn search_messages(&self, conversation_id: Option<&str>, query: &str, limit: u32) -> StorageResult<Vec<SearchHit>> {
        todo!("{conversation_id:?}{query}{limit}")
    }

    pub async fn start_turn(&self, new: NewTurn) -> StorageResult<Turn> {
        todo!("{new:?}")
    }

    pub async fn finish_turn(&self, turn_id: &str, finish: TurnFinish) -> StorageResult<()> {
        todo!("{turn_id}{finish:?}")
    }

    pub async fn get_turn(&self, turn_id: &str) -> StorageResult<Turn> {
        todo!("{turn_id}")
    }

    /// Oldest first.
    pub async fn list_turns(&self, conversation_id: &str) -> StorageResult<Vec<Turn>> {
        todo!("{conversation_id}")
    }

    pub async fn upsert_user(&self, user: UserUpsert) -> StorageResult<User> {
        todo!("{user:?}")
    }

    pub async fn upsert_chat(&self, chat: ChatUpsert) -> StorageResult<Chat> {
        todo!("{chat:?}")
    }

    pub async fn record_audit(&self, event: NewAuditEvent) -> StorageResult<()> {
        todo!("{event:?}")
    }

    /// Newest first, optionally only one kind.
    pub async fn list_audit(&self, kind: Option<&str>, limit: u32) -> StorageResult<Vec<AuditEvent>> {
        todo!("{kind:?}{limit}")
    }

    pub async fn kv_get(&self, key: &str) -> StorageResult<Option<String>> {
        todo!("{key}")
    }

    pub async fn kv_set(&self, key: &str, value: &str) -> StorageResult<()> {
        todo!("{key}{value}")
    }

    pub async fn kv_delete(&self, key: &str) -> StorageResult<()> {
        todo!("{key}")
    }
}
