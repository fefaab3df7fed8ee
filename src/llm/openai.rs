//! TEMPORARY placeholder until the llm branch lands.
use crate::llm::{LlmError, transport::TransportConfig};
pub struct OpenAiClient;
impl OpenAiClient { pub fn new(_c: TransportConfig) -> Result<Self, LlmError> { Ok(Self) } }
#[async_trait::async_trait]
impl crate::llm::ChatModel for OpenAiClient {
    fn provider_name(&self) -> &'static str { "openai" }
    async fn complete(&self, _r: &crate::llm::ChatRequest) -> Result<crate::llm::ChatResponse, LlmError> { Err(LlmError::NotConfigured) }
    async fn stream(&self, _r: &crate::llm::ChatRequest) -> Result<crate::llm::EventStream, LlmError> { Err(LlmError::NotConfigured) }
}
