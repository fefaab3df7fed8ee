//! Conversations and messages: create, find, list ordering, append and
//! recent-message windows, and full-text search including hostile input.

use serde_json::json;
use valor::storage::{MessageRole, NewConversation, StorageError};

use crate::{conversation, open_fresh, user_message};

#[tokio::test]
async fn conversations_are_created_fetched_and_found_by_id_or_title() {
    let test = open_fresh().await;
    let store = &test.store;
    let created = store
        .create_conversation(NewConversation {
            title: "groceries".to_string(),
            channel: "telegram".to_string(),
            chat_id: Some(-1001),
        })
        .await
        .unwrap();
    assert_eq!(uuid::Uuid::parse_str(&created.id).unwrap().get_version_num(), 7);
    assert_eq!(store.get_conversation(&created.id).await.unwrap(), created);
    assert_eq!(store.find_conversation(&created.id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.find_conversation("groceries").await.unwrap(), Some(created.clone()));
    assert_eq!(store.find_conversation("nothing like it").await.unwrap(), None);
    let missing = store.get_conversation("no-such-id").await.unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }), "{missing:?}");

    // Same title twice: the one with the newest activity wins.
    let newer = store.create_conversation(conversation("groceries")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.append_message(user_message(&created.id, "milk")).await.unwrap();
    let found = store.find_conversation("groceries").await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.append_message(user_message(&newer.id, "eggs")).await.unwrap();
    let found = store.find_conversation("groceries").await.unwrap().unwrap();
    assert_eq!(found.id, newer.id);
}

#[tokio::test]
async fn conversations_list_newest_activity_first_with_message_counts() {
    let test = open_fresh().await;
    let store = &test.store;
    let first = store.create_conversation(conversation("first")).await.unwrap();
    let second = store.create_conversation(conversation("second")).await.unwrap();
    let third = store.create_conversation(conversation("third")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for text in ["one", "two", "three"] {
        store.append_message(user_message(&first.id, text)).await.unwrap();
    }

    let listed = store.list_conversations(10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|summary| summary.conversation.id.as_str()).collect();
    assert_eq!(ids, vec![first.id.as_str(), third.id.as_str(), second.id.as_str()]);
    assert_eq!(listed[0].message_count, 3);
    assert_eq!(listed[1].message_count, 0);
    assert!(listed[0].conversation.updated_at_ms > first.updated_at_ms);
    assert_eq!(store.list_conversations(2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn recent_messages_are_the_last_ones_oldest_first() {
    let test = open_fresh().await;
    let store = &test.store;
    let talk = store.create_conversation(conversation("talk")).await.unwrap();
    let other = store.create_conversation(conversation("other")).await.unwrap();
    let mut stored = Vec::new();
    for index in 0..5 {
        stored.push(store.append_message(user_message(&talk.id, &format!("m{index}"))).await.unwrap());
    }
    store.append_message(user_message(&other.id, "elsewhere")).await.unwrap();

    let recent = store.recent_messages(&talk.id, 3).await.unwrap();
    let texts: Vec<&str> = recent.iter().map(|message| message.text.as_str()).collect();
    assert_eq!(texts, vec!["m2", "m3", "m4"]);
    assert_eq!(recent[2], stored[4]);
    assert_eq!(recent[0].content, json!([{ "type": "text", "text": "m2" }]));
    assert_eq!(store.recent_messages(&talk.id, 100).await.unwrap().len(), 5);

    let after = store.list_messages(&talk.id, stored[1].id, 2).await.unwrap();
    let texts: Vec<&str> = after.iter().map(|message| message.text.as_str()).collect();
    assert_eq!(texts, vec!["m2", "m3"]);
}

#[tokio::test]
async fn appending_to_an_unknown_conversation_is_not_found() {
    let test = open_fresh().await;
    let error = test.store.append_message(user_message("no-such-conversation", "hi")).await.unwrap_err();
    assert!(matches!(error, StorageError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn every_message_role_round_trips() {
    let test = open_fresh().await;
    let talk = test.store.create_conversation(conversation("roles")).await.unwrap();
    let roles = [MessageRole::User, MessageRole::Assistant, MessageRole::Tool, MessageRole::System];
    for role in roles {
        let mut message = user_message(&talk.id, role.as_str());
        message.role = role;
        message.turn_id = Some("turn-1".to_string());
        test.store.append_message(message).await.unwrap();
    }
    let stored = test.store.recent_messages(&talk.id, 10).await.unwrap();
    assert_eq!(stored.iter().map(|message| message.role).collect::<Vec<_>>(), roles);
    assert!(stored.iter().all(|message| message.turn_id.as_deref() == Some("turn-1")));
}

#[tokio::test]
async fn search_finds_words_ranks_marks_and_filters_by_conversation() {
    let test = open_fresh().await;
    let store = &test.store;
    let garden = store.create_conversation(conversation("garden")).await.unwrap();
    let kitchen = store.create_conversation(conversation("kitchen")).await.unwrap();
    let weak = store
        .append_message(user_message(
            &garden.id,
            "we talked about many things today including the weather, the neighbours, \
             the price of bread, and at some point briefly about tomatoes before moving on",
        ))
        .await
        .unwrap();
    let strong = store.append_message(user_message(&garden.id, "tomatoes tomatoes tomatoes")).await.unwrap();
    let in_kitchen = store.append_message(user_message(&kitchen.id, "slice the tomatoes thinly")).await.unwrap();
    store.append_message(user_message(&kitchen.id, "nothing relevant here")).await.unwrap();

    let hits = store.search_messages(None, "tomatoes", 10).await.unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].message, strong, "densest match ranks first");
    assert!(hits[0].snippet.contains("[tomatoes]"), "{}", hits[0].snippet);

    let garden_hits = store.search_messages(Some(&garden.id), "tomatoes", 10).await.unwrap();
    let ids: Vec<i64> = garden_hits.iter().map(|hit| hit.message.id).collect();
    assert_eq!(ids, vec![strong.id, weak.id]);

    let kitchen_hits = store.search_messages(Some(&kitchen.id), "TOMATOES slice", 10).await.unwrap();
    assert_eq!(kitchen_hits.len(), 1);
    assert_eq!(kitchen_hits[0].message, in_kitchen);
    assert!(kitchen_hits[0].snippet.contains("[slice]"), "{}", kitchen_hits[0].snippet);

    assert_eq!(store.search_messages(None, "tomatoes", 1).await.unwrap().len(), 1);
    assert!(store.search_messages(None, "cucumbers", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn hostile_search_text_never_errors_and_empty_text_finds_nothing() {
    let test = open_fresh().await;
    let talk = test.store.create_conversation(conversation("hostile")).await.unwrap();
    test.store.append_message(user_message(&talk.id, "say OR to the NEAR field, a\"b")).await.unwrap();
    let hostile = [
        "a\"b",
        "NEAR(",
        "*",
        "-x",
        "OR",
        "AND",
        "NOT",
        "\"",
        "\"\"",
        "(",
        ")",
        "text:secret",
        "^start",
        "a*",
        "{text}",
        "NEAR(a b, 2)",
        "'; DROP TABLE messages; --",
        "…",
        "🙂",
    ];
    for query in hostile {
        let result = test.store.search_messages(None, query, 10).await;
        assert!(result.is_ok(), "query {query:?} failed: {result:?}");
    }
    // Operators are matched as plain words.
    assert_eq!(test.store.search_messages(None, "OR", 10).await.unwrap().len(), 1);
    assert_eq!(test.store.search_messages(None, "NEAR(", 10).await.unwrap().len(), 1);
    for empty in ["", "   ", "\t\n"] {
        assert!(test.store.search_messages(None, empty, 10).await.unwrap().is_empty());
    }
}
