//! Token estimates without a tokenizer: bytes divided by a calibrated
//! bytes-per-token ratio plus a per-message overhead. Deliberately a little
//! pessimistic (bytes, not characters), so a budget is not overrun.

use crate::storage::StoredMessage;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenEstimator {
    /// ~3.5 for Claude and GPT-4-class tokenizers on English prose and code.
    pub bytes_per_token: f32,
    /// Role markers and block framing per message.
    pub per_message_overhead: u32,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        Self { bytes_per_token: 3.5, per_message_overhead: 4 }
    }
}

impl TokenEstimator {
    pub fn text_tokens(&self, text: &str) -> u32 {
        let tokens = (text.len() as f32 / self.bytes_per_token).ceil();
        if tokens >= u32::MAX as f32 { u32::MAX } else { tokens as u32 }
    }

    /// Text plus tool-call arguments (which `text` does not hold) plus overhead.
    pub fn message_tokens(&self, message: &StoredMessage) -> u32 {
        let mut bytes = message.text.len();
        if let Some(blocks) = message.content.as_array() {
            for block in blocks {
                if block.get("type").and_then(|t| t.as_str()) == Some("tool_use") {
                    bytes += 40 + block.get("input").map_or(0, |input| input.to_string().len());
                }
            }
        }
        let tokens = (bytes as f32 / self.bytes_per_token).ceil() as u32;
        tokens.saturating_add(self.per_message_overhead)
    }
}
