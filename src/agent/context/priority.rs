//! How important one stored message is for the next turn. Cheap checks only
//! (no regex, no allocation): this runs for every message of every turn.

use crate::storage::{MessageRole, StoredMessage};

/// Ordered: a higher priority is kept first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

/// Tool work within this many newest messages counts as still in use.
pub(super) const RECENT_MESSAGES: usize = 40;

/// Prefixes by which a user pins a message ("remember: the VPN code is …").
const PIN_PREFIXES: &[&str] = &["remember:", "remember that", "important:", "note:", "pin:", "📌"];

/// Replies that carry no information of their own.
const ACKNOWLEDGEMENTS: &[&str] =
    &["ok", "okay", "k", "thanks", "thank you", "thx", "cool", "great", "noted", "got it", "sure", "yes", "no", "👍"];

pub(super) fn has_tool_use(message: &StoredMessage) -> bool {
    message.role == MessageRole::Assistant
        && message
            .content
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b.get("type").and_then(|t| t.as_str()) == Some("tool_use")))
}

fn has_tool_error(message: &StoredMessage) -> bool {
    message.content.as_array().is_some_and(|blocks| {
        blocks.iter().any(|b| b.get("is_error").and_then(serde_json::Value::as_bool) == Some(true))
    })
}

fn is_acknowledgement(text: &str) -> bool {
    let trimmed = text.trim().trim_end_matches(['.', '!']);
    trimmed.len() <= 12 && ACKNOWLEDGEMENTS.iter().any(|ack| trimmed.eq_ignore_ascii_case(ack))
}

fn is_pinned(text: &str) -> bool {
    let start: String = text.trim_start().chars().take(16).collect::<String>().to_lowercase();
    PIN_PREFIXES.iter().any(|prefix| start.starts_with(prefix))
}

/// A job's progress line as `JobContext::notify_progress` words it
/// (`Job #12: step 3 — Edit …`). A finished job's outcome supersedes its
/// progress, so progress is not kept like valor's other notices (a code
/// run's outcome — `Job #12 (claude_code) finished.` — and failures are).
fn is_job_progress(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("Job #") else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(": ")
}

/// The priority of one message; `recent` is whether it is among the newest messages.
pub(super) fn of(message: &StoredMessage, recent: bool) -> Priority {
    let tool_work = if recent { Priority::High } else { Priority::Low };
    match message.role {
        MessageRole::System if is_job_progress(&message.text) => Priority::Low,
        MessageRole::System => Priority::Critical,
        MessageRole::User if is_pinned(&message.text) => Priority::Critical,
        MessageRole::User if message.text.contains('?') => Priority::High,
        MessageRole::Tool if has_tool_error(message) => Priority::High,
        MessageRole::Tool => tool_work,
        MessageRole::Assistant if has_tool_use(message) => tool_work,
        MessageRole::User | MessageRole::Assistant if is_acknowledgement(&message.text) => Priority::Low,
        MessageRole::User | MessageRole::Assistant => Priority::Medium,
    }
}
