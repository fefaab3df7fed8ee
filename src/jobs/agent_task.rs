//! `agent_task` jobs: an agent turn run in the background for a request the
//! model queued with the `queue_task` tool. The turn runs in its own
//! conversation (`job #N`, channel `job`) so the originating conversation
//! only receives the outcome, as the job's final notice.
//!
//! Payload: `{"task": "…"}`. Result: `{"reply", "conversation", "turn_id"}`.

use serde_json::json;
use tokio::sync::mpsc;

use super::handler::{JobContext, JobError, JobHandler};
use crate::agent::{Agent, AgentEvent, TurnFailure, TurnRequest};

/// Shared with the `queue_task` tool, which enqueues this kind.
pub use crate::agent::tools::AGENT_TASK_KIND;

#[derive(Debug, Clone)]
pub struct AgentTaskHandler {
    agent: Agent,
}

/// How long a cancelled task's turn may take to save what it streamed.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl AgentTaskHandler {
    pub fn new(agent: Agent) -> Self {
        Self { agent }
    }
}

#[async_trait::async_trait]
impl JobHandler for AgentTaskHandler {
    fn kind(&self) -> &'static str {
        AGENT_TASK_KIND
    }

    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let Some(task) = payload.get("task").and_then(serde_json::Value::as_str).map(str::to_owned) else {
            return Err(JobError::Fail("the payload has no `task` text".into()));
        };
        let storage_error = |error: crate::storage::StorageError| JobError::Retry(error.to_string());
        // Told once per round, also when a restart re-runs the job. The status message's headline
        // names the task, which stays true once the job has ended (its phase says how it went).
        let headline = format!("Task: {}", task.lines().next().unwrap_or_default());
        context.notify_progress(0, &headline, Some(0)).await.map_err(storage_error)?;
        // Deterministic title: a re-run after a crash continues the same background conversation.
        let conversation =
            self.agent.open_conversation(&format!("job #{}", context.job.id), "job").await.map_err(storage_error)?;
        let (sender, mut receiver) = mpsc::channel(256);
        // The turn's own stop token: a cancel request stops the turn the way Stop does (what was
        // streamed is kept, the turn is recorded cancelled); a shutdown is left to the agent's own.
        let stop = tokio_util::sync::CancellationToken::new();
        let request = TurnRequest {
            conversation,
            text: task,
            is_admin: false,
            user: None,
            images: Vec::new(),
            once_key: None,
            cancel: stop.clone(),
        };
        let agent = self.agent.clone();
        // The sender is dropped when the turn ends, which ends the event loop below.
        let turn = async move { agent.run_turn(request, &sender).await };
        let steps = async {
            let mut tools_used = 0u32;
            while let Some(event) = receiver.recv().await {
                if let AgentEvent::ToolStarted { name, .. } = event {
                    tools_used += 1;
                    let _ = context.report_progress(&format!("using {name} (tool call {tools_used})"), None).await;
                }
            }
        };
        let run = async { tokio::join!(turn, steps).0 };
        tokio::pin!(run);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = context.cancel.cancelled() => {
                if context.is_shutting_down() {
                    // Handed back to the queue; the agent's shutdown ends the turn as interrupted.
                    return Err(JobError::Cancelled);
                }
                stop.cancel();
                // The turn saves what it streamed and records itself cancelled, promptly.
                let _ = tokio::time::timeout(STOP_GRACE, run).await;
                return Err(JobError::Cancelled);
            }
        };
        match outcome.failure {
            None => {}
            // A passing outage: the queue tries again with its backoff while attempts remain.
            Some(TurnFailure::ModelUnavailable | TurnFailure::Storage | TurnFailure::Interrupted) => {
                return Err(JobError::Retry(outcome.reply));
            }
            Some(TurnFailure::Cancelled) => return Err(JobError::Cancelled),
            Some(TurnFailure::NoModel | TurnFailure::Model | TurnFailure::Tool) => {
                return Err(JobError::Fail(outcome.reply));
            }
        }
        Ok(json!({"reply": outcome.reply, "conversation": outcome.conversation, "turn_id": outcome.turn_id}))
    }
}
