//! What a job kind does: the [`JobHandler`] trait, the context a handler gets
//! (its job, a cancellation token, progress reporting) and the registry that
//! maps kinds to handlers.
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
use crate::agent::outbox::{Notice, NoticeKind, Outbox};
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
    pub(super) worker_id: String,
    pub(super) store: Store,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) outbox: Arc<dyn Outbox>,
}

impl JobContext {
    /// Store progress (shown by the API, the CLI and `job_status`). False if the lease was lost.
    pub async fn report_progress(&self, text: &str, percent: Option<u8>) -> StorageResult<bool> {
        self.store.update_job_progress(self.job.id, &self.worker_id, text, percent, self.clock.now_ms()).await
    }

    /// Store progress and also post it to the job's conversation, once per `step`
    /// (a restart re-running the step does not post it twice).
    pub async fn notify_progress(&self, step: u32, text: &str, percent: Option<u8>) -> StorageResult<bool> {
        let held = self.report_progress(text, percent).await?;
        let Some(conversation_id) = self.job.conversation_id.clone() else { return Ok(held) };
        let key = format!("progress:{}:{step}", self.job.retries);
        let claim_ms = self.job.lease_until_ms.map_or(60_000, |until| until - self.clock.now_ms()).max(1_000);
        if !self.store.claim_job_notice(self.job.id, &key, &self.worker_id, self.clock.now_ms(), claim_ms).await? {
            return Ok(held);
        }
        let notice = Notice {
            conversation_id,
            kind: NoticeKind::Progress,
            text: format!("Job #{}: {text}", self.job.id),
            dedupe_key: format!("job:{}:{key}", self.job.id),
        };
        match self.outbox.post(notice).await {
            Ok(()) => {
                self.store.record_job_notice(self.job.id, &key, self.clock.now_ms()).await?;
            }
            Err(error) => tracing::warn!(job = self.job.id, "a progress notice was not delivered: {error}"),
        }
        Ok(held)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
