//! Shared HTTP transport for model providers: client construction with
//! timeouts, retry with exponential backoff and jitter honouring
//! `retry-after`, and HTTP status → [`LlmError`] classification.

use std::time::Duration;

use secrecy::SecretString;

/// How to reach one provider endpoint.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Base URL without trailing slash, e.g. `https://api.anthropic.com` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Whole-request limit for non-streamed calls; for streamed calls, the
    /// longest silence allowed between two chunks.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}
