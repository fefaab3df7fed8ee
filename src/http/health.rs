//! `/health` (liveness with component details and the health score), `/ready` (the database
//! answers) and `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use super::error::ApiError;
use crate::agent::health::{current_health, telegram_on};
use crate::monitoring::breaker::BreakerState;

/// Public `/health` (API tokens configured, none presented) says only
/// whether valor is up and which version runs; the details (database path,
/// model URL, tools) need a token, or loopback mode.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "valor is running; component details with a token or in loopback mode")))]
pub async fn health(State(state): State<HttpState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let store = state.agent.store();
    let database = match store.ping().await {
        Ok(()) => "ok",
        Err(_) => "error",
    };
    // A database that does not answer or a model whose breaker is open is
    // valor unable to answer: public `/health` says so too.
    let model_failing =
        state.agent.tools().breakers().state(crate::monitoring::health_score::MODEL_SERVICE) == BreakerState::Open;
    let status = match (database == "ok", model_failing) {
        (false, _) => "unhealthy",
        (true, true) => "degraded",
        (true, false) => "ok",
    };
    if !super::auth::authorized(&state.tokens, &headers) {
        return Json(json!({"status": status, "version": env!("CARGO_PKG_VERSION")}));
    }
    let components = state.components.snapshot();
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "database": database,
        "components": components,
        "breakers": state.agent.tools().breakers().snapshot(),
        "health": current_health(&state.agent, telegram_on(&components)).await,
    }))
}

/// Readiness: the database answers (503 with the reason when it does not).
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "ready to serve"), (status = 503, description = "not ready")))]
pub async fn ready(State(state): State<HttpState>) -> Response {
    let store = state.agent.store();
    match store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            // A fault (file deleted, replaced, corrupted) is the reason; otherwise it just does not answer.
            let reason = store.fault().unwrap_or_else(|| "the database does not answer".to_owned());
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "reason": reason}))).into_response()
        }
    }
}

/// Prometheus metrics: turns, jobs, tools, model calls, resources, the health score.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics() -> Response {
    match crate::monitoring::metrics_handle() {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => ApiError::Unavailable("metrics are not available in this process".into()).into_response(),
    }
}
