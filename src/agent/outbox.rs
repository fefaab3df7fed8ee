//! How work that finishes later — jobs, schedules, daydream — reaches a chat.
//! Producers (the `jobs` module) post [`Notice`]s to an [`Outbox`]; the app
//! wires an implementation per channel (Telegram's durable outbox, or the
//! conversation transcript for web/API/terminal conversations).
//!
//! Invariants: posting is durable before `post` returns `Ok` (a restart does
//! not lose a notice), and a notice whose `dedupe_key` was already posted is
//! accepted again without being delivered twice.

use serde::{Deserialize, Serialize};

use crate::storage::{MessageRole, NewMessage, StorageError, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// "on it" / queued acknowledgements and progress updates.
    Progress,
    /// The final result of a piece of work.
    Result,
    /// Work that failed; the text says what failed.
    Failure,
    /// Anything else valor wants to tell the chat (daydream summaries, …).
    Info,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Progress => "progress",
            NoticeKind::Result => "result",
            NoticeKind::Failure => "failure",
            NoticeKind::Info => "info",
        }
    }
}

/// A message for the chat a conversation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub conversation_id: String,
    pub kind: NoticeKind,
    /// Markdown text, as the model would write it.
    pub text: String,
    /// Same key = same notice (e.g. `job:42:result`); delivered at most once.
    pub dedupe_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("conversation {0} does not exist")]
    UnknownConversation(String),
    #[error("the notice could not be stored: {0}")]
    Storage(#[from] StorageError),
}

/// An answer button under a question: its label and the data a press carries back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub label: String,
    /// At most 64 bytes (Telegram's `callback_data` limit).
    pub data: String,
}

#[async_trait::async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug {
    async fn post(&self, notice: Notice) -> Result<(), OutboxError>;

    /// A question with answer buttons. Channels without buttons post the
    /// text alone (its answers then come through the API).
    async fn post_question(&self, notice: Notice, _choices: &[Choice]) -> Result<(), OutboxError> {
        self.post(notice).await
    }

    /// An image stored under the data dir (`reference` as in `media`), the
    /// notice text as its caption. Channels without photos post the text
    /// with the `[image: …]` reference.
    async fn post_image(&self, mut notice: Notice, reference: &str) -> Result<(), OutboxError> {
        notice.text = format!("{}\n{}", notice.text, crate::agent::media::placeholder(reference));
        self.post(notice).await
    }
}

/// Delivers notices into the conversation transcript as `system` messages —
/// the delivery for web, API and terminal conversations (the web chat shows
/// them; the model's history has them as marked notices, see `history`).
#[derive(Debug, Clone)]
pub struct TranscriptOutbox {
    store: Store,
}

impl TranscriptOutbox {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl Outbox for TranscriptOutbox {
    async fn post(&self, notice: Notice) -> Result<(), OutboxError> {
        record_in_transcript(&self.store, notice).await
    }
}

/// Append a notice to its conversation's transcript as a `system` message,
/// once per `dedupe_key`: the transcript's copy of that notice. Whatever is
/// recorded first under a key stays — so a job can record its own text for
/// a notice (a code run's compact outcome, which the model reads) before
/// posting the notice, and a [`TranscriptOutbox`] then adds nothing.
pub async fn record_in_transcript(store: &Store, notice: Notice) -> Result<(), OutboxError> {
    let key = format!("outbox:transcript:{}", notice.dedupe_key);
    let content = serde_json::json!([{"type": "text", "text": notice.text}]);
    let message = NewMessage {
        conversation_id: notice.conversation_id.clone(),
        role: MessageRole::System,
        content,
        text: notice.text,
        turn_id: None,
    };
    // The message and its key are written in one transaction: a repeat is skipped.
    match store.append_message_once(message, &key).await {
        Ok(_) => Ok(()),
        Err(StorageError::NotFound { .. }) => Err(OutboxError::UnknownConversation(notice.conversation_id)),
        Err(other) => Err(other.into()),
    }
}
