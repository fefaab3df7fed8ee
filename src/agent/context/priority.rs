//! Which stored messages must outlive compaction. Cheap checks only (no
//! regex, no allocation): this runs for every message of every turn.

use crate::storage::{MessageRole, StoredMessage};

/// Prefixes by which a user pins a message ("remember: the VPN code is …").
const PIN_PREFIXES: &[&str] = &["remember:", "remember that", "important:", "note:", "pin:", "📌"];

pub(super) fn has_tool_use(message: &StoredMessage) -> bool {
    message.role == MessageRole::Assistant
        && message
            .content
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b.get("type").and_then(|t| t.as_str()) == Some("tool_use")))
}

/// A user message pinned by its wording: its turn (with the answer) is kept.
pub(super) fn is_pinned(message: &StoredMessage) -> bool {
    if message.role != MessageRole::User {
        return false;
    }
    let start: String = message.text.trim_start().chars().take(16).collect::<String>().to_lowercase();
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

/// valor's own notices (failures, job outcomes): kept whatever the budget.
pub(super) fn is_critical_notice(message: &StoredMessage) -> bool {
    message.role == MessageRole::System && !is_job_progress(&message.text)
}

/// An assistant message that answers in text (no tool call).
pub(super) fn is_text_answer(message: &StoredMessage) -> bool {
    message.role == MessageRole::Assistant && !message.text.trim().is_empty() && !has_tool_use(message)
}
