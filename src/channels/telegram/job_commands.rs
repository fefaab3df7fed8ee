//! `/jobs` and `/cancel ID`: a chat's background jobs, answered without the
//! model. `/jobs` lists the newest jobs of this chat's conversation with
//! status and progress; `/cancel ID` cancels a queued job or asks a running
//! one to stop.
//!
//! Invariant: a non-admin can only see and cancel jobs of this chat's own
//! conversation; another chat's job answers exactly like a missing one, so
//! its existence is not revealed. Admins may cancel any job.

use crate::storage::{CancelOutcome, JobFilter, StorageError, StorageResult, wall_clock_ms};

use super::Shared;
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
