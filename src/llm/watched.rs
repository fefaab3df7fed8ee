//! The model breaker: [`WatchedModel`] wraps the turn model and feeds every
//! call's outcome into the shared circuit breakers under [`MODEL_SERVICE`],
//! so a model that keeps failing shows in the health score, `/health`,
//! `/api/status`, Telegram's `/status` and `valor_breaker_state`.
//!
//! Invariants: while the breaker is open a call fails at once with the last
//! failure (no user waits through retries against a provider known to be
//! down); after the cool-down one call goes through as the probe, a user's
//! turn or [`WatchedModel::probe`] from housekeeping when idle, and its
//! success closes the breaker. A conversation too long for the model says
//! nothing about the provider and is not counted.

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;

use super::{ChatModel, ChatRequest, ChatResponse, EventStream, LlmError, Message};
use crate::monitoring::breaker::{BreakerState, CircuitBreakers};

pub use crate::monitoring::health_score::MODEL_SERVICE;

/// The turn model with its breaker. Cheap to share (`Arc` inside).
pub struct WatchedModel {
    inner: Arc<dyn ChatModel>,
    breakers: CircuitBreakers,
    last_failure: Arc<Mutex<Option<LlmError>>>,
}

impl WatchedModel {
    pub fn new(inner: Arc<dyn ChatModel>, breakers: CircuitBreakers) -> Self {
        breakers.register(MODEL_SERVICE);
        Self { inner, breakers, last_failure: Arc::default() }
    }

    /// While idle: when the breaker is open and cooled down, ask `model` for
    /// one token. Returns whether a probe was sent.
    pub async fn probe(&self, model: &str) -> bool {
        if self.breakers.state(MODEL_SERVICE) != BreakerState::Open || !self.breakers.try_acquire(MODEL_SERVICE) {
            return false;
        }
        let guard = ProbeGuard { breakers: &self.breakers, settled: false };
        let mut request = ChatRequest::new(model, "Reply with OK.", vec![Message::user_text("ping")]);
        request.max_tokens = 1;
        let outcome = self.inner.complete(&request).await.map(|_| ());
        self.settle(guard, outcome.as_ref().err());
        match outcome {
            Ok(()) => tracing::info!("the model answers again"),
            // The breaker's own WARN ("circuit breaker opened", with the reason) says it already.
            Err(error) => tracing::debug!(%error, "the model still fails"),
        }
        true
    }

    /// Let a call through, or fail it at once with the last failure while
    /// the breaker is open. The guard gives up a half-open probe whose
    /// caller went away before an outcome.
    fn admit(&self) -> Result<ProbeGuard<'_>, LlmError> {
        if self.breakers.try_acquire(MODEL_SERVICE) {
            return Ok(ProbeGuard { breakers: &self.breakers, settled: false });
        }
        let last = self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Err(last.unwrap_or_else(|| LlmError::Network("the model has been failing; valor retries it shortly".into())))
    }

    fn settle(&self, mut guard: ProbeGuard<'_>, failure: Option<&LlmError>) {
        guard.settled = true;
        record(&self.breakers, &self.last_failure, failure);
    }
}

struct ProbeGuard<'a> {
    breakers: &'a CircuitBreakers,
    settled: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breakers.abandon_probe(MODEL_SERVICE);
        }
    }
}

/// Whether a failure says the provider (not this one request) is unwell.
fn counts(error: &LlmError) -> bool {
    !matches!(error, LlmError::ContextTooLong | LlmError::NotConfigured)
}

fn record(breakers: &CircuitBreakers, last_failure: &Mutex<Option<LlmError>>, failure: Option<&LlmError>) {
    match failure {
        None => breakers.record_success(MODEL_SERVICE),
        Some(error) if counts(error) => {
            *last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.clone());
            breakers.record_failure_because(MODEL_SERVICE, &error.to_string());
        }
        // Not the provider's fault; a half-open probe still needs an outcome.
        Some(_) => breakers.record_success(MODEL_SERVICE),
    }
}

#[async_trait::async_trait]
impl ChatModel for WatchedModel {
    fn provider_name(&self) -> &'static str {
        self.inner.provider_name()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let guard = self.admit()?;
        let outcome = self.inner.complete(request).await;
        self.settle(guard, outcome.as_ref().err());
        outcome
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, LlmError> {
        let guard = self.admit()?;
        let events = self.inner.stream(request).await;
        // An answer that started counts as a success; a failure later in
        // the stream counts as a failure of its own.
        self.settle(guard, events.as_ref().err());
        let breakers = self.breakers.clone();
        let last_failure = Arc::clone(&self.last_failure);
        Ok(Box::pin(events?.inspect(move |event| {
            if let Err(error) = event {
                record(&breakers, &last_failure, Some(error));
            }
        })))
    }

    async fn count_input_tokens(&self, request: &ChatRequest) -> Result<Option<u64>, LlmError> {
        self.inner.count_input_tokens(request).await
    }
}
