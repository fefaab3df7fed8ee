//! `delegate_code_task`: queue real code work in the chat's workspace and
//! answer at once with the job id and its place in the queue; progress and
//! the final summary arrive in this conversation as notices. The router
//! (`workspace::router`) picks executor and model tier: interactive work is a
//! `claude_code` job (a follow-up continues the chat's previous Claude Code
//! session unless the model asks for a fresh one); background work is a
//! `gemini_cli` job when the Gemini CLI is enabled. The route and its reason
//! are stored in the job's payload.
//!
//! When the run has to wait behind the concurrency limit of its kind, the
//! answer says "queued, position N" (the jobs API, `job_status` and `/jobs`
//! show the same place in line while it waits).
//!
//! Invariants: the workspace is checked (and audit-logged) before anything
//! is queued — including its `allowed_users` against the message's sender,
//! who is stored in the payload so the run is checked again when it starts —
//! so a chat without a workspace or a member without access gets a clear
//! answer; the job reaches the queue through the Store only (the agent never
//! imports `jobs`).

use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::project_context::workspace_for;
use super::{ToolContext, ToolError, TypedTool};
use crate::storage::{NewJob, wall_clock_ms};
use crate::workspace::Workspaces;
use crate::workspace::router::{Effort, Router, TaskTraits};

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
    /// True for batch or maintenance work nobody is waiting for (dependency bumps, lint or TODO
    /// sweeps, scheduled clean-ups); it may go to a cheaper background executor.
    #[serde(default)]
    pub background: bool,
    /// How hard the task is: quick (small, well-defined), normal, or deep (hard debugging, wide changes).
    #[serde(default)]
    pub effort: Option<Effort>,
    /// What kind of work this is (e.g. "github", "payments"): picks the MCP servers from the library that serve it.
    #[serde(default)]
    pub task_kind: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DelegateCodeTask {
    workspaces: Workspaces,
    router: Router,
    /// Most runs at once per job kind (`[jobs.concurrency]`); a kind not listed is unlimited.
    concurrency: std::collections::BTreeMap<String, u32>,
}

impl DelegateCodeTask {
    pub fn new(workspaces: Workspaces, router: Router, concurrency: std::collections::BTreeMap<String, u32>) -> Self {
        Self { workspaces, router, concurrency }
    }
}

#[async_trait::async_trait]
impl TypedTool for DelegateCodeTask {
    type Input = DelegateCodeTaskInput;
    const NAME: &'static str = "delegate_code_task";
    const DESCRIPTION: &'static str = "Hand code work (fix, change, investigate a project) to a coding agent \
        (Claude Code; background maintenance may go to the Gemini CLI), which runs in this chat's project \
        workspace in the background. Returns the job id at once; progress and a \
        final summary (files changed, cost) are posted to this conversation. Follow-ups continue the same \
        Claude Code session.";
    const SIDE_EFFECTS: bool = true;

    /// A short Claude Code run (admins only by default: it has side effects).
    fn cost_microusd(&self) -> u64 {
        250_000
    }

    async fn run(&self, context: &ToolContext, input: DelegateCodeTaskInput) -> Result<String, ToolError> {
        let task = input.task.trim();
        if task.is_empty() {
            return Err(ToolError::RespondToModel("task must not be empty".into()));
        }
        let workspace = workspace_for(&self.workspaces, context, input.workspace.as_deref()).await?;
        let route = self.router.route(TaskTraits { background: input.background, effort: input.effort });
        let kind = route.executor.job_kind();
        let digest = Sha256::digest(task.as_bytes());
        let key = format!("{kind}:{}:{:x}", context.turn_id, digest);
        let new = NewJob {
            kind: kind.into(),
            payload: serde_json::json!({
                "task": task, "workspace": workspace.name, "fresh_session": input.fresh_session,
                "requester": context.requester(), "route": route,
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
        let job = context.store.enqueue_job(new, wall_clock_ms()).await.map_err(error)?.job;
        let id = job.id;
        let position = context.store.queue_position(&job).await.map_err(error)?;
        let running = context.store.running_jobs_of_kind(&job.kind).await.map_err(error)?;
        // It waits when the runs already going plus those ahead of it fill every slot of its kind.
        let limit = self.concurrency.get(kind).map(|limit| i64::from(*limit));
        let position = match position {
            Some(n) if limit.is_none_or(|limit| running + n <= limit) => {
                "It starts as soon as a worker is free.".to_owned()
            }
            Some(n) => format!(
                "All code-run slots are busy ({running} running): it is queued, position {n}. Tell the user \
                 it is queued at position {n}."
            ),
            None => format!("It is already {}.", job.status.as_str()),
        };
        Ok(format!(
            "Queued as job #{id} in workspace {:?} for {} ({}). {position} Tell the user you are on it \
             (job #{id}); progress and the result will be posted to this conversation. `job_status` shows \
             its state.",
            workspace.name,
            route.executor.label(),
            route.reason
        ))
    }
}
