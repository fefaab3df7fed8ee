//! OpenAI-compatible Chat Completions client (OpenAI, Ollama `/v1`, vLLM,
//! llama.cpp): builds `POST {base}/chat/completions` requests and runs them
//! through the shared [`Transport`]. The wire format lives in
//! `openai/wire.rs` and `openai/stream.rs`, both pure and unit-tested.
//!
//! Invariant: `Authorization: Bearer` is sent only when a key is configured.

pub mod stream;
pub mod wire;

use crate::llm::sse::fold_sse_stream;
use crate::llm::transport::{Transport, TransportConfig};
use crate::llm::{ChatModel, ChatRequest, ChatResponse, EventStream, LlmError};

/// A configured OpenAI-compatible endpoint; `base_url` already ends in `/v1`.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    transport: Transport,
}

impl OpenAiClient {
    pub fn new(config: TransportConfig) -> Result<Self, LlmError> {
        Ok(Self { transport: Transport::new(config)? })
    }

    /// The HTTP request for `request` (without per-call timeout). Public so
    /// tests can inspect exactly what is sent.
    pub fn build_request(
        &self,
        client: &reqwest::Client,
        request: &ChatRequest,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let mut builder = client
            .post(self.transport.url("/chat/completions"))
            .header("content-type", "application/json")
            .json(&wire::request_body(request, stream));
        if let Some(key) = self.transport.api_key() {
            builder = builder.bearer_auth(key);
        }
        if stream {
            builder = builder.header("accept", "text/event-stream");
        }
        builder
    }

    /// The transport this client sends through.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

#[async_trait::async_trait]
impl ChatModel for OpenAiClient {
    fn provider_name(&self) -> &'static str {
        "openai"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.transport.send_json(|client| self.build_request(client, request, false)).await?;
        wire::parse_response(&body)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, LlmError> {
        let body = self.transport.send_streaming(|client| self.build_request(client, request, true)).await?;
        Ok(fold_sse_stream(body, stream::OpenAiStreamState::default()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;
    use crate::llm::Message;

    fn client(api_key: Option<&str>) -> OpenAiClient {
        OpenAiClient::new(TransportConfig {
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key: api_key.map(|key| SecretString::from(key.to_owned())),
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
    fn request_with_a_key_sends_a_bearer_token_to_chat_completions() {
        let client = client(Some("sk-test"));
        let request = ChatRequest::new("gpt-x", "", vec![Message::user_text("hi")]);
        let built = client.build_request(client.transport().client(), &request, false).build().unwrap();
        assert_eq!(built.url().as_str(), "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(built.headers()["authorization"], "Bearer sk-test");
    }

    #[test]
    fn request_without_a_key_sends_no_authorization_header() {
        let client = client(None);
        let request = ChatRequest::new("llama", "", vec![Message::user_text("hi")]);
        let built = client.build_request(client.transport().client(), &request, true).build().unwrap();
        assert!(built.headers().get("authorization").is_none());
        assert_eq!(built.headers()["accept"], "text/event-stream");
    }
}
