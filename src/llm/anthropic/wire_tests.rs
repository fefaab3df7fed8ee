//! Wire-format tests for the Anthropic request and response JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::llm::ToolSpec;
use crate::llm::sse::fixture;

fn conversation() -> ChatRequest {
    let mut request = ChatRequest::new(
        "claude-sonnet-4-5",
        "You are valor.",
        vec![
            Message::user_text("weather in Paris?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::Text { text: "Checking.".into() },
                    ContentBlock::ToolUse {
                        id: "toolu_1".into(),
                        name: "get_weather".into(),
                        input: json!({ "city": "Paris" }),
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: "service down".into(),
                    is_error: true,
                }],
            },
        ],
    );
    request.tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "Current weather".into(),
        input_schema: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
    }];
    request.max_tokens = 1024;
    request
}

#[test]
fn system_prompt_is_one_text_block_marked_for_prompt_caching() {
    let body = request_body(&conversation(), false);
    assert_eq!(
        body["system"],
        json!([{ "type": "text", "text": "You are valor.", "cache_control": { "type": "ephemeral" } }])
    );
}

#[test]
fn messages_carry_text_tool_use_and_tool_result_with_is_error() {
    let body = request_body(&conversation(), false);
    assert_eq!(
        body["messages"][0],
        json!({ "role": "user", "content": [{ "type": "text", "text": "weather in Paris?" }] })
    );
    assert_eq!(
        body["messages"][1]["content"][1],
        json!({ "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Paris" } })
    );
    assert_eq!(
        body["messages"][2],
        json!({ "role": "user", "content": [{
            "type": "tool_result", "tool_use_id": "toolu_1", "content": "service down", "is_error": true,
        }] })
    );
}

#[test]
fn tools_model_and_limits_are_sent_and_optional_fields_omitted() {
    let body = request_body(&conversation(), false);
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
    assert!(body.get("temperature").is_none());
    assert!(body.get("stream").is_none());
}

#[test]
fn temperature_and_stream_are_sent_when_asked() {
    let mut request = conversation();
    request.temperature = Some(0.5);
    let body = request_body(&request, true);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["stream"], true);
}

#[test]
fn json_output_appends_a_json_only_instruction_to_the_system_prompt() {
    let mut request = conversation();
    request.json_output = true;
    let body = request_body(&request, false);
    let system = body["system"][0]["text"].as_str().unwrap();
    assert!(system.starts_with("You are valor.\n\n"));
    assert!(system.ends_with(JSON_OUTPUT_INSTRUCTION));
}

#[test]
fn an_empty_system_prompt_is_not_sent() {
    let request = ChatRequest::new("m", "", vec![Message::user_text("hi")]);
    assert!(request_body(&request, false).get("system").is_none());
}

#[test]
fn a_recorded_tool_use_answer_parses_into_neutral_blocks() {
    let body: Value = serde_json::from_str(&fixture("anthropic_response_tool_use.json")).unwrap();
    let response = parse_response(&body).unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage, Usage { input_tokens: 120, output_tokens: 34 });
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(response.message.text(), "I'll look that up.");
    let calls: Vec<_> = response.message.tool_uses().collect();
    assert_eq!(calls, vec![("toolu_03", "web_search", &json!({ "query": "rust 1.95 release" }))]);
}

#[test]
fn stop_reasons_map_to_neutral_ones() {
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("tool_use", StopReason::ToolUse),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("refusal", StopReason::Other),
    ];
    for (wire, neutral) in cases {
        assert_eq!(stop_reason(Some(wire)), neutral, "{wire}");
    }
}

#[test]
fn an_answer_without_content_is_invalid() {
    assert!(matches!(parse_response(&json!({ "type": "message" })), Err(LlmError::InvalidResponse(_))));
}

#[test]
fn stream_error_events_map_to_classified_errors() {
    let parse = |name: &str| stream_error(&serde_json::from_str(&fixture(name)).unwrap());
    assert_eq!(parse("anthropic_error_529.json"), LlmError::Overloaded { retry_after: None });
    assert_eq!(parse("anthropic_error_429.json"), LlmError::RateLimited { retry_after: None });
    assert_eq!(parse("anthropic_error_401.json"), LlmError::Auth("invalid x-api-key".into()));
    assert_eq!(parse("anthropic_error_context_too_long.json"), LlmError::ContextTooLong);
    assert_eq!(
        stream_error(&json!({ "type": "error", "error": { "type": "api_error" } })),
        LlmError::Server { status: 500 }
    );
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
fn an_image_becomes_a_base64_image_block_as_in_the_recorded_request() {
    let body = request_body(&image_question("claude-sonnet-4-5"), false);
    let expected: Value = serde_json::from_str(&fixture("anthropic_request_image.json")).unwrap();
    assert_eq!(body, expected);
}

#[test]
fn count_tokens_body_keeps_what_the_model_reads_and_drops_generation_fields() {
    let mut request = conversation();
    request.temperature = Some(0.2);
    let body = count_tokens_body(&request);
    let mut fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["messages", "model", "system", "tools"]);
    assert_eq!(body["messages"], request_body(&request, false)["messages"]);
}

#[test]
fn token_count_answer_is_read_or_refused() {
    assert_eq!(parse_token_count(&json!({ "input_tokens": 1234 })).unwrap(), 1234);
    assert!(matches!(parse_token_count(&json!({ "tokens": 5 })), Err(LlmError::InvalidResponse(_))));
}
