//! Plain data types crossing the storage boundary.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConversation {
    pub title: String,
    /// Where it lives: "web", "api", "terminal", "telegram".
    pub channel: String,
    /// The external chat id for channel conversations (e.g. a Telegram chat id).
    pub chat_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// UUID v7 text.
    pub id: String,
    pub title: String,
    pub channel: String,
    pub chat_id: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub message_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
    /// Tool results fed back to the model.
    Tool,
    /// Notices and summaries inserted by valor itself.
    System,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::Tool => "tool",
            MessageRole::System => "system",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub conversation_id: String,
    pub role: MessageRole,
    /// The structured content (provider-neutral content blocks as JSON).
    pub content: serde_json::Value,
    /// Plain searchable text (what FTS indexes).
    pub text: String,
    pub turn_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Monotonic per database; also the FTS rowid.
    pub id: i64,
    pub conversation_id: String,
    pub role: MessageRole,
    pub content: serde_json::Value,
    pub text: String,
    pub turn_id: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub message: StoredMessage,
    /// A short excerpt with the matching terms marked `[like this]`.
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTurn {
    pub conversation_id: String,
    /// Intent label ("chat", "question", …).
    pub intent: String,
    /// Who labelled it: "ollama", "model", "fallback".
    pub intent_source: String,
    /// "small" | "medium" | "large".
    pub tier: String,
    /// Provider label, or "none".
    pub provider: String,
    /// Concrete model name, or "none".
    pub model: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    Running,
    Completed,
    Failed,
    /// The person stopped it (Stop, Ctrl-C, `/stop`); what was streamed is kept.
    Cancelled,
    /// valor stopped before it ended: a shutdown, or a crash found at start-up.
    Interrupted,
}

impl TurnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Running => "running",
            TurnStatus::Completed => "completed",
            TurnStatus::Failed => "failed",
            TurnStatus::Cancelled => "cancelled",
            TurnStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnFinish {
    pub status: TurnStatus,
    pub steps: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub error: Option<String>,
    /// History tokens the first model request sent, and how many compaction saved.
    pub context_tokens: u64,
    pub tokens_saved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub id: String,
    pub conversation_id: String,
    pub intent: String,
    pub intent_source: String,
    pub tier: String,
    pub provider: String,
    pub model: String,
    pub status: TurnStatus,
    pub steps: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// History tokens sent to the model (estimate), and tokens compaction left out.
    pub context_tokens: u64,
    pub tokens_saved: u64,
    /// Tokens the model spent on this turn's context summary (0 when none was made).
    pub summary_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpsert {
    pub channel: String,
    pub external_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub channel: String,
    pub external_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUpsert {
    pub channel: String,
    pub external_id: String,
    /// "private" | "group" | "supergroup" | "channel" | "web" | "terminal".
    pub kind: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub id: i64,
    pub channel: String,
    pub external_id: String,
    pub kind: String,
    pub title: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// "access", "tool_call", "admin", "auth", …
    pub kind: String,
    /// Who acted (user ref, "api", "system").
    pub actor: String,
    /// What it was about (chat id, tool name, route).
    pub subject: String,
    /// "allowed" | "denied" | "ok" | "error" | free text.
    pub decision: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub decision: String,
    pub detail: serde_json::Value,
    pub created_at_ms: i64,
}

/// Connection settings as the database reports them, for tests and `valor doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PragmaReport {
    /// The database file.
    pub path: String,
    /// `PRAGMA journal_mode`, lower case ("wal").
    pub journal_mode: String,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
    /// `PRAGMA synchronous` as a name: "off" | "normal" | "full" | "extra".
    pub synchronous: String,
    /// `sqlite_version()`.
    pub sqlite_version: String,
    /// Highest applied migration version, `None` before any.
    pub schema_version: Option<i64>,
}

/// A conversation's rolling summary of the history that fell out of its
/// context: the messages up to and including `last_message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingSummary {
    pub conversation_id: String,
    /// "model" | "extractive": who wrote the latest fold.
    pub method: String,
    /// The summary lines (`- …`), without the header.
    pub text: String,
    pub first_message_id: i64,
    pub last_message_id: i64,
    /// Messages folded in so far.
    pub message_count: u64,
    /// Times new turns were folded in.
    pub folds: u64,
}
