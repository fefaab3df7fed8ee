//! `gemini_cli` jobs: one delegated Gemini CLI run in the conversation's
//! workspace — background/batch work the router sent to Gemini (queued by
//! the `delegate_code_task` tool). Progress and the result are reported the
//! same way as a Claude Code run (`claude_code::report_progress`, `finish`);
//! there is no session to resume.
//!
//! Payload: `{"task", "workspace", "requester", "route"}` (the route's model
//! is passed with `-m`). The workspace and the requester's access are
//! checked again at run time. A cancel or valor's shutdown kills the run's
//! process group.

use tokio::sync::mpsc;

use super::claude_code::{CodeRun, RunEnding, finish, open_run, prepare_branch, report_progress, retry};
use super::handler::{JobContext, JobError, JobHandler};
use crate::agent::streaming::StreamPolicy;
use crate::workspace::gemini::{GeminiRunConfig, run_gemini};
use crate::workspace::router::{Executor, Route};
use crate::workspace::runs::RunBranches;
use crate::workspace::{GEMINI_CLI_KIND, Workspaces};

#[derive(Debug, Clone)]
pub struct GeminiCliHandler {
    workspaces: Workspaces,
    branches: RunBranches,
    config: GeminiRunConfig,
    /// The model when a payload carries no route (`[gemini] models.small`).
    default_model: String,
    policy: StreamPolicy,
}

impl GeminiCliHandler {
    pub fn new(
        workspaces: Workspaces,
        branches: RunBranches,
        config: GeminiRunConfig,
        default_model: String,
        policy: StreamPolicy,
    ) -> Self {
        Self { workspaces, branches, config, default_model, policy }
    }
}

#[async_trait::async_trait]
impl JobHandler for GeminiCliHandler {
    fn kind(&self) -> &'static str {
        GEMINI_CLI_KIND
    }

    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let CodeRun { task, name, conversation_id, workspace, .. } =
            open_run(&self.workspaces, context, &payload).await?;
        let store = context.store();
        let run_branch = prepare_branch(&self.branches, &self.workspaces, context, &workspace, &task).await?;
        let workspace = run_branch.as_ref().map_or(workspace, |run| run.workspace.clone());
        let model = Route::from_payload(&payload).map_or_else(|| self.default_model.clone(), |route| route.model);
        let start = format!("Gemini CLI ({model}) is starting in workspace {name:?}");
        context.notify_progress(0, &start, None).await.map_err(retry)?;
        let (sender, receiver) = mpsc::channel(256);
        let run = run_gemini(&self.config, &workspace, &model, &task, &context.cancel, sender);
        let progress = report_progress(context, &workspace, self.policy, receiver, Executor::GeminiCli);
        let (outcome, ()) = tokio::join!(run, progress);
        let ending = RunEnding { store, conversation_id: &conversation_id, workspace: &workspace, job: context.job.id };
        let branch = run_branch.as_ref().map(|run| (&self.branches, run));
        finish(ending, branch, outcome, Executor::GeminiCli).await
    }
}
