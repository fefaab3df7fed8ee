//! `queue_task`: hand a long request to the background queue as an
//! `agent_task` job and answer the model at once with the job id, so it can
//! say "on it — job #N"; the outcome arrives in this conversation later as a
//! notice. Talks to the queue through the Store (the agent never imports `jobs`).

use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ToolContext, ToolError, TypedTool};
use crate::storage::{NewJob, wall_clock_ms};

/// The job kind the `jobs` module's agent-task handler runs (kept in sync by a test).
pub const AGENT_TASK_KIND: &str = "agent_task";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueTaskInput {
    /// The complete, self-contained instruction for the background run (it does not see this conversation).
    pub task: String,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: Option<i64>,
}

/// Queues background turns with `jobs.max_attempts` attempts: a passing
/// model outage is retried with the queue's backoff.
#[derive(Debug, Clone, Copy)]
pub struct QueueTask {
    pub max_attempts: u32,
}

#[async_trait::async_trait]
impl TypedTool for QueueTask {
    type Input = QueueTaskInput;
    const NAME: &'static str = "queue_task";
    const DESCRIPTION: &'static str = "Queue a long-running request as a background job. Returns the job id \
        at once; tell the user you are on it and give the job number. The result is posted to this \
        conversation when the job finishes. The task text must be self-contained.";
    const SIDE_EFFECTS: bool = true;

    async fn run(&self, context: &ToolContext, input: QueueTaskInput) -> Result<String, ToolError> {
        let task = input.task.trim();
        if task.is_empty() {
            return Err(ToolError::RespondToModel("task must not be empty".into()));
        }
        // The same task queued twice by one turn is one job.
        let digest = Sha256::digest(task.as_bytes());
        let key = format!("{AGENT_TASK_KIND}:{}:{:x}", context.turn_id, digest);
        let enqueued = context
            .store
            .enqueue_job(
                NewJob {
                    kind: AGENT_TASK_KIND.into(),
                    payload: serde_json::json!({ "task": task }),
                    priority: input.priority.unwrap_or(0),
                    run_at_ms: None,
                    max_attempts: self.max_attempts,
                    conversation_id: Some(context.conversation_id.clone()),
                    idempotency_key: Some(key),
                },
                wall_clock_ms(),
            )
            .await
            .map_err(|error| ToolError::RespondToModel(format!("the task could not be queued: {error}")))?;
        let id = enqueued.job.id;
        Ok(format!(
            "Queued as job #{id}. Tell the user you are on it (job #{id}); the result will be posted to this \
             conversation when it is done. `job_status` shows its progress."
        ))
    }
}
