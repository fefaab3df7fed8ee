//! Minimal client for Ollama's native `POST {base}/api/chat` in JSON mode,
//! used for small, fast classification calls (e.g. intent routing) where a
//! late answer is worth nothing.
//!
//! Invariants: one attempt only (no retries) under a strict whole-request
//! timeout; the answer must be one JSON value or the call fails.

use std::time::Duration;

use serde_json::{Value, json};

use crate::llm::LlmError;
use crate::llm::transport::{classify_reqwest_error, classify_status, client_builder, parse_retry_after};

/// One Ollama server (no key: Ollama has no authentication).
#[derive(Debug, Clone)]
pub struct OllamaClient {
    client: reqwest::Client,
    base_url: String,
    timeout: Duration,
}

impl OllamaClient {
    /// `base_url` is the server root (e.g. `http://127.0.0.1:11434`), without `/v1`.
    pub fn new(base_url: String, timeout: Duration) -> Result<Self, LlmError> {
        let client =
            client_builder().build().map_err(|err| LlmError::Network(format!("cannot build HTTP client: {err}")))?;
        Ok(Self { client, base_url: base_url.trim_end_matches('/').to_owned(), timeout })
    }

    /// Asks `model` for a JSON answer to `user` under `system`; the whole call
    /// (connect, send, answer) must finish within the configured timeout.
    pub async fn chat_json(&self, model: &str, system: &str, user: &str) -> Result<Value, LlmError> {
        match tokio::time::timeout(self.timeout, self.chat_json_once(model, system, user)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout),
        }
    }

    async fn chat_json_once(&self, model: &str, system: &str, user: &str) -> Result<Value, LlmError> {
        let body = request_body(model, system, user);
        let response = self
            .client
            .post(format!("{}/api/chat", self.base_url))
            .json(&body)
            .send()
            .await
            .map_err(|err| classify_reqwest_error(&err))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers(), chrono::Utc::now());
            let text = response.text().await.unwrap_or_default();
            return Err(classify_status(status.as_u16(), retry_after, &text));
        }
        let answer: Value = response.json().await.map_err(|err| classify_reqwest_error(&err))?;
        parse_answer(&answer)
    }
}

/// The `/api/chat` body: non-streamed, JSON format.
pub fn request_body(model: &str, system: &str, user: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": system },
            { "role": "user", "content": user },
        ],
        "stream": false,
        "format": "json",
    })
}

/// `message.content` of an `/api/chat` answer, parsed as JSON.
pub fn parse_answer(answer: &Value) -> Result<Value, LlmError> {
    let content = answer
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::InvalidResponse("answer has no message content".into()))?;
    serde_json::from_str(content.trim())
        .map_err(|err| LlmError::InvalidResponse(format!("answer content is not JSON: {err}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn request_body_asks_for_one_unstreamed_json_answer() {
        let body = request_body("qwen", "classify", "hello");
        assert_eq!(body["stream"], false);
        assert_eq!(body["format"], "json");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "hello");
    }

    #[test]
    fn answer_content_is_parsed_as_json() {
        let answer = json!({ "message": { "role": "assistant", "content": "{\"intent\":\"chat\"}" } });
        assert_eq!(parse_answer(&answer).unwrap(), json!({ "intent": "chat" }));
    }

    #[test]
    fn answer_content_that_is_not_json_is_an_invalid_response() {
        let answer = json!({ "message": { "role": "assistant", "content": "sure! intent=chat" } });
        assert!(matches!(parse_answer(&answer), Err(LlmError::InvalidResponse(_))));
    }
}
