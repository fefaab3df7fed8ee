//! `/api/approvals…`: Claude Code permission requests waiting for a person
//! (the web chat's prompt and API clients use these). Answering a request
//! that was already decided or expired answers 409 with its outcome; an
//! unknown answer 400; an unknown id 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::HttpState;
use super::error::ApiError;
use crate::storage::{AnswerOutcome, Approval, ApprovalAnswer};

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub id: i64,
    pub job_id: i64,
    pub conversation_id: String,
    /// The Claude Code tool asking (e.g. `Write`, `Bash`).
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// pending | allowed | denied | timed_out
    pub status: String,
    /// For allowed: once | run.
    pub scope: Option<String>,
    pub decided_by: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl From<Approval> for ApprovalView {
    fn from(approval: Approval) -> Self {
        Self {
            id: approval.id,
            job_id: approval.job_id,
            conversation_id: approval.conversation_id,
            tool_name: approval.tool_name,
            input: approval.input,
            status: approval.status,
            scope: approval.scope,
            decided_by: approval.decided_by,
            created_at_ms: approval.created_at_ms,
            expires_at_ms: approval.expires_at_ms,
            decided_at_ms: approval.decided_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalQuery {
    /// Only this conversation's requests.
    pub conversation: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswerBody {
    /// once (allow this call) | run (allow this tool for the rest of the run) | deny
    pub answer: String,
}

/// Pending requests, oldest first.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalList), (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn list_approvals(
    State(state): State<HttpState>,
    query: Result<Query<ApprovalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ApprovalList>, ApiError> {
    let Query(query) = query?;
    let pending = state.agent.store().pending_approvals(query.conversation.as_deref()).await?;
    Ok(Json(ApprovalList { approvals: pending.into_iter().map(ApprovalView::from).collect() }))
}

/// Answer a Claude Code permission request: allow once, allow for the rest of the run, or deny.
#[utoipa::path(post, path = "/api/approvals/{id}", tag = "approvals",
    params(("id" = i64, Path, description = "Approval id")), request_body = ApprovalAnswerBody,
    responses((status = 200, body = ApprovalView), (status = 400, description = "Unknown answer"),
              (status = 404, description = "No such request"),
              (status = 409, description = "Already decided or expired"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn answer_approval(
    State(state): State<HttpState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<ApprovalAnswerBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ApprovalView>, ApiError> {
    let Path(id) = id?;
    let Json(body) = body.map_err(|error| ApiError::BadRequest(error.body_text()))?;
    let answer = ApprovalAnswer::parse(body.answer.trim())
        .ok_or_else(|| ApiError::BadRequest(format!("unknown answer {:?}; use once, run or deny", body.answer)))?;
    match state.agent.store().answer_approval(id, answer, "api").await? {
        AnswerOutcome::Decided(approval) => {
            tracing::info!(approval = id, "approval answered through the API: {}", answer.as_str());
            Ok(Json(approval.into()))
        }
        AnswerOutcome::AlreadyDecided(approval) => {
            Err(ApiError::Conflict(format!("approval {id} is already {}", approval.status)))
        }
    }
}
