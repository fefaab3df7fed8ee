//! Durable background work ("promises"): handlers per job kind, workers that
//! claim jobs from the queue table in `storage`, renew their lease while a
//! handler runs, retry with exponential backoff and jitter, honour
//! cancellation, and deliver progress and the final outcome to the job's
//! conversation through an [`Outbox`](crate::agent::outbox::Outbox).
//!
//! Invariants: the app is the only place that spawns workers (`Worker::run`);
//! tests drive the same code with `Worker::try_execute_next`. All queue time
//! comes from a [`Clock`], so tests control backoff and lease expiry. Every
//! finished job with a conversation gets exactly one final notice per round
//! (`final:<retries>` recorded in `job_notices` after the outbox accepted it;
//! the outbox dedupes, so a crash in between repeats nothing). Progress is
//! one live status message per round (`status.rs`), ended by the same pass
//! just before the final notice.

mod agent_task;
mod branch_action;
mod claude_code;
mod clock;
pub mod daydream;
mod gemini_cli;
mod handler;
mod notify;
mod outcome;
mod schedule;
pub mod status;
mod worker;

pub use agent_task::{AGENT_TASK_KIND, AgentTaskHandler};
pub use branch_action::BranchActionHandler;
pub use claude_code::ClaudeCodeHandler;
pub use clock::{Clock, ManualClock, SystemClock};
pub use daydream::{DAYDREAM_KIND, Daydream, DaydreamHandler};
pub use gemini_cli::GeminiCliHandler;
pub use handler::{HandlerRegistry, JobContext, JobError, JobHandler};
pub use notify::{deliver_final_notices, final_notice_text};
pub use outcome::code_run_outcome;
pub use schedule::{ScheduleSpec, Scheduler, next_run_after};
pub use worker::{ExecutionOutcome, OutcomeStatus, Worker, WorkerConfig, backoff_delay_ms};

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::outbox::Outbox;
use crate::storage::Store;

/// Everything workers share; cheap to clone. The app builds one and asks it for workers.
#[derive(Debug, Clone)]
pub struct JobSystem {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub handlers: Arc<HandlerRegistry>,
    pub outbox: Arc<dyn Outbox>,
    pub config: WorkerConfig,
}

impl JobSystem {
    /// A worker named `worker_id` whose running job is cancelled (and handed back) when `shutdown` fires.
    pub fn worker(&self, worker_id: &str, shutdown: CancellationToken) -> Worker {
        Worker::new(worker_id, self.clone(), shutdown)
    }
}
