//! Folds Anthropic Messages API stream events (`message_start`,
//! `content_block_*`, `message_delta`, `message_stop`, `ping`, `error`) into
//! neutral text deltas and one final [`ChatResponse`].
//!
//! Invariants: tool input arrives as `input_json_delta` fragments per block
//! index and is parsed only at `content_block_stop` (empty = `{}`); exactly
//! one `Finished` is produced, at `message_stop`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::wire::{invalid, parse_usage, stream_error};
use crate::llm::sse::SseFolder;
use crate::llm::{ChatResponse, ContentBlock, LlmError, Message, Role, StopReason, StreamEvent, Usage};

/// A content block being streamed.
#[derive(Debug)]
enum OpenBlock {
    Text(String),
    ToolUse { id: String, name: String, partial_json: String },
}

/// The state of one streamed answer.
#[derive(Debug, Default)]
pub struct AnthropicStreamState {
    model: String,
    usage: Usage,
    stop_reason: Option<StopReason>,
    open: BTreeMap<u64, OpenBlock>,
    finished: Vec<(u64, ContentBlock)>,
}

impl SseFolder for AnthropicStreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<StreamEvent>, LlmError> {
        let data: Value =
            serde_json::from_str(data).map_err(|err| invalid(&format!("stream event is not JSON: {err}")))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message");
                self.model =
                    message.and_then(|m| m.get("model")).and_then(Value::as_str).unwrap_or_default().to_owned();
                self.usage = parse_usage(message.and_then(|m| m.get("usage")));
                Ok(Vec::new())
            }
            "content_block_start" => self.start_block(&data),
            "content_block_delta" => self.delta(&data),
            "content_block_stop" => self.stop_block(&data),
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(super::wire::stop_reason(Some(reason)));
                }
                if let Some(output) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = output;
                }
                if let Some(input) = data.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.input_tokens = input;
                }
                Ok(Vec::new())
            }
            "message_stop" => Ok(vec![StreamEvent::Finished(self.take_response())]),
            "error" => Err(stream_error(&data)),
            // `ping` and event kinds added later carry nothing we need.
            _ => Ok(Vec::new()),
        }
    }
}

impl AnthropicStreamState {
    fn start_block(&mut self, data: &Value) -> Result<Vec<StreamEvent>, LlmError> {
        let index = block_index(data)?;
        let block = data.get("content_block").ok_or_else(|| invalid("content_block_start without block"))?;
        let field = |name: &str| block.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = field("text");
                self.open.insert(index, OpenBlock::Text(text.clone()));
                Ok(if text.is_empty() { Vec::new() } else { vec![StreamEvent::TextDelta(text)] })
            }
            Some("tool_use") => {
                let (id, name) = (field("id"), field("name"));
                if id.is_empty() || name.is_empty() {
                    return Err(invalid("tool_use block without id or name"));
                }
                self.open.insert(index, OpenBlock::ToolUse { id, name, partial_json: String::new() });
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn delta(&mut self, data: &Value) -> Result<Vec<StreamEvent>, LlmError> {
        let index = block_index(data)?;
        let delta = data.get("delta").ok_or_else(|| invalid("content_block_delta without delta"))?;
        let text = |name: &str| delta.get(name).and_then(Value::as_str).unwrap_or_default();
        match (delta.get("type").and_then(Value::as_str), self.open.get_mut(&index)) {
            (Some("text_delta"), Some(OpenBlock::Text(buffer))) => {
                let piece = text("text");
                buffer.push_str(piece);
                Ok(vec![StreamEvent::TextDelta(piece.to_owned())])
            }
            (Some("input_json_delta"), Some(OpenBlock::ToolUse { partial_json, .. })) => {
                partial_json.push_str(text("partial_json"));
                Ok(Vec::new())
            }
            (Some("text_delta" | "input_json_delta"), _) => Err(invalid("delta for a block that is not open")),
            // thinking_delta, signature_delta, citations_delta: not used.
            _ => Ok(Vec::new()),
        }
    }

    fn stop_block(&mut self, data: &Value) -> Result<Vec<StreamEvent>, LlmError> {
        let index = block_index(data)?;
        let block = match self.open.remove(&index) {
            None => return Ok(Vec::new()),
            Some(OpenBlock::Text(text)) => ContentBlock::Text { text },
            Some(OpenBlock::ToolUse { id, name, partial_json }) => {
                let input = if partial_json.trim().is_empty() {
                    Value::Object(serde_json::Map::new())
                } else {
                    serde_json::from_str(&partial_json)
                        .map_err(|err| invalid(&format!("tool `{name}` input is not valid JSON: {err}")))?
                };
                ContentBlock::ToolUse { id, name, input }
            }
        };
        self.finished.push((index, block));
        Ok(Vec::new())
    }

    fn take_response(&mut self) -> ChatResponse {
        let mut blocks = std::mem::take(&mut self.finished);
        blocks.sort_by_key(|(index, _)| *index);
        ChatResponse {
            message: Message { role: Role::Assistant, content: blocks.into_iter().map(|(_, block)| block).collect() },
            stop_reason: self.stop_reason.unwrap_or(StopReason::Other),
            usage: self.usage,
            model: std::mem::take(&mut self.model),
        }
    }
}

fn block_index(data: &Value) -> Result<u64, LlmError> {
    data.get("index").and_then(Value::as_u64).ok_or_else(|| invalid("content block event without index"))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
