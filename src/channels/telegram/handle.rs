//! Handling one stored inbound message: the access decision (audit-logged),
//! the per-user rate limit, commands, turn admission (beyond
//! `max_active_turns` the message waits its turn, with a "queued" note after
//! a few seconds; a polite "busy" only to non-admins under memory pressure or
//! with the queue full), and agent turns with feedback (👀 on accept, typing
//! while working, 👍/👎 once the answer is delivered) and a streamed preview
//! — a draft in private chats, else a message with a Stop button — pushed at
//! the pace the streaming optimizer picks. A voice note's transcript is the
//! turn's text and is quoted above the reply (🎤).
//!
//! Invariant: the replies are queued in the same transaction that marks the
//! message processed, so a crash before that point handles it again on the
//! next start, and a crash after it never answers twice.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::streaming::{ContentKind, StreamingOptimizer, text_kind};
use crate::agent::{AgentEvent, ChatUser, TurnRequest};
use crate::monitoring::resources::{Admission as TurnAdmission, BUSY_REPLY};
use crate::storage::{NewAuditEvent, StorageResult, TelegramUpdateRow};

use super::access::{self, Access};
use super::api::ApiError;
use super::deliver::{build_replies, photo_replies};
use super::inbound::{Incoming, parse_update};
use super::limiter::Admission;
use super::media::{self, MediaOutcome};
use super::render::{markdown_to_html, visible_units};
use super::split::MESSAGE_LIMIT;
use super::{Shared, commands};
use crate::agent::media::ImageAttachment;

/// Accept reaction, and the final ones (all in Telegram's allowed reaction set).
const REACTION_SEEN: &str = "👀";
const REACTION_DONE: &str = "👍";
const REACTION_FAILED: &str = "👎";
/// Longest streamed preview in UTF-16 units, as Telegram counts (the final
/// reply is split properly).
const PREVIEW_UNITS: usize = 3900;

/// The caller handles the chat's messages one at a time (`enqueue`).
pub(super) async fn handle(shared: &Shared, row: TelegramUpdateRow) {
    if let Err(error) = handle_row(shared, &row).await {
        // Left `processing`: handled again after the next start.
        tracing::error!(chat = row.chat_id, message = row.message_id, "telegram: handling failed: {error}");
    }
}

/// Several messages of one chat that waited longer than `away_after_secs`
/// (valor was down): checked one by one (each audit-logged), then answered
/// together in one turn — "while I was away…" — replying to the newest, with
/// the least privilege of its authors (admin only if all are admins).
/// The caller handles the chat's messages one at a time (`enqueue`).
pub(super) async fn handle_backlog(shared: &Shared, rows: Vec<TelegramUpdateRow>) {
    let Some(chat_id) = rows.first().map(|row| row.chat_id) else { return };
    if let Err(error) = answer_backlog(shared, &rows).await {
        tracing::error!(chat = chat_id, "telegram: handling the backlog failed: {error}");
    }
}

async fn answer_backlog(shared: &Shared, rows: &[TelegramUpdateRow]) -> StorageResult<()> {
    let mut allowed = Vec::new();
    for row in rows {
        let Some(message) = parse_update(&row.raw) else {
            shared.store.telegram_mark_update(row.id, "ignored").await?;
            continue;
        };
        let access = access::decide(&shared.settings, &shared.bot, &message);
        audit(shared, &message, &access).await?;
        match access {
            Access::Ignore { .. } => shared.store.telegram_mark_update(row.id, "ignored").await?,
            Access::Allow { text, is_admin, .. } => allowed.push((row.id, message, text, is_admin)),
        }
    }
    let Some((_, newest, _, _)) = allowed.last() else { return Ok(()) };
    let newest = newest.clone();
    let ids: Vec<i64> = allowed.iter().map(|(id, ..)| *id).collect();
    // A combined turn acts with the least privilege of its authors: admin only if every author is one, and
    // a workspace's `allowed_users` see a person only when one person wrote the whole backlog.
    let is_admin = allowed.iter().all(|(.., is_admin)| *is_admin);
    let mut authors = allowed.iter().map(|(_, message, ..)| message.user_id);
    let first_author = authors.next().flatten();
    let user = if authors.all(|author| author == first_author) { author_of(&newest) } else { None };
    let list: Vec<String> = allowed.iter().map(|(_, message, text, _)| backlog_line(message, text)).collect();
    let text = format!(
        "While I was away, these messages arrived in this chat (oldest first):\n{}\n\n\
         Start your reply with \"While I was away…\" and answer them together in one reply.",
        list.join("\n")
    );
    answer(shared, &ids, &newest, Turn { text, is_admin, user, images: Vec::new(), heard: None }).await
}

fn backlog_line(message: &Incoming, text: &str) -> String {
    let when = chrono::DateTime::from_timestamp(message.date, 0)
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let who = message.username.as_deref().map(|name| format!("@{name}")).unwrap_or_else(|| "someone".into());
    format!("- [{when}] {who}: {text}")
}

async fn handle_row(shared: &Shared, row: &TelegramUpdateRow) -> StorageResult<()> {
    let Some(message) = parse_update(&row.raw) else {
        return shared.store.telegram_mark_update(row.id, "ignored").await;
    };
    let access = access::decide(&shared.settings, &shared.bot, &message);
    audit(shared, &message, &access).await?;
    let (text, is_admin) = match access {
        Access::Ignore { .. } => return shared.store.telegram_mark_update(row.id, "ignored").await,
        Access::Allow { text, is_admin, .. } => (text, is_admin),
    };
    if let (false, Some(user_id)) = (is_admin, message.user_id) {
        let (admission, wait) = {
            let mut limiter = shared.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let admission = limiter.admit(user_id, Instant::now());
            (admission, limiter.wait_for(user_id))
        };
        match admission {
            Admission::Accept => {}
            Admission::RefuseWithNotice => {
                let notice = format!(
                    "You're sending messages faster than I can take them — please wait about {} s and try again.",
                    wait.as_secs().max(1)
                );
                return finish(shared, &[row.id], &message, &notice, None).await;
            }
            Admission::RefuseSilently => return shared.store.telegram_mark_update(row.id, "ignored").await,
        }
    }
    let mut text = text;
    let mut images = Vec::new();
    if let Some(media) = &message.media {
        match media::receive(shared, &message, media).await {
            MediaOutcome::Image(image) => {
                if text.trim().is_empty() {
                    text = PHOTO_WITHOUT_CAPTION.to_owned();
                }
                images.push(image);
            }
            MediaOutcome::Heard(heard) => {
                let said = if text.trim().is_empty() { heard.clone() } else { format!("{heard}\n\n{text}") };
                let turn = Turn { text: said, is_admin, user: author_of(&message), images, heard: Some(heard) };
                return answer(shared, &[row.id], &message, turn).await;
            }
            MediaOutcome::Reply(reply) => return finish(shared, &[row.id], &message, &reply, None).await,
            MediaOutcome::Saved { note, .. } if text.trim().is_empty() => {
                return finish(shared, &[row.id], &message, &note, None).await;
            }
            MediaOutcome::Saved { path, .. } => {
                text = format!("{text}\n\n(The user attached a document, saved at {})", path.display());
            }
        }
    }
    if let Some(reply) = commands::run(shared, &message, &text, is_admin).await? {
        return finish(shared, &[row.id], &message, &reply, None).await;
    }
    answer(shared, &[row.id], &message, Turn { text, is_admin, user: author_of(&message), images, heard: None }).await
}

/// The question for a photo sent without a caption.
const PHOTO_WITHOUT_CAPTION: &str = "What is in this image?";

async fn audit(shared: &Shared, message: &Incoming, access: &Access) -> StorageResult<()> {
    let (decision, reason) = match access {
        Access::Allow { reason, .. } => ("allowed", *reason),
        Access::Ignore { reason } => ("ignored", *reason),
    };
    let actor = match (&message.username, message.user_id) {
        (Some(name), Some(id)) => format!("telegram:{id} @{name}"),
        (None, Some(id)) => format!("telegram:{id}"),
        _ => "telegram:unknown".to_owned(),
    };
    shared
        .store
        .record_audit(NewAuditEvent {
            kind: "access".into(),
            actor,
            subject: format!("telegram chat {}", message.chat_id),
            decision: decision.into(),
            detail: json!({"reason": reason, "chat_type": message.chat_type, "message_id": message.message_id}),
        })
        .await
}

/// Queue the reply (split and rendered) and mark the message processed; wake the deliverer.
async fn finish(
    shared: &Shared,
    rows: &[i64],
    message: &Incoming,
    markdown: &str,
    preview: Option<i64>,
) -> StorageResult<()> {
    let key = format!("update:{}", rows.last().copied().unwrap_or_default());
    let replies =
        build_replies((message.chat_id, message.thread_id), Some(message.message_id), markdown, preview, &key);
    shared.store.telegram_finish_updates(rows, &replies).await?;
    shared.outbox_ready.notify_one();
    Ok(())
}

/// `finish`, and the turn's images queued as photos after the reply (same
/// transaction); the last row sets `reaction` on the message when delivered.
async fn finish_turn(
    shared: &Shared,
    rows: &[i64],
    message: &Incoming,
    (markdown, preview): (&str, Option<i64>),
    photos: &[String],
    reaction: &str,
) -> StorageResult<()> {
    let key = format!("update:{}", rows.last().copied().unwrap_or_default());
    let target = (message.chat_id, message.thread_id);
    let mut replies = build_replies(target, Some(message.message_id), markdown, preview, &key);
    replies.extend(photo_replies(target, photos, &key));
    if let Some(last) = replies.last_mut() {
        last.reaction = Some((message.message_id, reaction.to_owned()));
    }
    shared.store.telegram_finish_updates(rows, &replies).await?;
    shared.outbox_ready.notify_one();
    Ok(())
}

async fn set_reaction(api: super::BotApi, chat_id: i64, message_id: i64, emoji: &'static str) {
    if let Err(error) = api.set_reaction(chat_id, message_id, emoji).await {
        tracing::debug!("telegram: reaction {emoji} not set: {error}");
    }
}

/// What one agent turn is asked.
struct Turn {
    text: String,
    is_admin: bool,
    /// Who the turn acts for (a workspace's `allowed_users` check); `None` for a backlog of several people.
    user: Option<ChatUser>,
    images: Vec<ImageAttachment>,
    /// A voice note's transcript, shown above the reply ("🎤 “…”").
    heard: Option<String>,
}

async fn answer(shared: &Shared, rows: &[i64], message: &Incoming, turn: Turn) -> StorageResult<()> {
    let Turn { text, is_admin, user, images, heard } = turn;
    // Beyond `max_active_turns` the turn waits for a slot; only memory
    // pressure or a full queue refuse a non-admin politely (commands still work).
    let admission = match shared.agent.monitor().admit(is_admin) {
        Ok(admission) => admission,
        Err(_) => return finish(shared, rows, message, BUSY_REPLY, None).await,
    };
    // Set while the turn starts, not before it: the round trip to Telegram stays off the turn's path.
    let seen = tokio::spawn(set_reaction(shared.api.clone(), message.chat_id, message.message_id, REACTION_SEEN));
    let mut slot = Some(match admission {
        TurnAdmission::Now(slot) => slot,
        TurnAdmission::Queued { ahead, slot } => {
            let waiting = slot.wait();
            tokio::pin!(waiting);
            match tokio::time::timeout(QUEUED_NOTE_AFTER, &mut waiting).await {
                Ok(slot) => slot,
                Err(_) => {
                    queued_note(shared, rows, message, ahead).await?;
                    waiting.await
                }
            }
        }
    });
    let conversation = commands::conversation_for(shared, message).await?;
    let typing = CancellationToken::new();
    // Stops the indicator on every way out of this function, errors included.
    let _stop_typing = typing.clone().drop_guard();
    let target = (message.chat_id, message.thread_id);
    tokio::spawn(keep_typing(shared.api.clone(), target, shared.typing_interval(), typing.clone()));
    // The stored updates this turn answers: handled again after a crash, their text is stored once.
    let rows_key = rows.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let once_key = Some(format!("telegram:turn:{rows_key}"));
    let mut events = shared.agent.spawn_turn(TurnRequest {
        conversation,
        text,
        is_admin,
        user,
        images,
        once_key,
        cancel: tokio_util::sync::CancellationToken::new(),
    });
    let mut stream = Stream::new(shared, message);
    let mut running = None;
    let mut failed = false;
    let mut stopped = false;
    let mut produced = Vec::new();
    let reply = loop {
        tokio::select! {
            event = events.recv() => match event.inspect(|_| drop(slot.take())) {
                Some(AgentEvent::TurnStarted { turn_id, .. }) => {
                    running = Some(shared.chat_turns.start(message.chat_id, &turn_id, message.user_id));
                    stream.turn_id = Some(turn_id);
                }
                Some(AgentEvent::TextDelta { text }) => stream.add(&text, Instant::now()),
                Some(AgentEvent::ToolStarted { name, .. }) => stream.progress(&name, Instant::now()),
                // Shown like a running tool ("⏳ still waiting for the model…") until text arrives.
                Some(AgentEvent::Waiting { message }) => stream.progress(message.trim_end_matches('…'), Instant::now()),
                Some(AgentEvent::Error { .. }) => failed = true,
                Some(AgentEvent::Done { reply, tool_calls, stopped: was_stopped, .. }) => {
                    produced = crate::agent::media::produced_images(&tool_calls);
                    stopped = was_stopped;
                    break reply;
                }
                Some(_) => {}
                None => {
                    failed = true;
                    break stream.text.clone();
                }
            },
            () = stream.due() => stream.push().await,
        }
    };
    // A stopped turn's answer is what was streamed, marked as such.
    let stopped_mark = crate::agent::STOPPED_MARK;
    let reply = match stopped {
        true if !reply.ends_with(stopped_mark.trim()) => format!("{}{stopped_mark}", reply.trim_end()),
        _ => reply,
    };
    let reply = match heard {
        Some(heard) => format!("🎤 “{heard}”\n\n{reply}"),
        None => reply,
    };
    drop(running);
    // The final reaction replaces 👀; the deliverer sets it once the answer is delivered.
    let done = if failed { REACTION_FAILED } else { REACTION_DONE };
    finish_turn(shared, rows, message, (&reply, stream.preview_id), &produced, done).await?;
    drop(seen);
    Ok(())
}

/// How long a queued message waits before its chat hears it is queued.
const QUEUED_NOTE_AFTER: Duration = Duration::from_secs(3);

/// Tell the chat its message waits for a free turn (once per message).
async fn queued_note(shared: &Shared, rows: &[i64], message: &Incoming, ahead: usize) -> StorageResult<()> {
    let key = format!("update:{}:queued", rows.last().copied().unwrap_or_default());
    let text = match ahead {
        0 => "⏳ Lots of messages at once — yours is queued (next in line); I'll answer as soon as I can.".to_owned(),
        ahead => {
            format!("⏳ Lots of messages at once — yours is queued ({ahead} ahead); I'll answer as soon as I can.")
        }
    };
    let notes = build_replies((message.chat_id, message.thread_id), Some(message.message_id), &text, None, &key);
    // A key per part: after a restart the same message is not told twice.
    shared.store.telegram_queue_replies(&notes).await?;
    shared.outbox_ready.notify_one();
    Ok(())
}

/// The sender of `message`, as a workspace access check sees them.
fn author_of(message: &Incoming) -> Option<ChatUser> {
    message.user_id.map(|id| ChatUser { id, username: message.username.clone() })
}

async fn keep_typing(
    api: super::BotApi,
    (chat_id, thread): (i64, Option<i64>),
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(error) = api.send_chat_action(chat_id, thread, "typing").await {
            tracing::debug!("telegram: typing indicator failed: {error}");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The streamed preview: one message (rendered like the answer), sent when the optimizer
/// says so and then edited; the final reply replaces it (see `deliver`).
struct Stream<'a> {
    shared: &'a Shared,
    chat_id: i64,
    thread_id: Option<i64>,
    reply_to: i64,
    optimizer: StreamingOptimizer,
    text: String,
    /// The last tool started since text arrived, shown under the text ("⏳ search_history…").
    working_on: Option<String>,
    preview_id: Option<i64>,
    next_push: Option<Instant>,
    /// Streaming stopped after an error; the final reply still goes out.
    disabled: bool,
    /// Stream with `sendMessageDraft` (a private chat, drafts on and not refused).
    draft: bool,
    /// The running turn, once known: its preview carries a Stop button.
    turn_id: Option<String>,
}

impl<'a> Stream<'a> {
    fn new(shared: &'a Shared, message: &Incoming) -> Self {
        Stream {
            shared,
            chat_id: message.chat_id,
            thread_id: message.thread_id,
            reply_to: message.message_id,
            optimizer: StreamingOptimizer::new(shared.stream_policy),
            text: String::new(),
            working_on: None,
            preview_id: None,
            next_push: None,
            disabled: false,
            draft: message.chat_type == "private"
                && shared.settings.drafts
                && !shared.drafts_refused.load(std::sync::atomic::Ordering::Relaxed),
            turn_id: None,
        }
    }

    fn add(&mut self, delta: &str, now: Instant) {
        self.text.push_str(delta);
        self.working_on = None;
        if !self.disabled {
            let chars = self.text.chars().count();
            let kind = text_kind(&self.text);
            self.next_push = self.optimizer.next_push(now.into_std(), chars, kind).map(Instant::from_std);
        }
    }

    /// A tool started: a progress update (shown until more text arrives).
    fn progress(&mut self, tool: &str, now: Instant) {
        self.working_on = Some(tool.to_owned());
        if !self.disabled {
            let chars = self.text.chars().count();
            self.next_push =
                self.optimizer.next_push(now.into_std(), chars, ContentKind::Progress).map(Instant::from_std);
        }
    }

    async fn due(&self) {
        match self.next_push {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    async fn push(&mut self) {
        self.next_push = None;
        if self.text.trim().is_empty() && self.working_on.is_none() {
            return;
        }
        let preview = preview_text(&self.text, self.working_on.as_deref());
        // Formatted like the final answer; plain when a table's padding would show too much.
        let html = markdown_to_html(&preview);
        let (preview, as_html) = if visible_units(&html) <= MESSAGE_LIMIT && !html.trim().is_empty() {
            (html, true)
        } else {
            (preview, false)
        };
        let slot = self.shared.pacer.wait_turn(self.chat_id).await;
        let started = Instant::now();
        let api = &self.shared.api;
        if self.draft {
            // The user's message id: non-zero and one per turn, so the draft's changes animate.
            let result = api.send_message_draft((self.chat_id, self.thread_id), self.reply_to, &preview, as_html).await;
            self.shared.pacer.sent(self.chat_id, slot);
            match result {
                Err(error) if error.is_unknown_method() => {
                    tracing::info!("telegram: sendMessageDraft refused ({error}); streaming by editing a preview");
                    self.shared.drafts_refused.store(true, std::sync::atomic::Ordering::Relaxed);
                    self.draft = false;
                    self.next_push = Some(Instant::now());
                }
                result => self.pushed(result.map(|()| None), started),
            }
            return;
        }
        let stop = self.turn_id.as_deref().map(super::stop::button);
        let result = match self.preview_id {
            None => api
                .send_message(self.chat_id, self.thread_id, &preview, as_html, Some(self.reply_to), stop.as_ref())
                .await
                .map(Some),
            Some(id) => api.edit_message_text(self.chat_id, id, &preview, as_html, stop.as_ref()).await.map(|()| None),
        };
        self.shared.pacer.sent(self.chat_id, slot);
        self.pushed(result, started);
    }

    /// Account for a push's answer (`Some(id)`: the preview message was sent).
    fn pushed(&mut self, result: Result<Option<i64>, ApiError>, started: Instant) {
        match result {
            Ok(sent) => {
                self.preview_id = self.preview_id.or(sent);
                self.optimizer.pushed(started.into_std(), started.elapsed());
            }
            Err(ApiError::RateLimited { retry_after }) => {
                self.optimizer.rate_limited(Instant::now().into_std(), retry_after);
                self.shared.pacer.hold(self.chat_id, retry_after);
            }
            Err(error) => {
                tracing::warn!("telegram: streaming stopped: {error}");
                self.disabled = true;
            }
        }
    }
}

/// The Markdown preview of a growing answer: its start (at most
/// `PREVIEW_UNITS` UTF-16 units) and either "…" or the running tool.
fn preview_text(text: &str, working_on: Option<&str>) -> String {
    let mut units = 0;
    let start: String = text
        .chars()
        .take_while(|character| {
            units += character.len_utf16();
            units <= PREVIEW_UNITS
        })
        .collect();
    match working_on {
        Some(tool) => format!("{}\n\n⏳ {tool}…", start.trim_end()).trim_start().to_owned(),
        None => format!("{start} …"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_stay_under_telegrams_limit_and_show_the_running_tool() {
        assert_eq!(preview_text("Hello", None), "Hello …");
        assert_eq!(preview_text("", Some("search_history")), "⏳ search_history…");
        assert_eq!(preview_text("Looking. ", Some("search_history")), "Looking.\n\n⏳ search_history…");
        let emoji = "😀".repeat(3000); // 6000 UTF-16 units
        let preview = preview_text(&emoji, None);
        assert!(preview.encode_utf16().count() <= PREVIEW_UNITS + 2);
        assert!(preview.starts_with("😀😀"));
    }
}
