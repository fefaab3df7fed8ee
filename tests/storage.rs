//! Integration tests for `valor::storage::Store` against a real SQLite file in
//! a fresh temporary directory: settings, migrations, every record type, FTS,
//! restart, backup and concurrent writers. Conversation, message and search
//! tests live in `storage/conversations.rs`; turns, users, chats, audit and
//! key-value tests in `storage/records.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::json;
use tempfile::TempDir;
#[path = "storage/conversations.rs"]
mod conversations;
#[path = "storage/records.rs"]
mod records;
#[path = "storage/status_messages.rs"]
mod status_messages;

use valor::storage::{MessageRole, NewConversation, NewMessage, NewTurn, StorageError, Store};

pub(crate) struct TestStore {
    pub(crate) store: Store,
    pub(crate) path: PathBuf,
    pub(crate) directory: TempDir,
}

pub(crate) async fn open_fresh() -> TestStore {
    let directory = TempDir::new().unwrap();
    let path = directory.path().join("nested").join("valor.db");
    let store = Store::open(&path).await.unwrap();
    TestStore { store, path, directory }
}

pub(crate) fn conversation(title: &str) -> NewConversation {
    NewConversation { title: title.to_string(), channel: "web".to_string(), chat_id: None }
}

pub(crate) fn user_message(conversation_id: &str, text: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation_id.to_string(),
        role: MessageRole::User,
        content: json!([{ "type": "text", "text": text }]),
        text: text.to_string(),
        turn_id: None,
    }
}

pub(crate) fn new_turn(conversation_id: &str) -> NewTurn {
    NewTurn {
        conversation_id: conversation_id.to_string(),
        intent: "chat".to_string(),
        intent_source: "fallback".to_string(),
        tier: "small".to_string(),
        provider: "anthropic".to_string(),
        model: "claude-test".to_string(),
    }
}

#[tokio::test]
async fn open_creates_the_file_with_wal_and_foreign_keys_on() {
    let test = open_fresh().await;
    assert!(test.path.exists(), "database file should exist");
    let report = test.store.pragma_report().await.unwrap();
    assert_eq!(report.journal_mode, "wal");
    assert!(report.foreign_keys);
    assert_eq!(report.busy_timeout_ms, 5000);
    assert_eq!(report.synchronous, "normal");
    assert!(report.path.ends_with("valor.db"), "{}", report.path);
    test.store.ping().await.unwrap();
}

#[tokio::test]
async fn open_failure_names_the_path() {
    let directory = TempDir::new().unwrap();
    let blocker = directory.path().join("not-a-directory");
    std::fs::write(&blocker, b"plain file").unwrap();
    let path = blocker.join("valor.db");
    let error = Store::open(&path).await.unwrap_err();
    assert!(error.to_string().contains("not-a-directory"), "{error}");
}

/// The highest version in `migrations/` (files are `NNNN_name.sql`).
fn newest_migration() -> i64 {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::read_dir(directory)
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().to_str()?.split('_').next()?.parse::<i64>().ok())
        .max()
        .unwrap()
}

#[tokio::test]
async fn migrations_are_versioned_and_a_second_run_applies_nothing() {
    let test = open_fresh().await;
    let report = test.store.pragma_report().await.unwrap();
    assert_eq!(report.schema_version, Some(newest_migration()), "every migration file is applied");
    assert_eq!(test.store.migrate().await.unwrap(), Vec::<i64>::new());
    test.store.close().await;
    let reopened = Store::open(&test.path).await.unwrap();
    assert_eq!(reopened.migrate().await.unwrap(), Vec::<i64>::new());
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let test = open_fresh().await;
    let talk = test.store.create_conversation(conversation("persistent")).await.unwrap();
    let message = test.store.append_message(user_message(&talk.id, "remember the lighthouse")).await.unwrap();
    test.store.kv_set("k", "v").await.unwrap();
    test.store.close().await;
    drop(test.store);

    let reopened = Store::open(&test.path).await.unwrap();
    assert_eq!(reopened.get_conversation(&talk.id).await.unwrap().title, "persistent");
    assert_eq!(reopened.recent_messages(&talk.id, 10).await.unwrap(), vec![message]);
    assert_eq!(reopened.search_messages(None, "lighthouse", 10).await.unwrap().len(), 1);
    assert_eq!(reopened.kv_get("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn backup_produces_an_openable_copy_and_refuses_an_existing_target() {
    let test = open_fresh().await;
    let talk = test.store.create_conversation(conversation("backed up")).await.unwrap();
    for text in ["alpha", "beta", "gamma"] {
        test.store.append_message(user_message(&talk.id, text)).await.unwrap();
    }
    let target = test.directory.path().join("backups").join("copy.db");
    test.store.backup_to(&target).await.unwrap();

    let copy = Store::open(&target).await.unwrap();
    let texts: Vec<String> =
        copy.recent_messages(&talk.id, 10).await.unwrap().into_iter().map(|message| message.text).collect();
    assert_eq!(texts, vec!["alpha", "beta", "gamma"]);
    assert_eq!(copy.search_messages(None, "beta", 10).await.unwrap().len(), 1);
    assert_eq!(copy.pragma_report().await.unwrap().journal_mode, "wal");

    let error = test.store.backup_to(&target).await.unwrap_err();
    assert!(matches!(error, StorageError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("copy.db"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_many_tasks_all_land() {
    const TASKS: usize = 8;
    const MESSAGES_PER_TASK: usize = 50;
    let test = open_fresh().await;
    let talk = test.store.create_conversation(conversation("busy")).await.unwrap();
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = test.store.clone();
        let conversation_id = talk.id.clone();
        handles.push(tokio::spawn(async move {
            for index in 0..MESSAGES_PER_TASK {
                store
                    .append_message(user_message(&conversation_id, &format!("task{task} message{index}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let all = test.store.recent_messages(&talk.id, 10_000).await.unwrap();
    assert_eq!(all.len(), TASKS * MESSAGES_PER_TASK);
    let ids: Vec<i64> = all.iter().map(|message| message.id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids strictly increase");
    let summary = test.store.list_conversations(1).await.unwrap();
    assert_eq!(summary[0].message_count, i64::try_from(TASKS * MESSAGES_PER_TASK).unwrap());
}

/// A database whose pages were overwritten is found by the integrity check:
/// the fault names the file and sticks, and new messages are refused.
#[tokio::test]
async fn a_corrupted_file_is_found_and_then_nothing_more_is_written() {
    let TestStore { store, path, directory: _directory } = open_fresh().await;
    let conversation = store.create_conversation(conversation("long")).await.unwrap();
    for index in 0..300 {
        let text = format!("message {index}: {}", "lorem ipsum dolor sit amet ".repeat(40));
        store.append_message(user_message(&conversation.id, &text)).await.unwrap();
    }
    store.integrity_check().await.unwrap();
    store.close().await;

    // Overwrite a run of pages in the middle of the file (the header and schema stay).
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, end) = (bytes.len() / 3, bytes.len() / 3 * 2);
    for (offset, byte) in bytes[start..end].iter_mut().enumerate() {
        *byte = (offset % 251) as u8;
    }
    std::fs::write(&path, bytes).unwrap();

    let store = Store::open(&path).await.unwrap();
    let error = store.integrity_check().await.unwrap_err().to_string();
    assert!(error.contains(&format!("the database file {} is corrupted", path.display())), "{error}");
    assert!(store.fault().unwrap().contains("corrupted"));
    let refused = store.append_message(user_message(&conversation.id, "one more")).await.unwrap_err();
    assert!(refused.to_string().contains("corrupted"), "{refused}");
}

/// The file deleted under an open store: the next write is refused with what
/// happened and what to do, not written into the unlinked file.
#[tokio::test]
async fn a_deleted_file_is_noticed_before_the_next_write() {
    let TestStore { store, path, directory: _directory } = open_fresh().await;
    let conversation = store.create_conversation(conversation("doomed")).await.unwrap();
    store.append_message(user_message(&conversation.id, "kept")).await.unwrap();
    store.check_file().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let refused = store.append_message(user_message(&conversation.id, "lost?")).await.unwrap_err().to_string();
    assert!(refused.contains("was deleted while valor was running"), "{refused}");
    assert!(store.fault().is_some());
}
