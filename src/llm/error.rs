//! Classified provider errors. Callers branch on the variant (retry, wait,
//! shrink context, tell the user); the message never contains a secret.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// No model provider is configured at all.
    #[error("no model provider is configured")]
    NotConfigured,
    /// 401/403: the key is missing, wrong or lacks permission.
    #[error("the model provider rejected the credentials ({0})")]
    Auth(String),
    /// 429. `retry_after` comes from the `retry-after` header when present.
    #[error("the model provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// 529/503 and Anthropic `overloaded_error`.
    #[error("the model provider is overloaded")]
    Overloaded { retry_after: Option<Duration> },
    /// The prompt does not fit the model's context window.
    #[error("the conversation is too long for the model's context window")]
    ContextTooLong,
    /// 400/404/422 other than context length: our request is wrong.
    #[error("the model provider refused the request: {0}")]
    BadRequest(String),
    /// Other 5xx.
    #[error("the model provider failed with HTTP {status}")]
    Server { status: u16 },
    /// Connection refused, DNS, TLS, reset mid-stream.
    #[error("could not reach the model provider: {0}")]
    Network(String),
    /// No answer within the configured time.
    #[error("the model provider did not answer in time")]
    Timeout,
    /// The provider answered something we cannot parse.
    #[error("the model provider sent an invalid response: {0}")]
    InvalidResponse(String),
}

impl LlmError {
    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::RateLimited { .. }
            | LlmError::Overloaded { .. }
            | LlmError::Server { .. }
            | LlmError::Network(_)
            | LlmError::Timeout => true,
            LlmError::NotConfigured
            | LlmError::Auth(_)
            | LlmError::ContextTooLong
            | LlmError::BadRequest(_)
            | LlmError::InvalidResponse(_) => false,
        }
    }

    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } | LlmError::Overloaded { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A stable short label for metrics and events.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::NotConfigured => "not_configured",
            LlmError::Auth(_) => "auth",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Overloaded { .. } => "overloaded",
            LlmError::ContextTooLong => "context_too_long",
            LlmError::BadRequest(_) => "bad_request",
            LlmError::Server { .. } => "server",
            LlmError::Network(_) => "network",
            LlmError::Timeout => "timeout",
            LlmError::InvalidResponse(_) => "invalid_response",
        }
    }
}
