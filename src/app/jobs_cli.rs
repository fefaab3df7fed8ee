//! `valor jobs …`: list, show, retry and cancel background jobs straight on
//! the database file (safe while `valor serve` runs: SQLite WAL, and a
//! running job's worker sees a cancel request at its next lease renewal).

use crate::config::Settings;
use crate::storage::{CancelOutcome, Job, JobFilter, JobStatus, RetryOutcome, Store, wall_clock_ms};

/// What `valor jobs` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsAction {
    List { status: Option<String>, limit: u32 },
    Show { id: i64 },
    Retry { id: i64 },
    Cancel { id: i64 },
}

/// Run the action; returns the text to print.
pub async fn jobs_command(settings: &Settings, action: JobsAction) -> anyhow::Result<String> {
    let store = super::open_existing_store(settings).await?;
    let output = run(&store, action).await;
    store.close().await;
    output
}

async fn run(store: &Store, action: JobsAction) -> anyhow::Result<String> {
    match action {
        JobsAction::List { status, limit } => {
            let status = status.as_deref().map(JobStatus::parse).transpose()?;
            let jobs = store.list_jobs(&JobFilter { status, conversation_id: None, limit }).await?;
            if jobs.is_empty() {
                return Ok("no jobs".into());
            }
            let mut lines = Vec::new();
            for job in &jobs {
                lines.push(store.job_summary(job).await?);
            }
            Ok(lines.join("\n"))
        }
        JobsAction::Show { id } => {
            let job = store.get_job(id).await?;
            let summary = store.job_summary(&job).await?;
            Ok(details(&job, summary))
        }
        JobsAction::Retry { id } => match store.retry_job(id, wall_clock_ms()).await? {
            RetryOutcome::Requeued(job) => Ok(format!("queued again: {}", job.summary())),
            RetryOutcome::NotRetryable(job) => {
                anyhow::bail!("job {id} is {}; only failed or cancelled jobs can be retried", job.status.as_str())
            }
        },
        JobsAction::Cancel { id } => match store.request_job_cancel(id, wall_clock_ms()).await? {
            CancelOutcome::Cancelled(job) => Ok(format!("cancelled: {}", job.summary())),
            CancelOutcome::Requested(job) => Ok(format!("cancel requested (the worker stops it): {}", job.summary())),
            CancelOutcome::AlreadyFinished(job) => {
                anyhow::bail!("job {id} already {}; only queued or running jobs can be cancelled", job.status.as_str())
            }
        },
    }
}

fn details(job: &Job, summary: String) -> String {
    let time = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let json = |value: &Option<serde_json::Value>| value.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    [
        summary,
        format!("payload:      {}", job.payload),
        format!("priority:     {}", job.priority),
        format!("conversation: {}", job.conversation_id.as_deref().unwrap_or("-")),
        format!("created:      {}", time(Some(job.created_at_ms))),
        format!("run at:       {}", time(Some(job.run_at_ms))),
        format!("started:      {}", time(job.started_at_ms)),
        format!("finished:     {}", time(job.finished_at_ms)),
        format!("result:       {}", json(&job.result)),
        format!("error:        {}", job.error.as_deref().unwrap_or("-")),
    ]
    .join("\n")
}
