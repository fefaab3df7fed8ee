//! Who gets answered, and how: access rules, mentions, rate limits,
//! duplicates, commands, and restart recovery of stored messages.

use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::{BOT_ID, FakeTelegram, Person};
use crate::{ADMIN, ALICE, BOB, DEV_GROUP, GROUP, STRANGER, configure, questions, script};
use valor::storage::{Store, TelegramInbound};

#[tokio::test]
async fn a_whitelisted_dm_is_answered_with_html_reactions_and_typing() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "hello valor", "Hi **Alice** & <friends>, try `a<b`.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;

    let asked = fake.send_text(ALICE.id, &ALICE, "hello valor");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert_eq!(replies, ["Hi Alice & <friends>, try a<b."]);
    let sent = fake.calls_to("sendMessage");
    assert_eq!(sent[0].params["parse_mode"], "HTML");
    assert_eq!(sent[0].params["text"], "Hi <b>Alice</b> &amp; &lt;friends&gt;, try <code>a&lt;b</code>.");
    assert_eq!(sent[0].params["reply_parameters"]["message_id"], asked, "the reply quotes the question");
    fake.wait_for("the final reaction", |_| fake.reactions_on(ALICE.id, asked).len() == 2).await;
    assert_eq!(fake.reactions_on(ALICE.id, asked), ["👀", "👍"]);
    assert!(fake.calls_to("sendChatAction").iter().any(|c| c.params["action"] == "typing"));

    let store = app.store().await;
    let audit = store.list_audit(Some("access"), 10).await.unwrap();
    assert_eq!(audit[0].decision, "allowed");
    assert_eq!(audit[0].detail["reason"], "dm whitelist");
    let conversations = store.list_conversations(10).await.unwrap();
    assert_eq!(conversations[0].conversation.channel, "telegram");
    assert_eq!(conversations[0].conversation.chat_id, Some(ALICE.id));
}

#[tokio::test]
async fn a_strangers_dm_is_ignored_silently_without_a_model_request() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "by username", "Hello Bob.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;

    let ignored = fake.send_text(STRANGER.id, &STRANGER, "please answer me");
    // Bob is whitelisted by username (case-insensitively): his answer is the sync point.
    fake.send_text(BOB.id, &BOB, "whitelisted by username");
    fake.wait_for_replies(BOB.id, 1).await;
    assert_eq!(questions(&mock).await, ["whitelisted by username"], "exactly one model request: Bob's");
    assert!(fake.visible_messages(STRANGER.id).is_empty());
    assert!(fake.reactions_on(STRANGER.id, ignored).is_empty(), "no reaction for an ignored message");
    assert!(fake.calls_to("sendChatAction").iter().all(|c| c.params["chat_id"] != STRANGER.id));
    let audit = app.store().await.list_audit(Some("access"), 10).await.unwrap();
    let denied = audit.iter().find(|event| event.decision == "ignored").expect("the stranger is audit-logged");
    assert!(denied.actor.contains("666"));
    assert_eq!(denied.detail["reason"], "private chat not whitelisted");
}

#[tokio::test]
async fn in_groups_only_mentions_and_replies_to_the_bot_are_answered() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "what is the plan", "Ship it.").await;
    script(&mock, "and after that", "Celebrate.").await;
    script(&mock, "dev group chatter", "Noted.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    // A conversation a valor of before stored under the default title (the group's title was not kept then).
    let store = app.store().await;
    let old = valor::storage::NewConversation {
        title: format!("Telegram group {DEV_GROUP}"),
        channel: "telegram".into(),
        chat_id: Some(DEV_GROUP),
    };
    let old = store.create_conversation(old).await.unwrap();
    store.kv_set(&format!("telegram:conversation:{DEV_GROUP}"), &old.id).await.unwrap();

    fake.send_text(GROUP, &STRANGER, "no mention, nothing to see");
    fake.send_text(GROUP, &STRANGER, "I play valorant with valor_bot fans");
    fake.send_text(GROUP, &STRANGER, "@valor_bot, what is the plan?");
    let replies = fake.wait_for_replies(GROUP, 1).await;
    assert_eq!(replies, ["Ship it."]);
    let bot_message = fake.visible_messages(GROUP)[0]["message_id"].as_i64().unwrap();
    assert_eq!(fake.visible_messages(GROUP)[0]["from"]["id"], BOT_ID);

    fake.send_reply(GROUP, &STRANGER, "and after that?", bot_message);
    assert_eq!(fake.wait_for_replies(GROUP, 2).await[1], "Celebrate.");
    fake.send_text(DEV_GROUP, &STRANGER, "dev group chatter");
    fake.wait_for_replies(DEV_GROUP, 1).await;

    assert_eq!(
        questions(&mock).await,
        ["what is the plan?", "and after that?", "dev group chatter"],
        "unaddressed messages never reach the model; the mention is stripped"
    );
    // Group conversations carry the group's title (the fake Bot API's groups are called "Team").
    let list = app.get_json("/api/conversations").await;
    let titles: Vec<&str> =
        list["conversations"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Team", "Team"], "{list}");
    assert_eq!(store.get_conversation(&old.id).await.unwrap().title, "Team", "the old default title was kept");
}

#[tokio::test]
async fn a_flood_from_one_user_is_limited_with_a_single_polite_refusal() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "flood", "ok").await;
    let configure = configure(&mock, &fake);
    let _app = TestApp::spawn(|settings| {
        configure(settings);
        settings.telegram.rate_limit_burst = 2;
    })
    .await;

    for index in 0..6 {
        fake.send_text(ALICE.id, &ALICE, &format!("flood {index}"));
    }
    let replies = fake.wait_for_replies(ALICE.id, 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replies_later = fake.visible_messages(ALICE.id).len();
    assert_eq!(replies_later, 3, "two answers and one refusal, nothing more: {replies:?}");
    let refusals = replies.iter().filter(|text| text.contains("faster than I can take them")).count();
    assert_eq!(refusals, 1);
    assert_eq!(questions(&mock).await.len(), 2);
}

#[tokio::test]
async fn a_duplicated_update_is_processed_once() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "only once", "Once.").await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;

    fake.send_text(ALICE.id, &ALICE, "only once");
    fake.redeliver_last();
    fake.wait_for_replies(ALICE.id, 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1);
    assert_eq!(questions(&mock).await.len(), 1);
}

#[tokio::test]
async fn commands_answer_without_the_model_and_reset_starts_a_new_conversation() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let configure = configure(&mock, &fake);
    let workspace = tempfile::tempdir().unwrap();
    let workspace_path = workspace.path().to_path_buf();
    let app = TestApp::spawn(move |settings| {
        configure(settings);
        settings.workspaces.push(valor::config::WorkspaceSettings {
            name: "valor".into(),
            path: workspace_path,
            chats: vec![ADMIN.id],
            notion_database: None,
            allowed_users: Vec::new(),
            default_branch: None,
        });
    })
    .await;

    fake.send_text(ADMIN.id, &ADMIN, "/workspace");
    fake.send_text(ALICE.id, &ALICE, "/workspace");
    fake.send_text(ADMIN.id, &ADMIN, "/status");
    fake.send_text(ADMIN.id, &ADMIN, "/help");
    let admin = fake.wait_for_replies(ADMIN.id, 3).await;
    assert!(admin[0].contains("workspace valor"), "{admin:?}");
    assert!(admin[1].contains("is running as @valor_bot"), "{admin:?}");
    assert!(admin[1].contains("outbox: ") && admin[1].contains("delivered"), "{admin:?}");
    assert!(admin[2].contains("/reset"), "{admin:?}");
    assert!(fake.wait_for_replies(ALICE.id, 1).await[0].contains("No workspace maps to this chat"));

    let store = app.store().await;
    let before = store.kv_get(&format!("telegram:conversation:{}", ADMIN.id)).await.unwrap();
    fake.send_text(ADMIN.id, &ADMIN, "/reset");
    assert!(fake.wait_for_replies(ADMIN.id, 4).await[3].contains("fresh conversation"));
    let after = store.kv_get(&format!("telegram:conversation:{}", ADMIN.id)).await.unwrap();
    assert_ne!(before, after);
    assert!(questions(&mock).await.is_empty(), "commands never reach the model");
}

fn stored_update(update_id: i64, from: &Person, message_id: i64, text: &str) -> TelegramInbound {
    stored_update_at(update_id, from, message_id, text, chrono_now())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn stored_update_at(update_id: i64, from: &Person, message_id: i64, text: &str, date: i64) -> TelegramInbound {
    let raw = serde_json::json!({"update_id": update_id, "message": {"message_id": message_id, "date": date,
        "chat": {"id": from.id, "type": "private"},
        "from": {"id": from.id, "is_bot": false, "first_name": from.username, "username": from.username},
        "text": text}});
    TelegramInbound {
        update_id,
        chat_id: from.id,
        message_id,
        user_id: Some(from.id),
        username: Some(from.username.into()),
        text: text.into(),
        raw,
    }
}

#[tokio::test]
async fn messages_stored_but_unanswered_before_a_crash_are_answered_once_after_restart() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "stored first", "First answer.").await;
    script(&mock, "stored second", "Second answer.").await;
    let data = tempfile::tempdir().unwrap();
    {
        // The state a SIGKILL leaves: one message accepted (offset stored), one mid-turn.
        let store = Store::open(&data.path().join("valor.db")).await.unwrap();
        store.telegram_accept_updates(11, &[stored_update(10, &ALICE, 42, "stored first")]).await.unwrap();
        store.telegram_claim_received().await.unwrap(); // "processing" when the process died
        store.telegram_accept_updates(12, &[stored_update(11, &ALICE, 43, "stored second")]).await.unwrap();
        store.close().await;
    }
    let app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    let replies = fake.wait_for_replies(ALICE.id, 2).await;
    assert_eq!(replies, ["First answer.", "Second answer."], "oldest first");
    assert_eq!(fake.calls_to("getUpdates")[0].params["offset"], 12, "the stored offset is used");

    // Another restart: nothing is answered again.
    let data = app.stop().await;
    let _again = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.calls_to("sendMessage").len(), 2);
    assert_eq!(questions(&mock).await.len(), 2);
}

#[tokio::test]
async fn the_startup_line_doctor_and_command_menu_name_the_bot() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let health = app.get_json("/health").await;
    let telegram = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "telegram").unwrap().clone();
    assert_eq!(telegram["on"], true);
    assert_eq!(telegram["detail"], "@valor_bot");
    fake.wait_for("setMyCommands", |calls| calls.iter().any(|c| c.method == "setMyCommands")).await;
    let menu = &fake.calls_to("setMyCommands")[0].params["commands"];
    assert!(menu.as_array().unwrap().iter().any(|c| c["command"] == "reset"));

    let mut settings = valor::config::Settings::default();
    configure(&mock, &fake)(&mut settings);
    settings.data_dir = tempfile::tempdir().unwrap().path().to_path_buf();
    let rows = valor::app::doctor(&settings).await;
    let row = rows.iter().find(|row| row.part == "telegram").unwrap();
    assert_eq!(row.state, valor::app::DoctorState::Ready);
    assert!(row.detail.contains("@valor_bot"));
    assert!(!row.detail.contains(crate::fake_telegram::TOKEN), "the token never appears");
}

#[tokio::test]
async fn a_rejected_token_turns_telegram_off_with_the_reason() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let configure = configure(&mock, &fake);
    let app = TestApp::spawn(|settings| {
        configure(settings);
        settings.telegram.bot_token = Some("999:wrong".to_owned().into());
    })
    .await;
    let health = app.get_json("/health").await;
    let telegram = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "telegram").unwrap().clone();
    assert_eq!(telegram["on"], false);
    let detail = telegram["detail"].as_str().unwrap();
    assert!(detail.contains("401") && !detail.contains("wrong"), "{detail}");
    assert!(fake.calls().is_empty(), "a wrong token is refused before any call is recorded");
}

#[tokio::test]
async fn each_forum_topic_is_its_own_conversation_and_replies_stay_in_the_topic() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "topic one", "Answer in one.").await;
    script(&mock, "topic two", "Answer in two.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;

    fake.send_in_topic(DEV_GROUP, 11, &STRANGER, "topic one question");
    fake.send_in_topic(DEV_GROUP, 22, &STRANGER, "topic two question");
    fake.wait_for_replies(DEV_GROUP, 2).await;
    let by_topic: Vec<(i64, String)> = fake
        .visible_messages(DEV_GROUP)
        .iter()
        .map(|m| (m["message_thread_id"].as_i64().unwrap(), m["text"].as_str().unwrap().to_owned()))
        .collect();
    assert!(by_topic.contains(&(11, "Answer in one.".to_owned())), "{by_topic:?}");
    assert!(by_topic.contains(&(22, "Answer in two.".to_owned())), "{by_topic:?}");
    let store = app.store().await;
    let one = store.kv_get(&format!("telegram:conversation:{DEV_GROUP}:11")).await.unwrap();
    let two = store.kv_get(&format!("telegram:conversation:{DEV_GROUP}:22")).await.unwrap();
    assert!(one.is_some() && two.is_some() && one != two);
    // Each topic's model request carries only its own history.
    for request in mock.requests_to("/v1/chat/completions").await {
        let body = request["body"].to_string();
        assert!(!(body.contains("topic one question") && body.contains("topic two question")), "shared history");
    }
}

#[tokio::test]
async fn after_downtime_a_chats_old_messages_are_answered_together_while_i_was_away() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "While I was away", "While I was away… all three are handled.").await;
    let data = tempfile::tempdir().unwrap();
    let hour_ago = chrono_now() - 3600;
    {
        let store = Store::open(&data.path().join("valor.db")).await.unwrap();
        for (index, text) in ["first old question", "second old question", "third old question"].iter().enumerate() {
            let id = 20 + index as i64;
            let update = stored_update_at(id, &ALICE, 60 + index as i64, text, hour_ago + index as i64);
            store.telegram_accept_updates(id + 1, &[update]).await.unwrap();
        }
        store.close().await;
    }
    let app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert_eq!(replies, ["While I was away… all three are handled."]);
    let asked = questions(&mock).await;
    assert_eq!(asked.len(), 1, "one turn for the whole backlog");
    for text in ["first old question", "second old question", "third old question"] {
        assert!(asked[0].contains(text), "{text} missing from {:?}", asked[0]);
    }
    assert_eq!(fake.calls_to("sendMessage")[0].params["reply_parameters"]["message_id"], 62, "replies to the newest");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let statuses: Vec<String> =
        app.store().await.telegram_updates().await.unwrap().into_iter().map(|row| row.status).collect();
    assert_eq!(statuses, ["processed", "processed", "processed"]);
}

#[tokio::test]
async fn one_get_updates_answer_is_stored_with_its_offset_in_one_transaction() {
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("valor.db")).await.unwrap();
    let batch = [
        stored_update(1, &ALICE, 10, "one"),
        stored_update(2, &ALICE, 11, "two"),
        stored_update(3, &ALICE, 10, "the same message again"),
    ];
    assert_eq!(store.telegram_accept_updates(4, &batch).await.unwrap(), [true, true, false]);
    assert_eq!(store.telegram_offset().await.unwrap(), Some(4));
    let stored = store.telegram_updates().await.unwrap();
    assert_eq!(stored.iter().map(|row| row.text.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    // Updates without a message still move the offset.
    assert_eq!(store.telegram_accept_updates(5, &[]).await.unwrap(), Vec::<bool>::new());
    assert_eq!(store.telegram_offset().await.unwrap(), Some(5));
    store.close().await;
}

/// A backlog update from `from` in the group `chat`.
fn stored_group_update_at(
    update_id: i64,
    chat: i64,
    from: &Person,
    message_id: i64,
    text: &str,
    date: i64,
) -> TelegramInbound {
    let mut update = stored_update_at(update_id, from, message_id, text, date);
    update.raw["message"]["chat"] = serde_json::json!({"id": chat, "type": "supergroup", "title": "team"});
    if let Some(length) = text.strip_prefix('@').and_then(|rest| rest.find(' ')) {
        update.raw["message"]["entities"] = serde_json::json!([{"type": "mention", "offset": 0, "length": length + 1}]);
    }
    update.chat_id = chat;
    update
}

/// The tool names offered in each model request, in order.
async fn offered_tools(mock: &Aimock) -> Vec<Vec<String>> {
    mock.requests_to("/v1/chat/completions")
        .await
        .iter()
        .map(|request| {
            let tools = request["body"]["tools"].as_array().cloned().unwrap_or_default();
            tools.iter().filter_map(|tool| tool["function"]["name"].as_str().map(str::to_owned)).collect()
        })
        .collect()
}

/// Security: a combined "while I was away" turn acts with the least privilege of its authors.
#[tokio::test]
async fn a_backlog_with_a_non_admins_message_runs_without_admin_rights() {
    for (authors, admin_tools_expected) in [(vec![&ADMIN, &BOB], false), (vec![&ADMIN, &ADMIN], true)] {
        let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
        script(&mock, "While I was away", "While I was away… done.").await;
        let data = tempfile::tempdir().unwrap();
        let hour_ago = chrono_now() - 3600;
        {
            let store = Store::open(&data.path().join("valor.db")).await.unwrap();
            for (index, from) in authors.iter().enumerate() {
                let id = 30 + index as i64;
                let text = format!("@valor_bot please queue a background task number {index}");
                let update = stored_group_update_at(id, GROUP, from, 70 + index as i64, &text, hour_ago + index as i64);
                store.telegram_accept_updates(id + 1, &[update]).await.unwrap();
            }
            store.close().await;
        }
        let _app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
        assert_eq!(fake.wait_for_replies(GROUP, 1).await, ["While I was away… done."]);
        let offered = offered_tools(&mock).await;
        assert_eq!(offered.len(), 1, "one turn for the whole backlog");
        assert!(!offered[0].is_empty(), "the request offers tools at all: {offered:?}");
        assert_eq!(
            offered[0].iter().any(|name| name == "queue_task"),
            admin_tools_expected,
            "authors {:?}: tools {:?}",
            authors.iter().map(|person| person.username).collect::<Vec<_>>(),
            offered[0]
        );
    }
}

/// Messages sent while valor was down are answered strictly in the order
/// they were sent, one after another, each once.
#[tokio::test]
async fn messages_waiting_while_valor_was_down_are_answered_in_order() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let count = 5; // the per-user burst: more would meet the flood limit
    for index in 1..=count {
        // Earlier questions take longer: answered concurrently, they would come back reversed.
        let latency = 100 * (count + 1 - index);
        mock.add_fixtures(serde_json::json!([{
            "match": {"userMessage": format!("question {index}")},
            "response": {"content": format!("answer {index}")},
            "chaos": {"latencyMs": latency}
        }]))
        .await;
        fake.send_text(ALICE.id, &ALICE, &format!("question {index}"));
    }
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    let replies = fake.wait_for_replies(ALICE.id, count).await;
    let expected: Vec<String> = (1..=count).map(|index| format!("answer {index}")).collect();
    assert_eq!(replies, expected);
    let asked = questions(&mock).await;
    let expected: Vec<String> = (1..=count).map(|index| format!("question {index}")).collect();
    assert_eq!(asked, expected, "the model was asked in order");
}
