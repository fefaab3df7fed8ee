//! Final notices: every finished job with a conversation tells it how the job
//! ended, exactly once per round. Delivery is a pass over the jobs still
//! awaiting their notice, so a notice missed by a crash goes out on the next
//! pass after the restart.
//!
//! A code run's notice also has a transcript copy the model reads: its
//! compact outcome (`outcome.rs`), recorded under the notice's own key before
//! the notice is posted — whatever the channel (Telegram's notices never
//! enter the transcript otherwise), once per round (the key dedupes a
//! repeated pass, a second deliverer and a crash between the two writes),
//! and for web/API/terminal conversations in place of the notice's text.

use crate::agent::outbox::{Choice, Notice, NoticeKind, Outbox, OutboxError, record_in_transcript};
use crate::storage::{BranchAction, Job, JobStatus, StorageResult, Store, final_notice_key};
use crate::workspace::runs::button_data;

use super::Clock;
use super::outcome::code_run_outcome;

/// The text of a finished job's final notice.
pub fn final_notice_text(job: &Job) -> String {
    match job.status {
        JobStatus::Succeeded => {
            let result = match &job.result {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(value) => match value.get("reply").and_then(serde_json::Value::as_str) {
                    Some(reply) => reply.to_owned(),
                    None => value.to_string(),
                },
                None => String::new(),
            };
            format!("Job #{} ({}) finished.\n\n{result}", job.id, job.kind).trim_end().to_owned()
        }
        JobStatus::Failed => format!(
            "Job #{} ({}) failed after {} attempt(s): {}",
            job.id,
            job.kind,
            job.attempts,
            job.error.as_deref().unwrap_or("unknown error")
        ),
        JobStatus::Cancelled => format!("Job #{} ({}) was cancelled.", job.id, job.kind),
        JobStatus::Queued | JobStatus::Running => format!("Job #{} ({}) is {}.", job.id, job.kind, job.status.as_str()),
    }
}

/// Under a code run's result that committed something: merge, push and
/// discard buttons for its branch (each press is a person's approval).
fn branch_choices(job: &Job) -> Vec<Choice> {
    let Some(result) = job.result.as_ref().filter(|_| job.status == JobStatus::Succeeded) else { return Vec::new() };
    let (Some(id), Some(base)) = (result["run_branch"].as_i64(), result["base_branch"].as_str()) else {
        return Vec::new();
    };
    if result["diff_stat"].as_str().is_none_or(str::is_empty) {
        return Vec::new();
    }
    [
        (format!("✅ Merge into {base}"), BranchAction::Merge),
        ("⬆️ Push".to_owned(), BranchAction::Push),
        ("🗑 Discard".to_owned(), BranchAction::Discard),
    ]
    .into_iter()
    .map(|(label, action)| Choice { label, data: button_data(id, action) })
    .collect()
}

fn notice_kind(status: JobStatus) -> NoticeKind {
    match status {
        JobStatus::Succeeded => NoticeKind::Result,
        JobStatus::Failed => NoticeKind::Failure,
        JobStatus::Cancelled | JobStatus::Queued | JobStatus::Running => NoticeKind::Info,
    }
}

/// Post the final notice of every finished job still awaiting one; returns
/// how many were delivered. `owner` claims each notice for `claim_ms` first, so
/// concurrent deliverers (workers, processes) never post one notice twice.
pub async fn deliver_final_notices(
    store: &Store,
    outbox: &dyn Outbox,
    clock: &dyn Clock,
    owner: &str,
    claim_ms: i64,
) -> StorageResult<usize> {
    let mut delivered = 0;
    for job in store.jobs_awaiting_final_notice(50).await? {
        let Some(conversation_id) = job.conversation_id.clone() else { continue };
        let key = final_notice_key(&job);
        if !store.claim_job_notice(job.id, &key, owner, clock.now_ms(), claim_ms).await? {
            continue;
        }
        // The live status message shows its end state before the result arrives.
        if let Err(error) = super::status::end_status(store, outbox, &job).await {
            tracing::warn!(job = job.id, "the status message was not ended: {error}");
        }
        let notice = Notice {
            conversation_id,
            kind: notice_kind(job.status),
            text: final_notice_text(&job),
            dedupe_key: format!("job:{}:{key}", job.id),
        };
        // The outcome first (with the branch's buttons, for the web chat): a
        // crash after it only repeats the (deduplicated) post.
        let choices = branch_choices(&job);
        let recorded = match code_run_outcome(&job) {
            Some(text) => record_in_transcript(store, Notice { text, ..notice.clone() }, &choices).await,
            None => Ok(()),
        };
        let posted = match (recorded, choices.is_empty()) {
            (Err(error), _) => Err(error),
            (Ok(()), true) => outbox.post(notice).await,
            (Ok(()), false) => outbox.post_question(notice, &choices).await,
        };
        match posted {
            Ok(()) => {
                store.record_job_notice(job.id, &key, clock.now_ms()).await?;
                delivered += 1;
            }
            Err(OutboxError::UnknownConversation(conversation)) => {
                // Nobody left to tell; record it so the pass does not retry forever.
                tracing::warn!(job = job.id, %conversation, "the job's conversation is gone; notice dropped");
                store.record_job_notice(job.id, &key, clock.now_ms()).await?;
            }
            Err(error) => tracing::warn!(job = job.id, "a final notice was not delivered (will retry): {error}"),
        }
    }
    Ok(delivered)
}
