//! Claude Code's permission requests, answered by a person in the chat.
//!
//! The run's CLI calls valor's `approve` tool (`--permission-prompt-tool
//! mcp__valor__approve`) with `{tool_name, input}`. valor stores the request
//! (`pending`, with a deadline) before asking, posts the question with three
//! buttons — allow once, allow for this run, deny — and waits for the stored
//! answer (Telegram buttons and `POST /api/approvals/{id}` both write it).
//! The CLI gets JSON text: `{"behavior":"allow","updatedInput":…}` or
//! `{"behavior":"deny","message":…}`.
//!
//! Invariants: no answer by the deadline is a deny; any failure to store or
//! read is a deny (fail closed); "allow for this run" lets later requests for
//! the same tool in the same job through without asking; a re-run after a
//! restart asking the same thing waits on the stored request, not a new one.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::outbox::{Choice, Notice, NoticeKind, Outbox};
use crate::storage::{Approval, ApprovalAnswer, Store};
use crate::workspace::mcp_config::RunScope;

/// How often a waiting request re-reads its row.
const POLL: Duration = Duration::from_millis(200);
/// The longest input shown in the question.
const SHOWN_INPUT_CHARS: usize = 600;

/// Ask the chat whether the run may use `tool_name` with `input`; the CLI's answer as JSON.
pub async fn decide(store: &Store, outbox: &dyn Outbox, scope: &RunScope, tool_name: &str, input: &Value) -> Value {
    match ask(store, outbox, scope, tool_name, input).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(job = scope.job_id, "approval for {tool_name} failed, denying: {error}");
            deny("valor could not ask for permission; denied")
        }
    }
}

fn allow(input: &Value) -> Value {
    json!({"behavior": "allow", "updatedInput": input})
}

fn deny(message: &str) -> Value {
    json!({"behavior": "deny", "message": message})
}

async fn ask(
    store: &Store,
    outbox: &dyn Outbox,
    scope: &RunScope,
    tool_name: &str,
    input: &Value,
) -> Result<Value, crate::storage::StorageError> {
    if store.tool_allowed_for_run(scope.job_id, tool_name).await? {
        tracing::info!(job = scope.job_id, "{tool_name} allowed: allowed for this run earlier");
        return Ok(allow(input));
    }
    let timeout_ms = i64::try_from(scope.approval_timeout.as_millis()).unwrap_or(i64::MAX / 4);
    let expires = chrono::Utc::now().timestamp_millis().saturating_add(timeout_ms);
    let approval = store.open_approval(scope.job_id, &scope.conversation_id, tool_name, input, expires).await?;
    // Posted for a reused request too: the dedupe key makes it a no-op when the
    // question went out already, and a valor killed between storing the request
    // and posting it still asks on the re-run.
    let notice = Notice {
        conversation_id: scope.conversation_id.clone(),
        kind: NoticeKind::Info,
        text: question(&approval, scope.approval_timeout),
        dedupe_key: format!("approval:{}", approval.id),
    };
    if let Err(error) = outbox.post_question(notice, &choices(approval.id)).await {
        // Still answerable through the API until the deadline.
        tracing::warn!(approval = approval.id, "the approval question was not posted: {error}");
    }
    tracing::info!(job = scope.job_id, approval = approval.id, "waiting for permission to use {tool_name}");
    loop {
        let current = store.get_approval(approval.id).await?;
        match current.status.as_str() {
            "allowed" => return Ok(allow(input)),
            "denied" => return Ok(deny(&format!("The user denied {tool_name}."))),
            "timed_out" => {
                let secs = scope.approval_timeout.as_secs();
                return Ok(deny(&format!("Nobody answered the permission request within {secs} s; denied.")));
            }
            _ if chrono::Utc::now().timestamp_millis() >= current.expires_at_ms => {
                store.expire_approvals().await?;
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// The three answer buttons of request `id`.
fn choices(id: i64) -> Vec<Choice> {
    [
        ("✅ Allow once", ApprovalAnswer::AllowOnce),
        ("✅ Allow for this run", ApprovalAnswer::AllowForRun),
        ("⛔ Deny", ApprovalAnswer::Deny),
    ]
    .into_iter()
    .map(|(label, answer)| Choice { label: label.to_owned(), data: answer.button_data(id) })
    .collect()
}

fn question(approval: &Approval, timeout: Duration) -> String {
    let input = serde_json::to_string_pretty(&approval.input).unwrap_or_default();
    let mut shown: String = input.chars().take(SHOWN_INPUT_CHARS).collect();
    if shown.len() < input.len() {
        shown.push('…');
    }
    format!(
        "🔐 Claude Code (job #{}) asks to use **{}**:\n```\n{shown}\n```\nAllow it? No answer within {} s means no. \
         (Request #{}; also answerable with `POST /api/approvals/{}`.)",
        approval.job_id,
        approval.tool_name,
        timeout.as_secs(),
        approval.id,
        approval.id
    )
}
