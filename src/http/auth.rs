//! Bearer-token authentication for the API (and later MCP). Tokens are kept
//! only as SHA-256 digests and compared in constant time. Without configured
//! tokens the server is bound to loopback (enforced by the app) and open.

use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::HttpState;
use super::error::ApiError;
use crate::storage::NewAuditEvent;

/// The accepted tokens, hashed.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl TokenSet {
    pub fn new(tokens: &[SecretString]) -> Self {
        Self { digests: tokens.iter().map(|t| digest(t.expose_secret())).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens. Looks at every digest, whatever matches.
    pub fn accepts(&self, presented: &str) -> bool {
        let candidate = digest(presented);
        self.digests.iter().fold(false, |found, known| found | constant_time_eq(known, &candidate))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110 §11.1), so `BEARER x` and `bearer x` count.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer_token)
}

/// Whether a request with these headers may see what the tokens protect:
/// always in loopback mode (no tokens), else only with a valid bearer token.
pub(super) fn authorized(tokens: &TokenSet, headers: &HeaderMap) -> bool {
    tokens.is_empty() || presented_token(headers).is_some_and(|token| tokens.accepts(token))
}

/// Middleware: let the request through if no tokens are configured or it carries a valid one.
pub async fn require_token(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if state.tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = presented_token(request.headers());
    match presented {
        Some(token) if state.tokens.accepts(token) => next.run(request).await,
        _ => {
            // Inside the nested `/api` router the URI is relative; audit the full path.
            let path = match request.extensions().get::<OriginalUri>() {
                Some(OriginalUri(uri)) => uri.path().to_owned(),
                None => request.uri().path().to_owned(),
            };
            tracing::warn!(%path, "API request without a valid bearer token");
            let event = NewAuditEvent {
                kind: "auth".into(),
                actor: "api".into(),
                subject: path,
                decision: "denied".into(),
                detail: serde_json::json!({"reason": if presented.is_some() { "invalid token" } else { "no token" }}),
            };
            if let Err(error) = state.agent.store().record_audit(event).await {
                tracing::warn!(%error, "could not audit-log a refused API request");
            }
            ApiError::Unauthorized.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_accepted() {
        let set = TokenSet::new(&[SecretString::from("alpha"), SecretString::from("beta")]);
        assert!(set.accepts("alpha"));
        assert!(set.accepts("beta"));
        assert!(!set.accepts("alph"));
        assert!(!set.accepts(""));
        assert!(TokenSet::default().is_empty());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for (value, expected) in [
            ("Bearer tok", Some("tok")),
            ("bearer tok", Some("tok")),
            ("BEARER tok", Some("tok")),
            ("bEaReR   tok  ", Some("tok")),
            ("Basic dG9r", None),
            ("Bearer", None),
            ("Bearer    ", None),
            ("Bearertok", None),
        ] {
            assert_eq!(bearer_token(value), expected, "{value:?}");
        }
    }
}
