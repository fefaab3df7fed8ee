//! Inline-button answers to Claude Code's permission requests
//! (`callback_query` updates with data `approval:<id>:<once|run|deny>`;
//! `branch:…` presses go on to `branches`).
//!
//! Who may answer ([`may_answer`], a pure function): admins; otherwise, when
//! the chat's workspace lists `allowed_users`, only those; otherwise in a
//! private chat the DM whitelist, and in a group nobody but admins. The
//! press must come from the chat the question was asked in.
//!
//! Every press is answered with `answerCallbackQuery` (a short toast); a
//! press that decided the request also edits the question (durable outbox,
//! idempotent) to show the decision, which removes the buttons.

use serde_json::Value;

use super::Shared;
use super::deliver::build_replies;
use crate::config::{TelegramSettings, UserRef, WorkspaceSettings};
use crate::storage::{AnswerOutcome, ApprovalAnswer, StorageError};

/// The person pressing and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presser<'a> {
    pub chat_id: i64,
    pub chat_type: &'a str,
    pub user_id: i64,
    pub username: Option<&'a str>,
}

/// May this person answer a permission request in this chat?
pub fn may_answer(rules: &TelegramSettings, workspaces: &[WorkspaceSettings], presser: &Presser<'_>) -> bool {
    if rules.admins.contains(&presser.user_id) {
        return true;
    }
    let listed = |list: &[UserRef]| {
        list.iter().any(|user| match user {
            UserRef::Id(id) => *id == presser.user_id,
            UserRef::Username(name) => {
                presser.username.is_some_and(|username| username.eq_ignore_ascii_case(name.trim_start_matches('@')))
            }
        })
    };
    let workspace = workspaces.iter().find(|workspace| workspace.chats.contains(&presser.chat_id));
    match workspace {
        Some(workspace) if !workspace.allowed_users.is_empty() => listed(&workspace.allowed_users),
        _ => presser.chat_type == "private" && listed(&rules.allowed_users),
    }
}

/// Handle one `callback_query`. Storage errors are returned (the update is then not acknowledged).
pub(super) async fn handle_callback(shared: &Shared, query: &Value) -> Result<(), StorageError> {
    let Some(query_id) = query["id"].as_str() else { return Ok(()) };
    let message = &query["message"];
    let (Some(chat_id), Some(message_id), Some(user_id)) =
        (message["chat"]["id"].as_i64(), message["message_id"].as_i64(), query["from"]["id"].as_i64())
    else {
        return toast(shared, query_id, "This button no longer works.").await;
    };
    let presser = Presser {
        chat_id,
        chat_type: message["chat"]["type"].as_str().unwrap_or(""),
        user_id,
        username: query["from"]["username"].as_str(),
    };
    let data = query["data"].as_str().unwrap_or("");
    if let Some(pressed) = crate::workspace::runs::parse_button(data) {
        return super::branches::handle_callback(shared, query_id, &presser, pressed).await;
    }
    let Some((approval_id, answer)) = ApprovalAnswer::parse_button(data) else {
        return toast(shared, query_id, "This button no longer works.").await;
    };
    let approval = match shared.store.get_approval(approval_id).await {
        Ok(approval) => approval,
        Err(StorageError::NotFound { .. }) => return toast(shared, query_id, "That request no longer exists.").await,
        Err(error) => return Err(error),
    };
    let conversation = shared.store.get_conversation(&approval.conversation_id).await?;
    if conversation.chat_id != Some(chat_id) || !may_answer(&shared.settings, &shared.workspaces, &presser) {
        tracing::warn!(approval = approval_id, user = user_id, chat = chat_id, "telegram: approval answer refused");
        return toast(shared, query_id, "You are not allowed to answer this request.").await;
    }
    let by = format!("telegram:{user_id}");
    let (decided, text) = match shared.store.answer_approval(approval_id, answer, &by).await? {
        AnswerOutcome::Decided(approval) => (Some(approval), outcome_text(answer)),
        AnswerOutcome::AlreadyDecided(approval) => (None, format!("Already decided: {}", approval.status)),
    };
    toast(shared, query_id, &text).await?;
    if let Some(approval) = decided {
        tracing::info!(approval = approval.id, user = user_id, "telegram: approval answered: {}", answer.as_str());
        let who = presser.username.map_or_else(|| format!("user {user_id}"), |name| format!("@{name}"));
        let edited = format!(
            "🔐 Claude Code (job #{}) asked to use **{}** — {} by {who}.",
            approval.job_id,
            approval.tool_name,
            outcome_text(answer).to_lowercase()
        );
        let thread = message["message_thread_id"].as_i64();
        let key = format!("approval:{}:decided", approval.id);
        shared
            .store
            .telegram_queue_replies(&build_replies((chat_id, thread), None, &edited, Some(message_id), &key))
            .await?;
        shared.outbox_ready.notify_one();
    }
    Ok(())
}

fn outcome_text(answer: ApprovalAnswer) -> String {
    match answer {
        ApprovalAnswer::AllowOnce => "✅ Allowed once",
        ApprovalAnswer::AllowForRun => "✅ Allowed for this run",
        ApprovalAnswer::Deny => "⛔ Denied",
    }
    .to_owned()
}

pub(super) async fn toast(shared: &Shared, query_id: &str, text: &str) -> Result<(), StorageError> {
    if let Err(error) = shared.api.answer_callback_query(query_id, text).await {
        tracing::warn!("telegram: answerCallbackQuery failed: {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> TelegramSettings {
        TelegramSettings {
            admins: vec![1],
            allowed_users: vec![UserRef::Id(2), UserRef::Username("@carol".into())],
            ..TelegramSettings::default()
        }
    }

    fn workspace(chats: &[i64], allowed: Vec<UserRef>) -> WorkspaceSettings {
        WorkspaceSettings {
            name: "w".into(),
            path: "/srv/w".into(),
            chats: chats.to_vec(),
            notion_database: None,
            allowed_users: allowed,
            default_branch: None,
        }
    }

    #[test]
    fn who_may_answer_a_permission_request() {
        let press = |chat_id, chat_type, user_id, username| Presser { chat_id, chat_type, user_id, username };
        let none: Vec<WorkspaceSettings> = Vec::new();
        let strict = vec![workspace(&[10, -5], vec![UserRef::Id(3)])];
        let cases = [
            (press(10, "private", 1, None), &none, true, "admin"),
            (press(10, "private", 2, None), &none, true, "dm whitelist by id"),
            (press(10, "private", 9, Some("Carol")), &none, true, "dm whitelist by username"),
            (press(10, "private", 9, Some("mallory")), &none, false, "stranger"),
            (press(-5, "supergroup", 2, None), &none, false, "group member without a workspace list"),
            (press(10, "private", 2, None), &strict, false, "the workspace list wins over the dm whitelist"),
            (press(-5, "supergroup", 3, None), &strict, true, "workspace allowed user in the group"),
            (press(-5, "supergroup", 1, None), &strict, true, "admin everywhere"),
        ];
        for (presser, workspaces, expected, case) in cases {
            assert_eq!(may_answer(&rules(), workspaces, &presser), expected, "{case}");
        }
    }
}
