//! The durable outbox: replies and notices are rows before they are sent,
//! and `delivered` only with the message id Telegram returned.
//!
//! Exactly-once, honestly: Telegram has no idempotency key, so a send whose
//! answer was lost cannot be told apart from one that never arrived. We pick
//! *at most once* for new messages: a row is marked `sending` before the
//! call; a row still `sending` after a crash, or whose call got no answer
//! (timeout, cut connection), becomes `uncertain` and is not sent again
//! (logged for an operator). Rows never attempted, rows refused with 429
//! (`retry_after` honoured), rows Telegram answered with a server error
//! (5xx) and rows whose connection failed before anything was sent are retried — also after a restart. Rows that edit a
//! message (a streamed preview's final text) are idempotent and always
//! retried. A status message (`Outbox::post_status`) is one row that sends
//! it (dedupe key `status:{key}`, its text replaced while it waits) and then
//! at most one waiting edit row (`edit_of` = the send row; a newer state
//! replaces a waiting one), whose target message id is resolved when it is
//! claimed — an edit whose send row never delivered fails instead of
//! sending anything. Edits carry the row's keyboard (none removes it).
//! Rows of one chat go out in order; rows of different chats go
//! out concurrently (`SENDERS`). A row with a `photo` is sent
//! with `sendPhoto` (the image read from the data directory when it is sent;
//! a missing or unreadable image fails the row) under the same rules.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::agent::outbox::{Choice, Notice, Outbox, OutboxError, StatusNotice};
use crate::storage::{NewTelegramReply, StorageError, Store, TelegramOutboxRow};

use super::Shared;
use super::api::ApiError;
use super::render::markdown_to_html;
use super::split::{MESSAGE_LIMIT, split_markdown};

/// Network failures before a row is given up.
const MAX_ATTEMPTS: i64 = 10;
/// How often due (rescheduled) rows are looked for without a wake-up.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// The outbox rows for a Markdown reply: split, rendered, keyed `{key}:{part}`.
/// The first part replies to `reply_to` and replaces the preview `edit` if any.
pub fn build_replies(
    (chat_id, thread_id): (i64, Option<i64>),
    reply_to: Option<i64>,
    markdown: &str,
    edit: Option<i64>,
    key: &str,
) -> Vec<NewTelegramReply> {
    let text = if markdown.trim().is_empty() { "(no answer)" } else { markdown };
    split_markdown(text, MESSAGE_LIMIT)
        .into_iter()
        .enumerate()
        .map(|(index, part)| NewTelegramReply {
            chat_id,
            thread_id,
            html: markdown_to_html(&part),
            plain: part,
            reply_to_message_id: if index == 0 { reply_to } else { None },
            edit_message_id: if index == 0 { edit } else { None },
            dedupe_key: Some(format!("{key}:{index}")),
            photo: None,
            reply_markup: None,
        })
        .collect()
}

/// The outbox rows sending these images (data-dir references, e.g. what a
/// turn's `generate_image` made) as photos without caption, keyed `{key}:photo:{n}`.
pub fn photo_replies(
    (chat_id, thread_id): (i64, Option<i64>),
    references: &[String],
    key: &str,
) -> Vec<NewTelegramReply> {
    references
        .iter()
        .enumerate()
        .map(|(index, reference)| NewTelegramReply {
            chat_id,
            thread_id,
            html: String::new(),
            plain: String::new(),
            reply_to_message_id: None,
            edit_message_id: None,
            dedupe_key: Some(format!("{key}:photo:{index}")),
            photo: Some(reference.clone()),
            reply_markup: None,
        })
        .collect()
}

/// Rows in flight at once. The claim never hands out a row while an earlier
/// row of its chat is unsent, so each chat's rows still go out in order; one
/// sender at a time capped delivery at one Telegram round trip per message
/// (about 9 a second at an 80 ms round trip, measured by `examples/load`),
/// far below Telegram's 30 a second.
const SENDERS: usize = 4;

/// Send due rows until shutdown.
pub(super) async fn run(shared: &Shared, shutdown: &CancellationToken) {
    futures::future::join_all((0..SENDERS).map(|_| sender(shared, shutdown))).await;
}

async fn sender(shared: &Shared, shutdown: &CancellationToken) {
    while !shutdown.is_cancelled() {
        match shared.store.telegram_outbox_claim().await {
            Ok(Some(row)) => {
                // More rows may be due: wake another sender while this one sends.
                shared.outbox_ready.notify_one();
                if let Err(error) = deliver(shared, &row, shutdown).await {
                    tracing::error!(row = row.id, "telegram: outbox bookkeeping failed: {error}");
                }
            }
            Ok(None) => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = shared.outbox_ready.notified() => {}
                    () = tokio::time::sleep(IDLE_CHECK) => {}
                }
            }
            Err(error) => {
                tracing::error!("telegram: reading the outbox failed: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn send(shared: &Shared, row: &TelegramOutboxRow, photo: Option<&Photo>, html: bool) -> Result<i64, ApiError> {
    let text = if html { &row.html } else { &row.plain };
    if let Some(photo) = photo {
        let file = (photo.bytes.as_slice(), photo.file_name.as_str());
        return shared.api.send_photo((row.chat_id, row.thread_id), file, text, html).await;
    }
    let markup = row.reply_markup.as_deref().and_then(|markup| serde_json::from_str(markup).ok());
    match row.edit_message_id {
        Some(id) => shared.api.edit_message_text(row.chat_id, id, text, html, markup.as_ref()).await.map(|()| id),
        None => {
            let (chat, thread, reply_to) = (row.chat_id, row.thread_id, row.reply_to_message_id);
            shared.api.send_message(chat, thread, text, html, reply_to, markup.as_ref()).await
        }
    }
}

/// The image of a photo row, read from the data directory.
struct Photo {
    bytes: Vec<u8>,
    file_name: String,
}

async fn load_photo(shared: &Shared, reference: &str) -> Result<Photo, String> {
    let image = crate::agent::media::load(&shared.data_dir, reference).await?;
    let file_name = reference.rsplit('/').next().unwrap_or("image.png").to_owned();
    Ok(Photo { bytes: image.bytes, file_name })
}

async fn deliver(shared: &Shared, row: &TelegramOutboxRow, shutdown: &CancellationToken) -> Result<(), StorageError> {
    let store = &shared.store;
    let photo = match &row.photo {
        Some(reference) => match load_photo(shared, reference).await {
            Ok(photo) => Some(photo),
            Err(error) => {
                tracing::error!(row = row.id, "telegram: photo {reference} not sent: {error}");
                return store.telegram_outbox_failed(row.id, &error).await;
            }
        },
        None => None,
    };
    if row.edit_of.is_some() && row.edit_message_id.is_none() {
        // The status message this edits was never delivered: never send it as a new one.
        return store.telegram_outbox_failed(row.id, "the message to edit was never delivered").await;
    }
    let slot = tokio::select! {
        () = shutdown.cancelled() => {
            // Not sent: back to pending for the next start.
            return store.telegram_outbox_retry_later(row.id, 0, "shutdown before sending").await;
        }
        slot = shared.pacer.wait_turn(row.chat_id) => slot,
    };
    let mut result = send(shared, row, photo.as_ref(), true).await;
    if result.as_ref().is_err_and(ApiError::is_entity_error) {
        tracing::warn!(row = row.id, "telegram: HTML rejected; sending as plain text");
        result = send(shared, row, photo.as_ref(), false).await;
    }
    shared.pacer.sent(row.chat_id, slot);
    let now = chrono::Utc::now().timestamp_millis();
    match result {
        Ok(message_id) => store.telegram_outbox_delivered(row.id, message_id).await,
        Err(ApiError::RateLimited { retry_after }) => {
            shared.pacer.hold(row.chat_id, retry_after);
            let due = now + i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX / 2);
            store.telegram_outbox_retry_later(row.id, due, "rate limited (429)").await
        }
        Err(error @ ApiError::NoAnswer { .. }) if row.edit_message_id.is_none() => {
            tracing::error!(row = row.id, "telegram: {error}; not resending to avoid a duplicate");
            store.telegram_outbox_uncertain(row.id, &error.to_string()).await
        }
        // A 5xx answer is Telegram saying it did not act: as safe to retry as a failed connection.
        Err(
            error @ (ApiError::Network { .. } | ApiError::NoAnswer { .. } | ApiError::Refused { code: 500..=599, .. }),
        ) if row.attempts < MAX_ATTEMPTS => {
            let backoff = 500 * (1i64 << row.attempts.clamp(0, 7));
            store.telegram_outbox_retry_later(row.id, now + backoff, &error.to_string()).await
        }
        Err(error) => {
            tracing::error!(row = row.id, "telegram: reply not delivered: {error}");
            store.telegram_outbox_failed(row.id, &error.to_string()).await
        }
    }
}

/// `Outbox` for the jobs module: a notice for a Telegram conversation becomes
/// outbox rows for its chat (dedupe key `notice:{key}:{part}`); notices for
/// other conversations go to `fallback` (e.g. the transcript).
#[derive(Debug, Clone)]
pub struct TelegramOutbox {
    store: Store,
    ready: Arc<Notify>,
    fallback: Arc<dyn Outbox>,
}

impl TelegramOutbox {
    pub fn new(store: Store, ready: Arc<Notify>, fallback: Arc<dyn Outbox>) -> Self {
        Self { store, ready, fallback }
    }
}

impl TelegramOutbox {
    /// The Telegram chat (and forum topic) of a conversation; `None` for other channels.
    async fn target(&self, conversation_id: &str) -> Result<Option<(i64, Option<i64>)>, OutboxError> {
        let conversation = match self.store.get_conversation(conversation_id).await {
            Ok(found) => found,
            Err(StorageError::NotFound { .. }) => return Err(OutboxError::UnknownConversation(conversation_id.into())),
            Err(other) => return Err(other.into()),
        };
        match (conversation.channel.as_str(), conversation.chat_id) {
            ("telegram", Some(chat_id)) => {
                let thread_key = super::commands::thread_key(&conversation.id);
                let thread = self.store.kv_get(&thread_key).await?.and_then(|value| value.parse().ok());
                Ok(Some((chat_id, thread)))
            }
            _ => Ok(None),
        }
    }

    async fn queue(&self, replies: &[NewTelegramReply]) -> Result<(), OutboxError> {
        self.store.telegram_queue_replies(replies).await?;
        self.ready.notify_one();
        Ok(())
    }
}

#[async_trait::async_trait]
impl Outbox for TelegramOutbox {
    async fn post(&self, notice: Notice) -> Result<(), OutboxError> {
        let Some(target) = self.target(&notice.conversation_id).await? else { return self.fallback.post(notice).await };
        let key = format!("notice:{}", notice.dedupe_key);
        self.queue(&build_replies(target, None, &notice.text, None, &key)).await
    }

    /// One message per key: sent by the first post, edited by later ones.
    async fn post_status(&self, status: StatusNotice) -> Result<(), OutboxError> {
        let Some((chat_id, thread_id)) = self.target(&status.conversation_id).await? else {
            return self.fallback.post_status(status).await;
        };
        // A status is short; one part (at the limit) whatever it says.
        let text = split_markdown(&status.text, MESSAGE_LIMIT).into_iter().next().unwrap_or_default();
        let reply = NewTelegramReply {
            chat_id,
            thread_id,
            html: markdown_to_html(&text),
            plain: text,
            reply_to_message_id: None,
            edit_message_id: None,
            dedupe_key: None,
            photo: None,
            reply_markup: keyboard(&status.buttons),
        };
        self.store.telegram_put_status(&status.key, &reply).await?;
        self.ready.notify_one();
        Ok(())
    }

    /// The question's last part carries the inline keyboard (one button per row).
    async fn post_question(&self, notice: Notice, choices: &[Choice]) -> Result<(), OutboxError> {
        let Some(target) = self.target(&notice.conversation_id).await? else {
            return self.fallback.post_question(notice, choices).await;
        };
        let key = format!("notice:{}", notice.dedupe_key);
        let mut replies = build_replies(target, None, &notice.text, None, &key);
        if let Some(last) = replies.last_mut() {
            last.reply_markup = keyboard(choices);
        }
        self.queue(&replies).await
    }

    async fn post_image(&self, notice: Notice, reference: &str) -> Result<(), OutboxError> {
        let Some((chat_id, thread_id)) = self.target(&notice.conversation_id).await? else {
            return self.fallback.post_image(notice, reference).await;
        };
        // Captions are plain text, at most 1024 characters.
        let caption: String = notice.text.chars().take(1024).collect();
        let photo = NewTelegramReply {
            chat_id,
            thread_id,
            html: super::render::escape(&caption),
            plain: caption,
            reply_to_message_id: None,
            edit_message_id: None,
            dedupe_key: Some(format!("notice:{}:photo", notice.dedupe_key)),
            photo: Some(reference.to_owned()),
            reply_markup: None,
        };
        self.queue(&[photo]).await
    }
}

/// An inline keyboard with one button per row; `None` without buttons.
fn keyboard(choices: &[Choice]) -> Option<String> {
    if choices.is_empty() {
        return None;
    }
    let rows: Vec<serde_json::Value> = choices
        .iter()
        .map(|choice| serde_json::json!([{"text": choice.label, "callback_data": choice.data}]))
        .collect();
    Some(serde_json::json!({ "inline_keyboard": rows }).to_string())
}
