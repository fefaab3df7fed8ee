//! `project_context` (read-only): what the chat's workspace is about — the
//! start of its README and CLAUDE.md, the recent `git log` and `git status
//! --short` — so the model can talk about the project or write a good
//! `delegate_code_task` instruction.
//!
//! Invariants: the workspace comes from `Workspaces::for_conversation` and
//! every file through the workspace's path check (both audit-logged); git
//! runs read-only (`workspace::child::read_only_git`: argv only, the clean
//! child environment, nothing in the repository can start a program), in
//! the checked root, time-limited.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolContext, ToolError, TypedTool};
use crate::config::ChildEnv;
use crate::workspace::child::read_only_git;
use crate::workspace::{Workspace, Workspaces, resolve_audited};

/// Bytes read from the start of each project file.
const FILE_BYTES: u64 = 4 * 1024;
/// Commits shown.
const LOG_COMMITS: &str = "10";
/// Lines of `git status --short` shown.
const STATUS_LINES: usize = 40;
const GIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectContextInput {
    /// The workspace name. Needed outside Telegram chats; a Telegram chat always uses its own workspace.
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProjectContext {
    workspaces: Workspaces,
    child_env: ChildEnv,
}

impl ProjectContext {
    pub fn new(workspaces: Workspaces, child_env: ChildEnv) -> Self {
        Self { workspaces, child_env }
    }

    async fn git(&self, workspace: &Workspace, args: &[&str]) -> String {
        read_only_git(workspace.root(), &self.child_env, args, GIT_TIMEOUT)
            .await
            .unwrap_or_else(|why| format!("({why})"))
    }
}

#[async_trait::async_trait]
impl TypedTool for ProjectContext {
    type Input = ProjectContextInput;
    const NAME: &'static str = "project_context";
    const DESCRIPTION: &'static str = "Describe this chat's project workspace: the start of README and CLAUDE.md, \
        the recent git log and the uncommitted changes (git status). Read-only.";

    async fn run(&self, context: &ToolContext, input: ProjectContextInput) -> Result<String, ToolError> {
        let workspace = workspace_for(&self.workspaces, context, input.workspace.as_deref()).await?;
        let mut out = format!("Workspace {:?}\n", workspace.name);
        for file in ["README.md", "CLAUDE.md"] {
            match read_start(context, &workspace, file).await {
                Some(text) => out.push_str(&format!("\n## {file} (start)\n{}\n", text.trim_end())),
                None => out.push_str(&format!("\n## {file}\n(none)\n")),
            }
        }
        let log = self.git(&workspace, &["log", "--oneline", "--no-decorate", "-n", LOG_COMMITS]).await;
        out.push_str(&format!("\n## git log (newest first)\n{}\n", log.trim_end()));
        let status = self.git(&workspace, &["status", "--short", "--ignore-submodules=all"]).await;
        let mut lines: Vec<&str> = status.lines().take(STATUS_LINES + 1).collect();
        if lines.len() > STATUS_LINES {
            lines.truncate(STATUS_LINES);
            lines.push("…");
        }
        let status = if lines.is_empty() { "(clean)".to_owned() } else { lines.join("\n") };
        out.push_str(&format!("\n## git status --short\n{status}\n"));
        Ok(out)
    }
}

/// The conversation's workspace, or the clear reason there is none (for the model to relay).
pub(crate) async fn workspace_for(
    workspaces: &Workspaces,
    context: &ToolContext,
    requested: Option<&str>,
) -> Result<Workspace, ToolError> {
    let conversation = context
        .store
        .get_conversation(&context.conversation_id)
        .await
        .map_err(|error| ToolError::RespondToModel(format!("the conversation could not be read: {error}")))?;
    workspaces
        .for_conversation(&context.store, &conversation, requested, &context.requester())
        .await
        .map_err(|error| ToolError::RespondToModel(error.to_string()))
}

/// The first [`FILE_BYTES`] of a workspace file, if it exists and passes the path check.
async fn read_start(context: &ToolContext, workspace: &Workspace, name: &str) -> Option<String> {
    // Audited by path, then opened once and read through what was opened (no check-then-use).
    resolve_audited(&context.store, &context.conversation_id, workspace, name).await.ok()?;
    let (workspace, name) = (workspace.clone(), name.to_owned());
    let bytes = tokio::task::spawn_blocking(move || workspace.open_file(&name).ok()?.read_start(FILE_BYTES).ok())
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
