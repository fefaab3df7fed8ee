//! Tests for the Anthropic SSE folding, fed recorded transcripts split into
//! small byte chunks so events straddle chunk boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::llm::sse::{chunked_body, collect, fixture, fold_sse_stream};

async fn fold(transcript: &str, chunk_size: usize) -> Vec<Result<StreamEvent, LlmError>> {
    collect(fold_sse_stream(chunked_body(transcript, chunk_size), AnthropicStreamState::default())).await
}

#[tokio::test]
async fn text_and_split_tool_input_fold_into_deltas_and_one_finished_answer() {
    let items = fold(&fixture("anthropic_stream_text_and_tool_use.sse"), 17).await;
    let events: Vec<StreamEvent> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0], StreamEvent::TextDelta("Let me check ".into()));
    assert_eq!(events[1], StreamEvent::TextDelta("the weather.".into()));
    assert_eq!(events.len(), 3);
    let StreamEvent::Finished(response) = &events[2] else { panic!("last event is not Finished") };
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage, Usage { input_tokens: 412, output_tokens: 57 });
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(
        response.message.content,
        vec![
            ContentBlock::Text { text: "Let me check the weather.".into() },
            ContentBlock::ToolUse {
                id: "toolu_01A".into(),
                name: "get_weather".into(),
                input: json!({ "city": "Paris", "days": 3 })
            },
            ContentBlock::ToolUse { id: "toolu_01B".into(), name: "list_jobs".into(), input: json!({}) },
        ]
    );
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_the_stream_with_the_matching_error() {
    let items = fold(&fixture("anthropic_stream_overloaded.sse"), 64).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok(StreamEvent::TextDelta("Hel".into())));
    assert_eq!(items[1], Err(LlmError::Overloaded { retry_after: None }));
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_a_network_error() {
    let transcript = fixture("anthropic_stream_text_and_tool_use.sse");
    let cut = transcript.find("event: message_delta").unwrap();
    let items = fold(&transcript[..cut], 50).await;
    assert_eq!(items.last().unwrap(), &Err(LlmError::Network("stream ended early".into())));
    assert!(items.iter().all(|item| !matches!(item, Ok(StreamEvent::Finished(_)))));
}

#[tokio::test]
async fn invalid_accumulated_tool_input_is_an_invalid_response() {
    let transcript = fixture("anthropic_stream_text_and_tool_use.sse").replace(r#"": 3}"#, r#"": 3"#);
    let items = fold(&transcript, 100).await;
    assert!(
        matches!(items.last().unwrap(), Err(LlmError::InvalidResponse(message)) if message.contains("get_weather"))
    );
}

#[test]
fn ping_and_unknown_events_are_ignored() {
    let mut state = AnthropicStreamState::default();
    assert_eq!(state.on_event("ping", r#"{"type":"ping"}"#).unwrap(), vec![]);
    assert_eq!(state.on_event("future", r#"{"type":"future_event"}"#).unwrap(), vec![]);
}
