//! OpenAI Chat Completions wire format, as pure functions: neutral request →
//! JSON body and JSON body → neutral response. Serves every compatible
//! server (OpenAI, Ollama `/v1`, vLLM, llama.cpp).
//!
//! Invariant: each neutral `ToolResult` block becomes its own
//! `role: "tool"` message answering the matching `tool_call_id`.

use serde_json::{Value, json};

use crate::llm::{ChatRequest, ChatResponse, ContentBlock, LlmError, Message, Role, StopReason, Usage};

/// The `POST /chat/completions` body for `request`.
pub fn request_body(request: &ChatRequest, stream: bool) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({ "role": "system", "content": request.system }));
    }
    for message in &request.messages {
        push_message(&mut messages, message);
    }
    let mut body = json!({ "model": request.model, "messages": messages, "max_tokens": request.max_tokens });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({ "type": "function", "function": {
                    "name": tool.name, "description": tool.description, "parameters": tool.input_schema,
                }})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if request.json_output {
        body["response_format"] = json!({ "type": "json_object" });
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

/// Appends the wire messages for one neutral message: tool results first as
/// `tool` messages, then the text (and, for the assistant, tool calls). A user
/// message with images becomes a list of `text` and `image_url` parts (data
/// URLs); without images its content stays a plain string.
fn push_message(out: &mut Vec<Value>, message: &Message) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut images = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text: piece } => text.push_str(piece),
            ContentBlock::Image { media_type, data_base64 } => images.push(json!({
                "type": "image_url", "image_url": { "url": format!("data:{media_type};base64,{data_base64}") },
            })),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id, "type": "function", "function": { "name": name, "arguments": input.to_string() },
            })),
            ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                let content = if *is_error { format!("Error: {content}") } else { content.clone() };
                out.push(json!({ "role": "tool", "tool_call_id": tool_use_id, "content": content }));
            }
        }
    }
    match message.role {
        Role::User if !images.is_empty() => {
            let mut parts = Vec::with_capacity(images.len() + 1);
            if !text.is_empty() {
                parts.push(json!({ "type": "text", "text": text }));
            }
            parts.extend(images);
            out.push(json!({ "role": "user", "content": parts }));
        }
        Role::User if !text.is_empty() => out.push(json!({ "role": "user", "content": text })),
        Role::User => {}
        Role::Assistant if tool_calls.is_empty() => out.push(json!({ "role": "assistant", "content": text })),
        Role::Assistant => {
            let content = if text.is_empty() { Value::Null } else { Value::String(text) };
            out.push(json!({ "role": "assistant", "content": content, "tool_calls": tool_calls }));
        }
    }
}

/// A non-streamed Chat Completions answer → neutral response.
pub fn parse_response(body: &Value) -> Result<ChatResponse, LlmError> {
    let choice = body.pointer("/choices/0").ok_or_else(|| invalid("answer has no choices"))?;
    let message = choice.get("message").ok_or_else(|| invalid("choice has no message"))?;
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|text| !text.is_empty()) {
        content.push(ContentBlock::Text { text: text.to_owned() });
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let field = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
        let id = field("/id").ok_or_else(|| invalid("tool call without id"))?;
        let name = field("/function/name").ok_or_else(|| invalid("tool call without name"))?;
        content.push(ContentBlock::ToolUse {
            id: id.to_owned(),
            name: name.to_owned(),
            input: parse_arguments(name, field("/function/arguments").unwrap_or_default())?,
        });
    }
    Ok(ChatResponse {
        message: Message { role: Role::Assistant, content },
        stop_reason: finish_reason(choice.get("finish_reason").and_then(Value::as_str)),
        usage: parse_usage(body.get("usage")),
        model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
    })
}

/// Tool-call `arguments` (a JSON string) → value; empty means `{}`.
pub fn parse_arguments(tool: &str, arguments: &str) -> Result<Value, LlmError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(arguments)
        .map_err(|err| invalid(&format!("tool `{tool}` arguments are not valid JSON: {err}")))
}

/// OpenAI `finish_reason` → neutral [`StopReason`].
pub fn finish_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}

/// `usage` object → neutral [`Usage`] (missing fields count as 0).
pub fn parse_usage(usage: Option<&Value>) -> Usage {
    let count = |field: &str| usage.and_then(|usage| usage.get(field)).and_then(Value::as_u64).unwrap_or(0);
    Usage { input_tokens: count("prompt_tokens"), output_tokens: count("completion_tokens") }
}

pub(crate) fn invalid(what: &str) -> LlmError {
    LlmError::InvalidResponse(what.to_owned())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
