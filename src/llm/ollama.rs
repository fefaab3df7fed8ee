//! TEMPORARY placeholder until the llm branch lands.
use std::time::Duration;
use crate::llm::LlmError;
#[derive(Debug, Clone)]
pub struct OllamaClient;
impl OllamaClient {
    pub fn new(_base_url: String, _timeout: Duration) -> Self { Self }
    pub async fn chat_json(&self, _model: &str, _system: &str, _user: &str) -> Result<serde_json::Value, LlmError> { Err(LlmError::NotConfigured) }
}
