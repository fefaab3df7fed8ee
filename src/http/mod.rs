//! The HTTP server: JSON API (with SSE turns), health/readiness/metrics,
//! OpenAPI document and docs page, and the embedded web chat.
//!
//! Invariants: routes listed in PRODUCT.md §2 are a contract; every error is
//! JSON via [`ApiError`]; `/api/*` goes through bearer auth; request bodies
//! are size-limited; the server takes a bound listener and a shutdown token.

mod api;
mod approvals;
mod auth;
mod branches;
mod daydream;
mod error;
mod events;
mod health;
mod jobs;
mod openapi;
mod origin;
pub mod status;
mod web;

pub use auth::TokenSet;
pub use error::ApiError;
pub use origin::OriginPolicy;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::agent::Agent;
use crate::config::ServerSettings;

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub agent: Agent,
    pub settings: Arc<ServerSettings>,
    pub tokens: Arc<TokenSet>,
    pub started: Instant,
    /// What is on and off, computed once at start.
    pub components: crate::monitoring::LiveComponents,
    /// The configured workspaces (run branches belong to them).
    pub workspaces: crate::workspace::Workspaces,
}

pub fn router(state: HttpState) -> Router {
    router_with_mcp(state, None)
}

/// The router, with the MCP Streamable HTTP service (built by the app) at
/// `/mcp` behind the same bearer-token auth as `/api`.
pub fn router_with_mcp(state: HttpState, mcp: Option<Router>) -> Router {
    let api = Router::new()
        .route("/messages", post(api::post_message))
        .route("/conversations", get(api::list_conversations))
        .route("/conversations/{id}", axum::routing::patch(api::rename_conversation).delete(api::delete_conversation))
        .route("/conversations/{id}/messages", get(api::list_messages))
        .route("/conversations/{id}/events", get(events::conversation_events))
        .route("/conversations/{id}/turns", get(api::list_turns))
        .route("/turns/{id}/cancel", post(api::cancel_turn))
        .route("/jobs", get(jobs::list_jobs))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/jobs/{id}/retry", post(jobs::retry_job))
        .route("/status", get(status::status))
        .route("/daydream/sessions", get(daydream::list_sessions))
        .route("/approvals", get(approvals::list_approvals))
        .route("/approvals/{id}", post(approvals::answer_approval))
        .route("/branches", get(branches::list_branches))
        .route("/branches/{id}/{action}", post(branches::branch_action))
        .fallback(api::not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
    let mut router = Router::new();
    if let Some(mcp) = mcp {
        router =
            router.nest_service("/mcp", mcp.layer(middleware::from_fn_with_state(state.clone(), auth::require_token)));
    }
    router
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(web::docs))
        .route("/", get(web::index))
        .route("/assets/{file}", get(web::asset))
        .nest("/api", api)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `router` behind the one Host/Origin policy (`origin.rs`); the app applies
/// it once, to the whole merged router (API, web, MCP, run server, webhook).
pub fn guard_origins(router: Router, policy: OriginPolicy) -> Router {
    router.layer(middleware::from_fn_with_state(policy, origin::guard))
}

/// Serve until `shutdown` is cancelled, then stop accepting and let in-flight
/// requests finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
