//! Claude Code session ids per conversation and workspace, so a follow-up in
//! the same chat continues the same session (`--resume`). Kept in the
//! key-value state table (no migration of its own): one key per
//! (conversation, workspace), overwritten by each finished run.

use super::{StorageResult, Store};

fn session_key(conversation_id: &str, workspace: &str) -> String {
    format!("claude_session:{conversation_id}:{workspace}")
}

impl Store {
    /// The last Claude Code session of this conversation in this workspace.
    pub async fn claude_session(&self, conversation_id: &str, workspace: &str) -> StorageResult<Option<String>> {
        self.kv_get(&session_key(conversation_id, workspace)).await
    }

    pub async fn set_claude_session(&self, conversation_id: &str, workspace: &str, session: &str) -> StorageResult<()> {
        self.kv_set(&session_key(conversation_id, workspace), session).await
    }

    /// Forget the session (the next run starts fresh).
    pub async fn clear_claude_session(&self, conversation_id: &str, workspace: &str) -> StorageResult<()> {
        self.kv_delete(&session_key(conversation_id, workspace)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_are_kept_per_conversation_and_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        assert_eq!(store.claude_session("c1", "shop").await.unwrap(), None);
        store.set_claude_session("c1", "shop", "s1").await.unwrap();
        store.set_claude_session("c1", "blog", "s2").await.unwrap();
        store.set_claude_session("c1", "shop", "s3").await.unwrap();
        assert_eq!(store.claude_session("c1", "shop").await.unwrap().as_deref(), Some("s3"));
        assert_eq!(store.claude_session("c2", "shop").await.unwrap(), None);
        store.clear_claude_session("c1", "shop").await.unwrap();
        assert_eq!(store.claude_session("c1", "shop").await.unwrap(), None);
        assert_eq!(store.claude_session("c1", "blog").await.unwrap().as_deref(), Some("s2"));
    }
}
