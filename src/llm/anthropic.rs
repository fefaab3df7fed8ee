//! Anthropic Messages API client: builds `POST {base}/v1/messages` requests
//! and runs them through the shared [`Transport`]. The wire format lives in
//! `anthropic/wire.rs` (request/response JSON) and `anthropic/stream.rs`
//! (SSE folding), both pure and unit-tested from fixtures.
//!
//! Invariant: the API key only ever travels in the `x-api-key` header.

pub mod stream;
pub mod wire;

use crate::llm::sse::fold_sse_stream;
use crate::llm::transport::{Transport, TransportConfig};
use crate::llm::{ChatModel, ChatRequest, ChatResponse, EventStream, LlmError};

/// The API version every request announces.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A configured Anthropic endpoint (key, base URL, timeouts, retries).
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    transport: Transport,
}

impl AnthropicClient {
    pub fn new(config: TransportConfig) -> Result<Self, LlmError> {
        Ok(Self { transport: Transport::new(config)? })
    }

    /// The HTTP request for `request` (without per-call timeout), with the
    /// Anthropic headers. Public so tests can inspect exactly what is sent.
    pub fn build_request(
        &self,
        client: &reqwest::Client,
        request: &ChatRequest,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let builder = self.post(client, "/v1/messages", &wire::request_body(request, stream));
        if stream { builder.header("accept", "text/event-stream") } else { builder }
    }

    /// `POST {base}{path}` with the Anthropic headers and a JSON body.
    fn post(&self, client: &reqwest::Client, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        let mut builder = client
            .post(self.transport.url(path))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("content-type", "application/json")
            .json(body);
        if let Some(key) = self.transport.api_key() {
            builder = builder.header("x-api-key", key);
        }
        builder
    }

    /// The transport this client sends through.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

#[async_trait::async_trait]
impl ChatModel for AnthropicClient {
    fn provider_name(&self) -> &'static str {
        "anthropic"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.transport.send_json(|client| self.build_request(client, request, false)).await?;
        wire::parse_response(&body)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, LlmError> {
        let body = self.transport.send_streaming(|client| self.build_request(client, request, true)).await?;
        Ok(fold_sse_stream(body, stream::AnthropicStreamState::default()))
    }

    async fn count_input_tokens(&self, request: &ChatRequest) -> Result<Option<u64>, LlmError> {
        let body = wire::count_tokens_body(request);
        let answer = self.transport.send_json(|client| self.post(client, "/v1/messages/count_tokens", &body)).await?;
        wire::parse_token_count(&answer).map(Some)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn client_with_key(key: &str) -> AnthropicClient {
        AnthropicClient::new(TransportConfig {
            base_url: "http://127.0.0.1:9/".into(),
            api_key: Some(SecretString::from(key.to_owned())),
            request_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_base: Duration::from_millis(10),
            retry_max: Duration::from_millis(20),
        })
        .unwrap()
    }

    #[test]
    fn request_carries_version_key_and_json_headers_to_the_messages_path() {
        let client = client_with_key("sk-ant-test");
        let request = ChatRequest::new("claude-x", "be brief", vec![crate::llm::Message::user_text("hi")]);
        let built = client.build_request(client.transport().client(), &request, false).build().unwrap();
        assert_eq!(built.url().as_str(), "http://127.0.0.1:9/v1/messages");
        assert_eq!(built.headers()["anthropic-version"], "2023-06-01");
        assert_eq!(built.headers()["x-api-key"], "sk-ant-test");
        assert_eq!(built.headers()["content-type"], "application/json");
        assert!(built.headers().get("authorization").is_none());
    }

    #[test]
    fn streamed_request_asks_for_an_event_stream() {
        let client = client_with_key("k");
        let request = ChatRequest::new("claude-x", "", vec![crate::llm::Message::user_text("hi")]);
        let built = client.build_request(client.transport().client(), &request, true).build().unwrap();
        let body: serde_json::Value = serde_json::from_slice(built.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(built.headers()["accept"], "text/event-stream");
    }
}
