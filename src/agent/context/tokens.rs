//! Token estimates without a tokenizer: bytes divided by a calibrated
//! bytes-per-token ratio plus a per-message overhead. Deliberately a little
//! pessimistic (bytes, not characters), so a budget is not overrun.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::llm::{ChatRequest, ContentBlock};
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
        self.message_tokens_and_tool_use(message).0
    }

    /// [`Self::message_tokens`], and whether the message calls a tool (one pass).
    pub fn message_tokens_and_tool_use(&self, message: &StoredMessage) -> (u32, bool) {
        let mut bytes = message.text.len();
        let mut calls_tools = false;
        if let Some(blocks) = message.content.as_array() {
            for block in blocks {
                if block.get("type").and_then(|t| t.as_str()) == Some("tool_use") {
                    calls_tools = true;
                    bytes += 40 + block.get("input").map_or(0, |input| input.to_string().len());
                }
            }
        }
        let tokens = (bytes as f32 / self.bytes_per_token).ceil() as u32;
        (tokens.saturating_add(self.per_message_overhead), calls_tools)
    }
}

/// Learns bytes-per-token per model from the provider's own counts — the
/// `usage.input_tokens` of an answer, or Anthropic's `count_tokens` endpoint
/// when answers carry no usage — so each model's budget is estimated with
/// its own tokenizer's ratio instead of the 3.5 default.
#[derive(Debug, Clone, Default)]
pub struct TokenCalibration {
    state: Arc<Mutex<CalibrationState>>,
}

#[derive(Debug, Default)]
struct CalibrationState {
    bytes_per_token: HashMap<String, f32>,
    /// Models whose count endpoint was already asked (once per process).
    counted: HashSet<String>,
}

/// Observed ratios outside this range are measurement noise (tiny requests,
/// a provider counting something else), not a tokenizer.
const RATIO_RANGE: (f32, f32) = (1.5, 8.0);
/// Weight of a new observation against the running ratio.
const NEW_WEIGHT: f32 = 0.3;
/// A process talks to a handful of models; this bounds a misconfiguration.
const MAX_MODELS: usize = 64;

impl TokenCalibration {
    fn lock(&self) -> std::sync::MutexGuard<'_, CalibrationState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The estimator for `model`: its learned ratio, else the default.
    pub fn estimator_for(&self, model: &str) -> TokenEstimator {
        let default = TokenEstimator::default();
        match self.lock().bytes_per_token.get(model) {
            Some(&bytes_per_token) => TokenEstimator { bytes_per_token, ..default },
            None => default,
        }
    }

    pub fn is_calibrated(&self, model: &str) -> bool {
        self.lock().bytes_per_token.contains_key(model)
    }

    /// True the first time it is asked for `model`: the caller may then ask
    /// the provider's count endpoint once.
    pub fn claim_count(&self, model: &str) -> bool {
        let mut state = self.lock();
        state.counted.len() < MAX_MODELS && state.counted.insert(model.to_owned())
    }

    /// Folds in one count of `request`'s input tokens; returns the new ratio,
    /// or `None` when the observation says nothing (images, implausible).
    pub fn observe(&self, model: &str, request: &ChatRequest, input_tokens: u64) -> Option<f32> {
        let bytes = request_bytes(request)?;
        let overhead = TokenEstimator::default().per_message_overhead as u64 * request.messages.len() as u64;
        let text_tokens = input_tokens.checked_sub(overhead).filter(|t| *t > 0)?;
        let observed = bytes as f32 / text_tokens as f32;
        if !(RATIO_RANGE.0..=RATIO_RANGE.1).contains(&observed) {
            return None;
        }
        let mut state = self.lock();
        if !state.bytes_per_token.contains_key(model) && state.bytes_per_token.len() >= MAX_MODELS {
            return None;
        }
        let ratio = match state.bytes_per_token.get(model) {
            Some(old) => old * (1.0 - NEW_WEIGHT) + observed * NEW_WEIGHT,
            None => observed,
        };
        state.bytes_per_token.insert(model.to_owned(), ratio);
        metrics::gauge!("valor_context_bytes_per_token", "model" => model.to_owned()).set(f64::from(ratio));
        Some(ratio)
    }
}

/// The bytes of what a model reads for `request`, counted like
/// [`TokenEstimator::message_tokens`] counts a message; `None` when it holds
/// images (providers count those by pixels, not bytes).
pub fn request_bytes(request: &ChatRequest) -> Option<usize> {
    let mut bytes = request.system.len();
    for tool in &request.tools {
        bytes += tool.name.len() + tool.description.len() + tool.input_schema.to_string().len();
    }
    for message in &request.messages {
        for block in &message.content {
            bytes += match block {
                ContentBlock::Text { text } => text.len(),
                ContentBlock::ToolUse { name, input, .. } => 40 + name.len() + input.to_string().len(),
                ContentBlock::ToolResult { content, .. } => content.len(),
                ContentBlock::Image { .. } => return None,
            };
        }
    }
    Some(bytes)
}
