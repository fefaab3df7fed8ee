//! What the user sees arrive: split long answers, HTML with a plain-text
//! fallback, 429s honoured, streamed edits at the optimizer's pace, and the
//! durable outbox (never twice, also across restarts; notices from jobs).

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, configure, questions, script};
use valor::agent::outbox::{Notice, NoticeKind, Outbox, TranscriptOutbox};
use valor::channels::telegram::TelegramOutbox;
use valor::storage::NewTelegramReply;

#[tokio::test]
async fn a_6000_character_answer_is_split_with_the_code_block_closed_and_reopened() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let prose = "Some words about the plan. ".repeat(40); // ~1000 characters
    let code: Vec<String> = (0..120).map(|i| format!("let value_{i:03} = compute({i}) < limit && ok;")).collect();
    let answer = format!("{}\n\n```rust\n{}\n```\n\nThat is all.", prose.trim(), code.join("\n"));
    assert!(answer.len() > 6000);
    script(&mock, "long please", &answer).await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;

    fake.send_text(ALICE.id, &ALICE, "long please");
    let parts = fake.wait_for_replies(ALICE.id, 2).await;
    fake.wait_for("the last part", |_| {
        fake.visible_messages(ALICE.id).last().is_some_and(|m| m["text"].as_str().unwrap().contains("That is all."))
    })
    .await;
    let messages = fake.visible_messages(ALICE.id);
    assert!(messages.len() >= 2, "{parts:?}");
    for message in &messages {
        let html = message["html"].as_str().unwrap();
        assert!(message["text"].as_str().unwrap().encode_utf16().count() <= 4096);
        assert_eq!(html.matches("<pre>").count(), html.matches("</pre>").count(), "code block left open: {html}");
    }
    let code_parts: Vec<&serde_json::Value> =
        messages.iter().filter(|m| m["html"].as_str().unwrap().contains("language-rust")).collect();
    assert!(code_parts.len() >= 2, "the code block was cut and reopened with its language");
    let visible: String = messages.iter().map(|m| m["text"].as_str().unwrap()).collect::<Vec<_>>().join("\n");
    for line in &code {
        assert!(visible.contains(line.as_str()), "lost: {line}");
    }
    assert!(visible.contains("That is all."));
}

#[tokio::test]
async fn a_quote_and_a_table_arrive_as_a_blockquote_and_an_aligned_pre_block() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "format it", "> Note: **keep** this\n\n| Name | Qty |\n|---|--:|\n| apple | 3 |\n| kiwi | 12 |")
        .await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;

    fake.send_text(ALICE.id, &ALICE, "format it");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert_eq!(replies, ["Note: keep this\n\nName  | Qty\n------+----\napple |   3\nkiwi  |  12"]);
    let html = fake.visible_messages(ALICE.id)[0]["html"].as_str().unwrap().to_owned();
    assert!(html.starts_with("<blockquote>Note: <b>keep</b> this</blockquote>"), "{html}");
    assert!(html.ends_with("<pre>Name  | Qty\n------+----\napple |   3\nkiwi  |  12</pre>"), "{html}");
}

#[tokio::test]
async fn html_rejected_by_telegram_falls_back_to_plain_text() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "fallback", "A **bold** claim.").await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities: unsupported start tag", None);

    fake.send_text(ALICE.id, &ALICE, "fallback");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["A **bold** claim."]);
    let sent = fake.calls_to("sendMessage");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].params.get("parse_mode"), None);
}

#[tokio::test]
async fn a_429_from_telegram_is_honoured_before_retrying() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "rate me", "Patience.").await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.fail_next("sendMessage", 429, "Too Many Requests", Some(2));

    fake.send_text(ALICE.id, &ALICE, "rate me");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Patience."]);
    let sent = fake.calls_to("sendMessage");
    assert_eq!(sent.len(), 2);
    let waited = sent[1].at - sent[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, before retry_after");
}

#[tokio::test]
async fn streamed_answers_edit_one_message_no_faster_than_the_policy() {
    let mock = Aimock::start_with(&["-l", "40", "-c", "10"]).await;
    let fake = FakeTelegram::start().await;
    let answer = "Streaming words arrive one after another, slowly. ".repeat(20); // ~1000 chars, ~4 s
    script(&mock, "stream it", answer.trim()).await;
    let configure = configure(&mock, &fake);
    let _app = TestApp::spawn(|settings| {
        configure(settings);
        settings.telegram.stream_interval_ms = 300; // below Telegram's 1 s per chat: the floor applies
        settings.telegram.stream_short_chars = 50;
        settings.telegram.drafts = false; // these check the edited preview
    })
    .await;

    fake.send_text(ALICE.id, &ALICE, "stream it");
    fake.wait_for("the final text", |_| {
        fake.visible_messages(ALICE.id).first().is_some_and(|m| m["text"] == answer.trim())
    })
    .await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "one message, edited");
    let pushes: Vec<_> =
        fake.calls().into_iter().filter(|c| matches!(c.method.as_str(), "sendMessage" | "editMessageText")).collect();
    assert!(pushes.iter().filter(|c| c.method == "editMessageText").count() >= 2, "streaming edits happened");
    for pair in pushes.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(990), "two pushes {gap:?} apart");
    }
}

#[tokio::test]
async fn the_outbox_never_sends_a_row_twice_across_restarts_and_fails_photos_it_cannot_read() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "remember", "Delivered once.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ALICE.id, &ALICE, "remember");
    fake.wait_for_replies(ALICE.id, 1).await;
    let data = app.stop().await;

    {
        // A row cut off mid-send (uncertain: never resent) and one never tried (sent once).
        let store = valor::storage::Store::open(&data.path().join("valor.db")).await.unwrap();
        let reply = |text: &str, key: &str| NewTelegramReply {
            chat_id: ALICE.id,
            thread_id: None,
            html: text.into(),
            plain: text.into(),
            reply_to_message_id: None,
            edit_message_id: None,
            dedupe_key: Some(key.into()),
            photo: None,
            reply_markup: None,
            reaction: None,
        };
        store.telegram_queue_replies(&[reply("cut off mid-send", "test:1")]).await.unwrap();
        store.telegram_outbox_claim().await.unwrap().unwrap();
        // Photos whose image is gone or outside the data folder fail, and are never uploaded.
        let photo = |reference: &str, key: &str| NewTelegramReply { photo: Some(reference.into()), ..reply("", key) };
        store
            .telegram_queue_replies(&[
                photo("media/generated/gone.png", "test:photo:1"),
                photo("../../../etc/passwd", "test:photo:2"),
                reply("never tried", "test:2"),
            ])
            .await
            .unwrap();
        store.close().await;
    }
    let app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    fake.wait_for_replies(ALICE.id, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<String> =
        fake.calls_to("sendMessage").iter().map(|c| c.params["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, ["Delivered once.", "never tried"]);
    let rows = app.store().await.telegram_outbox().await.unwrap();
    let statuses: Vec<&str> = rows.iter().map(|row| row.status.as_str()).collect();
    assert_eq!(statuses, ["delivered", "uncertain", "failed", "failed", "delivered"]);
    assert!(rows[2].error.as_deref().unwrap().contains("no image at media/generated/gone.png"), "{:?}", rows[2]);
    assert!(rows[3].error.as_deref().unwrap().contains("leaves valor's data folder"), "{:?}", rows[3]);
    assert!(fake.calls_to("sendPhoto").is_empty());
    assert!(rows.iter().filter(|r| r.status == "delivered").all(|r| r.message_id.is_some()));
}

#[tokio::test]
async fn notices_for_telegram_conversations_are_delivered_to_their_chat_once() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "start a job", "Queued.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ALICE.id, &ALICE, "start a job");
    fake.wait_for_replies(ALICE.id, 1).await;

    let store = app.store().await;
    let conversation = store.kv_get(&format!("telegram:conversation:{}", ALICE.id)).await.unwrap().unwrap();
    let transcript: Arc<dyn Outbox> = Arc::new(TranscriptOutbox::new(store.clone()));
    let outbox = TelegramOutbox::new(store.clone(), Arc::default(), transcript);
    let notice = Notice {
        conversation_id: conversation,
        kind: NoticeKind::Result,
        text: "Job **42** finished.".into(),
        dedupe_key: "job:42:result".into(),
    };
    outbox.post(notice.clone()).await.unwrap();
    outbox.post(notice).await.unwrap();
    let replies = fake.wait_for_replies(ALICE.id, 2).await;
    assert_eq!(replies[1], "Job 42 finished.");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 2, "posted twice, delivered once");

    let web = store
        .create_conversation(valor::storage::NewConversation {
            title: "web".into(),
            channel: "web".into(),
            chat_id: None,
        })
        .await
        .unwrap();
    let notice =
        Notice { conversation_id: web.id.clone(), kind: NoticeKind::Info, text: "hi".into(), dedupe_key: "x".into() };
    outbox.post(notice).await.unwrap();
    let messages = store.recent_messages(&web.id, 10).await.unwrap();
    assert_eq!(messages.len(), 1, "other channels go to the fallback (transcript)");
    assert_eq!(questions(&mock).await.len(), 1);
}

#[tokio::test]
async fn a_running_tool_shows_as_progress_in_the_streamed_message() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    mock.add_fixtures(serde_json::json!([
        {"match": {"userMessage": "look it up", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": "budget"}}]}},
        {"match": {"userMessage": "look it up", "hasToolResult": true}, "response": {"content": "Found nothing."}}
    ]))
    .await;
    let configure = configure(&mock, &fake);
    let _app = TestApp::spawn(move |settings| {
        configure(settings);
        settings.telegram.drafts = false; // the progress shows in the preview message
    })
    .await;

    fake.send_text(ALICE.id, &ALICE, "look it up");
    fake.wait_for("the final text", |_| {
        fake.visible_messages(ALICE.id).first().is_some_and(|m| m["text"] == "Found nothing.")
    })
    .await;
    let first = &fake.calls_to("sendMessage")[0].params;
    assert_eq!(first["text"], "⏳ search_history…", "progress is pushed at once");
    assert_eq!(first["parse_mode"], "HTML", "previews are formatted like the answer");
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "the progress message became the answer");
}

/// A model slow to start answering: the chat sees "⏳ still waiting for the
/// model…" in the message that then becomes the answer.
#[tokio::test]
async fn a_slow_model_start_shows_a_waiting_notice_that_becomes_the_answer() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    mock.add_fixtures(serde_json::json!([{
        "match": {"userMessage": "think hard"},
        "response": {"content": "Here at last."},
        "chaos": {"latencyMs": 2500}
    }]))
    .await;
    let configure = configure(&mock, &fake);
    let _app = TestApp::spawn(move |settings| {
        configure(settings);
        settings.llm.waiting_notice_secs = 1;
        settings.telegram.drafts = false; // the notice shows in the preview message
    })
    .await;
    fake.send_text(ALICE.id, &ALICE, "think hard");
    fake.wait_for("the final text", |_| {
        fake.visible_messages(ALICE.id).first().is_some_and(|m| m["text"] == "Here at last.")
    })
    .await;
    let first = &fake.calls_to("sendMessage")[0].params;
    assert_eq!(first["text"], "⏳ still waiting for the model…");
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "the notice became the answer");
}

#[tokio::test]
async fn a_429_on_get_updates_pauses_polling_for_retry_after() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "after the pause", "Back.").await;
    fake.fail_next("getUpdates", 429, "Too Many Requests", Some(1));
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ALICE.id, &ALICE, "after the pause");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Back."]);
    let polls = fake.calls_to("getUpdates");
    let waited = polls[1].at - polls[0].at;
    assert!(waited >= Duration::from_secs(1), "polled again after {waited:?}");
}
