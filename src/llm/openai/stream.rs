//! Folds OpenAI Chat Completions stream chunks (`data: {…}` … `data: [DONE]`)
//! into neutral text deltas and one final [`ChatResponse`].
//!
//! Invariants: tool-call fragments are keyed by their `index` (id and name
//! come first, `arguments` arrive in pieces) and parsed only at `[DONE]`;
//! exactly one `Finished` is produced, at `[DONE]`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::wire::{finish_reason, invalid, parse_arguments, parse_usage};
use crate::llm::sse::SseFolder;
use crate::llm::transport::{classify_status, mentions_context_length};
use crate::llm::{ChatResponse, ContentBlock, LlmError, Message, Role, StopReason, StreamEvent, Usage};

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// The state of one streamed answer.
#[derive(Debug, Default)]
pub struct OpenAiStreamState {
    model: String,
    text: String,
    tool_calls: BTreeMap<u64, PartialToolCall>,
    stop_reason: Option<StopReason>,
    usage: Usage,
}

impl SseFolder for OpenAiStreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<StreamEvent>, LlmError> {
        if data.trim() == "[DONE]" {
            return Ok(vec![StreamEvent::Finished(self.take_response()?)]);
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|err| invalid(&format!("stream chunk is not JSON: {err}")))?;
        if chunk.get("error").is_some() {
            return Err(chunk_error(&chunk, data));
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model = model.to_owned();
        }
        if chunk.get("usage").is_some_and(Value::is_object) {
            self.usage = parse_usage(chunk.get("usage"));
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(Vec::new());
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(finish_reason(Some(reason)));
        }
        for fragment in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.add_tool_fragment(fragment)?;
        }
        match choice.pointer("/delta/content").and_then(Value::as_str) {
            Some(piece) if !piece.is_empty() => {
                self.text.push_str(piece);
                Ok(vec![StreamEvent::TextDelta(piece.to_owned())])
            }
            _ => Ok(Vec::new()),
        }
    }
}

impl OpenAiStreamState {
    fn add_tool_fragment(&mut self, fragment: &Value) -> Result<(), LlmError> {
        let index =
            fragment.get("index").and_then(Value::as_u64).ok_or_else(|| invalid("tool call fragment without index"))?;
        let call = self.tool_calls.entry(index).or_default();
        let field = |pointer: &str| fragment.pointer(pointer).and_then(Value::as_str);
        if let Some(id) = field("/id").filter(|id| !id.is_empty()) {
            call.id = id.to_owned();
        }
        if let Some(name) = field("/function/name").filter(|name| !name.is_empty()) {
            call.name = name.to_owned();
        }
        if let Some(arguments) = field("/function/arguments") {
            call.arguments.push_str(arguments);
        }
        Ok(())
    }

    fn take_response(&mut self) -> Result<ChatResponse, LlmError> {
        let mut content = Vec::new();
        let text = std::mem::take(&mut self.text);
        if !text.is_empty() {
            content.push(ContentBlock::Text { text });
        }
        for (_, call) in std::mem::take(&mut self.tool_calls) {
            if call.id.is_empty() || call.name.is_empty() {
                return Err(invalid("streamed tool call without id or name"));
            }
            let input = parse_arguments(&call.name, &call.arguments)?;
            content.push(ContentBlock::ToolUse { id: call.id, name: call.name, input });
        }
        Ok(ChatResponse {
            message: Message { role: Role::Assistant, content },
            stop_reason: self.stop_reason.unwrap_or(StopReason::Other),
            usage: self.usage,
            model: std::mem::take(&mut self.model),
        })
    }
}

/// A mid-stream `{"error": {...}}` chunk → classified error, using its
/// numeric `code` as the status when it has one.
fn chunk_error(chunk: &Value, raw: &str) -> LlmError {
    let status = chunk.pointer("/error/code").and_then(Value::as_u64).and_then(|code| u16::try_from(code).ok());
    match status {
        Some(status) if (400..600).contains(&status) => classify_status(status, None, raw),
        _ if mentions_context_length(raw) => LlmError::ContextTooLong,
        _ => LlmError::Server { status: 500 },
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
