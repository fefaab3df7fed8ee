//! Tests for the OpenAI SSE folding, fed a recorded transcript split into
//! small byte chunks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::llm::sse::{chunked_body, collect, fixture, fold_sse_stream};

async fn fold(transcript: &str, chunk_size: usize) -> Vec<Result<StreamEvent, LlmError>> {
    collect(fold_sse_stream(chunked_body(transcript, chunk_size), OpenAiStreamState::default())).await
}

#[tokio::test]
async fn tool_call_arguments_in_three_fragments_are_assembled_at_done() {
    let items = fold(&fixture("openai_stream_tool_call.sse"), 23).await;
    let events: Vec<StreamEvent> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0], StreamEvent::TextDelta("Checking".into()));
    assert_eq!(events[1], StreamEvent::TextDelta(" now.".into()));
    assert_eq!(events.len(), 3);
    let StreamEvent::Finished(response) = &events[2] else { panic!("last event is not Finished") };
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage, Usage { input_tokens: 85, output_tokens: 21 });
    assert_eq!(response.model, "gpt-4.1-mini-2025-04-14");
    assert_eq!(
        response.message.content,
        vec![
            ContentBlock::Text { text: "Checking now.".into() },
            ContentBlock::ToolUse {
                id: "call_abc".into(),
                name: "get_weather".into(),
                input: json!({ "city": "Paris", "days": 3 })
            },
        ]
    );
}

#[tokio::test]
async fn a_stream_without_done_is_a_network_error() {
    let transcript = fixture("openai_stream_tool_call.sse").replace("data: [DONE]", "");
    let items = fold(&transcript, 40).await;
    assert_eq!(items.last().unwrap(), &Err(LlmError::Network("stream ended early".into())));
}

#[tokio::test]
async fn broken_streamed_arguments_are_an_invalid_response() {
    let transcript = fixture("openai_stream_tool_call.sse").replace(r#"ys\":3}"#, r#"ys\":"#);
    let items = fold(&transcript, 40).await;
    assert!(matches!(items.last().unwrap(), Err(LlmError::InvalidResponse(_))));
}

#[test]
fn an_error_chunk_is_classified() {
    let mut state = OpenAiStreamState::default();
    let overloaded = r#"{"error":{"message":"busy","type":"server_error","code":503}}"#;
    assert_eq!(state.on_event("", overloaded), Err(LlmError::Overloaded { retry_after: None }));
    let context = r#"{"error":{"message":"maximum context length exceeded","code":"context_length_exceeded"}}"#;
    assert_eq!(state.on_event("", context), Err(LlmError::ContextTooLong));
}
