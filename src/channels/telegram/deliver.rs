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
            reaction: None,
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
            reaction: None,
        })
        .collect()
}

/// Sends in flight at once. The claim never hands out a row while an earlier
/// row of its chat is unsent, so each chat's rows still go out in order; one
/// sender at a time capped delivery at one Telegram round trip per message
/// (about 9 a second at an 80 ms round trip, measured by `examples/load`),
/// far below Telegram's 30 a second.
const SENDERS: usize = 4;
/// The longest the deliverer sleeps without a wake-up: a safety net for
/// rows queued by another handle on the database (the app's own queueing
/// wakes it, finished sends wake it, rescheduled rows set its alarm).
const FALLBACK_CHECK: Duration = Duration::from_secs(5);

/// Claim due rows and deliver each on its own task until shutdown. A row
/// waiting for its turn in the pacer holds no sender: only the Bot API
/// call itself takes one of the `SENDERS` permits, so a chat held by its
/// limit never delays another chat's reply. Idle, it sleeps until a row
/// is queued (`outbox_ready`), a send ends, or the next rescheduled row
/// is due — no polling.
pub(super) async fn run(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let deliveries = tokio_util::task::TaskTracker::new();
    let senders = Arc::new(tokio::sync::Semaphore::new(SENDERS));
    while !shutdown.is_cancelled() {
        let ready = shared.outbox_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        match shared.store.telegram_outbox_claim().await {
            Ok(Some(row)) => {
                let (shared, shutdown, senders) = (shared.clone(), shutdown.clone(), senders.clone());
                deliveries.spawn(async move {
                    if let Err(error) = deliver(&shared, &row, &shutdown, &senders).await {
                        tracing::error!(row = row.id, "telegram: outbox bookkeeping failed: {error}");
                    }
                    // The chat's next row may be claimed now.
                    shared.outbox_ready.notify_one();
                });
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!("telegram: reading the outbox failed: {error}");
                pause(shutdown, Duration::from_secs(1)).await;
                continue;
            }
        }
        let alarm = match shared.store.telegram_outbox_next_due_ms().await {
            Ok(Some(due)) => {
                let wait = u64::try_from(due - chrono::Utc::now().timestamp_millis()).unwrap_or(0);
                Duration::from_millis(wait).min(FALLBACK_CHECK)
            }
            Ok(None) => FALLBACK_CHECK,
            Err(error) => {
                tracing::error!("telegram: reading the outbox failed: {error}");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut ready => {}
            () = tokio::time::sleep(alarm) => {}
        }
    }
    deliveries.close();
    deliveries.wait().await;
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
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

async fn deliver(
    shared: &Shared,
    row: &TelegramOutboxRow,
    shutdown: &CancellationToken,
    senders: &tokio::sync::Semaphore,
) -> Result<(), StorageError> {
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
    // Closed only when the deliverer is gone; then sending unthrottled is harmless.
    let _sending = senders.acquire().await.ok();
    let mut result = send(shared, row, photo.as_ref(), true).await;
    if result.as_ref().is_err_and(ApiError::is_entity_error) {
        tracing::warn!(row = row.id, "telegram: HTML rejected; sending as plain text");
        result = send(shared, row, photo.as_ref(), false).await;
    }
    shared.pacer.sent(row.chat_id, slot);
    if let (Some(preview), None, true) =
        (row.edit_message_id, &photo, result.as_ref().is_err_and(ApiError::is_too_long))
    {
        tracing::warn!(row = row.id, "telegram: edit refused as too long; sending the rest as new messages");
        result = split_refused_edit(shared, row, preview).await;
    }
    let now = chrono::Utc::now().timestamp_millis();
    match result {
        Ok(message_id) => {
            store.telegram_outbox_delivered(row.id, message_id).await?;
            // The turn's reaction (👍) once its answer is really there.
            if let Some((message, emoji)) = &row.reaction {
                set_reaction(shared, row.chat_id, *message, emoji).await;
            }
            Ok(())
        }
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
            store.telegram_outbox_failed(row.id, &error.to_string()).await?;
            if let Some((message, _)) = &row.reaction {
                set_reaction(shared, row.chat_id, *message, REACTION_UNDELIVERED).await;
            }
            Ok(())
        }
    }
}

/// Telegram refused to edit the preview `preview` into this row's text as
/// too long (it counts differently than we do): the preview gets the first
/// of smaller parts and the others follow as new messages, so the user never
/// keeps a cut preview and no text is lost. Returns the last message's id.
async fn split_refused_edit(shared: &Shared, row: &TelegramOutboxRow, preview: i64) -> Result<i64, ApiError> {
    let parts = split_markdown(&row.plain, MESSAGE_LIMIT / 2);
    let markup = row.reply_markup.as_deref().and_then(|markup| serde_json::from_str(markup).ok());
    let mut last = preview;
    for (index, part) in parts.iter().enumerate() {
        let edit = (index == 0).then_some(preview);
        let slot = shared.pacer.wait_turn(row.chat_id).await;
        let mut result = send_part(shared, row, edit, &markdown_to_html(part), true, markup.as_ref()).await;
        if result.as_ref().is_err_and(ApiError::is_entity_error) {
            result = send_part(shared, row, edit, part, false, markup.as_ref()).await;
        }
        shared.pacer.sent(row.chat_id, slot);
        last = result?;
    }
    Ok(last)
}

/// Edit `edit` to `text`, or (`None`) send `text` as a new message of the row's chat.
async fn send_part(
    shared: &Shared,
    row: &TelegramOutboxRow,
    edit: Option<i64>,
    text: &str,
    html: bool,
    markup: Option<&serde_json::Value>,
) -> Result<i64, ApiError> {
    match edit {
        Some(id) => shared.api.edit_message_text(row.chat_id, id, text, html, markup).await.map(|()| id),
        None => shared.api.send_message(row.chat_id, row.thread_id, text, html, None, None).await,
    }
}

/// The reaction on a turn whose answer Telegram refused for good.
const REACTION_UNDELIVERED: &str = "👎";

/// Reactions are not paced: Telegram does not count them as messages.
async fn set_reaction(shared: &Shared, chat_id: i64, message_id: i64, emoji: &str) {
    if let Err(error) = shared.api.set_reaction(chat_id, message_id, emoji).await {
        tracing::debug!("telegram: reaction {emoji} not set: {error}");
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
            reaction: None,
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
            reaction: None,
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
