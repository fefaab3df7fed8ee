//! What a job kind does: the [`JobHandler`] trait, the context a handler gets
//! (its job, a cancellation token, progress reporting) and the registry that
//! maps kinds to handlers. Progress for the chat goes to the job's one live
//! status message (`status.rs`), never a new message per step.
//!
//! Contract for handlers: watch `context.cancel` and return promptly once it
//! fires (a user cancelled the job, its lease was lost, or valor is shutting
//! down — the worker decides which outcome to record); an `Ok` value is the
//! job's JSON result; `JobError::Retry` schedules another attempt with
//! backoff, `JobError::Fail` fails the job at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Clock;
use super::status::{self, Phase, RunStatus};
use crate::agent::outbox::Outbox;
use crate::storage::{Job, StorageResult, Store};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Transient: try again later (up to the job's max attempts).
    #[error("{0}")]
    Retry(String),
    /// Permanent: the job fails now with this message.
    #[error("{0}")]
    Fail(String),
    /// The handler stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
}

#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    /// The job kind this handler runs (e.g. `agent_task`).
    fn kind(&self) -> &'static str;
    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError>;
}

/// Handlers by kind.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl HandlerRegistry {
    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(handler.kind(), handler);
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}

/// What a running handler may use.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job as claimed (attempts already counts this attempt).
    pub job: Job,
    /// Fires when the job must stop.
    pub cancel: CancellationToken,
    /// The worker's shutdown token (`cancel` is its child).
    pub(super) shutdown: CancellationToken,
    pub(super) worker_id: String,
    pub(super) store: Store,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) outbox: Arc<dyn Outbox>,
}

impl JobContext {
    /// True when `cancel` fired because valor is stopping (the job goes back
    /// to the queue), not because someone cancelled the job.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Store progress (shown by the API, the CLI and `job_status`). False if the lease was lost.
    pub async fn report_progress(&self, text: &str, percent: Option<u8>) -> StorageResult<bool> {
        self.store.update_job_progress(self.job.id, &self.worker_id, text, percent, self.clock.now_ms()).await
    }

    /// Store progress and show it in the job's status message (one per
    /// round, edited in place, so a restart re-running a step adds nothing).
    /// Step 0 is the run's first line: the status is (again) "starting" with
    /// `text` as its headline; other steps set its note.
    pub async fn notify_progress(&self, step: u32, text: &str, percent: Option<u8>) -> StorageResult<bool> {
        let held = self.report_progress(text, percent).await?;
        if !held || self.job.conversation_id.is_none() {
            return Ok(held);
        }
        let mut status = self.status().await?;
        if step == 0 {
            status.phase = Phase::Starting;
            text.clone_into(&mut status.headline);
        } else {
            status.note = Some(text.to_owned());
        }
        self.show_status(&status).await?;
        Ok(held)
    }

    /// The job's status as stored for this round, or a new one starting now.
    pub async fn status(&self) -> StorageResult<RunStatus> {
        let stored = status::load(&self.store, &self.job).await?;
        let mut status =
            stored.unwrap_or_else(|| RunStatus { started_at_ms: self.clock.now_ms(), ..RunStatus::default() });
        status.attempt = self.job.attempts;
        status.max_attempts = self.job.max_attempts;
        Ok(status)
    }

    /// Store `status` and show it in the job's conversation (nothing without one).
    pub async fn show_status(&self, status: &RunStatus) -> StorageResult<()> {
        status::show(&self.store, self.outbox.as_ref(), &self.job, status, self.clock.now_ms()).await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
