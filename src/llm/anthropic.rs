//! TEMPORARY placeholder until the llm branch lands.
use crate::llm::{LlmError, transport::TransportConfig};
pub struct AnthropicClient;
impl AnthropicClient { pub fn new(_c: TransportConfig) -> Result<Self, LlmError> { Ok(Self) } }
#[async_trait::async_trait]
impl crate::llm::ChatModel for AnthropicClient {
    fn provider_name(&self) -> &'static str { "anthropic" }
    async fn complete(&self, _r: &crate::llm::ChatRequest) -> Result<crate::llm::ChatResponse, LlmError> { Err(LlmError::NotConfigured) }
    async fn stream(&self, _r: &crate::llm::ChatRequest) -> Result<crate::llm::EventStream, LlmError> { Err(LlmError::NotConfigured) }
}
