//! Status messages in storage: one Telegram message per status key — its
//! send row changed while it waits, then at most one waiting edit whose
//! target is resolved from the send row when claimed (none if the send
//! failed) — and one transcript message per key, updated in place, also
//! after a restart.

use valor::storage::{MessageRole, NewMessage, NewTelegramReply, Store, TelegramOutboxRow};

use crate::{conversation, open_fresh};

fn status(text: &str, button: bool) -> NewTelegramReply {
    NewTelegramReply {
        chat_id: 42,
        thread_id: None,
        html: text.into(),
        plain: text.into(),
        reply_to_message_id: None,
        edit_message_id: None,
        dedupe_key: None,
        photo: None,
        reply_markup: button.then(|| r#"{"inline_keyboard":[]}"#.to_owned()),
        reaction: None,
    }
}

async fn rows(store: &Store) -> Vec<TelegramOutboxRow> {
    store.telegram_outbox().await.unwrap()
}

#[tokio::test]
async fn a_telegram_status_is_one_message_its_later_states_one_waiting_edit_of_it() {
    let fresh = open_fresh().await;
    let store = &fresh.store;
    store.telegram_put_status("job:1:0", &status("starting", true)).await.unwrap();
    store.telegram_put_status("job:1:0", &status("working", true)).await.unwrap();
    let queued = rows(store).await;
    assert_eq!(queued.len(), 1, "an unsent status is updated, not queued twice: {queued:?}");
    assert_eq!((queued[0].plain.as_str(), queued[0].dedupe_key.as_deref()), ("working", Some("status:job:1:0")));

    let send = store.telegram_outbox_claim().await.unwrap().unwrap();
    // A state arriving while the first one is being sent: an edit whose target is not known yet.
    store.telegram_put_status("job:1:0", &status("working 2", true)).await.unwrap();
    assert_eq!(rows(store).await[1].edit_message_id, None);
    assert!(store.telegram_outbox_claim().await.unwrap().is_none(), "an edit may not overtake its send");
    store.telegram_outbox_delivered(send.id, 5001).await.unwrap();
    // Newer states replace the waiting edit: one edit, the newest text, the button gone at the end.
    store.telegram_put_status("job:1:0", &status("working 3", true)).await.unwrap();
    store.telegram_put_status("job:1:0", &status("done", false)).await.unwrap();
    let queued = rows(store).await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    let edit = store.telegram_outbox_claim().await.unwrap().unwrap();
    assert_eq!((edit.edit_of, edit.edit_message_id), (Some(send.id), Some(5001)));
    assert_eq!((edit.plain.as_str(), edit.reply_markup.as_deref()), ("done", None));
    assert!(edit.dedupe_key.is_none());
    store.telegram_outbox_delivered(edit.id, 5001).await.unwrap();

    // Another key is another message; a send that failed leaves its edits without a target.
    store.telegram_put_status("job:2:0", &status("starting", true)).await.unwrap();
    let other = store.telegram_outbox_claim().await.unwrap().unwrap();
    store.telegram_outbox_failed(other.id, "chat not found").await.unwrap();
    store.telegram_put_status("job:2:0", &status("working", true)).await.unwrap();
    let orphan = store.telegram_outbox_claim().await.unwrap().unwrap();
    assert_eq!((orphan.edit_of, orphan.edit_message_id), (Some(other.id), None));
    // And the key never sends a second message, also after a restart.
    let path = fresh.path.clone();
    store.close().await;
    let reopened = Store::open(&path).await.unwrap();
    reopened.telegram_put_status("job:1:0", &status("done again", false)).await.unwrap();
    let sends: Vec<TelegramOutboxRow> = rows(&reopened).await.into_iter().filter(|row| row.edit_of.is_none()).collect();
    assert_eq!(sends.len(), 2, "one send per key: {sends:?}");
}

#[tokio::test]
async fn a_transcript_status_is_one_system_message_updated_in_place() {
    let fresh = open_fresh().await;
    let store = &fresh.store;
    let chat = store.create_conversation(conversation("status")).await.unwrap();
    let message = |text: &str| NewMessage {
        conversation_id: chat.id.clone(),
        role: MessageRole::System,
        content: serde_json::json!([{"type": "text", "text": text}]),
        text: text.into(),
        turn_id: None,
    };
    store.put_status_message(message("starting"), "job:1:0").await.unwrap();
    store.append_message(message("something else")).await.unwrap();
    store.put_status_message(message("working"), "job:1:0").await.unwrap();
    let path = fresh.path.clone();
    store.close().await;
    let reopened = Store::open(&path).await.unwrap();
    reopened.put_status_message(message("done"), "job:1:0").await.unwrap();
    let texts: Vec<String> =
        reopened.recent_messages(&chat.id, 10).await.unwrap().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["done", "something else"]);
    assert_eq!(
        reopened.search_messages(Some(&chat.id), "done", 10).await.unwrap().len(),
        1,
        "the search index follows"
    );
}
