//! Model providers behind one neutral interface.
//!
//! `types` holds the provider-neutral messages; each provider keeps its wire
//! format in its own file (`anthropic`, `openai`) and shares the HTTP
//! transport (`transport`: timeouts, retries honouring `retry-after`, error
//! classification). The agent only ever sees [`ChatModel`] and [`LlmError`].
//! Invariant: no provider error message or log line contains an API key.

pub mod anthropic;
pub mod error;
pub mod ollama;
pub mod openai;
pub mod sse;
pub mod transcription;
pub mod transport;
pub mod types;
pub mod watched;

use std::pin::Pin;

use futures::Stream;

pub use error::LlmError;
pub use types::{ChatRequest, ChatResponse, ContentBlock, Message, Role, StopReason, StreamEvent, ToolSpec, Usage};

/// A stream of model output: text deltas, then one `Finished`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// One configured chat model endpoint (a provider plus its credentials).
/// The concrete model name travels in each [`ChatRequest`].
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    /// Short provider label for logs, metrics and `valor doctor` ("anthropic", "openai").
    fn provider_name(&self) -> &'static str;

    /// One non-streamed call. Retries retryable failures per the transport policy.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// One streamed call. Retries happen only before the first byte of the
    /// answer; an error after that ends the stream with that error.
    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, LlmError>;

    /// The provider's own count of the input tokens `request` would use
    /// (Anthropic's `count_tokens` endpoint); `None` when the provider has no
    /// such endpoint, so callers fall back to an estimate.
    async fn count_input_tokens(&self, _request: &ChatRequest) -> Result<Option<u64>, LlmError> {
        Ok(None)
    }
}
