//! Which stored messages must outlive compaction. Cheap checks only (no
//! regex, no allocation): this runs for every message of every turn.

use crate::storage::{MessageRole, StoredMessage};

/// Prefixes by which a user pins a message ("remember: the VPN code is …").
const PIN_PREFIXES: &[&str] = &["remember:", "remember that", "important:", "note:", "pin:", "📌"];

/// A user message pinned by its wording: its turn (with the answer) is kept.
pub(super) fn is_pinned(message: &StoredMessage) -> bool {
    let text = message.text.trim_start().as_bytes();
    message.role == MessageRole::User
        && PIN_PREFIXES
            .iter()
            .any(|prefix| text.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes())))
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
