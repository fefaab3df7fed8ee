//! `GET /api/daydream/sessions`: the recorded daydream sessions, newest
//! first, each with its per-phase timings, outcome and insight files.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::HttpState;
use super::error::ApiError;
use crate::storage::{DaydreamPhase, DaydreamSession};

#[derive(Debug, Serialize, ToSchema)]
pub struct DaydreamPhaseView {
    /// readiness | cleanup | context | analysis | output | record
    pub name: String,
    /// ok | skipped | failed
    pub status: String,
    pub duration_ms: i64,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaydreamSessionView {
    pub id: i64,
    /// schedule | manual | job
    pub trigger: String,
    /// completed | skipped | failed
    pub outcome: String,
    pub reason: Option<String>,
    pub phases: Vec<DaydreamPhaseView>,
    pub insight_files: Vec<String>,
    pub summary: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

impl From<DaydreamPhase> for DaydreamPhaseView {
    fn from(phase: DaydreamPhase) -> Self {
        Self { name: phase.name, status: phase.status, duration_ms: phase.duration_ms, detail: phase.detail }
    }
}

impl From<DaydreamSession> for DaydreamSessionView {
    fn from(session: DaydreamSession) -> Self {
        Self {
            id: session.id,
            trigger: session.trigger,
            outcome: session.outcome,
            reason: session.reason,
            phases: session.phases.into_iter().map(DaydreamPhaseView::from).collect(),
            insight_files: session.insight_files,
            summary: session.summary,
            started_at_ms: session.started_at_ms,
            finished_at_ms: session.finished_at_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaydreamSessionList {
    pub sessions: Vec<DaydreamSessionView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaydreamQuery {
    /// At most this many (1–200, default 20).
    pub limit: Option<u32>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/daydream/sessions", tag = "daydream", params(DaydreamQuery),
    responses((status = 200, body = DaydreamSessionList),
              (status = 401, description = "Missing or invalid bearer token")),
    security(("bearer" = [])))]
pub async fn list_sessions(
    State(state): State<HttpState>,
    query: Result<Query<DaydreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DaydreamSessionList>, ApiError> {
    let Query(query) = query?;
    let sessions = state.agent.store().list_daydream_sessions(query.limit.unwrap_or(20).clamp(1, 200)).await?;
    Ok(Json(DaydreamSessionList { sessions: sessions.into_iter().map(DaydreamSessionView::from).collect() }))
}
