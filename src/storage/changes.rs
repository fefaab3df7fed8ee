//! The change feed: after every commit that appends or changes a message,
//! or opens or decides an approval request, the store says which
//! conversation changed on a bounded `tokio::sync::broadcast` channel. The
//! signal carries no data: a listener (the web chat's event stream) reads
//! what is new since its own cursor (`messages.revision`, migration 0015),
//! so a listener that lags behind loses nothing and costs no memory.
//!
//! Invariants: a signal is sent only after its commit (a listener that
//! wakes always finds the change); a revision is raised in the same
//! statement that writes the message; nothing here polls.

use std::sync::Arc;

use futures::TryStreamExt as _;
use tokio::sync::broadcast;

use super::rows::{self, sql_error};
use super::{StorageResult, Store, StoredMessage};

/// Signals kept for a listener that has not read them yet; one that falls
/// further behind is told it lagged and re-reads from its cursor.
pub(super) const FEED_CAPACITY: usize = 256;

/// What changed, and in which conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Messages were appended or changed in place.
    Messages(Arc<str>),
    /// Approval requests were opened, decided or timed out.
    Approvals(Arc<str>),
    /// The conversation was deleted.
    Deleted(Arc<str>),
}

impl Change {
    pub fn conversation(&self) -> &str {
        match self {
            Change::Messages(id) | Change::Approvals(id) | Change::Deleted(id) => id,
        }
    }
}

pub(super) fn feed() -> broadcast::Sender<Change> {
    broadcast::channel(FEED_CAPACITY).0
}

impl Store {
    /// Signals from now on (see the module doc).
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// How many listeners are subscribed (each open live stream is one).
    pub fn change_listeners(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Tell listeners (none listening is fine).
    pub(super) fn changed(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    /// The conversation's highest message revision (0 for none): a cursor for [`Store::changed_messages`].
    pub async fn message_revision(&self, conversation_id: &str) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM messages WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error("message revision", error))
    }

    /// Messages appended or changed after revision `after`, in revision
    /// order, at most `limit`, each with its revision.
    pub async fn changed_messages(
        &self,
        conversation_id: &str,
        after: i64,
        limit: u32,
    ) -> StorageResult<Vec<(i64, StoredMessage)>> {
        let mut found = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            ", revision FROM messages WHERE conversation_id = $1 AND revision > $2 ORDER BY revision LIMIT $3"
        ))
        .bind(conversation_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch(&self.readers);
        let mut changed = Vec::new();
        while let Some(row) = found.try_next().await.map_err(|error| sql_error("changed messages", error))? {
            let revision: i64 = sqlx::Row::try_get(&row, "revision").map_err(|error| sql_error("revision", error))?;
            changed.push((revision, rows::message(&row)?));
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::{MessageRole, NewConversation, NewMessage};

    fn note(conversation: &str, text: &str) -> NewMessage {
        NewMessage {
            conversation_id: conversation.into(),
            role: MessageRole::System,
            content: serde_json::json!([{"type": "text", "text": text}]),
            text: text.into(),
            turn_id: None,
        }
    }

    #[tokio::test]
    async fn appends_and_in_place_changes_raise_the_revision_and_signal_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
        let new = |title: &str| NewConversation { title: title.into(), channel: "web".into(), chat_id: None };
        let (a, b) =
            (store.create_conversation(new("a")).await.unwrap(), store.create_conversation(new("b")).await.unwrap());
        let mut feed = store.subscribe_changes();
        assert_eq!(store.message_revision(&a.id).await.unwrap(), 0);

        let first = store.append_message(note(&a.id, "one")).await.unwrap();
        assert_eq!(feed.recv().await.unwrap(), Change::Messages(a.id.as_str().into()));
        store.put_status_message(note(&a.id, "working"), "k").await.unwrap();
        store.append_message(note(&b.id, "elsewhere")).await.unwrap();
        assert_eq!(store.message_revision(&a.id).await.unwrap(), 2);
        let cursor = store.message_revision(&a.id).await.unwrap();
        store.put_status_message(note(&a.id, "done"), "k").await.unwrap();

        let changed = store.changed_messages(&a.id, cursor, 10).await.unwrap();
        assert_eq!(changed.len(), 1, "only the status message changed since the cursor");
        assert_eq!((changed[0].0, changed[0].1.text.as_str()), (3, "done"));
        let all = store.changed_messages(&a.id, 0, 10).await.unwrap();
        let texts: Vec<&str> = all.iter().map(|(_, m)| m.text.as_str()).collect();
        assert_eq!(texts, ["one", "done"], "one row per message, in revision order");
        assert_eq!(all[0].1.id, first.id);
        let signals: Vec<Change> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
        assert_eq!(
            signals,
            [
                Change::Messages(a.id.as_str().into()),
                Change::Messages(b.id.as_str().into()),
                Change::Messages(a.id.as_str().into())
            ]
        );
        store.delete_conversation(&b.id).await.unwrap();
        assert_eq!(feed.try_recv().unwrap(), Change::Deleted(b.id.as_str().into()));
    }
}
