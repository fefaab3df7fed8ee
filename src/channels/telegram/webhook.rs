//! Webhook mode: Telegram POSTs each update to `/telegram/webhook` with the
//! configured `secret_token` in `X-Telegram-Bot-Api-Secret-Token`.
//!
//! Invariants: the route exists only in webhook mode (`app` merges it only
//! when `TelegramSettings::webhook` is set, which needs a strong secret);
//! a request without the right secret is refused (401) and
//! nothing of it is stored or processed; an update is answered 200 only
//! after it is stored — that answer is the acknowledgement, so a storage
//! failure answers 500 and Telegram delivers the update again.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{TelegramChannel, accept};
use crate::config::TelegramSettings;

/// Where Telegram posts updates.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Telegram's updates are small; media arrive as file ids.
const MAX_UPDATE_BYTES: usize = 1024 * 1024;

/// The webhook route, to be merged into the app's HTTP router in webhook
/// mode only; `None` in polling mode, where the path does not exist.
/// Until the channel has connected (`slot` is empty) updates are answered
/// 503, and Telegram delivers them again later.
pub fn router(settings: &TelegramSettings, slot: &Arc<OnceLock<TelegramChannel>>) -> Option<Router> {
    settings.webhook()?;
    let route = Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_UPDATE_BYTES))
        .with_state(slot.clone());
    Some(route)
}

fn same_secret(expected: &str, given: &[u8]) -> bool {
    let (expected, given) = (Sha256::digest(expected.as_bytes()), Sha256::digest(given));
    expected.iter().zip(given.iter()).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

async fn receive(State(slot): State<Arc<OnceLock<TelegramChannel>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(channel) = slot.get() else { return StatusCode::SERVICE_UNAVAILABLE };
    let shared = &channel.shared;
    let Some((_, secret)) = shared.settings.webhook() else { return StatusCode::NOT_FOUND };
    let given = headers.get(SECRET_HEADER).map(|value| value.as_bytes()).unwrap_or_default();
    if secret.expose_secret().is_empty() || !same_secret(secret.expose_secret(), given) {
        tracing::warn!("telegram: webhook request with a wrong secret refused");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(update) = serde_json::from_slice::<serde_json::Value>(&body) else { return StatusCode::BAD_REQUEST };
    match accept(shared, &update).await {
        Ok(()) => {
            shared.inbox_ready.notify_one();
            StatusCode::OK
        }
        Err(error) => {
            tracing::error!("telegram: storing a webhook update failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_are_compared_exactly() {
        assert!(same_secret("s3cret", b"s3cret"));
        assert!(!same_secret("s3cret", b"s3cre"));
        assert!(!same_secret("s3cret", b""));
    }
}
