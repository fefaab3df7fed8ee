//! Anthropic Messages API wire format, as pure functions: neutral request →
//! JSON body, JSON body → neutral response, error bodies → [`LlmError`].
//!
//! Invariant: the system prompt always travels as one text block marked
//! `cache_control: ephemeral`, so the (large, stable) prompt is cached.

use serde_json::{Value, json};

use crate::llm::transport::{mentions_context_length, truncate_chars};
use crate::llm::{ChatRequest, ChatResponse, ContentBlock, LlmError, Message, Role, StopReason, Usage};

/// Appended to the system prompt when the caller wants a JSON answer
/// (Anthropic has no `response_format`).
pub const JSON_OUTPUT_INSTRUCTION: &str =
    "Answer with exactly one JSON object and nothing else: no prose, no code fences.";

/// The `POST /v1/messages` body for `request`.
pub fn request_body(request: &ChatRequest, stream: bool) -> Value {
    let mut system = request.system.clone();
    if request.json_output {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(JSON_OUTPUT_INSTRUCTION);
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        body["system"] = json!([{ "type": "text", "text": system, "cache_control": { "type": "ephemeral" } }]);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(
                |tool| json!({ "name": tool.name, "description": tool.description, "input_schema": tool.input_schema }),
            )
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// The `POST /v1/messages/count_tokens` body: what the model would read —
/// model, system, messages and tools; the endpoint refuses generation fields
/// such as `max_tokens` and `stream`.
pub fn count_tokens_body(request: &ChatRequest) -> Value {
    let mut body = request_body(request, false);
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|name, _| matches!(name.as_str(), "model" | "system" | "messages" | "tools"));
    }
    body
}

/// The `count_tokens` answer: `{"input_tokens": N}`.
pub fn parse_token_count(body: &Value) -> Result<u64, LlmError> {
    body.get("input_tokens").and_then(Value::as_u64).ok_or_else(|| invalid("token count answer has no input_tokens"))
}

fn message_json(message: &Message) -> Value {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content: Vec<Value> = message.content.iter().map(block_json).collect();
    json!({ "role": role, "content": content })
}

fn block_json(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text { text } => json!({ "type": "text", "text": text }),
        ContentBlock::ToolUse { id, name, input } => {
            json!({ "type": "tool_use", "id": id, "name": name, "input": input })
        }
        ContentBlock::ToolResult { tool_use_id, content, is_error } => json!({
            "type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error,
        }),
        ContentBlock::Image { media_type, data_base64 } => json!({
            "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data_base64 },
        }),
    }
}

/// A non-streamed Messages API answer → neutral response.
pub fn parse_response(body: &Value) -> Result<ChatResponse, LlmError> {
    let blocks = body.get("content").and_then(Value::as_array).ok_or_else(|| invalid("answer has no content list"))?;
    let mut content = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push(ContentBlock::Text { text: str_field(block, "text")?.to_owned() }),
            Some("tool_use") => content.push(ContentBlock::ToolUse {
                id: str_field(block, "id")?.to_owned(),
                name: str_field(block, "name")?.to_owned(),
                input: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            // Thinking and other block kinds carry nothing the agent uses.
            _ => {}
        }
    }
    Ok(ChatResponse {
        message: Message { role: Role::Assistant, content },
        stop_reason: stop_reason(body.get("stop_reason").and_then(Value::as_str)),
        usage: parse_usage(body.get("usage")),
        model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
    })
}

/// Anthropic `stop_reason` → neutral [`StopReason`].
pub fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        _ => StopReason::Other,
    }
}

/// `usage` object → neutral [`Usage`] (missing fields count as 0).
pub fn parse_usage(usage: Option<&Value>) -> Usage {
    let count = |field: &str| usage.and_then(|usage| usage.get(field)).and_then(Value::as_u64).unwrap_or(0);
    Usage { input_tokens: count("input_tokens"), output_tokens: count("output_tokens") }
}

/// An `{"type":"error","error":{"type","message"}}` body (stream `error`
/// event) → the matching [`LlmError`].
pub fn stream_error(body: &Value) -> LlmError {
    let kind = body.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or(kind);
    let message = truncate_chars(message, 300);
    match kind {
        "overloaded_error" => LlmError::Overloaded { retry_after: None },
        "rate_limit_error" => LlmError::RateLimited { retry_after: None },
        "authentication_error" | "permission_error" => LlmError::Auth(message),
        "invalid_request_error" | "request_too_large" if mentions_context_length(&message) => LlmError::ContextTooLong,
        "invalid_request_error" | "request_too_large" | "not_found_error" => LlmError::BadRequest(message),
        "timeout_error" => LlmError::Timeout,
        _ => LlmError::Server { status: 500 },
    }
}

fn str_field<'a>(value: &'a Value, field: &str) -> Result<&'a str, LlmError> {
    value.get(field).and_then(Value::as_str).ok_or_else(|| invalid(&format!("block lacks `{field}`")))
}

pub(crate) fn invalid(what: &str) -> LlmError {
    LlmError::InvalidResponse(what.to_owned())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
