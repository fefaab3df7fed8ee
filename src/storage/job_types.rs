//! Data types of the job queue crossing the storage boundary: statuses,
//! new and stored jobs, and what enqueue, cancel and retry did.

use serde::{Deserialize, Serialize};

use super::{StorageError, StorageResult};

/// The wall clock as UNIX milliseconds, for callers outside the worker (API,
/// CLI, tools) that have no injected clock.
pub fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> StorageResult<JobStatus> {
        match text {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "succeeded" => Ok(JobStatus::Succeeded),
            "failed" => Ok(JobStatus::Failed),
            "cancelled" => Ok(JobStatus::Cancelled),
            other => Err(StorageError::Invalid(format!("unknown job status {other:?}"))),
        }
    }

    /// Succeeded, failed or cancelled: nothing will run it again without a manual retry.
    pub fn is_finished(self) -> bool {
        match self {
            JobStatus::Queued | JobStatus::Running => false,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// Higher runs first.
    pub priority: i64,
    /// Not before this time; `None` = now.
    pub run_at_ms: Option<i64>,
    /// Claims before the job fails for good (at least 1).
    pub max_attempts: u32,
    /// The conversation told about progress and the outcome.
    pub conversation_id: Option<String>,
    /// Enqueueing a second job with the same key returns the first one.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: i64,
    pub status: JobStatus,
    pub run_at_ms: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Manual retries so far; part of notice keys so each round reports once.
    pub retries: i64,
    pub worker_id: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub cancel_requested: bool,
    pub progress_text: Option<String>,
    pub progress_percent: Option<i64>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub conversation_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// What `enqueue_job` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    /// False when the idempotency key matched an existing job (returned instead).
    pub created: bool,
}

/// What `request_job_cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued: now cancelled.
    Cancelled(Job),
    /// It is running: its worker will see the request and stop.
    Requested(Job),
    /// It had already finished; nothing changed.
    AlreadyFinished(Job),
}

/// What `retry_job` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// Failed or cancelled: queued again with fresh attempts.
    Requeued(Job),
    /// Queued, running or succeeded: nothing changed.
    NotRetryable(Job),
}

/// Which jobs `list_jobs` returns (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub conversation_id: Option<String>,
    pub limit: u32,
}

/// The notice key of a job's final notice for its current round.
pub fn final_notice_key(job: &Job) -> String {
    format!("final:{}", job.retries)
}

impl Job {
    /// One line for chats, tools and the CLI: `#7 agent_task — running (40 %: reading files), attempt 1/3`.
    pub fn summary(&self) -> String {
        let mut line = format!("#{} {} — {}", self.id, self.kind, self.status.as_str());
        match (&self.progress_text, self.progress_percent) {
            (Some(text), Some(percent)) => line.push_str(&format!(" ({percent} %: {text})")),
            (Some(text), None) => line.push_str(&format!(" ({text})")),
            (None, Some(percent)) => line.push_str(&format!(" ({percent} %)")),
            (None, None) => {}
        }
        line.push_str(&format!(", attempt {}/{}", self.attempts, self.max_attempts));
        if self.cancel_requested && self.status == JobStatus::Running {
            line.push_str(", cancelling");
        }
        if let Some(error) = &self.error {
            line.push_str(&format!(", last error: {error}"));
        }
        line
    }
}
