//! How tools call external services: each call goes through the service's
//! circuit breaker, every attempt has a time limit, transient failures are
//! retried with backoff (the model transport's retry loop), and whatever
//! goes wrong becomes one user-readable line for the model
//! ("web search is unavailable right now").
//!
//! Invariants: an open breaker refuses without touching the network; a
//! request the service refused as malformed (4xx other than auth/429) does
//! not count against the breaker — it is our fault, not the service's.

use std::future::Future;
use std::time::Duration;

use crate::llm::LlmError;
use crate::llm::transport::{
    TransportConfig, classify_reqwest_error, classify_status, parse_retry_after, with_retries,
};
use crate::monitoring::breaker::CircuitBreakers;

use super::ToolError;

/// Time limit and retry policy for one kind of external call.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Limit for one attempt (request and body).
    pub attempt_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(30),
            max_retries: 2,
            retry_base: Duration::from_millis(300),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// One external service as tools see it: name (breaker key), what users call
/// it, its breaker and its policy.
#[derive(Debug, Clone)]
pub struct ExternalService {
    pub name: &'static str,
    /// Human name, e.g. "web search".
    pub what: &'static str,
    breakers: CircuitBreakers,
    policy: CallPolicy,
}

impl ExternalService {
    pub fn new(name: &'static str, what: &'static str, breakers: CircuitBreakers, policy: CallPolicy) -> Self {
        breakers.register(name);
        Self { name, what, breakers, policy }
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// The line the model sees when the service cannot be used now.
    pub fn unavailable(&self) -> String {
        format!("{} is unavailable right now", self.what)
    }

    /// Run `attempt` under the breaker, the per-attempt time limit and the retry policy.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, ToolError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        if !self.breakers.try_acquire(self.name) {
            tracing::info!(service = self.name, "call refused: circuit breaker is open");
            return Err(ToolError::RespondToModel(format!("{} (too many recent failures)", self.unavailable())));
        }
        let retry = TransportConfig {
            base_url: String::new(),
            api_key: None,
            request_timeout: self.policy.attempt_timeout,
            first_byte_timeout: self.policy.attempt_timeout,
            connect_timeout: self.policy.attempt_timeout,
            max_retries: self.policy.max_retries,
            retry_base: self.policy.retry_base,
            retry_max: self.policy.retry_max,
        };
        let limit = self.policy.attempt_timeout;
        let result = with_retries(&retry, || {
            let future = attempt();
            async move { tokio::time::timeout(limit, future).await.unwrap_or(Err(LlmError::Timeout)) }
        })
        .await;
        match result {
            Ok(value) => {
                self.breakers.record_success(self.name);
                Ok(value)
            }
            Err(error) => {
                tracing::warn!(service = self.name, kind = error.kind(), %error, "external call failed");
                if counts_against_the_service(&error) {
                    self.breakers.record_failure(self.name);
                } else {
                    self.breakers.record_success(self.name);
                }
                Err(ToolError::RespondToModel(self.failure_line(&error)))
            }
        }
    }

    fn failure_line(&self, error: &LlmError) -> String {
        let unavailable = self.unavailable();
        match error {
            LlmError::Auth(_) => format!("{unavailable} (its API key was rejected)"),
            LlmError::InvalidResponse(_) => format!("{unavailable} (it sent an answer I could not read)"),
            LlmError::BadRequest(message) => format!("{} refused the request: {message}", self.what),
            LlmError::ContextTooLong => format!("{} refused the request as too long", self.what),
            LlmError::NotConfigured
            | LlmError::RateLimited { .. }
            | LlmError::Overloaded { .. }
            | LlmError::Server { .. }
            | LlmError::Network(_)
            | LlmError::Timeout => unavailable,
        }
    }
}

fn counts_against_the_service(error: &LlmError) -> bool {
    !matches!(error, LlmError::BadRequest(_) | LlmError::ContextTooLong)
}

/// Send one request and return its JSON body, classifying failures the way
/// model calls are classified (status, `retry-after`, unreadable JSON).
pub async fn send_for_json(request: reqwest::RequestBuilder) -> Result<serde_json::Value, LlmError> {
    let response = request.send().await.map_err(|error| classify_reqwest_error(&error))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
        let body = response.text().await.unwrap_or_default();
        return Err(classify_status(status.as_u16(), retry_after, &body));
    }
    let text = response.text().await.map_err(|error| classify_reqwest_error(&error))?;
    serde_json::from_str(&text).map_err(|error| LlmError::InvalidResponse(format!("not JSON: {error}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::monitoring::breaker::{BreakerConfig, BreakerState, ManualClock};

    fn service(max_retries: u32) -> (ExternalService, CircuitBreakers, ManualClock) {
        let clock = ManualClock::default();
        let breakers = CircuitBreakers::new(
            BreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(10) },
            Arc::new(clock.clone()),
        );
        let policy = CallPolicy {
            attempt_timeout: Duration::from_millis(50),
            max_retries,
            retry_base: Duration::from_millis(1),
            retry_max: Duration::from_millis(2),
        };
        (ExternalService::new("web_search", "web search", breakers.clone(), policy), breakers, clock)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_a_later_success_is_returned() {
        let (service, breakers, _) = service(2);
        let attempts = AtomicU32::new(0);
        let result = service
            .call(|| async {
                if attempts.fetch_add(1, Ordering::SeqCst) < 2 { Err(LlmError::Server { status: 502 }) } else { Ok(7) }
            })
            .await;
        assert_eq!(result, Ok(7));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(breakers.state("web_search"), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_hung_attempt_times_out_and_the_model_gets_one_readable_line() {
        let (service, _, _) = service(0);
        let result: Result<(), _> = service.call(std::future::pending).await;
        assert_eq!(result, Err(ToolError::RespondToModel("web search is unavailable right now".into())));
    }

    #[tokio::test]
    async fn the_breaker_opens_refuses_without_calling_and_recovers_after_a_probe() {
        let (service, breakers, clock) = service(0);
        let calls = AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(LlmError::Network("refused".into()))
        };
        service.call(failing).await.unwrap_err();
        service.call(failing).await.unwrap_err();
        assert_eq!(breakers.state("web_search"), BreakerState::Open);
        let refused = service.call(failing).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "an open breaker does not call");
        assert!(refused.to_string().starts_with("web search is unavailable right now"));
        clock.advance(Duration::from_secs(10));
        assert_eq!(service.call(|| async { Ok(1) }).await, Ok(1));
        assert_eq!(breakers.state("web_search"), BreakerState::Closed);
    }

    #[tokio::test]
    async fn malformed_answers_count_against_the_service_but_bad_requests_do_not() {
        let (service, breakers, _) = service(3);
        let attempts = AtomicU32::new(0);
        let result: Result<(), _> = service
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(LlmError::InvalidResponse("not JSON".into()))
            })
            .await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "unreadable answers are not retried");
        assert!(result.unwrap_err().to_string().contains("could not read"));
        let refused: Result<(), _> = service.call(|| async { Err(LlmError::BadRequest("bad query".into())) }).await;
        assert_eq!(refused, Err(ToolError::RespondToModel("web search refused the request: bad query".into())));
        assert_eq!(breakers.snapshot()[0].consecutive_failures, 0);
    }
}
