//! `/api/jobs…`: list and inspect background jobs, cancel one, retry one.
//! Unknown ids answer 404; cancelling a finished job or retrying one that did
//! not fail answers 409 with the reason.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::HttpState;
use super::error::ApiError;
use crate::storage::{CancelOutcome, Job, JobFilter, JobStatus, RetryOutcome, wall_clock_ms};

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
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
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
        }
    }
}

/// The view with the job's place in line filled in.
async fn view(store: &crate::storage::Store, job: Job) -> Result<JobView, ApiError> {
    let queue_position = store.queue_position(&job).await?;
    Ok(JobView { queue_position, ..JobView::from(job) })
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
    Ok(Json(view(store, store.get_job(id).await?).await?))
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
