//! Workspaces: which project directory a chat works in and who may use it
//! (`access.rs`), the checks every path a tool or a code run touches goes
//! through (`paths.rs`), the executor router (`router.rs`), the runners —
//! Claude Code (`claude.rs`, events in `stream_json.rs`) and the Gemini CLI
//! (`gemini.rs`), both on `process.rs` — and the subagent templates
//! (`subagents.rs`).
//!
//! Invariants: a conversation reaches a workspace only through
//! [`Workspaces::for_conversation`] — a Telegram chat only the workspace
//! that lists it, a web/API/terminal conversation only a workspace it names
//! — and never a default directory. Every lookup and path decision is
//! audit-logged (kind `workspace`). Each workspace forbids the others' roots
//! and valor's data directory.

mod access;
pub mod child;
pub mod claude;
pub mod gemini;
pub mod git;
pub mod mcp_client;
pub mod mcp_config;
mod open;
pub mod orphans;
mod paths;
pub mod process;
pub mod router;
pub mod runs;
pub mod stream_json;
pub mod subagents;

pub use access::{ChatUser, Requester, may_use};
pub use open::OpenedFile;
pub use paths::{MAX_NAME_BYTES, MAX_PATH_BYTES, PathRefusal, Workspace};

use std::path::{Path, PathBuf};

use crate::config::WorkspaceSettings;
use crate::storage::{Conversation, NewAuditEvent, Store};

/// The job kind of a delegated Claude Code run (queued by `delegate_code_task`, run by `jobs`).
pub const CLAUDE_CODE_KIND: &str = "claude_code";
/// The job kind of a delegated Gemini CLI run (background work routed by `router`).
pub const GEMINI_CLI_KIND: &str = "gemini_cli";

/// Why a conversation cannot work in a workspace (the text is the user's answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("this chat has no workspace. An admin can add it to a `[[workspace]]` entry in valor.toml (chats = [{0}])")]
    NoWorkspaceForChat(i64),
    #[error("name the workspace to work in (configured: {0})")]
    NameRequired(String),
    #[error("no workspace is configured. An admin can add a `[[workspace]]` entry to valor.toml")]
    NoneConfigured,
    #[error("there is no workspace named {0:?}")]
    Unknown(String),
    #[error("this chat works in workspace {mapped:?}, not {requested:?}")]
    NotThisChats { mapped: String, requested: String },
    #[error("{who} may not work in workspace {name:?}. An admin can add them to its `allowed_users` in valor.toml")]
    NotAllowed { name: String, who: String },
    #[error("workspace {name:?} is not usable: {reason}")]
    Unusable { name: String, reason: PathRefusal },
}

/// The configured workspaces and what no workspace may reach.
#[derive(Debug, Clone, Default)]
pub struct Workspaces {
    entries: Vec<WorkspaceSettings>,
    data_dir: PathBuf,
}

impl Workspaces {
    pub fn new(entries: Vec<WorkspaceSettings>, data_dir: &Path) -> Self {
        Self { entries, data_dir: data_dir.to_path_buf() }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|entry| entry.name.as_str()).collect()
    }

    /// Every configured entry, in configuration order.
    pub fn entries(&self) -> &[WorkspaceSettings] {
        &self.entries
    }

    /// The entry named `name` (for operator commands, which need no conversation).
    pub fn by_name(&self, name: &str) -> Result<&WorkspaceSettings, WorkspaceError> {
        if self.entries.is_empty() {
            return Err(WorkspaceError::NoneConfigured);
        }
        self.entries.iter().find(|entry| entry.name == name).ok_or_else(|| WorkspaceError::Unknown(name.to_owned()))
    }

    /// The configuration entry a conversation may use (no file-system access).
    pub fn entry_for(
        &self,
        conversation: &Conversation,
        requested: Option<&str>,
    ) -> Result<&WorkspaceSettings, WorkspaceError> {
        let requested = requested.map(str::trim).filter(|name| !name.is_empty());
        if self.entries.is_empty() {
            return Err(WorkspaceError::NoneConfigured);
        }
        // A chat-bound conversation (Telegram) reaches only the workspace listing its chat.
        if let Some(chat_id) = conversation.chat_id {
            let Some(mapped) = self.entries.iter().find(|entry| entry.chats.contains(&chat_id)) else {
                return Err(WorkspaceError::NoWorkspaceForChat(chat_id));
            };
            return match requested {
                Some(name) if name != mapped.name => {
                    Err(WorkspaceError::NotThisChats { mapped: mapped.name.clone(), requested: name.to_owned() })
                }
                _ => Ok(mapped),
            };
        }
        match requested {
            Some(name) => self.by_name(name),
            None => Err(WorkspaceError::NameRequired(self.names().join(", "))),
        }
    }

    /// The checked workspace for an entry: its root canonical, the other roots and the data dir forbidden.
    pub fn open(&self, entry: &WorkspaceSettings) -> Result<Workspace, WorkspaceError> {
        let mut forbidden: Vec<PathBuf> =
            self.entries.iter().filter(|other| other.name != entry.name).map(|other| other.path.clone()).collect();
        forbidden.push(self.data_dir.clone());
        Workspace::open(&entry.name, &entry.path, &forbidden)
            .map_err(|reason| WorkspaceError::Unusable { name: entry.name.clone(), reason })
    }

    /// Look up and open the conversation's workspace for `requester` (its
    /// `allowed_users` apply), audit-logging the decision.
    pub async fn for_conversation(
        &self,
        store: &Store,
        conversation: &Conversation,
        requested: Option<&str>,
        requester: &Requester,
    ) -> Result<Workspace, WorkspaceError> {
        let outcome = self
            .entry_for(conversation, requested)
            .and_then(|entry| match may_use(entry, requester) {
                true => Ok(entry),
                false => Err(WorkspaceError::NotAllowed { name: entry.name.clone(), who: requester.describe() }),
            })
            .and_then(|entry| self.open(entry));
        let (subject, decision, reason) = match &outcome {
            Ok(workspace) => (workspace.name.clone(), "allowed", String::new()),
            Err(error @ WorkspaceError::NotAllowed { name, .. }) => (name.clone(), "denied", error.to_string()),
            Err(error) => (requested.unwrap_or("").to_owned(), "denied", error.to_string()),
        };
        let detail = serde_json::json!({"check": "lookup", "reason": reason, "requester": requester});
        audit(store, &conversation.id, &subject, decision, detail).await;
        outcome
    }
}

/// Resolve `requested` in `workspace` and audit-log the decision (actor: the conversation).
pub async fn resolve_audited(
    store: &Store,
    actor: &str,
    workspace: &Workspace,
    requested: &str,
) -> Result<PathBuf, PathRefusal> {
    let outcome = workspace.resolve(requested);
    let (decision, detail) = match &outcome {
        Ok(path) => ("allowed", serde_json::json!({"check": "path", "requested": requested, "resolved": path})),
        Err(refusal) => {
            ("denied", serde_json::json!({"check": "path", "requested": requested, "reason": refusal.to_string()}))
        }
    };
    audit(store, actor, &workspace.name, decision, detail).await;
    outcome
}

async fn audit(store: &Store, actor: &str, subject: &str, decision: &str, detail: serde_json::Value) {
    let event = NewAuditEvent {
        kind: "workspace".into(),
        actor: actor.to_owned(),
        subject: subject.to_owned(),
        decision: decision.to_owned(),
        detail,
    };
    if let Err(error) = store.record_audit(event).await {
        tracing::warn!("a workspace decision was not audit-logged: {error}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(name: &str, path: &str, chats: &[i64]) -> WorkspaceSettings {
        WorkspaceSettings {
            name: name.into(),
            path: path.into(),
            chats: chats.to_vec(),
            notion_database: None,
            allowed_users: Vec::new(),
            default_branch: None,
        }
    }

    fn conversation(chat_id: Option<i64>) -> Conversation {
        Conversation {
            id: "c1".into(),
            title: "t".into(),
            channel: if chat_id.is_some() { "telegram".into() } else { "api".into() },
            chat_id,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn workspaces() -> Workspaces {
        Workspaces::new(vec![entry("shop", "/srv/shop", &[10, 11]), entry("blog", "/srv/blog", &[20])], Path::new("/d"))
    }

    #[test]
    fn chats_reach_only_their_own_workspace_and_others_get_clear_answers() {
        let w = workspaces();
        let name = |result: Result<&WorkspaceSettings, WorkspaceError>| result.map(|e| e.name.clone());
        type Case<'a> = (Option<i64>, Option<&'a str>, Result<String, WorkspaceError>);
        let cases: Vec<Case> = vec![
            (Some(10), None, Ok("shop".into())),
            (Some(11), Some("shop"), Ok("shop".into())),
            (Some(20), None, Ok("blog".into())),
            (Some(20), Some(" "), Ok("blog".into())),
            (
                Some(20),
                Some("shop"),
                Err(WorkspaceError::NotThisChats { mapped: "blog".into(), requested: "shop".into() }),
            ),
            (Some(99), None, Err(WorkspaceError::NoWorkspaceForChat(99))),
            (Some(99), Some("shop"), Err(WorkspaceError::NoWorkspaceForChat(99))),
            (None, Some("blog"), Ok("blog".into())),
            (None, Some("nope"), Err(WorkspaceError::Unknown("nope".into()))),
            (None, None, Err(WorkspaceError::NameRequired("shop, blog".into()))),
        ];
        for (chat, requested, expected) in cases {
            assert_eq!(name(w.entry_for(&conversation(chat), requested)), expected, "{chat:?} {requested:?}");
        }
        let empty = Workspaces::new(Vec::new(), Path::new("/d"));
        assert_eq!(empty.entry_for(&conversation(None), Some("x")).err(), Some(WorkspaceError::NoneConfigured));
    }

    #[test]
    fn the_answer_for_an_unmapped_chat_tells_the_admin_what_to_configure() {
        let text = WorkspaceError::NoWorkspaceForChat(42).to_string();
        assert!(text.contains("no workspace") && text.contains("chats = [42]"), "{text}");
    }

    #[tokio::test]
    async fn lookups_and_path_decisions_are_audit_logged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        std::fs::create_dir_all(&root).unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let w = Workspaces::new(vec![entry("shop", root.to_str().unwrap(), &[])], &dir.path().join("data"));
        let admin = Requester::admin();
        let workspace = w.for_conversation(&store, &conversation(None), Some("shop"), &admin).await.unwrap();
        assert!(w.for_conversation(&store, &conversation(Some(5)), None, &admin).await.is_err());
        assert!(resolve_audited(&store, "c1", &workspace, "a.txt").await.is_ok());
        assert!(resolve_audited(&store, "c1", &workspace, "../x").await.is_err());
        let events = store.list_audit(Some("workspace"), 10).await.unwrap();
        let mut decisions: Vec<&str> = events.iter().map(|e| e.decision.as_str()).collect();
        decisions.sort_unstable();
        assert_eq!(decisions, ["allowed", "allowed", "denied", "denied"]);
    }

    #[tokio::test]
    async fn a_member_outside_allowed_users_is_refused_by_name_and_audit_logged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        std::fs::create_dir_all(&root).unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let mut restricted = entry("shop", root.to_str().unwrap(), &[10]);
        restricted.allowed_users = vec![crate::config::UserRef::Id(1)];
        let w = Workspaces::new(vec![restricted], &dir.path().join("data"));
        let mallory = Requester { user: Some(ChatUser { id: 2, username: Some("mallory".into()) }), is_admin: false };
        let refused = w.for_conversation(&store, &conversation(Some(10)), None, &mallory).await.unwrap_err();
        assert_eq!(refused, WorkspaceError::NotAllowed { name: "shop".into(), who: "@mallory (2)".into() });
        assert!(refused.to_string().contains("allowed_users"), "{refused}");
        let alice = Requester { user: Some(ChatUser { id: 1, username: None }), is_admin: false };
        assert!(w.for_conversation(&store, &conversation(Some(10)), None, &alice).await.is_ok());
        let events = store.list_audit(Some("workspace"), 10).await.unwrap();
        let denied = events.iter().find(|e| e.decision == "denied").unwrap();
        assert_eq!(denied.subject, "shop");
        assert_eq!(denied.detail["requester"]["user"]["id"], 2, "{:?}", denied.detail);
    }
}
