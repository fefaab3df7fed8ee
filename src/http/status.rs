//! `GET /api/status`: the dashboard's data — health score with its
//! components, resources (newest sample, the high-water mark, whether load
//! is being shed), queue depth per status, breaker states and the last
//! hour of samples. [`current_health`] is also what `/health` and the
//! monitor's `valor_health_score` gauge use, so all three agree.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::HttpState;
use super::error::ApiError;
use crate::agent::Agent;
use crate::monitoring::ComponentStatus;
use crate::monitoring::health_score::{HealthInputs, HealthScore, health_score};
use crate::monitoring::resources::{Pressure, Sample};

/// The health score now, from a database ping, the queue, the breakers,
/// the components and the newest resource sample.
pub async fn current_health(agent: &Agent, components: &[ComponentStatus]) -> HealthScore {
    let store = agent.store();
    let database_ok = store.ping().await.is_ok();
    let queued_jobs = match store.count_jobs_by_status().await {
        Ok(counts) => counts.get("queued").copied().unwrap_or(0),
        Err(_) => 0,
    };
    let monitor = agent.monitor();
    let telegram = monitor
        .telegram_configured()
        .then(|| components.iter().any(|component| component.name == "telegram" && component.on));
    let breakers = agent.tools().breakers().snapshot();
    let score = health_score(&HealthInputs {
        database_ok,
        model_configured: agent.provider_name().is_some(),
        telegram,
        breakers: &breakers,
        queued_jobs,
        rss_bytes: monitor.latest().map_or(0, |sample| sample.rss_bytes),
        max_rss_bytes: monitor.max_rss_bytes(),
        active_turns: monitor.active_turns(),
        max_active_turns: monitor.max_active_turns(),
    });
    metrics::gauge!("valor_health_score").set(f64::from(score.score));
    score
}

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
    let health = current_health(agent, &state.components).await;
    let queue = agent.store().count_jobs_by_status().await?;
    let monitor = agent.monitor();
    Ok(Json(StatusReport {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        health,
        components: state.components.to_vec(),
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
    }))
}
