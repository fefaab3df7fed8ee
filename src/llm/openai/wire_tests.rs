//! Wire-format tests for the OpenAI Chat Completions request and response JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::llm::ToolSpec;
use crate::llm::sse::fixture;

fn conversation() -> ChatRequest {
    let mut request = ChatRequest::new(
        "gpt-4.1-mini",
        "You are valor.",
        vec![
            Message::user_text("weather in Paris and Rome?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::ToolUse {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        input: json!({ "city": "Paris" }),
                    },
                    ContentBlock::ToolUse {
                        id: "call_2".into(),
                        name: "get_weather".into(),
                        input: json!({ "city": "Rome" }),
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentBlock::ToolResult { tool_use_id: "call_1".into(), content: "18°C".into(), is_error: false },
                    ContentBlock::ToolResult {
                        tool_use_id: "call_2".into(),
                        content: "timeout".into(),
                        is_error: true,
                    },
                ],
            },
        ],
    );
    request.tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "Current weather".into(),
        input_schema: json!({ "type": "object" }),
    }];
    request
}

#[test]
fn system_prompt_becomes_a_system_message_first() {
    let body = request_body(&conversation(), false);
    assert_eq!(body["messages"][0], json!({ "role": "system", "content": "You are valor." }));
    assert_eq!(body["messages"][1], json!({ "role": "user", "content": "weather in Paris and Rome?" }));
}

#[test]
fn assistant_tool_uses_become_tool_calls_with_string_arguments() {
    let body = request_body(&conversation(), false);
    assert_eq!(
        body["messages"][2],
        json!({ "role": "assistant", "content": null, "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
            { "id": "call_2", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Rome\"}" } },
        ] })
    );
}

#[test]
fn each_tool_result_becomes_its_own_tool_message_with_errors_prefixed() {
    let body = request_body(&conversation(), false);
    assert_eq!(body["messages"][3], json!({ "role": "tool", "tool_call_id": "call_1", "content": "18°C" }));
    assert_eq!(body["messages"][4], json!({ "role": "tool", "tool_call_id": "call_2", "content": "Error: timeout" }));
    assert_eq!(body["messages"].as_array().unwrap().len(), 5);
}

#[test]
fn tools_limits_json_mode_and_stream_options_are_sent() {
    let mut request = conversation();
    request.json_output = true;
    request.temperature = Some(0.25);
    let body = request_body(&request, true);
    assert_eq!(
        body["tools"][0],
        json!({ "type": "function", "function": { "name": "get_weather", "description": "Current weather", "parameters": { "type": "object" } } })
    );
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["response_format"], json!({ "type": "json_object" }));
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({ "include_usage": true }));
}

#[test]
fn plain_requests_omit_optional_fields() {
    let body = request_body(&ChatRequest::new("m", "", vec![Message::user_text("hi")]), false);
    assert_eq!(body["messages"], json!([{ "role": "user", "content": "hi" }]));
    for field in ["tools", "temperature", "response_format", "stream", "stream_options"] {
        assert!(body.get(field).is_none(), "{field}");
    }
}

#[test]
fn a_recorded_tool_calls_answer_parses_arguments_into_values() {
    let body: Value = serde_json::from_str(&fixture("openai_response_tool_calls.json")).unwrap();
    let response = parse_response(&body).unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage, Usage { input_tokens: 200, output_tokens: 40 });
    let calls: Vec<_> = response.message.tool_uses().collect();
    assert_eq!(
        calls,
        vec![("call_1", "read_file", &json!({ "path": "notes.md" })), ("call_2", "list_jobs", &json!({}))]
    );
    assert_eq!(response.message.text(), "");
}

#[test]
fn invalid_tool_arguments_are_an_invalid_response() {
    let body = json!({ "choices": [{ "message": { "tool_calls": [
        { "id": "c", "type": "function", "function": { "name": "f", "arguments": "{\"a\":" } }
    ] }, "finish_reason": "tool_calls" }] });
    assert!(matches!(parse_response(&body), Err(LlmError::InvalidResponse(_))));
}

#[test]
fn finish_reasons_map_to_neutral_stop_reasons() {
    assert_eq!(finish_reason(Some("stop")), StopReason::EndTurn);
    assert_eq!(finish_reason(Some("tool_calls")), StopReason::ToolUse);
    assert_eq!(finish_reason(Some("length")), StopReason::MaxTokens);
    assert_eq!(finish_reason(Some("content_filter")), StopReason::Other);
    assert_eq!(finish_reason(None), StopReason::Other);
}

#[test]
fn an_answer_without_choices_is_invalid() {
    assert!(matches!(parse_response(&json!({ "choices": [] })), Err(LlmError::InvalidResponse(_))));
}

fn image_question(model: &str) -> ChatRequest {
    let message = Message {
        role: Role::User,
        content: vec![
            ContentBlock::Text { text: "What is in this picture?".into() },
            ContentBlock::image("image/png", b"\x89PNG\r\n\x1a\n"),
        ],
    };
    ChatRequest::new(model, "", vec![message])
}

#[test]
fn an_image_becomes_a_data_url_part_next_to_the_text_as_in_the_recorded_request() {
    let body = request_body(&image_question("gpt-4o-mini"), false);
    let expected: Value = serde_json::from_str(&fixture("openai_request_image.json")).unwrap();
    assert_eq!(body, expected);
}

#[test]
fn a_user_message_without_images_keeps_plain_string_content() {
    let body = request_body(&ChatRequest::new("m", "", vec![Message::user_text("hi")]), false);
    assert_eq!(body["messages"][0], json!({ "role": "user", "content": "hi" }));
}
