//! One Host/Origin policy in front of every route (API, web chat, approvals,
//! jobs, MCP, the run server): the defence against DNS rebinding and
//! cross-site requests, which bearer auth alone cannot give in loopback mode
//! (there is no token to forge).
//!
//! - Without API tokens (loopback mode) only loopback Host values are served
//!   (`localhost`, `127.0.0.0/8`, `[::1]`, any port): a page on
//!   `evil.example` whose name was rebound to 127.0.0.1 still sends its own
//!   name as Host and is refused. `/telegram/webhook` is exempt from this
//!   rule alone (Telegram's servers name the public host; its secret
//!   authenticates it).
//! - A state-changing request (anything but GET, HEAD, OPTIONS) that carries
//!   an `Origin` is served only when that origin is this server itself (the
//!   Origin's host and port are the request's Host) or is listed in
//!   `[server] allowed_origins`; `Origin: null` is refused for them.
//! - What browsers never send is refused: a missing or empty Host, an Origin
//!   that does not parse or carries userinfo.
//!
//! Invariant: every refusal is a 403 JSON error and an audit event (kind
//! `origin`); nothing behind the layer runs.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::config::serialized_origin;
use crate::storage::{NewAuditEvent, Store};

/// Path exempt from the loopback Host rule (authenticated by its secret).
const WEBHOOK_PATH: &str = "/telegram/webhook";

/// What the layer needs: the mode and the configured origins.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    loopback_only: bool,
    /// Serialised origins (`scheme://host[:port]`), as the config validated them.
    allowed_origins: Arc<Vec<String>>,
    store: Store,
}

impl OriginPolicy {
    pub fn new(loopback_only: bool, allowed_origins: &[String], store: Store) -> Self {
        let allowed = allowed_origins.iter().filter_map(|origin| serialized_origin(origin)).collect();
        Self { loopback_only, allowed_origins: Arc::new(allowed), store }
    }

    /// Why `request` is refused, or `None` when it may pass.
    fn refusal(&self, request: &Request) -> Option<String> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|authority| authority.as_str().to_owned()))
            .filter(|host| !host.trim().is_empty());
        let Some(host) = host else { return Some("the request has no Host header".into()) };
        let host = host.trim().to_ascii_lowercase();
        if self.loopback_only && request.uri().path() != WEBHOOK_PATH && !is_loopback_host(&host) {
            return Some(format!(
                "Host {host:?} is not this machine: without API tokens valor answers only requests addressed to \
                 localhost or a loopback address"
            ));
        }
        let origin = request.headers().get(header::ORIGIN)?;
        let Ok(origin) = origin.to_str() else { return Some("the Origin header is not text".into()) };
        let state_changing = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if origin.trim() == "null" {
            return state_changing.then(|| "a request with `Origin: null` may not change anything".to_owned());
        }
        let Ok(parsed) = url::Url::parse(origin.trim()) else {
            return Some(format!("the Origin {origin:?} is not an origin"));
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Some("the Origin carries a user name or password".into());
        }
        if !state_changing || origin_authority(&parsed).as_deref() == Some(host.as_str()) {
            return None;
        }
        let serialized = parsed.origin().ascii_serialization();
        if self.allowed_origins.contains(&serialized) {
            return None;
        }
        Some(format!(
            "requests from {serialized} may not change anything here (not this server's origin; list it in \
             `[server] allowed_origins` to allow it)"
        ))
    }
}

/// Middleware: refuse what [`OriginPolicy`] refuses, audit-logged.
pub async fn guard(State(policy): State<OriginPolicy>, request: Request, next: Next) -> Response {
    let Some(reason) = policy.refusal(&request) else { return next.run(request).await };
    let path = request.uri().path().to_owned();
    tracing::warn!(%path, method = %request.method(), "refused by the Host/Origin policy: {reason}");
    let event = NewAuditEvent {
        kind: "origin".into(),
        actor: "http".into(),
        subject: path,
        decision: "denied".into(),
        detail: serde_json::json!({"reason": reason, "method": request.method().as_str()}),
    };
    if let Err(error) = policy.store.record_audit(event).await {
        tracing::warn!(%error, "could not audit-log a refused request");
    }
    ApiError::Forbidden(reason).into_response()
}

/// The Origin as it would appear in a Host header (`host` or `host:port` when the port is not the default).
fn origin_authority(origin: &url::Url) -> Option<String> {
    let host = origin.host_str()?.to_ascii_lowercase();
    Some(match origin.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    let name = name.trim_end_matches('.');
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_count_as_this_machine() {
        for host in ["localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:80", "127.9.9.9:1", "[::1]:8080", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil", "0.0.0.0:80"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
