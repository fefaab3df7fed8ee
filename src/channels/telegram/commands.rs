//! Bot commands, answered without the model: `/start`, `/help`, `/reset`,
//! `/status`, `/workspace`, and `/jobs`, `/cancel ID` (in `job_commands.rs`);
//! `/stop` is taken at intake (`stop.rs`).
//! Also owns the chat → conversation mapping (one conversation per chat;
//! `/reset` starts a new one).

use crate::agent::NO_MODEL_REPLY;
use crate::storage::{Conversation, NewConversation, StorageResult};

use super::Shared;
use super::inbound::Incoming;

const HELP: &str = "I'm **Valor**, your AI coworker. Write to me in plain words; in groups, mention me or reply to my message.\n\n\
Commands:\n\
- /help — this list\n\
- /status — my health score (its parts for admins) and the tokens context compaction saved\n\
- /workspace — which workspace this chat maps to\n\
- /stop — stop the answer I'm writing (also the ⏹ Stop button under it)\n\
- /jobs — this chat's background jobs\n\
- /cancel ID — cancel one of them\n\
- /reset — start a fresh conversation (I forget this chat's context)";

/// The commands registered with `setMyCommands` (Telegram's "/" menu).
pub(super) const MENU: &[(&str, &str)] = &[
    ("help", "What I can do"),
    ("status", "Whether I'm healthy"),
    ("workspace", "Which workspace this chat maps to"),
    ("jobs", "This chat's background jobs"),
    ("stop", "Stop the answer being written"),
    ("cancel", "Cancel a background job: /cancel ID"),
    ("reset", "Start a fresh conversation"),
];

/// kv key of the conversation of a chat, or of one forum topic of it.
pub fn conversation_key(chat_id: i64, thread_id: Option<i64>) -> String {
    match thread_id {
        Some(thread) => format!("telegram:conversation:{chat_id}:{thread}"),
        None => format!("telegram:conversation:{chat_id}"),
    }
}

/// kv key holding the forum topic of a conversation (for notices).
pub fn thread_key(conversation_id: &str) -> String {
    format!("telegram:thread:{conversation_id}")
}

/// The conversation of this chat, created on first use.
pub(super) async fn conversation_for(shared: &Shared, message: &Incoming) -> StorageResult<Conversation> {
    if let Some(id) = shared.store.kv_get(&conversation_key(message.chat_id, message.thread_id)).await? {
        match shared.store.get_conversation(&id).await {
            // A conversation made before its group's title was known gets the title (a chosen one is kept).
            Ok(found) if found.title.starts_with(DEFAULT_GROUP_TITLE) && message.chat_title.is_some() => {
                return shared.store.rename_conversation(&found.id, &title_of(message)).await;
            }
            Ok(found) => return Ok(found),
            Err(crate::storage::StorageError::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
    }
    new_conversation(shared, message).await
}

/// How a group's conversation is titled while its title is unknown.
const DEFAULT_GROUP_TITLE: &str = "Telegram group ";

/// A chat's conversation title: the group's own title (and topic), else who or which chat it is.
fn title_of(message: &Incoming) -> String {
    let group = match &message.chat_title {
        Some(title) => title.clone(),
        None => format!("{DEFAULT_GROUP_TITLE}{}", message.chat_id),
    };
    match (message.chat_type.as_str(), message.thread_id) {
        ("private", _) => format!("Telegram @{}", message.username.as_deref().unwrap_or("user")),
        (_, Some(thread)) => format!("{group} · topic {thread}"),
        (_, None) => group,
    }
}

async fn new_conversation(shared: &Shared, message: &Incoming) -> StorageResult<Conversation> {
    let title = title_of(message);
    let conversation = shared
        .store
        .create_conversation(NewConversation { title, channel: "telegram".into(), chat_id: Some(message.chat_id) })
        .await?;
    shared.store.kv_set(&conversation_key(message.chat_id, message.thread_id), &conversation.id).await?;
    if let Some(thread) = message.thread_id {
        shared.store.kv_set(&thread_key(&conversation.id), &thread.to_string()).await?;
    }
    Ok(conversation)
}

/// The reply to a command, or `None` when `text` is not one of ours.
pub(super) async fn run(
    shared: &Shared,
    message: &Incoming,
    text: &str,
    is_admin: bool,
) -> StorageResult<Option<String>> {
    let Some(command) = text.strip_prefix('/') else { return Ok(None) };
    let name = command.split_whitespace().next().unwrap_or("");
    let reply = match name {
        "start" => format!("Hello! {HELP}"),
        "help" => HELP.to_owned(),
        "reset" => {
            new_conversation(shared, message).await?;
            "Done — this chat starts a fresh conversation now.".to_owned()
        }
        "status" => status(shared, message.chat_id, is_admin).await?,
        "workspace" => workspace(shared, message.chat_id),
        "jobs" => super::job_commands::list(shared, message).await?,
        "cancel" => {
            let arguments = command.split_once(char::is_whitespace).map_or("", |(_, rest)| rest);
            super::job_commands::cancel(shared, message, arguments, is_admin).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// The health score for everyone; its parts (components, model provider,
/// outbox, queue, totals across chats) for admins only.
async fn status(shared: &Shared, chat_id: i64, is_admin: bool) -> StorageResult<String> {
    let health = crate::agent::health::current_health(&shared.agent, true).await;
    let saved_here = shared.store.context_tokens_saved(Some(chat_id)).await?;
    if !is_admin {
        return Ok(format!(
            "valor {} is running as @{}.\n\n**Health: {}/100 ({})**\n\n\
             - context compaction saved {saved_here} tokens in this chat",
            env!("CARGO_PKG_VERSION"),
            shared.bot.username,
            health.score,
            health.level,
        ));
    }
    let model = match shared.agent.provider_name() {
        Some(provider) => format!("model provider: {provider}"),
        None => NO_MODEL_REPLY.to_owned(),
    };
    let counts = shared.store.telegram_outbox_counts().await?;
    let count = |status: &str| counts.iter().find(|(name, _)| name == status).map_or(0, |(_, n)| *n);
    let waiting = count("pending") + count("sending");
    let mut outbox = format!("outbox: {waiting} waiting, {} delivered", count("delivered"));
    for (status, label) in [("uncertain", "uncertain (cut off mid-send, not resent)"), ("failed", "failed")] {
        if count(status) > 0 {
            outbox.push_str(&format!(", {} {label}", count(status)));
        }
    }
    let jobs = shared.store.count_jobs_by_status().await?;
    let jobs_count = |status: &str| jobs.get(status).copied().unwrap_or(0);
    let components: Vec<String> = health
        .components
        .iter()
        .map(|component| match component.penalty {
            0 => format!("- ✓ {}: {}", component.name, component.note),
            lost => format!("- ⚠ {}: {} (−{lost})", component.name, component.note),
        })
        .collect();
    let saved_total = shared.store.context_tokens_saved(None).await?;
    Ok(format!(
        "valor {} is running as @{}.\n\n**Health: {}/100 ({})**\n{}\n\n- {model}\n- {outbox}\n\
         - background jobs: {} queued, {} running\n\
         - context compaction saved {saved_here} tokens in this chat ({saved_total} in all)",
        env!("CARGO_PKG_VERSION"),
        shared.bot.username,
        health.score,
        health.level,
        components.join("\n"),
        jobs_count("queued"),
        jobs_count("running")
    ))
}

fn workspace(shared: &Shared, chat_id: i64) -> String {
    match shared.workspaces.iter().find(|workspace| workspace.chats.contains(&chat_id)) {
        Some(found) => format!("This chat maps to the workspace **{}** (`{}`).", found.name, found.path.display()),
        None => format!("No workspace maps to this chat (id `{chat_id}`). Add it to a `[[workspace]]` `chats` list."),
    }
}
