//! The transcript outbox: notices land in the conversation once, durably.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use valor::agent::outbox::{Notice, NoticeKind, Outbox, OutboxError, TranscriptOutbox};
use valor::storage::{MessageRole, NewConversation, Store};

#[tokio::test]
async fn a_notice_is_appended_once_even_when_posted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "jobs".into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap();
    let outbox = TranscriptOutbox::new(store.clone());
    let notice = Notice {
        conversation_id: conversation.id.clone(),
        kind: NoticeKind::Result,
        text: "Job 7 finished: 3 files changed.".into(),
        dedupe_key: "job:7:result".into(),
    };
    outbox.post(notice.clone()).await.unwrap();
    outbox.post(notice).await.unwrap();
    let messages = store.recent_messages(&conversation.id, 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].role, MessageRole::System);
    assert_eq!(messages[0].text, "Job 7 finished: 3 files changed.");

    let unknown =
        Notice { conversation_id: "nope".into(), kind: NoticeKind::Info, text: "x".into(), dedupe_key: "k".into() };
    assert!(matches!(outbox.post(unknown).await, Err(OutboxError::UnknownConversation(_))));
}
