//! `/jobs` and `/cancel ID`: a chat's background jobs, answered without the
//! model. `/jobs` lists the newest jobs of this chat's conversation with
//! status and progress; `/cancel ID` cancels a queued job or asks a running
//! one to stop. The Cancel button under a run's status message
//! (`callback_query` data `job:cancel:<id>`) does the same as `/cancel ID`
//! written by the presser in that chat, answered with a toast.
//!
//! Invariant: a non-admin can only see and cancel jobs of this chat's own
//! conversation; another chat's job answers exactly like a missing one, so
//! its existence is not revealed. Admins may cancel any job. A press counts
//! only from someone valor answers in that chat (`access::admits_press`);
//! a second press or one after the end changes nothing.

use serde_json::Value;

use crate::storage::{CancelOutcome, JobFilter, StorageError, StorageResult, wall_clock_ms};

use super::Shared;
use super::access::{Sender, admits_press};
use super::commands::conversation_key;
use super::inbound::Incoming;

const LISTED: u32 = 10;

/// The conversation id of this chat (or topic), if it has one yet.
async fn chat_conversation(shared: &Shared, message: &Incoming) -> StorageResult<Option<String>> {
    shared.store.kv_get(&conversation_key(message.chat_id, message.thread_id)).await
}

/// `/jobs`: the newest jobs of this chat.
pub(super) async fn list(shared: &Shared, message: &Incoming) -> StorageResult<String> {
    let Some(conversation_id) = chat_conversation(shared, message).await? else {
        return Ok("This chat has no background jobs.".into());
    };
    let filter = JobFilter { status: None, conversation_id: Some(conversation_id), limit: LISTED };
    let jobs = shared.store.list_jobs(&filter).await?;
    if jobs.is_empty() {
        return Ok("This chat has no background jobs.".into());
    }
    let mut lines = Vec::new();
    for job in &jobs {
        lines.push(format!("- {}", shared.store.job_summary(job).await?));
    }
    Ok(format!("Background jobs of this chat (newest first):\n{}\n\nCancel one with /cancel ID.", lines.join("\n")))
}

/// `/cancel ID`.
pub(super) async fn cancel(
    shared: &Shared,
    message: &Incoming,
    arguments: &str,
    is_admin: bool,
) -> StorageResult<String> {
    let Some(id) =
        arguments.split_whitespace().next().and_then(|word| word.trim_start_matches('#').parse::<i64>().ok())
    else {
        return Ok("Which job? Write /cancel ID — /jobs lists this chat's jobs with their ids.".into());
    };
    let not_found = format!("There is no job #{id} in this chat.");
    let job = match shared.store.get_job(id).await {
        Ok(job) => job,
        Err(StorageError::NotFound { .. }) => return Ok(not_found),
        Err(other) => return Err(other),
    };
    if !is_admin {
        let own = chat_conversation(shared, message).await?;
        if own.is_none() || job.conversation_id != own {
            return Ok(not_found);
        }
    }
    Ok(match shared.store.request_job_cancel(id, wall_clock_ms()).await? {
        CancelOutcome::Cancelled(job) => format!("Cancelled job #{} ({}).", job.id, job.kind),
        CancelOutcome::Requested(job) => {
            format!("Asked job #{} ({}) to stop; I'll confirm when it has.", job.id, job.kind)
        }
        CancelOutcome::AlreadyFinished(job) => {
            format!("Job #{} already {}; nothing to cancel.", job.id, job.status.as_str())
        }
    })
}

/// A press of the Cancel button of job `job_id` (a `callback_query`), always
/// answered with a toast. Storage errors are returned (the update is then not acknowledged).
pub(super) async fn press_cancel(shared: &Shared, query: &Value, job_id: i64) -> StorageResult<()> {
    let Some(query_id) = query["id"].as_str() else { return Ok(()) };
    let text = cancel_by_button(shared, query, job_id).await?;
    if let Err(error) = shared.api.answer_callback_query(query_id, &text).await {
        tracing::warn!("telegram: answerCallbackQuery failed: {error}");
    }
    Ok(())
}

async fn cancel_by_button(shared: &Shared, query: &Value, job_id: i64) -> StorageResult<String> {
    let message = &query["message"];
    let (Some(chat_id), Some(user_id)) = (message["chat"]["id"].as_i64(), query["from"]["id"].as_i64()) else {
        return Ok("This button no longer works.".into());
    };
    let sender = Sender {
        chat_type: message["chat"]["type"].as_str().unwrap_or(""),
        chat_id,
        user_id: Some(user_id),
        username: query["from"]["username"].as_str(),
    };
    let refused = "You may not cancel this job.".to_owned();
    let Some(is_admin) = admits_press(&shared.settings, &sender) else {
        tracing::warn!(job = job_id, user = user_id, chat = chat_id, "telegram: cancel press refused");
        return Ok(refused);
    };
    let job = match shared.store.get_job(job_id).await {
        Ok(job) => job,
        Err(StorageError::NotFound { .. }) => return Ok(refused),
        Err(other) => return Err(other),
    };
    if !is_admin {
        let key = conversation_key(chat_id, message["message_thread_id"].as_i64());
        let own = shared.store.kv_get(&key).await?;
        if own.is_none() || job.conversation_id != own {
            tracing::warn!(job = job_id, user = user_id, chat = chat_id, "telegram: cancel press for another chat");
            return Ok(refused);
        }
    }
    if job.cancel_requested && !job.status.is_finished() {
        return Ok(format!("Job #{job_id} is already stopping."));
    }
    tracing::info!(job = job_id, user = user_id, "telegram: cancel pressed");
    Ok(match shared.store.request_job_cancel(job_id, wall_clock_ms()).await? {
        CancelOutcome::Cancelled(job) => format!("Cancelled job #{}.", job.id),
        CancelOutcome::Requested(job) => format!("Stopping job #{}…", job.id),
        CancelOutcome::AlreadyFinished(job) => {
            format!("Job #{} already {}; nothing to cancel.", job.id, job.status.as_str())
        }
    })
}
