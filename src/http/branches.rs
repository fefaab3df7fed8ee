//! `/api/branches…`: run branches — the git branch each line of code work
//! happened on — and a person's merge, push or discard of one. The API's
//! bearer token is the owner's, so these act as an admin; the action runs
//! as a `branch_action` job whose result is posted to the branch's
//! conversation. Asking for an action that cannot start now (already
//! merged, a run still working, another action under way) answers 409 with
//! the reason; an unknown action 400; an unknown id 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::HttpState;
use super::error::ApiError;
use crate::storage::{BranchAction, RunBranch};
use crate::workspace::Requester;
use crate::workspace::runs::{ActionRequest, request_action};

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchView {
    pub id: i64,
    pub workspace: String,
    pub conversation_id: String,
    pub branch: String,
    pub base_branch: String,
    pub head_commit: Option<String>,
    /// open | merged | discarded
    pub state: String,
    /// The job working on it now.
    pub job_id: Option<i64>,
    pub last_job_id: i64,
    /// merge | push | discard, while one is under way.
    pub action: Option<String>,
    pub pushed_to: Option<String>,
    pub pull_request: Option<String>,
    /// What the last action did.
    pub note: Option<String>,
    pub updated_at_ms: i64,
}

impl From<RunBranch> for BranchView {
    fn from(branch: RunBranch) -> Self {
        Self {
            id: branch.id,
            workspace: branch.workspace,
            conversation_id: branch.conversation_id,
            branch: branch.branch,
            base_branch: branch.base_branch,
            head_commit: branch.head_commit,
            state: branch.state.as_str().to_owned(),
            job_id: branch.job_id,
            last_job_id: branch.last_job_id,
            action: branch.action.map(|action| action.as_str().to_owned()),
            pushed_to: branch.pushed_to,
            pull_request: branch.pull_request,
            note: branch.note,
            updated_at_ms: branch.updated_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchList {
    pub branches: Vec<BranchView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BranchQuery {
    /// The workspace's name.
    pub workspace: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchActionQueued {
    /// The `branch_action` job carrying it out.
    pub job_id: i64,
}

/// A workspace's run branches, newest first.
#[utoipa::path(get, path = "/api/branches", tag = "branches", params(BranchQuery),
    responses((status = 200, body = BranchList), (status = 404, description = "No such workspace"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn list_branches(
    State(state): State<HttpState>,
    query: Result<Query<BranchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BranchList>, ApiError> {
    let Query(query) = query?;
    state.workspaces.by_name(&query.workspace).map_err(|error| ApiError::NotFound(error.to_string()))?;
    let branches = state.agent.store().run_branches(&query.workspace, 200).await?;
    Ok(Json(BranchList { branches: branches.into_iter().map(BranchView::from).collect() }))
}

/// Merge (into its base branch), push (and open a pull request when `gh` is signed in) or discard a run branch.
#[utoipa::path(post, path = "/api/branches/{id}/{action}", tag = "branches",
    params(("id" = i64, Path, description = "Run branch id"), ("action" = String, Path, description = "merge | push | discard")),
    responses((status = 202, body = BranchActionQueued), (status = 400, description = "Unknown action"),
              (status = 404, description = "No such run branch"),
              (status = 409, description = "It cannot be done now; the message says why"),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn branch_action(
    State(state): State<HttpState>,
    path: Result<Path<(i64, String)>, axum::extract::rejection::PathRejection>,
) -> Result<(axum::http::StatusCode, Json<BranchActionQueued>), ApiError> {
    let Path((id, action)) = path?;
    let Some(action) = BranchAction::parse(&action) else {
        return Err(ApiError::BadRequest(format!("unknown action {action:?}: use merge, push or discard")));
    };
    let store = state.agent.store();
    store.run_branch(id).await?;
    match request_action(store, &state.workspaces, id, action, &Requester::admin()).await? {
        ActionRequest::Queued { job_id } => Ok((axum::http::StatusCode::ACCEPTED, Json(BranchActionQueued { job_id }))),
        ActionRequest::Refused(why) => Err(ApiError::Conflict(why)),
    }
}
