//! Who may work in a workspace: a `[[workspace]]` entry with `allowed_users`
//! admits only those chat members (by Telegram id or username) and valor's
//! admins; an entry without the list admits everyone who reaches the chat.
//!
//! Invariant: the check is a pure function of the entry and the requester;
//! `Workspaces::for_conversation` applies it (and audit-logs the refusal)
//! before any tool or run touches the workspace, and a queued run is checked
//! again when it starts, with the requester stored in its payload.

use serde::{Deserialize, Serialize};

use crate::config::WorkspaceSettings;

/// The chat member behind a request (Telegram: the message's sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    pub id: i64,
    #[serde(default)]
    pub username: Option<String>,
}

/// Who is asking for workspace work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    #[serde(default)]
    pub user: Option<ChatUser>,
    #[serde(default)]
    pub is_admin: bool,
}

impl Requester {
    /// An operator door (API, terminal, MCP with a token): an admin without a chat identity.
    pub fn admin() -> Self {
        Self { user: None, is_admin: true }
    }

    /// The requester a queued job stored (`"requester"`); none stored: nobody in particular.
    pub fn from_payload(payload: &serde_json::Value) -> Self {
        payload.get("requester").and_then(|value| serde_json::from_value(value.clone()).ok()).unwrap_or_default()
    }

    /// Short text for refusals and the audit log.
    pub fn describe(&self) -> String {
        match &self.user {
            Some(ChatUser { id, username: Some(name) }) => format!("@{name} ({id})"),
            Some(ChatUser { id, username: None }) => format!("user {id}"),
            None if self.is_admin => "an admin".to_owned(),
            None => "an unidentified requester".to_owned(),
        }
    }
}

/// True when `requester` may work in `entry`.
pub fn may_use(entry: &WorkspaceSettings, requester: &Requester) -> bool {
    if entry.allowed_users.is_empty() || requester.is_admin {
        return true;
    }
    let Some(user) = &requester.user else { return false };
    entry.allowed_users.iter().any(|allowed| allowed.matches(Some(user.id), user.username.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserRef;

    fn entry(allowed: Vec<UserRef>) -> WorkspaceSettings {
        WorkspaceSettings {
            name: "shop".into(),
            path: "/srv/shop".into(),
            chats: vec![1],
            notion_database: None,
            allowed_users: allowed,
            default_branch: None,
        }
    }

    fn user(id: i64, username: Option<&str>) -> Requester {
        Requester { user: Some(ChatUser { id, username: username.map(str::to_owned) }), is_admin: false }
    }

    #[test]
    fn only_listed_members_and_admins_may_use_a_restricted_workspace() {
        let restricted = entry(vec![UserRef::Id(7), UserRef::Username("@Carol".into())]);
        let cases = [
            (user(7, None), true),
            (user(8, Some("carol")), true),
            (user(8, Some("CAROL")), true),
            (user(8, Some("mallory")), false),
            (user(8, None), false),
            (user(-7, Some("carol_")), false),
            (Requester { user: None, is_admin: false }, false),
            (Requester::admin(), true),
            (Requester { user: Some(ChatUser { id: 99, username: None }), is_admin: true }, true),
        ];
        for (requester, expected) in cases {
            assert_eq!(may_use(&restricted, &requester), expected, "{requester:?}");
        }
        assert!(may_use(&entry(Vec::new()), &user(8, None)), "no list: everyone in the chat");
    }

    #[test]
    fn requesters_are_described_without_guessing() {
        assert_eq!(user(5, Some("bob")).describe(), "@bob (5)");
        assert_eq!(user(5, None).describe(), "user 5");
        assert_eq!(Requester::admin().describe(), "an admin");
    }
}
