//! `/health` (liveness with component details and the health score), `/ready` (the database
//! answers) and `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use super::error::ApiError;
use crate::agent::health::{current_health, telegram_on};

#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "valor is running; component details included")))]
pub async fn health(State(state): State<HttpState>) -> Json<serde_json::Value> {
    let database = match state.agent.store().ping().await {
        Ok(()) => "ok",
        Err(_) => "error",
    };
    Json(json!({
        "status": if database == "ok" { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "database": database,
        "components": *state.components,
        "breakers": state.agent.tools().breakers().snapshot(),
        "health": current_health(&state.agent, telegram_on(&state.components)).await,
    }))
}

#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "ready to serve"), (status = 503, description = "not ready")))]
pub async fn ready(State(state): State<HttpState>) -> Response {
    match state.agent.store().ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "reason": "the database does not answer"})),
            )
                .into_response()
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics() -> Response {
    match crate::monitoring::metrics_handle() {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => ApiError::Unavailable("metrics are not available in this process".into()).into_response(),
    }
}
