//! The Telegram channel: long polling on the Bot API, the access rules, agent
//! turns with streamed replies, and a durable outbox.
//!
//! Flow: `poll` stores each accepted update together with the next offset
//! (one transaction) *before* the following `getUpdates` acknowledges it;
//! `process` claims stored messages oldest first (after a restart, the ones
//! left unprocessed come first) and handles each on its own task (`handle`);
//! replies become outbox rows in the same transaction that marks the message
//! processed; `deliver` sends outbox rows in order, paced, honouring 429s.
//!
//! Invariants: nothing reaches the model, and no reaction is set, before
//! `access::decide` allowed the message; a (chat, message id) is handled
//! once; an outbox row is sent at most once (see `deliver`).

pub mod access;
pub mod api;
pub mod approvals;
mod branches;
mod commands;
pub mod deliver;
mod handle;
pub mod inbound;
mod job_commands;
pub mod limiter;
mod media;
pub mod pacing;
pub mod render;
pub mod split;
mod stop;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::agent::streaming::StreamPolicy;
use crate::config::{Settings, TelegramSettings, WorkspaceSettings};
use crate::llm::transcription::Transcriber;
use crate::storage::{StorageError, Store, TelegramInbound};

pub use api::{ApiError, BotApi, BotIdentity};
pub use deliver::TelegramOutbox;

/// What every part of the channel shares.
#[derive(Debug)]
struct Shared {
    api: BotApi,
    bot: BotIdentity,
    store: Store,
    agent: Agent,
    settings: TelegramSettings,
    workspaces: Vec<WorkspaceSettings>,
    /// Speech to text for voice notes (OpenAI configured), else `None`.
    transcriber: Option<Transcriber>,
    /// Where received documents are saved (`<data_dir>/telegram/<chat>/inbox`).
    data_dir: std::path::PathBuf,
    pacer: pacing::Pacer,
    limiter: std::sync::Mutex<limiter::InboundLimiter>,
    /// Wakes the deliverer when a reply was queued.
    outbox_ready: Arc<Notify>,
    /// Wakes the processor when a message was stored.
    inbox_ready: Notify,
    stream_policy: StreamPolicy,
    /// Per chat with work in progress, the claims still waiting behind it:
    /// one task per chat drains them in order (see `enqueue`).
    chat_queues: std::sync::Mutex<std::collections::HashMap<i64, std::collections::VecDeque<ChatWork>>>,
    /// The turn each chat is answering now (`/stop`, the Stop button).
    chat_turns: stop::ChatTurns,
    /// Telegram refused `sendMessageDraft` once: stream by editing a preview.
    drafts_refused: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn typing_interval(&self) -> Duration {
        Duration::from_millis(self.settings.typing_interval_ms.max(100))
    }
}

/// A connected bot (getMe answered), ready to run.
#[derive(Debug, Clone)]
pub struct TelegramChannel {
    shared: Arc<Shared>,
}

/// Why the channel could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TELEGRAM_BOT_TOKEN is not set")]
    NoToken,
    #[error("getMe failed: {0}")]
    Api(#[from] ApiError),
}

impl StartError {
    /// Whether trying again later may work (Telegram unreachable or failing),
    /// as opposed to a token Telegram rejected.
    pub fn is_transient(&self) -> bool {
        match self {
            StartError::NoToken => false,
            StartError::Api(ApiError::Refused { code, .. }) => *code >= 500 || *code == 429,
            StartError::Api(ApiError::Network { .. } | ApiError::NoAnswer { .. } | ApiError::RateLimited { .. }) => {
                true
            }
        }
    }
}

impl TelegramChannel {
    /// Check the token with `getMe` and learn the bot's id and username.
    pub async fn connect(
        settings: &Settings,
        agent: Agent,
        transcriber: Option<Transcriber>,
    ) -> Result<TelegramChannel, StartError> {
        let telegram = &settings.telegram;
        let token = telegram.bot_token.clone().ok_or(StartError::NoToken)?;
        let api = BotApi::new(&telegram.api_url, token)?;
        let bot = api.get_me().await?;
        let stream_policy = StreamPolicy {
            short_text_chars: telegram.stream_short_chars,
            interval: Duration::from_millis(telegram.stream_interval_ms),
            ..StreamPolicy::default()
        };
        let shared = Shared {
            api,
            bot,
            store: agent.store().clone(),
            agent: agent.clone(),
            settings: telegram.clone(),
            workspaces: settings.workspaces.clone(),
            transcriber,
            data_dir: settings.data_dir.clone(),
            pacer: pacing::Pacer::default(),
            limiter: std::sync::Mutex::new(limiter::InboundLimiter::new(
                telegram.rate_limit_per_minute,
                telegram.rate_limit_burst,
            )),
            // The store's: rows queued anywhere in the app (jobs, approvals) wake the deliverer.
            outbox_ready: agent.store().outbox_ready(),
            inbox_ready: Notify::new(),
            stream_policy,
            chat_queues: std::sync::Mutex::default(),
            chat_turns: stop::ChatTurns::default(),
            drafts_refused: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(TelegramChannel { shared: Arc::new(shared) })
    }

    pub fn bot(&self) -> &BotIdentity {
        &self.shared.bot
    }

    /// The `Outbox` for jobs: Telegram conversations get outbox rows, others go to `fallback`.
    pub fn outbox(&self, fallback: Arc<dyn crate::agent::outbox::Outbox>) -> TelegramOutbox {
        TelegramOutbox::new(self.shared.store.clone(), self.shared.outbox_ready.clone(), fallback)
    }

    /// Run until `shutdown`: recover, then poll, process and deliver.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let store = &self.shared.store;
        let requeued = store.telegram_requeue_interrupted().await?;
        let uncertain = store.telegram_outbox_recover().await?;
        if requeued + uncertain > 0 {
            tracing::warn!(requeued, uncertain, "telegram: recovering after an interrupted run");
        }
        let polling = self.register_intake().await;
        if let Err(error) = self.shared.api.set_my_commands(commands::MENU).await {
            tracing::warn!("telegram: registering the command menu failed: {error}");
        }
        let turns = TaskTracker::new();
        tokio::join!(
            async {
                if polling {
                    poll(&self.shared, &shutdown).await;
                }
            },
            process(&self.shared, &shutdown, &turns),
            deliver::run(&self.shared, &shutdown),
        );
        turns.close();
        // In-flight turns are left to finish briefly; their messages are requeued on the next start otherwise.
        let _ = tokio::time::timeout(Duration::from_secs(2), turns.wait()).await;
        Ok(())
    }
}

impl TelegramChannel {
    /// Webhook mode registers the webhook (updates then arrive at
    /// `webhook::WEBHOOK_PATH`); polling mode removes any webhook. Returns
    /// whether to poll.
    async fn register_intake(&self) -> bool {
        let settings = &self.shared.settings;
        match settings.webhook() {
            Some((url, secret)) => {
                use secrecy::ExposeSecret as _;
                match self.shared.api.set_webhook(url, secret.expose_secret()).await {
                    Ok(()) => tracing::info!("telegram: webhook registered at {url}"),
                    Err(error) => tracing::error!("telegram: setWebhook failed: {error}"),
                }
                false
            }
            None => {
                if let Err(error) = self.shared.api.delete_webhook().await {
                    tracing::warn!("telegram: deleteWebhook failed: {error}");
                }
                true
            }
        }
    }
}

/// Long-poll `getUpdates`; store every update before the next call acknowledges it.
async fn poll(shared: &Shared, shutdown: &CancellationToken) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let offset = match shared.store.telegram_offset().await {
            Ok(offset) => offset,
            Err(error) => {
                tracing::error!("telegram: reading the offset failed: {error}");
                pause(shutdown, Duration::from_secs(1)).await;
                continue;
            }
        };
        let updates = tokio::select! {
            () = shutdown.cancelled() => return,
            result = shared.api.get_updates(offset, shared.settings.poll_timeout_secs) => result,
        };
        match updates {
            Ok(updates) => {
                failures = 0;
                if let Err(error) = accept_all(shared, &updates).await {
                    // Not acknowledged: the next getUpdates gets them again.
                    tracing::error!("telegram: storing updates failed: {error}");
                }
                shared.inbox_ready.notify_one();
            }
            Err(ApiError::RateLimited { retry_after }) => pause(shutdown, retry_after).await,
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(500 * u64::from(failures.min(20)));
                tracing::warn!("telegram: getUpdates failed ({error}); retrying in {} ms", wait.as_millis());
                pause(shutdown, wait).await;
            }
        }
    }
}

/// Store one update (the webhook's); see `accept_all`.
async fn accept(shared: &Shared, update: &serde_json::Value) -> Result<(), StorageError> {
    accept_all(shared, std::slice::from_ref(update)).await
}

/// Store the messages of a batch of updates and the offset acknowledging
/// all of them in one transaction (one commit per `getUpdates` answer).
async fn accept_all(shared: &Shared, updates: &[serde_json::Value]) -> Result<(), StorageError> {
    let Some(next_offset) = updates.iter().filter_map(|update| update["update_id"].as_i64()).max().map(|id| id + 1)
    else {
        return Ok(());
    };
    for query in updates.iter().filter_map(|update| update.get("callback_query")) {
        // A button press: answered now (Telegram wants a quick answerCallbackQuery), then acknowledged.
        // Pressing twice is harmless: the first answer wins.
        let data = query["data"].as_str().unwrap_or("");
        if let Some(turn_id) = stop::pressed(data) {
            stop::press(shared, query, turn_id).await;
            continue;
        }
        match crate::agent::outbox::cancel_button_job(data) {
            Some(job_id) => job_commands::press_cancel(shared, query, job_id).await?,
            None => approvals::handle_callback(shared, query).await?,
        }
    }
    let mut messages: Vec<TelegramInbound> = Vec::new();
    for update in updates {
        let (Some(update_id), Some(message)) = (update["update_id"].as_i64(), inbound::parse_update(update)) else {
            continue;
        };
        // `/stop` acts now: queued, it would wait for the very answer it means to stop.
        if stop::take_command(shared, update_id, &message).await? {
            continue;
        }
        messages.push(TelegramInbound {
            update_id,
            chat_id: message.chat_id,
            message_id: message.message_id,
            user_id: message.user_id,
            username: message.username,
            text: message.text,
            raw: update.clone(),
        });
    }
    let new = shared.store.telegram_accept_updates(next_offset, &messages).await?;
    for (message, _) in messages.iter().zip(new).filter(|(_, new)| !new) {
        tracing::info!(update_id = message.update_id, "telegram: duplicate message ignored");
    }
    Ok(())
}

/// One chat's claimed messages: those answered together, then the rest.
#[derive(Debug, Default)]
struct ChatWork {
    backlog: Vec<crate::storage::TelegramUpdateRow>,
    current: Vec<crate::storage::TelegramUpdateRow>,
}

/// Forgets a chat's queue when its task ends by a panic (a normal end
/// removes it under the lock, in order with `enqueue`).
struct Drained<'a> {
    shared: &'a Shared,
    chat_id: i64,
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queues = self.shared.chat_queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            queues.remove(&self.chat_id);
        }
    }
}

/// Queue `work` behind the chat's earlier claims; start the chat's task
/// when none runs. Claims are made by one loop in order, so each chat's
/// messages are handled strictly one after another in `update_id` order,
/// while chats run side by side.
fn enqueue(shared: &Arc<Shared>, turns: &TaskTracker, chat_id: i64, work: ChatWork) {
    let lock = || shared.chat_queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    {
        let mut queues = lock();
        if let Some(waiting) = queues.get_mut(&chat_id) {
            waiting.push_back(work);
            return;
        }
        queues.insert(chat_id, std::collections::VecDeque::new());
    }
    let shared = shared.clone();
    turns.spawn(async move {
        // A panic in a handler must not leave the chat's queue marked busy forever.
        let _drained = Drained { shared: &shared, chat_id };
        let mut next = Some(work);
        while let Some(work) = next.take() {
            if !work.backlog.is_empty() {
                handle::handle_backlog(&shared, work.backlog).await;
            }
            for row in work.current {
                handle::handle(&shared, row).await;
            }
            let mut queues = shared.chat_queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            next = queues.get_mut(&chat_id).and_then(std::collections::VecDeque::pop_front);
            if next.is_none() {
                queues.remove(&chat_id);
            }
        }
    });
}

/// Claim stored messages and handle each chat's on its own task, strictly
/// in `update_id` order (chats run side by side).
async fn process(shared: &Arc<Shared>, shutdown: &CancellationToken, turns: &TaskTracker) {
    while !shutdown.is_cancelled() {
        match shared.store.telegram_claim_received().await {
            Ok(rows) => {
                let (backlogs, current) =
                    split_backlog(rows, shared.settings.away_after_secs, chrono::Utc::now().timestamp());
                // One task per chat, in update order: its backlog first, then each newer message.
                let mut chats: std::collections::BTreeMap<i64, ChatWork> = Default::default();
                for rows in backlogs {
                    if let Some(chat_id) = rows.first().map(|row| row.chat_id) {
                        chats.entry(chat_id).or_default().backlog = rows;
                    }
                }
                for row in current {
                    chats.entry(row.chat_id).or_default().current.push(row);
                }
                for (chat_id, mut work) in chats {
                    work.current.sort_by_key(|row| row.update_id);
                    enqueue(shared, turns, chat_id, work);
                }
            }
            Err(error) => tracing::error!("telegram: claiming messages failed: {error}"),
        }
        shared
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain_recent(tokio::time::Instant::now());
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = shared.inbox_ready.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Separate, per chat, the messages older than `away_after_secs` (when a
/// chat has two or more) — answered together — from the rest. 0 disables.
fn split_backlog(
    rows: Vec<crate::storage::TelegramUpdateRow>,
    away_after_secs: u64,
    now_secs: i64,
) -> (Vec<Vec<crate::storage::TelegramUpdateRow>>, Vec<crate::storage::TelegramUpdateRow>) {
    let limit = i64::try_from(away_after_secs).unwrap_or(i64::MAX);
    let is_stale = |row: &crate::storage::TelegramUpdateRow| {
        away_after_secs > 0 && now_secs.saturating_sub(row.raw["message"]["date"].as_i64().unwrap_or(now_secs)) > limit
    };
    let mut stale: std::collections::BTreeMap<i64, Vec<crate::storage::TelegramUpdateRow>> = Default::default();
    let mut current = Vec::new();
    for row in rows {
        if is_stale(&row) {
            stale.entry(row.chat_id).or_default().push(row);
        } else {
            current.push(row);
        }
    }
    let mut backlogs = Vec::new();
    for (_, rows) in stale {
        if rows.len() >= 2 {
            backlogs.push(rows);
        } else {
            current.extend(rows);
        }
    }
    current.sort_by_key(|row| row.id);
    (backlogs, current)
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::split_backlog;
    use crate::storage::TelegramUpdateRow;

    fn row(id: i64, chat_id: i64, date: i64) -> TelegramUpdateRow {
        TelegramUpdateRow {
            id,
            update_id: id,
            chat_id,
            message_id: id,
            user_id: None,
            username: None,
            text: String::new(),
            raw: serde_json::json!({"message": {"date": date}}),
            status: "processing".into(),
            received_at_ms: 0,
        }
    }

    fn ids(rows: &[TelegramUpdateRow]) -> Vec<i64> {
        rows.iter().map(|row| row.id).collect()
    }

    #[test]
    fn only_two_or_more_stale_messages_of_one_chat_form_a_backlog() {
        let now = 10_000;
        let rows = vec![row(1, 5, 0), row(2, 6, 0), row(3, 5, 100), row(4, 5, now - 10), row(5, 7, now)];
        let (backlogs, current) = split_backlog(rows.clone(), 900, now);
        assert_eq!(backlogs.iter().map(|b| ids(b)).collect::<Vec<_>>(), [vec![1, 3]]);
        assert_eq!(ids(&current), [2, 4, 5]);
        let (backlogs, current) = split_backlog(rows, 0, now);
        assert!(backlogs.is_empty(), "0 disables");
        assert_eq!(current.len(), 5);
    }
}
