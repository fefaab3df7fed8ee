//! `/api/jobs…`: list and inspect background jobs, cancel one, retry one.
//! Unknown ids answer 404; cancelling a finished job or retrying one that did
//! not fail answers 409 with the reason. A code run's job carries its typed
//! [`CodeRunView`] (workspace, summary, files changed, branch, commit, cost),
//! read from the run's result, so clients need not know the result's shape.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::HttpState;
use super::error::ApiError;
use crate::storage::{CancelOutcome, Job, JobFilter, JobStatus, RetryOutcome, wall_clock_ms};
use crate::workspace::{CLAUDE_CODE_KIND, GEMINI_CLI_KIND};

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    /// queued | running | succeeded | failed | cancelled
    pub status: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub priority: i64,
    pub run_at_ms: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Manual retries so far.
    pub retries: i64,
    pub cancel_requested: bool,
    pub progress_text: Option<String>,
    pub progress_percent: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub conversation_id: Option<String>,
    pub worker_id: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// A queued job's place in line among queued jobs of its kind (1 = next); null otherwise.
    pub queue_position: Option<i64>,
    /// Claude Code and Gemini CLI jobs: what the run did (fields fill in as it finishes); null for other kinds.
    pub code_run: Option<CodeRunView>,
}

/// A code run as the job's result records it; every field is null (or empty)
/// until the run has reported it.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct CodeRunView {
    /// The workspace the run works in.
    pub workspace: Option<String>,
    /// claude_code | gemini_cli
    pub executor: String,
    /// The run's own closing summary.
    pub summary: Option<String>,
    /// Files the run changed, relative to the workspace; while it runs, the
    /// files it touched so far (the first 20, from its live status).
    pub files_changed: Vec<String>,
    /// While it runs: the tool in use now, with its detail ("Edit: src/a.rs").
    pub tool: Option<String>,
    /// The run's branch (git workspaces), its base and its last commit.
    pub branch: Option<String>,
    pub base_branch: Option<String>,
    pub commit: Option<String>,
    /// `git diff --stat`'s last line, e.g. "2 files changed, 3 insertions(+)"; empty: nothing to commit.
    pub diff_stat: Option<String>,
    /// What the run cost, in US dollars (Claude Code reports it; 0 when unknown).
    pub cost_usd: Option<f64>,
    /// Model turns the run took.
    pub turns: Option<u64>,
}

impl CodeRunView {
    /// The code run of `job`, if it is one.
    fn of(job: &Job) -> Option<Self> {
        if job.kind != CLAUDE_CODE_KIND && job.kind != GEMINI_CLI_KIND {
            return None;
        }
        let result = job.result.as_ref().filter(|value| value.is_object());
        let text = |key: &str| result.and_then(|r| r.get(key)).and_then(serde_json::Value::as_str).map(str::to_owned);
        let diff_stat = text("diff_stat")
            .map(|stat| stat.lines().map(str::trim).rfind(|line| !line.is_empty()).unwrap_or("").to_owned());
        Some(Self {
            workspace: text("workspace")
                .or_else(|| job.payload.get("workspace").and_then(serde_json::Value::as_str).map(str::to_owned)),
            executor: job.kind.clone(),
            summary: text("summary").map(|summary| summary.trim().to_owned()).filter(|summary| !summary.is_empty()),
            files_changed: result
                .and_then(|r| r.get("files_changed"))
                .and_then(serde_json::Value::as_array)
                .map(|files| files.iter().filter_map(serde_json::Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            tool: None,
            branch: text("branch"),
            base_branch: text("base_branch"),
            commit: text("commit"),
            diff_stat,
            cost_usd: result.and_then(|r| r.get("cost_usd")).and_then(serde_json::Value::as_f64),
            turns: result.and_then(|r| r.get("turns")).and_then(serde_json::Value::as_u64),
        })
    }
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let code_run = CodeRunView::of(&job);
        Self {
            id: job.id,
            kind: job.kind,
            status: job.status.as_str().to_owned(),
            payload: job.payload,
            priority: job.priority,
            run_at_ms: job.run_at_ms,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            retries: job.retries,
            cancel_requested: job.cancel_requested,
            progress_text: job.progress_text,
            progress_percent: job.progress_percent,
            result: job.result,
            error: job.error,
            conversation_id: job.conversation_id,
            worker_id: job.worker_id,
            lease_until_ms: job.lease_until_ms,
            created_at_ms: job.created_at_ms,
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            queue_position: None,
            code_run,
        }
    }
}

/// The view with the job's place in line filled in.
async fn view(store: &crate::storage::Store, job: Job) -> Result<JobView, ApiError> {
    let queue_position = store.queue_position(&job).await?;
    Ok(JobView { queue_position, ..JobView::from(job) })
}

/// A running code run's files so far and current tool, from its live status message's state.
async fn with_live_status(store: &crate::storage::Store, mut view: JobView) -> Result<JobView, ApiError> {
    let Some(run) = view.code_run.as_mut().filter(|_| view.status == JobStatus::Running.as_str()) else {
        return Ok(view);
    };
    // The state is `jobs::status::RunStatus` as JSON (http sits below jobs, so it is read by its field names).
    let Some((state, _)) = store.job_status_state(view.id, view.retries).await? else { return Ok(view) };
    if run.files_changed.is_empty() {
        let files = state.get("files").and_then(serde_json::Value::as_array).into_iter().flatten();
        run.files_changed = files.filter_map(serde_json::Value::as_str).map(str::to_owned).collect();
    }
    run.tool = state.get("tool").and_then(serde_json::Value::as_str).map(str::to_owned);
    Ok(view)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs with this status.
    pub status: Option<String>,
    /// Only jobs of this conversation.
    pub conversation: Option<String>,
    /// At most this many (1–500, default 50).
    pub limit: Option<u32>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = JobList), (status = 400, description = "Unknown status"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn list_jobs(
    State(state): State<HttpState>,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(query) = query?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(JobStatus::parse(text).map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown status {text:?}; use queued, running, succeeded, failed or cancelled"
            ))
        })?),
    };
    let filter =
        JobFilter { status, conversation_id: query.conversation, limit: query.limit.unwrap_or(50).clamp(1, 500) };
    let store = state.agent.store();
    let mut views = Vec::new();
    for job in store.list_jobs(&filter).await? {
        views.push(view(store, job).await?);
    }
    Ok(Json(JobList { jobs: views }))
}

/// One job with everything the details view shows; a code run's job also has `code_run` (while it runs: files so far, current tool).
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "No such job"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn get_job(
    State(state): State<HttpState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let Path(id) = id?;
    let store = state.agent.store();
    Ok(Json(with_live_status(store, view(store, store.get_job(id).await?).await?).await?))
}

/// A queued job is cancelled at once; a running job's worker is asked to stop
/// (`cancel_requested` is true until it has).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "No such job"),
              (status = 409, description = "The job already finished"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn cancel_job(
    State(state): State<HttpState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let Path(id) = id?;
    match state.agent.store().request_job_cancel(id, wall_clock_ms()).await? {
        CancelOutcome::Cancelled(job) | CancelOutcome::Requested(job) => Ok(Json(job.into())),
        CancelOutcome::AlreadyFinished(job) => Err(ApiError::Conflict(format!(
            "job {id} already {}; only queued or running jobs can be cancelled",
            job.status.as_str()
        ))),
    }
}

/// Queue a failed or cancelled job again with fresh attempts.
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "No such job"),
              (status = 409, description = "The job is queued, running or succeeded"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn retry_job(
    State(state): State<HttpState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let Path(id) = id?;
    match state.agent.store().retry_job(id, wall_clock_ms()).await? {
        RetryOutcome::Requeued(job) => Ok(Json(view(state.agent.store(), job).await?)),
        RetryOutcome::NotRetryable(job) => Err(ApiError::Conflict(format!(
            "job {id} is {}; only failed or cancelled jobs can be retried",
            job.status.as_str()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(kind: &str, result: Option<serde_json::Value>) -> Job {
        Job {
            id: 7,
            kind: kind.into(),
            payload: json!({"task": "Add a greeting", "workspace": "shop"}),
            priority: 0,
            status: JobStatus::Succeeded,
            run_at_ms: 0,
            attempts: 1,
            max_attempts: 2,
            retries: 0,
            worker_id: None,
            lease_until_ms: None,
            cancel_requested: false,
            progress_text: None,
            progress_percent: Some(100),
            result,
            error: None,
            conversation_id: None,
            idempotency_key: None,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_code_runs_result_becomes_typed_fields() {
        let result = json!({"summary": " Added hello.txt. ", "files_changed": ["hello.txt", 3, "src/a.rs"],
            "cost_usd": 0.0123, "turns": 3, "workspace": "shop", "branch": "valor/7-add", "base_branch": "main",
            "commit": "0123abc", "diff_stat": " hello.txt | 1 +\n 1 file changed, 1 insertion(+)\n"});
        let view = CodeRunView::of(&job(CLAUDE_CODE_KIND, Some(result))).unwrap();
        assert_eq!(
            view,
            CodeRunView {
                workspace: Some("shop".into()),
                executor: "claude_code".into(),
                summary: Some("Added hello.txt.".into()),
                files_changed: vec!["hello.txt".into(), "src/a.rs".into()],
                tool: None,
                branch: Some("valor/7-add".into()),
                base_branch: Some("main".into()),
                commit: Some("0123abc".into()),
                diff_stat: Some("1 file changed, 1 insertion(+)".into()),
                cost_usd: Some(0.0123),
                turns: Some(3),
            }
        );
    }

    #[test]
    fn a_run_without_a_result_names_its_workspace_and_other_kinds_have_none() {
        let running = CodeRunView::of(&job(GEMINI_CLI_KIND, None)).unwrap();
        assert_eq!((running.workspace.as_deref(), running.files_changed.len()), (Some("shop"), 0));
        assert_eq!(CodeRunView::of(&job(CLAUDE_CODE_KIND, Some(json!("odd")))).unwrap().summary, None);
        assert_eq!(CodeRunView::of(&job("agent_task", Some(json!({"reply": "x"})))), None);
    }
}
