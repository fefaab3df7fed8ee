//! Shared HTTP transport for model providers: client construction with
//! timeouts, retry with exponential backoff and jitter honouring
//! `retry-after`, and HTTP status → [`LlmError`] classification.
//!
//! Invariants: only errors whose [`LlmError::is_retryable`] is true are
//! retried; a streamed body is never retried once it is handed out; no error
//! produced here carries the API key (every message passes [`redact`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::LlmError;

/// The longest wait between two attempts, whatever `retry-after` says.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Longest provider message kept in [`LlmError::BadRequest`].
const MAX_MESSAGE_CHARS: usize = 300;

/// The one way valor starts building an HTTP client (model providers,
/// tools, Telegram, `valor doctor`, tests). reqwest is built without a TLS
/// crypto provider of its own (`rustls-no-provider`): this installs ring as
/// the process's rustls provider first, so no client ever meets "no crypto
/// provider". `clippy.toml` forbids `reqwest::Client::new`/`builder` elsewhere.
#[allow(clippy::disallowed_methods)]
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().pool_max_idle_per_host(MAX_IDLE_PER_HOST)
}

/// Idle connections kept per host. A burst of concurrent turns opens one
/// model stream each; keeping all of them (reqwest's default has no cap)
/// kept their buffers resident for the 90 s idle timeout after the burst.
const MAX_IDLE_PER_HOST: usize = 8;

/// Installs ring as the process-wide rustls crypto provider, once. An error
/// means a provider was already installed (by an embedding program); that one
/// is kept.
fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How to reach one provider endpoint.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Base URL without trailing slash, e.g. `https://api.anthropic.com` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Whole-request limit for non-streamed calls; for streamed calls, the
    /// longest silence allowed between two chunks.
    pub request_timeout: Duration,
    /// For streamed calls: the response headers must arrive within this.
    pub first_byte_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// A streamed response body: chunks as they arrive; a silence longer than
/// `request_timeout` ends it with [`LlmError::Timeout`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send>>;

/// One provider endpoint's HTTP client plus its timeout and retry policy.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    config: TransportConfig,
}

impl Transport {
    /// Builds the HTTP client (connect timeout only; request limits are per call).
    pub fn new(config: TransportConfig) -> Result<Self, LlmError> {
        let client = client_builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|err| LlmError::Network(format!("cannot build HTTP client: {}", error_chain_tail(&err))))?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `base_url` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url.trim_end_matches('/'), path)
    }

    /// The API key, for the provider to put in its auth header.
    pub fn api_key(&self) -> Option<&str> {
        self.config.api_key.as_ref().map(|key| key.expose_secret())
    }

    /// Sends a non-streamed request (rebuilt by `build` for each attempt) with
    /// retries; the whole request, body included, must finish within
    /// `request_timeout`. Returns the parsed JSON body of a 2xx answer.
    pub async fn send_json<F>(&self, build: F) -> Result<serde_json::Value, LlmError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let result = with_retries(&self.config, || async {
            let request = build(&self.client).timeout(self.config.request_timeout);
            let response = request.send().await.map_err(|err| classify_reqwest_error(&err))?;
            let response = check_status(response).await?;
            let text = response.text().await.map_err(|err| classify_reqwest_error(&err))?;
            serde_json::from_str(&text).map_err(|err| LlmError::InvalidResponse(format!("response is not JSON: {err}")))
        })
        .await;
        result.map_err(|err| redact(err, self.api_key()))
    }

    /// Sends a streamed request with retries up to the response headers
    /// (which must arrive within `first_byte_timeout`: a provider that takes
    /// the connection and says nothing is hung); then hands out the body,
    /// where `request_timeout` is the longest allowed silence between chunks.
    pub async fn send_streaming<F>(&self, build: F) -> Result<ByteStream, LlmError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let (first_byte, timeout) = (self.config.first_byte_timeout, self.config.request_timeout);
        let result = with_retries(&self.config, || async {
            let sent = tokio::time::timeout(first_byte, build(&self.client).send()).await;
            let response = sent.map_err(|_| LlmError::Timeout)?.map_err(|err| classify_reqwest_error(&err))?;
            check_status(response).await
        })
        .await;
        let response = result.map_err(|err| redact(err, self.api_key()))?;
        let key = self.api_key().map(str::to_owned);
        let body = response
            .bytes_stream()
            .map(move |item| item.map_err(|err| redact(classify_reqwest_error(&err), key.as_deref())));
        Ok(with_silence_timeout(body, timeout))
    }
}

/// Ends `body` with [`LlmError::Timeout`] when no chunk arrives for `silence`.
pub fn with_silence_timeout<S>(body: S, silence: Duration) -> ByteStream
where
    S: Stream<Item = Result<Bytes, LlmError>> + Send + 'static,
{
    let body = Box::pin(body);
    let stream = futures::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(silence, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(err))) => Some((Err(err), None)),
            Ok(None) => None,
            Err(_) => Some((Err(LlmError::Timeout), None)),
        }
    });
    Box::pin(stream)
}

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or
/// `max_retries` retries are used up. Waits between attempts per [`retry_delay`].
pub async fn with_retries<T, F, Fut>(config: &TransportConfig, mut attempt: F) -> Result<T, LlmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LlmError>>,
{
    let mut retries_done = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() && retries_done < config.max_retries => {
                let delay = retry_delay(config, retries_done, err.retry_after(), rand::random_range(0.5..=1.0));
                tracing::warn!(
                    kind = err.kind(),
                    retry = retries_done + 1,
                    delay_ms = delay.as_millis() as u64,
                    "retrying model call"
                );
                tokio::time::sleep(delay).await;
                retries_done += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// The wait before retry number `retries_done + 1`: `retry_base` doubled per
/// earlier retry, capped at `retry_max`, scaled by `jitter` (0.5..=1); at
/// least the provider's `retry_after`; never more than [`MAX_RETRY_DELAY`].
pub fn retry_delay(
    config: &TransportConfig,
    retries_done: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let factor = 2u32.saturating_pow(retries_done.min(20));
    let backoff = config.retry_base.saturating_mul(factor).min(config.retry_max);
    let backoff = backoff.mul_f64(jitter.clamp(0.0, 1.0));
    backoff.max(retry_after.unwrap_or(Duration::ZERO)).min(MAX_RETRY_DELAY)
}

/// Turns a non-2xx response into its classified error; passes 2xx through.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
    let body = response.text().await.unwrap_or_default();
    Err(classify_status(status.as_u16(), retry_after, &body))
}

/// HTTP status (plus `retry-after` and error body) → [`LlmError`].
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> LlmError {
    match status {
        401 | 403 => LlmError::Auth(error_message(body).unwrap_or_else(|| format!("HTTP {status}"))),
        429 => LlmError::RateLimited { retry_after },
        503 | 529 => LlmError::Overloaded { retry_after },
        400 | 413 | 422 if mentions_context_length(body) => LlmError::ContextTooLong,
        400..=499 => LlmError::BadRequest(error_message(body).unwrap_or_else(|| format!("HTTP {status}"))),
        _ => LlmError::Server { status },
    }
}

/// Whether an error body says the prompt does not fit the context window.
pub fn mentions_context_length(body: &str) -> bool {
    let lower = body.to_lowercase();
    ["context length", "context_length_exceeded", "prompt is too long", "context window", "maximum context"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// The short human message of a provider error body (`error.message`,
/// `message`, or a string `error`), truncated to ~300 characters.
pub fn error_message(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let message = json
        .pointer("/error/message")
        .or_else(|| json.get("message"))
        .or_else(|| json.get("error"))
        .and_then(serde_json::Value::as_str)?;
    Some(truncate_chars(message, MAX_MESSAGE_CHARS))
}

/// `text` cut to at most `max` characters (with `…` when cut).
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `retry-after-ms` (Anthropic) or `retry-after` (seconds or HTTP-date).
pub fn parse_retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
    if let Some(millis) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(millis / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// reqwest failure → [`LlmError`], without the URL.
pub fn classify_reqwest_error(err: &reqwest::Error) -> LlmError {
    if err.is_timeout() {
        return LlmError::Timeout;
    }
    if err.is_decode() {
        return LlmError::InvalidResponse(truncate_chars(&error_chain_tail(err), MAX_MESSAGE_CHARS));
    }
    let what = if err.is_connect() { "connection failed" } else { "transfer failed" };
    LlmError::Network(format!("{what}: {}", truncate_chars(&error_chain_tail(err), 200)))
}

/// The innermost cause's text (e.g. "Connection refused (os error 111)").
fn error_chain_tail(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Replaces every occurrence of `api_key` in the error's message with `[redacted]`.
pub fn redact(err: LlmError, api_key: Option<&str>) -> LlmError {
    let Some(key) = api_key.filter(|key| !key.is_empty()) else {
        return err;
    };
    let clean = |text: String| text.replace(key, "[redacted]");
    match err {
        LlmError::Auth(text) => LlmError::Auth(clean(text)),
        LlmError::BadRequest(text) => LlmError::BadRequest(clean(text)),
        LlmError::Network(text) => LlmError::Network(clean(text)),
        LlmError::InvalidResponse(text) => LlmError::InvalidResponse(clean(text)),
        other @ (LlmError::NotConfigured
        | LlmError::RateLimited { .. }
        | LlmError::Overloaded { .. }
        | LlmError::ContextTooLong
        | LlmError::Server { .. }
        | LlmError::Timeout) => other,
    }
}

/// The file of a `multipart/form-data` upload.
#[derive(Debug, Clone, Copy)]
pub struct FilePart<'a> {
    /// The form field, e.g. `file` or `photo`.
    pub field: &'a str,
    /// Sent as `filename`; reduced to ASCII letters, digits, `.`, `-` and `_`.
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// A `multipart/form-data` body: the text fields, then one file part. The
/// request's content type is `multipart/form-data; boundary={boundary}`.
pub fn multipart_body(boundary: &str, fields: &[(&str, &str)], file: FilePart<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(file.bytes.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    let file_name: String =
        file.file_name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
             Content-Type: {}\r\n\r\n",
            file.field, file.content_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A fresh multipart boundary (never found in a body by chance).
pub fn multipart_boundary() -> String {
    format!("valor-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
