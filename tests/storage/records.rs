//! Turns, users and chats, the audit log and key-value state.

use serde_json::json;
use valor::storage::{
    ChatUpsert, MessageRole, NewAuditEvent, NewMessage, StorageError, TurnFinish, TurnStatus, UserUpsert,
};

use crate::{conversation, new_turn, open_fresh};

#[tokio::test]
async fn turns_start_finish_and_list_round_trip() {
    let test = open_fresh().await;
    let store = &test.store;
    let talk = store.create_conversation(conversation("turns")).await.unwrap();
    let first = store.start_turn(new_turn(&talk.id), None).await.unwrap();
    assert_eq!(first.status, TurnStatus::Running);
    assert_eq!(first.finished_at_ms, None);
    assert_eq!(store.get_turn(&first.id).await.unwrap(), first);

    let finish = TurnFinish {
        status: TurnStatus::Failed,
        steps: 4,
        input_tokens: 12_345,
        output_tokens: 678,
        error: Some("rate limited".to_string()),
        context_tokens: 900,
        tokens_saved: 4_100,
    };
    store.finish_turn(&first.id, finish).await.unwrap();
    let finished = store.get_turn(&first.id).await.unwrap();
    assert_eq!(finished.status, TurnStatus::Failed);
    assert_eq!((finished.steps, finished.input_tokens, finished.output_tokens), (4, 12_345, 678));
    assert_eq!(finished.error.as_deref(), Some("rate limited"));
    assert_eq!((finished.context_tokens, finished.tokens_saved), (900, 4_100));
    assert!(finished.finished_at_ms.unwrap() >= finished.started_at_ms);
    assert_eq!(finished.model, "claude-test");

    // The opening message is stored with the turn, under the turn's id.
    let question = NewMessage {
        conversation_id: talk.id.clone(),
        role: MessageRole::User,
        content: json!([{"type": "text", "text": "why?"}]),
        text: "why?".into(),
        turn_id: None,
    };
    let second = store.start_turn(new_turn(&talk.id), Some(question.clone())).await.unwrap();
    let stored = store.recent_messages(&talk.id, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].text.as_str(), stored[0].turn_id.as_deref()), ("why?", Some(second.id.as_str())));
    let listed = store.list_turns(&talk.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|turn| turn.id.as_str()).collect::<Vec<_>>(),
        vec![first.id.as_str(), second.id.as_str()]
    );

    let missing = store.get_turn("no-such-turn").await.unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }), "{missing:?}");
    let unknown_finish = TurnFinish {
        status: TurnStatus::Completed,
        steps: 1,
        input_tokens: 1,
        output_tokens: 1,
        error: None,
        context_tokens: 0,
        tokens_saved: 0,
    };
    let missing = store.finish_turn("no-such-turn", unknown_finish).await.unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }), "{missing:?}");
    // Neither the turn nor its message is stored for an unknown conversation.
    let lost = NewMessage { conversation_id: "no-such-conversation".into(), ..question };
    let orphan = store.start_turn(new_turn("no-such-conversation"), Some(lost)).await.unwrap_err();
    assert!(matches!(orphan, StorageError::NotFound { .. }), "{orphan:?}");
    assert!(store.list_turns("no-such-conversation").await.unwrap().is_empty());
    assert!(store.recent_messages("no-such-conversation", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn users_and_chats_upsert_keeps_identity_and_refreshes_fields() {
    let test = open_fresh().await;
    let store = &test.store;
    let user = UserUpsert {
        channel: "telegram".to_string(),
        external_id: "111".to_string(),
        username: Some("alice".to_string()),
        display_name: Some("Alice".to_string()),
    };
    let inserted = store.upsert_user(user.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let renamed = UserUpsert { username: Some("alice2".to_string()), display_name: None, ..user };
    let updated = store.upsert_user(renamed).await.unwrap();
    assert_eq!(updated.id, inserted.id);
    assert_eq!(updated.username.as_deref(), Some("alice2"));
    assert_eq!(updated.display_name.as_deref(), Some("Alice"));
    assert_eq!(updated.first_seen_ms, inserted.first_seen_ms);
    assert!(updated.last_seen_ms > inserted.last_seen_ms);

    let other = store
        .upsert_user(UserUpsert {
            channel: "web".to_string(),
            external_id: "111".to_string(),
            username: None,
            display_name: None,
        })
        .await
        .unwrap();
    assert_ne!(other.id, inserted.id);

    let chat = ChatUpsert {
        channel: "telegram".to_string(),
        external_id: "-1001".to_string(),
        kind: "group".to_string(),
        title: Some("Devs".to_string()),
    };
    let first = store.upsert_chat(chat.clone()).await.unwrap();
    let promoted = ChatUpsert { kind: "supergroup".to_string(), title: Some("Dev team".to_string()), ..chat };
    let second = store.upsert_chat(promoted).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.kind, "supergroup");
    assert_eq!(second.title.as_deref(), Some("Dev team"));
    assert_eq!(second.first_seen_ms, first.first_seen_ms);
}

#[tokio::test]
async fn audit_events_list_newest_first_and_filter_by_kind() {
    let test = open_fresh().await;
    let store = &test.store;
    for (kind, subject) in [("access", "chat 1"), ("tool_call", "shell"), ("access", "chat 2")] {
        store
            .record_audit(NewAuditEvent {
                kind: kind.to_string(),
                actor: "user 7".to_string(),
                subject: subject.to_string(),
                decision: "allowed".to_string(),
                detail: json!({ "subject": subject }),
            })
            .await
            .unwrap();
    }
    let all = store.list_audit(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|event| event.subject.as_str()).collect::<Vec<_>>(), vec!["chat 2", "shell", "chat 1"]);
    assert_eq!(all[0].detail, json!({ "subject": "chat 2" }));
    let access = store.list_audit(Some("access"), 10).await.unwrap();
    assert_eq!(access.iter().map(|event| event.subject.as_str()).collect::<Vec<_>>(), vec!["chat 2", "chat 1"]);
    assert_eq!(store.list_audit(Some("access"), 1).await.unwrap().len(), 1);
    assert!(store.list_audit(Some("admin"), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn key_value_state_sets_overwrites_and_deletes() {
    let test = open_fresh().await;
    let store = &test.store;
    assert_eq!(store.kv_get("telegram.offset").await.unwrap(), None);
    store.kv_set("telegram.offset", "41").await.unwrap();
    assert_eq!(store.kv_get("telegram.offset").await.unwrap().as_deref(), Some("41"));
    store.kv_set("telegram.offset", "42").await.unwrap();
    assert_eq!(store.kv_get("telegram.offset").await.unwrap().as_deref(), Some("42"));
    store.kv_delete("telegram.offset").await.unwrap();
    assert_eq!(store.kv_get("telegram.offset").await.unwrap(), None);
    store.kv_delete("telegram.offset").await.unwrap();
}

/// Migration 0012 widens the turn statuses: a database at version 11 keeps
/// its turns, and the ones recorded failed as stopped or interrupted before
/// the new statuses existed are re-labelled.
#[tokio::test]
async fn turns_recorded_before_version_12_keep_their_rows_and_get_their_real_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valor.db");
    // Build version 11 from the repository's own migration files.
    let old = dir.path().join("migrations-11");
    std::fs::create_dir(&old).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0012" {
            std::fs::copy(entry.path(), old.join(&name)).unwrap();
        }
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO conversations (id, title, channel, created_at_ms, updated_at_ms) VALUES ('c', 't', 'api', 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (id, status, error) in [
        ("t1", "completed", None),
        ("t2", "failed", Some("model:timeout: slow")),
        ("t3", "failed", Some(valor::agent::CANCELLED_RECORD)),
        ("t4", "failed", Some("interrupted: valor shut down before the turn ended")),
        ("t5", "running", None),
    ] {
        sqlx::query(
            "INSERT INTO turns (id, conversation_id, intent, intent_source, tier, provider, model, status, error, \
             started_at_ms, context_tokens) VALUES ($1, 'c', 'chat', 'fallback', 'small', 'p', 'm', $2, $3, 5, 77)",
        )
        .bind(id)
        .bind(status)
        .bind(error)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = valor::storage::Store::open(&path).await.unwrap();
    let turns = store.list_turns("c").await.unwrap();
    let statuses: Vec<_> = turns.iter().map(|t| (t.id.as_str(), t.status, t.context_tokens)).collect();
    assert_eq!(
        statuses,
        [
            ("t1", TurnStatus::Completed, 77),
            ("t2", TurnStatus::Failed, 77),
            ("t3", TurnStatus::Cancelled, 77),
            ("t4", TurnStatus::Interrupted, 77),
            ("t5", TurnStatus::Running, 77),
        ]
    );
    store.close().await;
}
