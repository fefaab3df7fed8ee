//! `delegate_code_task`: queue real code work for Claude Code in the chat's
//! workspace as a `claude_code` job and answer at once with the job id and
//! its place in the queue; progress and the final summary arrive in this
//! conversation as notices. A follow-up continues the chat's previous Claude
//! Code session unless the model asks for a fresh one.
//!
//! Invariants: the workspace is checked (and audit-logged) before anything
//! is queued, so a chat without a workspace gets a clear answer; the job
//! reaches the queue through the Store only (the agent never imports `jobs`).

use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::project_context::workspace_for;
use super::{ToolContext, ToolError, TypedTool};
use crate::storage::{JobFilter, JobStatus, NewJob, wall_clock_ms};
use crate::workspace::{CLAUDE_CODE_KIND, Workspaces};

/// A crashed run is re-run once; a run that failed on its own is not retried (it spends money).
const CLAUDE_CODE_MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateCodeTaskInput {
    /// The complete instruction for Claude Code (what to change, how to check it).
    pub task: String,
    /// The workspace name. Needed outside Telegram chats; a Telegram chat always uses its own workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Start a new Claude Code session instead of continuing this chat's previous one.
    #[serde(default)]
    pub fresh_session: bool,
    /// What kind of work this is (e.g. "github", "payments"): picks the MCP servers from the library that serve it.
    #[serde(default)]
    pub task_kind: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DelegateCodeTask {
    workspaces: Workspaces,
}

impl DelegateCodeTask {
    pub fn new(workspaces: Workspaces) -> Self {
        Self { workspaces }
    }
}

#[async_trait::async_trait]
impl TypedTool for DelegateCodeTask {
    type Input = DelegateCodeTaskInput;
    const NAME: &'static str = "delegate_code_task";
    const DESCRIPTION: &'static str = "Hand code work (fix, change, investigate a project) to Claude Code, which \
        runs in this chat's project workspace in the background. Returns the job id at once; progress and a \
        final summary (files changed, cost) are posted to this conversation. Follow-ups continue the same \
        Claude Code session.";
    const SIDE_EFFECTS: bool = true;
    const SPENDS_MONEY: bool = true;

    async fn run(&self, context: &ToolContext, input: DelegateCodeTaskInput) -> Result<String, ToolError> {
        let task = input.task.trim();
        if task.is_empty() {
            return Err(ToolError::RespondToModel("task must not be empty".into()));
        }
        let workspace = workspace_for(&self.workspaces, context, input.workspace.as_deref()).await?;
        let digest = Sha256::digest(task.as_bytes());
        let key = format!("{CLAUDE_CODE_KIND}:{}:{:x}", context.turn_id, digest);
        let new = NewJob {
            kind: CLAUDE_CODE_KIND.into(),
            payload: serde_json::json!({
                "task": task, "workspace": workspace.name, "fresh_session": input.fresh_session,
                "task_kind": input.task_kind.as_deref().map(str::trim).filter(|kind| !kind.is_empty()),
            }),
            priority: 0,
            run_at_ms: None,
            max_attempts: CLAUDE_CODE_MAX_ATTEMPTS,
            conversation_id: Some(context.conversation_id.clone()),
            idempotency_key: Some(key),
        };
        let error = |error: crate::storage::StorageError| {
            ToolError::RespondToModel(format!("the code task could not be queued: {error}"))
        };
        let id = context.store.enqueue_job(new, wall_clock_ms()).await.map_err(error)?.job.id;
        let ahead = runs_ahead(context, id).await.map_err(error)?;
        let position = match ahead {
            0 => "It starts as soon as a worker is free.".to_owned(),
            n => format!("{n} code run(s) are ahead of it in the queue."),
        };
        Ok(format!(
            "Queued as job #{id} in workspace {:?}. {position} Tell the user you are on it (job #{id}); \
             progress and the result will be posted to this conversation. `job_status` shows its state.",
            workspace.name
        ))
    }
}

/// Claude Code runs queued or running before job `id`.
async fn runs_ahead(context: &ToolContext, id: i64) -> crate::storage::StorageResult<usize> {
    let mut ahead = 0;
    for status in [JobStatus::Queued, JobStatus::Running] {
        let filter = JobFilter { status: Some(status), conversation_id: None, limit: 500 };
        let jobs = context.store.list_jobs(&filter).await?;
        ahead += jobs.iter().filter(|job| job.kind == CLAUDE_CODE_KIND && job.id < id).count();
    }
    Ok(ahead)
}
