//! Which project workspace a turn's system prompt names: the Telegram
//! chat's own `[[workspace]]` entry (`Workspaces::entry_for`), or — for a
//! conversation without a chat (web, API, terminal) — the configured
//! workspaces the requester may use, one of which a code task must name.
//!
//! Invariants: this only describes; access is still decided (and
//! audit-logged) by `Workspaces::for_conversation` when a tool acts, so
//! nothing here is an access decision. A workspace's default branch costs
//! a few read-only git commands, so it is cached per workspace for
//! [`BRANCH_TTL`]: a turn normally starts no process for the prompt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::prompt::{ProjectScope, WorkspaceFacts};
use crate::config::{ChildEnv, WorkspaceSettings};
use crate::storage::Conversation;
use crate::workspace::{Requester, Workspaces, may_use};

/// How long a looked-up default branch is reused.
pub const BRANCH_TTL: Duration = Duration::from_secs(60);

/// The configured workspaces as the prompt sees them, with the default branches looked up lately.
#[derive(Debug, Default)]
pub struct ProjectDirectory {
    workspaces: Workspaces,
    child_env: ChildEnv,
    /// The run branches' prefix (`[git] branch_prefix`, e.g. `valor/`).
    branch_prefix: String,
    /// Workspace name → (looked up at, default branch).
    branches: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl ProjectDirectory {
    pub fn new(workspaces: Workspaces, child_env: ChildEnv, branch_prefix: impl Into<String>) -> Self {
        Self { workspaces, child_env, branch_prefix: branch_prefix.into(), branches: Mutex::default() }
    }

    pub fn branch_prefix(&self) -> &str {
        &self.branch_prefix
    }

    /// What the prompt says about code work for this conversation and requester.
    pub async fn scope_for(&self, conversation: &Conversation, requester: &Requester) -> ProjectScope {
        if self.workspaces.is_empty() {
            return ProjectScope::NoneConfigured;
        }
        if conversation.chat_id.is_none() {
            let usable = self.workspaces.entries().iter().filter(|entry| may_use(entry, requester));
            return ProjectScope::Choose(usable.map(|entry| facts(entry, None)).collect());
        }
        match self.workspaces.entry_for(conversation, None) {
            Ok(entry) if may_use(entry, requester) => {
                let branch = self.default_branch(entry).await;
                ProjectScope::Linked(facts(entry, branch))
            }
            Ok(entry) => ProjectScope::NotAllowed { name: entry.name.clone() },
            Err(_) => ProjectScope::NotLinked,
        }
    }

    /// The entry's default branch, from the cache while it is fresh.
    async fn default_branch(&self, entry: &WorkspaceSettings) -> Option<String> {
        let fresh = |(at, _): &(Instant, Option<String>)| at.elapsed() < BRANCH_TTL;
        if let Some((_, branch)) = self.lock().get(&entry.name).filter(|cached| fresh(cached)) {
            return branch.clone();
        }
        let configured = entry.default_branch.as_deref();
        let branch = crate::workspace::git::default_branch(&entry.path, &self.child_env, configured).await;
        self.lock().insert(entry.name.clone(), (Instant::now(), branch.clone()));
        branch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<String>)>> {
        self.branches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn facts(entry: &WorkspaceSettings, default_branch: Option<String>) -> WorkspaceFacts {
    WorkspaceFacts { name: entry.name.clone(), path: entry.path.display().to_string(), default_branch }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::UserRef;
    use crate::workspace::ChatUser;

    fn entry(name: &str, path: &std::path::Path, chats: &[i64]) -> WorkspaceSettings {
        WorkspaceSettings {
            name: name.into(),
            path: path.to_path_buf(),
            chats: chats.to_vec(),
            notion_database: None,
            allowed_users: Vec::new(),
            default_branch: None,
        }
    }

    fn conversation(chat_id: Option<i64>) -> Conversation {
        Conversation {
            id: "c".into(),
            title: "t".into(),
            channel: if chat_id.is_some() { "telegram" } else { "api" }.into(),
            chat_id,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn git(dir: &std::path::Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[tokio::test]
    async fn a_chat_sees_its_own_workspace_with_a_cached_default_branch_and_others_see_what_they_may_name() {
        let dir = tempfile::tempdir().unwrap();
        let shop = dir.path().join("shop");
        std::fs::create_dir_all(&shop).unwrap();
        git(&shop, &["init", "-q", "-b", "trunk"]);
        git(&shop, &["commit", "-q", "--allow-empty", "-m", "start"]);
        let mut blog = entry("blog", &dir.path().join("blog"), &[20]);
        blog.allowed_users = vec![UserRef::Id(1)];
        let directory = ProjectDirectory::new(
            Workspaces::new(vec![entry("shop", &shop, &[10]), blog], dir.path()),
            ChildEnv::default(),
            "valor/",
        );
        let admin = Requester::admin();
        let ProjectScope::Linked(facts) = directory.scope_for(&conversation(Some(10)), &admin).await else {
            panic!("chat 10 should see its workspace")
        };
        assert_eq!((facts.name.as_str(), facts.default_branch.as_deref()), ("shop", Some("trunk")));
        // Cached: a renamed branch shows only after the cache expires.
        git(&shop, &["branch", "-m", "trunk", "main"]);
        let ProjectScope::Linked(facts) = directory.scope_for(&conversation(Some(10)), &admin).await else {
            panic!("chat 10 should see its workspace")
        };
        assert_eq!(facts.default_branch.as_deref(), Some("trunk"));

        let bob = Requester { user: Some(ChatUser { id: 2, username: None }), is_admin: false };
        let scope = directory.scope_for(&conversation(Some(20)), &bob).await;
        assert_eq!(scope, ProjectScope::NotAllowed { name: "blog".into() });
        assert_eq!(directory.scope_for(&conversation(Some(99)), &admin).await, ProjectScope::NotLinked);
        let ProjectScope::Choose(listed) = directory.scope_for(&conversation(None), &bob).await else {
            panic!("an API conversation chooses")
        };
        let names: Vec<&str> = listed.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["shop"], "bob may not use the blog");
        assert_eq!(listed[0].path, shop.display().to_string());
        let empty = ProjectDirectory::default();
        assert_eq!(empty.scope_for(&conversation(None), &admin).await, ProjectScope::NoneConfigured);
    }
}
