//! `claude_code` jobs: one delegated Claude Code run in the conversation's
//! workspace (queued by the `delegate_code_task` tool). Progress (tool uses,
//! files touched) is stored on every event and shown in the run's one live
//! status message (`status.rs`) at the pace of the streaming policy; the result — summary, files changed,
//! cost, turns, session id — is the job's result, which the worker posts as
//! the final notice. The session id is stored per (conversation, workspace)
//! so the next run in the chat continues it (`--resume`).
//!
//! Each run gets its MCP servers (`workspace::mcp_config`: valor's own
//! `/mcp-run` with a token for this run, plus the `[[mcp_server]]` library
//! servers that fit `task_kind`), named in the first progress line and in the
//! result (`mcp_servers`, and `mcp_status` as the CLI reported it); the
//! config file and the token end with the run.
//!
//! Payload: `{"task", "workspace", "fresh_session", "requester", "route", "task_kind"}`;
//! the route's model (the router's tier choice) is passed as `ANTHROPIC_MODEL`. The workspace is looked
//! up again at run time (config may have changed since it was queued). A
//! cancel or valor's shutdown kills the run's process group; the worker then
//! records "cancelled" or hands the job back so it runs again after a restart.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::handler::{JobContext, JobError, JobHandler};
use super::status::{Phase, RunStatus};
use crate::agent::streaming::{ContentKind, StreamPolicy, StreamingOptimizer};
use crate::storage::StorageError;
use crate::workspace::claude::{ClaudeRunConfig, RunError, run_claude};
use crate::workspace::mcp_config::RunMcpSetup;
use crate::workspace::router::{Executor, Route};
use crate::workspace::runs::{PreparedRun, RunBranchError, RunBranches, RunEnd};
use crate::workspace::stream_json::{ClaudeEvent, RunSummary, progress_line};
use crate::workspace::{CLAUDE_CODE_KIND, Requester, Workspace, Workspaces};

#[derive(Debug, Clone)]
pub struct ClaudeCodeHandler {
    workspaces: Workspaces,
    branches: RunBranches,
    config: ClaudeRunConfig,
    policy: StreamPolicy,
    mcp: RunMcpSetup,
}

impl ClaudeCodeHandler {
    pub fn new(
        workspaces: Workspaces,
        branches: RunBranches,
        config: ClaudeRunConfig,
        policy: StreamPolicy,
        mcp: RunMcpSetup,
    ) -> Self {
        Self { workspaces, branches, config, policy, mcp }
    }
}

#[async_trait::async_trait]
impl JobHandler for ClaudeCodeHandler {
    fn kind(&self) -> &'static str {
        CLAUDE_CODE_KIND
    }

    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let CodeRun { task, name, conversation_id, workspace, requester } =
            open_run(&self.workspaces, context, &payload).await?;
        let store = context.store();
        let run_branch = prepare_branch(&self.branches, &self.workspaces, context, &workspace, &task).await?;
        // A new branch is a new worktree: a session of another directory cannot be resumed there.
        let fresh = payload.get("fresh_session").and_then(serde_json::Value::as_bool).unwrap_or(false)
            || run_branch.as_ref().is_some_and(|run| run.new_branch);
        let resume = if fresh { None } else { store.claude_session(&conversation_id, &name).await.map_err(retry)? };
        let workspace = run_branch.as_ref().map_or(workspace, |run| run.workspace.clone());
        // This run's MCP servers (the library's that fit, plus valor's own); the file and token end with `prepared`.
        let prepared = self
            .mcp
            .prepare(context.job.id, &conversation_id, &workspace, &requester, &task, payload["task_kind"].as_str())
            .map_err(JobError::Retry)?;
        let servers = prepared.describe();
        tracing::info!(job = context.job.id, "Claude Code MCP servers: {servers}");
        let mut config = prepared.run_config(&self.config);
        let on = run_branch.as_ref().map_or_else(String::new, |run| format!(" on branch `{}`", run.branch.branch));
        let start = match &resume {
            Some(_) => format!("Claude Code is continuing the previous session in workspace {name:?}{on}"),
            None => format!("Claude Code is starting in workspace {name:?}{on}"),
        };
        context.notify_progress(0, &format!("{start} · MCP servers: {servers}"), None).await.map_err(retry)?;
        if let Some(route) = Route::from_payload(&payload) {
            config.env.insert("ANTHROPIC_MODEL".into(), route.model);
        }
        let config = &config;
        let mut outcome = self.run_once(config, context, &workspace, &task, resume.as_deref()).await;
        if resume.is_some() && could_not_resume(&outcome) {
            // A session the CLI no longer knows: forget it and start a new one, once.
            store.clear_claude_session(&conversation_id, &name).await.map_err(retry)?;
            let text = "the previous Claude Code session could not be resumed; starting a new one";
            context.notify_progress(RESTART_STEPS, text, None).await.map_err(retry)?;
            outcome = self.run_once(config, context, &workspace, &task, None).await;
        }
        let ending = RunEnding { store, conversation_id: &conversation_id, workspace: &workspace, job: context.job.id };
        let branch = run_branch.as_ref().map(|run| (&self.branches, run));
        let mut result = finish(ending, branch, outcome, Executor::ClaudeCode).await?;
        result["mcp_servers"] = json!(prepared.choices);
        Ok(result)
    }
}

/// What every code run starts from (Claude Code or Gemini CLI).
pub(super) struct CodeRun {
    pub task: String,
    /// The workspace's name.
    pub name: String,
    pub conversation_id: String,
    pub workspace: Workspace,
    /// Who asked (stored in the payload); the run's tools act with their permissions.
    pub requester: Requester,
}

/// Read the payload and check the workspace again for the stored requester (config may have changed).
pub(super) async fn open_run(
    workspaces: &Workspaces,
    context: &JobContext,
    payload: &serde_json::Value,
) -> Result<CodeRun, JobError> {
    let text = |key: &str| payload.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let (Some(task), Some(name)) = (text("task"), text("workspace")) else {
        return Err(JobError::Fail("the payload needs `task` and `workspace`".into()));
    };
    let Some(conversation_id) = context.job.conversation_id.clone() else {
        return Err(JobError::Fail("a code run needs the conversation it was asked in".into()));
    };
    let store = context.store();
    let conversation = store.get_conversation(&conversation_id).await.map_err(retry)?;
    let requester = Requester::from_payload(payload);
    let workspace = workspaces
        .for_conversation(store, &conversation, Some(&name), &requester)
        .await
        .map_err(|error| JobError::Fail(error.to_string()))?;
    Ok(CodeRun { task, name, conversation_id, workspace, requester })
}

/// The step of the note saying a fresh run replaces a session that could not be resumed.
const RESTART_STEPS: u32 = 10_000;

impl ClaudeCodeHandler {
    async fn run_once(
        &self,
        config: &ClaudeRunConfig,
        context: &JobContext,
        workspace: &Workspace,
        task: &str,
        resume: Option<&str>,
    ) -> Result<RunSummary, RunError> {
        let (sender, receiver) = mpsc::channel(256);
        let run = run_claude(config, workspace, task, resume, &context.cancel, sender);
        let progress = report_progress(context, workspace, self.policy, receiver, Executor::ClaudeCode);
        let (outcome, ()) = tokio::join!(run, progress);
        outcome
    }
}

/// The CLI refused the session before starting (no `init`, an error result).
fn could_not_resume(outcome: &Result<RunSummary, RunError>) -> bool {
    matches!(outcome, Ok(summary) if !summary.initialized && summary.result.as_ref().is_some_and(|(error, _)| *error))
}

pub(super) fn retry(error: StorageError) -> JobError {
    JobError::Retry(error.to_string())
}

/// Store every progress line (`jobs.progress`) and keep the job's status
/// message up to date (phase, current tool, files touched), shown when the
/// streaming policy says so; when the run's output ends it shows "finishing".
/// (Shared by the executors: their events are parsed into the same shape.)
pub(super) async fn report_progress(
    context: &JobContext,
    workspace: &Workspace,
    policy: StreamPolicy,
    mut receiver: mpsc::Receiver<ClaudeEvent>,
    executor: Executor,
) {
    let mut optimizer = StreamingOptimizer::new(policy);
    // The start line was just shown: the next update waits its interval.
    optimizer.pushed(Instant::now(), Duration::ZERO);
    let mut summary = RunSummary::default();
    let mut status = match context.status().await {
        Ok(status) => status,
        Err(error) => {
            tracing::warn!(job = context.job.id, "the run's status could not be read: {error}");
            RunStatus::default()
        }
    };
    let mut changed = false;
    let mut spawned: Option<i64> = None;
    loop {
        let due = changed.then(|| optimizer.next_push(Instant::now(), 0, ContentKind::Progress)).flatten();
        let wait = due.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            event = receiver.recv() => {
                let Some(event) = event else {
                    // The run is over and its process group is gone: forget the pid.
                    if let Some(pid) = spawned
                        && let Err(error) = context.store.remove_child_process(pid).await
                    {
                        tracing::warn!(job = context.job.id, "could not forget child process {pid}: {error}");
                    }
                    status.phase = Phase::Finishing;
                    status.tool = None;
                    show(context, &status).await;
                    return;
                };
                if let ClaudeEvent::Spawned { pid } = event {
                    spawned = record_child(context, pid, executor).await.or(spawned);
                    continue;
                }
                summary.apply(&event);
                let root = format!("{}/", workspace.root().display());
                if let Some(line) = progress_line(executor.label(), &event, &summary) {
                    let _ = context.report_progress(&line.replace(&root, ""), None).await;
                    if matches!(event, ClaudeEvent::ApiRetry { .. }) {
                        status.note = Some(line);
                    }
                }
                changed |= follow(&mut status, &event, &summary, workspace, &root);
            }
            () = tokio::time::sleep(wait), if changed => {
                let started = Instant::now();
                show(context, &status).await;
                optimizer.pushed(started, started.elapsed());
                changed = false;
            }
        }
    }
}

/// Apply a run event to the status; whether it changed what the message shows.
fn follow(
    status: &mut RunStatus,
    event: &ClaudeEvent,
    summary: &RunSummary,
    workspace: &Workspace,
    root: &str,
) -> bool {
    match event {
        ClaudeEvent::Init { .. } => status.phase = Phase::Working,
        ClaudeEvent::ToolUse { name, detail, .. } => {
            status.phase = Phase::Working;
            status.tool = Some(match detail {
                Some(detail) => format!("{name}: {}", detail.replace(root, "")),
                None => name.clone(),
            });
            let files: Vec<String> =
                summary.files_touched.iter().map(|file| workspace.display_relative(file)).collect();
            status.set_files(files.iter().map(String::as_str));
        }
        ClaudeEvent::ApiRetry { .. } => {}
        ClaudeEvent::Result { .. } => status.phase = Phase::Finishing,
        ClaudeEvent::Text(_) | ClaudeEvent::TextDelta(_) | ClaudeEvent::Spawned { .. } => return false,
    }
    true
}

async fn show(context: &JobContext, status: &RunStatus) {
    if let Err(error) = context.show_status(status).await {
        tracing::warn!(job = context.job.id, "the run's status was not shown: {error}");
    }
}

/// Record the CLI's process (the daydream's cleanup reads it); its pid once recorded.
async fn record_child(context: &JobContext, pid: u32, executor: Executor) -> Option<i64> {
    let pid = i64::from(pid);
    let program = match executor {
        Executor::ClaudeCode => "claude",
        Executor::GeminiCli => "gemini",
    };
    let command = format!("{program} (job #{})", context.job.id);
    let record = crate::workspace::orphans::child_record(pid, command, context.clock.now_ms());
    match context.store.register_child_process(&record).await {
        Ok(()) => Some(pid),
        Err(error) => {
            tracing::warn!(job = context.job.id, "could not record child process {pid}: {error}");
            None
        }
    }
}

/// Where a run ends: what `finish` records it in.
pub(super) struct RunEnding<'a> {
    pub store: &'a crate::storage::Store,
    pub conversation_id: &'a str,
    /// Where the run worked (its worktree when it has a branch).
    pub workspace: &'a Workspace,
    pub job: i64,
}

/// The run's branch, or `None` when the workspace is not a git repository (the run works in place).
pub(super) async fn prepare_branch(
    branches: &RunBranches,
    workspaces: &Workspaces,
    context: &JobContext,
    workspace: &Workspace,
    task: &str,
) -> Result<Option<PreparedRun>, JobError> {
    let Some(conversation_id) = context.job.conversation_id.as_deref() else { return Ok(None) };
    match branches.prepare(context.store(), workspaces, workspace, conversation_id, context.job.id, task).await {
        Ok(prepared) => Ok(prepared),
        Err(RunBranchError::Storage(error)) => Err(retry(error)),
        Err(error) => Err(JobError::Fail(format!("the run's branch could not be prepared: {error}"))),
    }
}

/// Turn the run's outcome into the job's result: commit what it changed on
/// its branch (also when it failed or was cancelled) and remember a Claude
/// Code session.
pub(super) async fn finish(
    ending: RunEnding<'_>,
    branch: Option<(&RunBranches, &PreparedRun)>,
    outcome: Result<RunSummary, RunError>,
    executor: Executor,
) -> Result<serde_json::Value, JobError> {
    let RunEnding { store, conversation_id, workspace, job } = ending;
    let summary = match &outcome {
        Ok(summary) => Some(summary),
        Err(RunError::Cancelled(summary) | RunError::TimedOut { summary, .. } | RunError::NoResult { summary, .. }) => {
            Some(summary)
        }
        Err(RunError::Spawn { .. }) => None,
    };
    if let (Executor::ClaudeCode, Some(session)) = (executor, summary.and_then(|summary| summary.session_id.as_deref()))
    {
        store.set_claude_session(conversation_id, &workspace.name, session).await.map_err(retry)?;
    }
    let reported = summary.and_then(|summary| summary.result.clone());
    let end = match (&outcome, &reported) {
        (Err(RunError::Cancelled(_)), _) => RunEnd::Cancelled,
        (Ok(_), Some((false, _))) => RunEnd::Finished,
        _ => RunEnd::Failed,
    };
    let text = reported.as_ref().map_or("", |(_, text)| text.as_str());
    let concluded = match branch {
        Some((branches, run)) => match branches.conclude(store, run, job, end, text).await {
            Ok(concluded) => Some(concluded),
            Err(error) => return Err(JobError::Fail(format!("the run's changes could not be committed: {error}"))),
        },
        None => None,
    };
    let kept = concluded.as_ref().filter(|done| !done.diff_stat.is_empty()).map_or_else(String::new, |done| {
        format!(" Its work so far is committed on branch `{}` ({}).", done.branch, done.commit)
    });
    let summary = match outcome {
        Ok(summary) => summary,
        Err(RunError::Cancelled(_)) => return Err(JobError::Cancelled),
        Err(error) => return Err(JobError::Fail(format!("{error}{kept}"))),
    };
    let (is_error, text) = summary.result.clone().unwrap_or((true, String::new()));
    if is_error {
        return Err(JobError::Fail(format!("{} reported an error: {text}{kept}", executor.label())));
    }
    let files: Vec<String> = match &concluded {
        Some(done) => done.files.clone(),
        None => summary.files_touched.iter().map(|file| workspace.display_relative(file)).collect(),
    };
    let files_line = if files.is_empty() { "none".to_owned() } else { files.join(", ") };
    let session = summary.session_id.as_deref().unwrap_or("?");
    let stats = match executor {
        Executor::ClaudeCode => format!("Turns: {} · cost ${:.4} · session {session}", summary.turns, summary.cost_usd),
        Executor::GeminiCli => format!("Gemini CLI · {} tool call(s) · session {session}", summary.tool_uses),
    };
    let git_line = match &concluded {
        Some(done) if done.diff_stat.is_empty() => format!("\nBranch `{}`: nothing new to commit.", done.branch),
        Some(done) => format!("\nBranch `{}` · commit {} · {}", done.branch, done.commit, done.diff_stat),
        None => "\nNot a git repository: nothing was committed.".to_owned(),
    };
    let reply = format!("{}\n\nFiles changed: {files_line}{git_line}\n{stats}", text.trim());
    let mut result = json!({
        "reply": reply,
        "summary": text,
        "files_changed": files,
        "cost_usd": summary.cost_usd,
        "turns": summary.turns,
        "session_id": summary.session_id,
        "workspace": workspace.name,
        "executor": executor,
        "mcp_status": summary.mcp_status,
    });
    if let (Some(done), Some((_, run))) = (&concluded, branch) {
        result["branch"] = json!(done.branch);
        result["base_branch"] = json!(done.base_branch);
        result["commit"] = json!(done.commit);
        result["diff_stat"] = json!(done.diff_stat);
        result["run_branch"] = json!(run.branch.id);
    }
    Ok(result)
}
