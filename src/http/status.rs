//! `GET /api/status`: the dashboard's data — health score with its
//! components, resources (newest sample, the high-water mark, whether load
//! is being shed), queue depth per status, breaker states and the last
//! hour of samples. The score is `agent::health::current_health`, shared
//! with `/health`, the `valor_health_score` gauge and Telegram's `/status`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::HttpState;
use super::error::ApiError;
use crate::agent::health::{current_health, telegram_on};
use crate::monitoring::ComponentStatus;
use crate::monitoring::health_score::HealthScore;
use crate::monitoring::resources::{Pressure, Sample};

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReport {
    pub version: &'static str,
    pub uptime_secs: u64,
    pub health: HealthScore,
    /// What is on and off, and why.
    #[schema(value_type = Vec<Object>)]
    pub components: Vec<ComponentStatus>,
    pub resources: ResourcesView,
    /// Jobs per status: queued, running, succeeded, failed, cancelled.
    pub queue: BTreeMap<String, i64>,
    /// `{service, state: closed|open|half_open, consecutive_failures}` per external service.
    #[schema(value_type = Vec<Object>)]
    pub breakers: Vec<crate::monitoring::breaker::BreakerSnapshot>,
    /// The last hour, oldest first (one per `resources.sample_interval_secs`).
    pub samples: Vec<Sample>,
    /// The MCP library's servers the chat uses: running, tools, failures (their breakers are `mcp:<name>`).
    #[schema(value_type = Vec<Object>)]
    pub mcp_servers: Vec<crate::workspace::mcp_client::ServerStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourcesView {
    pub latest: Option<Sample>,
    pub active_turns: usize,
    pub max_active_turns: usize,
    pub max_rss_bytes: u64,
    /// Set while new non-admin work is refused.
    pub pressure: Option<Pressure>,
    /// Non-admin requests refused since start.
    pub shed_total: u64,
}

#[utoipa::path(get, path = "/api/status", tag = "health",
    responses((status = 200, description = "health score, resources, queue, breakers and the last hour of samples", body = StatusReport)),
    security(("bearer" = [])))]
pub async fn status(State(state): State<HttpState>) -> Result<Json<StatusReport>, ApiError> {
    let agent = &state.agent;
    let components = state.components.snapshot();
    let health = current_health(agent, telegram_on(&components)).await;
    let queue = agent.store().count_jobs_by_status().await?;
    let monitor = agent.monitor();
    Ok(Json(StatusReport {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        health,
        components,
        resources: ResourcesView {
            latest: monitor.latest(),
            active_turns: monitor.active_turns(),
            max_active_turns: monitor.max_active_turns(),
            max_rss_bytes: monitor.max_rss_bytes(),
            pressure: monitor.pressure(),
            shed_total: monitor.shed_total(),
        },
        queue: queue.into_iter().map(|(status, count)| (status.to_owned(), count)).collect(),
        breakers: agent.tools().breakers().snapshot(),
        samples: monitor.samples(),
        mcp_servers: agent.mcp().map(|mcp| mcp.clients().status()).unwrap_or_default(),
    }))
}
