//! Stored messages → the message list a model accepts. Pure and tested:
//! roles alternate, the list starts with a user message, every tool call has
//! its result (calls left dangling by a crash mid-turn are dropped), and
//! valor's own notices (failures, job results) reach the model as clearly
//! marked user-side context, never as something the user said.

use std::collections::HashSet;

use crate::llm::{ContentBlock, Message, Role};
use crate::storage::{MessageRole, StoredMessage};

/// How valor's own notices are marked when they reach the model.
pub const NOTICE_PREFIX: &str = "[notice from valor, not written by the user]";

/// Convert stored messages (oldest first) into a valid model conversation.
pub fn to_model_messages(stored: &[StoredMessage]) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
    for message in stored {
        let role = match message.role {
            MessageRole::User | MessageRole::Tool | MessageRole::System => Role::User,
            MessageRole::Assistant => Role::Assistant,
        };
        let blocks = if message.role == MessageRole::System {
            vec![ContentBlock::Text { text: format!("{NOTICE_PREFIX} {}", message.text) }]
        } else {
            <Vec<ContentBlock> as serde::Deserialize>::deserialize(&message.content)
                .unwrap_or_else(|_| vec![ContentBlock::Text { text: message.text.clone() }])
        };
        let blocks: Vec<ContentBlock> =
            blocks.into_iter().filter(|b| !is_empty_text(b)).map(image_to_placeholder).collect();
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message { role, content: blocks }),
        }
    }
    drop_unanswered_tool_calls(&mut messages);
    // A notice stored between a tool call and its result (a run's outcome
    // arriving mid-turn) is merged into the results' message: providers want
    // the results first (Anthropic refuses text before them).
    for message in messages.iter_mut().filter(|m| m.role == Role::User) {
        message.content.sort_by_key(|block| !matches!(block, ContentBlock::ToolResult { .. }));
    }
    // A model conversation starts with the user speaking (not with a tool result).
    while messages.first().is_some_and(|m| m.role != Role::User || starts_with_tool_result(m)) {
        messages.remove(0);
    }
    messages
}

/// Images never come back from stored history as bytes (see `agent::media`).
fn image_to_placeholder(block: ContentBlock) -> ContentBlock {
    match block {
        ContentBlock::Image { media_type, .. } => {
            ContentBlock::Text { text: format!("[image ({media_type}) omitted]") }
        }
        other => other,
    }
}

fn is_empty_text(block: &ContentBlock) -> bool {
    matches!(block, ContentBlock::Text { text } if text.trim().is_empty())
}

fn starts_with_tool_result(message: &Message) -> bool {
    message.content.iter().any(|b| matches!(b, ContentBlock::ToolResult { .. }))
}

/// Remove tool calls without a result in the next message, and results
/// without a call in the previous one; then drop messages left empty and
/// merge neighbours that now share a role.
fn drop_unanswered_tool_calls(messages: &mut Vec<Message>) {
    for index in 0..messages.len() {
        if messages[index].role != Role::Assistant {
            continue;
        }
        let answered: HashSet<String> = messages
            .get(index + 1)
            .map(|next| {
                next.content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        messages[index].content.retain(|b| match b {
            ContentBlock::ToolUse { id, .. } => answered.contains(id),
            _ => true,
        });
    }
    for index in 0..messages.len() {
        let called: HashSet<String> = match index.checked_sub(1).and_then(|i| messages.get(i)) {
            Some(previous) if previous.role == Role::Assistant => previous
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect(),
            _ => HashSet::new(),
        };
        messages[index].content.retain(|b| match b {
            ContentBlock::ToolResult { tool_use_id, .. } => called.contains(tool_use_id),
            _ => true,
        });
    }
    messages.retain(|m| !m.content.is_empty());
    let mut merged: Vec<Message> = Vec::with_capacity(messages.len());
    for message in messages.drain(..) {
        match merged.last_mut() {
            Some(last) if last.role == message.role => last.content.extend(message.content),
            _ => merged.push(message),
        }
    }
    *messages = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(id: i64, role: MessageRole, content: serde_json::Value) -> StoredMessage {
        StoredMessage {
            id,
            conversation_id: "c".into(),
            role,
            content,
            text: String::new(),
            turn_id: None,
            created_at_ms: id,
        }
    }

    fn text(t: &str) -> serde_json::Value {
        json!([{"type": "text", "text": t}])
    }

    #[test]
    fn a_plain_exchange_passes_through_and_notices_are_marked_as_not_from_the_user() {
        let mut notice = stored(2, MessageRole::System, text("Job 4 finished."));
        notice.text = "Job 4 finished.".into();
        let history =
            [stored(1, MessageRole::User, text("hi")), notice, stored(3, MessageRole::Assistant, text("hello"))];
        let messages = to_model_messages(&history);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].text(), format!("hi{NOTICE_PREFIX} Job 4 finished."));
        assert_eq!(messages[1], Message::assistant_text("hello"));
    }

    #[test]
    fn consecutive_user_messages_are_merged_so_roles_alternate() {
        let history = [stored(1, MessageRole::User, text("a")), stored(2, MessageRole::User, text("b"))];
        let messages = to_model_messages(&history);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].text(), "ab");
    }

    #[test]
    fn a_tool_call_with_its_result_is_kept() {
        let history = [
            stored(1, MessageRole::User, text("find x")),
            stored(
                2,
                MessageRole::Assistant,
                json!([{"type": "tool_use", "id": "t1", "name": "search_history", "input": {"query": "x"}}]),
            ),
            stored(
                3,
                MessageRole::Tool,
                json!([{"type": "tool_result", "tool_use_id": "t1", "content": "none", "is_error": false}]),
            ),
            stored(4, MessageRole::Assistant, text("nothing found")),
        ];
        let messages = to_model_messages(&history);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[1].tool_uses().count(), 1);
    }

    #[test]
    fn a_dangling_tool_call_from_a_crashed_turn_is_dropped() {
        let history = [
            stored(1, MessageRole::User, text("find x")),
            stored(
                2,
                MessageRole::Assistant,
                json!([{"type": "text", "text": "looking"}, {"type": "tool_use", "id": "t1", "name": "s", "input": {}}]),
            ),
            stored(3, MessageRole::User, text("hello?")),
        ];
        let messages = to_model_messages(&history);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].tool_uses().count(), 0);
        assert_eq!(messages[1].text(), "looking");
    }

    #[test]
    fn a_notice_stored_between_a_tool_call_and_its_result_follows_the_result() {
        let mut notice = stored(3, MessageRole::System, text("Job #1 (claude_code) finished."));
        notice.text = "Job #1 (claude_code) finished.".into();
        let history = [
            stored(1, MessageRole::User, text("status?")),
            stored(
                2,
                MessageRole::Assistant,
                json!([{"type": "tool_use", "id": "t1", "name": "job_status", "input": {}}]),
            ),
            notice,
            stored(
                4,
                MessageRole::Tool,
                json!([{"type": "tool_result", "tool_use_id": "t1", "content": "running", "is_error": false}]),
            ),
        ];
        let messages = to_model_messages(&history);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].tool_uses().count(), 1, "the call keeps its result");
        assert!(matches!(messages[2].content[0], ContentBlock::ToolResult { .. }), "{:?}", messages[2]);
        assert_eq!(messages[2].text(), format!("{NOTICE_PREFIX} Job #1 (claude_code) finished."));
    }

    #[test]
    fn a_stored_inline_image_comes_back_as_a_short_placeholder_not_base64() {
        let history = [stored(
            1,
            MessageRole::User,
            json!([{"type": "text", "text": "look"}, {"type": "image", "media_type": "image/png", "data_base64": "AAAA"}]),
        )];
        let messages = to_model_messages(&history);
        assert_eq!(messages[0].text(), "look[image (image/png) omitted]");
    }

    #[test]
    fn history_never_starts_with_an_assistant_message_or_an_orphan_tool_result() {
        let history = [
            stored(
                1,
                MessageRole::Tool,
                json!([{"type": "tool_result", "tool_use_id": "t0", "content": "x", "is_error": false}]),
            ),
            stored(2, MessageRole::Assistant, text("earlier answer")),
            stored(3, MessageRole::User, text("next")),
        ];
        let messages = to_model_messages(&history);
        assert_eq!(messages, vec![Message::user_text("next")]);
    }
}
