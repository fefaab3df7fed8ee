//! Streamed answers seen from outside: a refused long edit loses no text,
//! drafts stream in private chats (with edits where Telegram refuses
//! drafts), and a running answer can be stopped with /stop or its button.

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, BOB, GROUP, configure, script};

#[tokio::test]
async fn a_refused_long_edit_sends_the_rest_as_new_messages_and_loses_no_text() {
    let (mock, fake) = (Aimock::start_with(&["-l", "20", "-c", "40"]).await, FakeTelegram::start().await);
    let paragraphs: Vec<String> =
        (0..12).map(|i| format!("Paragraph {i:02}: {}", "words that matter here. ".repeat(12).trim())).collect();
    let answer = paragraphs.join("\n\n");
    script(&mock, "a long story", &answer).await;
    let base = configure(&mock, &fake);
    let _app = TestApp::spawn(move |settings| {
        base(settings);
        settings.telegram.stream_short_chars = 50;
        settings.telegram.stream_interval_ms = 60_000; // one preview, then the final edit
        settings.telegram.drafts = false;
    })
    .await;
    // Telegram counts differently than we do: the final edit is refused as too long.
    fake.fail_next("editMessageText", 400, "Bad Request: message is too long", None);

    fake.send_text(ALICE.id, &ALICE, "a long story");
    fake.wait_for("the last paragraph", |_| {
        fake.visible_messages(ALICE.id).iter().any(|m| m["text"].as_str().unwrap().contains("Paragraph 11"))
    })
    .await;
    fake.wait_for("no cut preview", |_| {
        fake.visible_messages(ALICE.id).iter().all(|m| !m["text"].as_str().unwrap().ends_with('…'))
    })
    .await;
    let visible: Vec<String> =
        fake.visible_messages(ALICE.id).iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
    let all = visible.join("\n\n");
    for paragraph in &paragraphs {
        assert_eq!(all.matches(paragraph.as_str()).count(), 1, "lost or doubled: {paragraph}\n{visible:#?}");
    }
}

/// A long streamed answer to a private chat.
async fn long_answer(mock: &Aimock, question: &str) -> String {
    let answer = "Drafted words keep arriving one after another. ".repeat(15).trim().to_owned();
    script(mock, question, &answer).await;
    answer
}

fn streaming_fast(mock: &Aimock, fake: &FakeTelegram) -> impl FnOnce(&mut valor::config::Settings) {
    let base = configure(mock, fake);
    move |settings| {
        base(settings);
        settings.telegram.stream_short_chars = 50;
        settings.telegram.stream_interval_ms = 300; // the 1 s floor applies
    }
}

#[tokio::test]
async fn a_private_chat_streams_drafts_and_gets_the_answer_as_one_message() {
    let (mock, fake) = (Aimock::start_with(&["-l", "60", "-c", "20"]).await, FakeTelegram::start().await);
    let answer = long_answer(&mock, "draft it").await;
    let _app = TestApp::spawn(streaming_fast(&mock, &fake)).await;

    let asked = fake.send_text(ALICE.id, &ALICE, "draft it");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, std::slice::from_ref(&answer));
    let drafts = fake.drafts();
    assert!(!drafts.is_empty(), "drafts were streamed");
    assert!(drafts.iter().all(|(chat, id, _)| *chat == ALICE.id && *id == asked), "one draft id: {drafts:?}");
    assert!(answer.starts_with(drafts[0].2.trim_end_matches(" …")), "{drafts:?}");
    assert_eq!(fake.calls_to("sendMessage").len(), 1, "finalised with one sendMessage");
    assert!(fake.calls_to("editMessageText").is_empty(), "no preview to edit");
}

#[tokio::test]
async fn where_telegram_refuses_drafts_the_preview_is_edited_instead() {
    let (mock, fake) = (Aimock::start_with(&["-l", "60", "-c", "20"]).await, FakeTelegram::start().await);
    let answer = long_answer(&mock, "no drafts here").await;
    let _app = TestApp::spawn(streaming_fast(&mock, &fake)).await;
    fake.refuse_drafts();

    fake.send_text(ALICE.id, &ALICE, "no drafts here");
    fake.wait_for("the final text", |_| {
        fake.visible_messages(ALICE.id).first().is_some_and(|m| m["text"] == answer.as_str())
    })
    .await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "one message, edited");
    assert_eq!(fake.calls_to("sendMessageDraft").len(), 1, "refused once, then not tried again");
    assert!(!fake.calls_to("editMessageText").is_empty());
    assert!(fake.drafts().is_empty());
}

/// A configuration streaming a long answer (about 6 s: 20 characters every 100 ms) by edits.
async fn long_stream(question: &str) -> (Aimock, FakeTelegram, String, TestApp) {
    let (mock, fake) = (Aimock::start_with(&["-l", "100", "-c", "20"]).await, FakeTelegram::start().await);
    let answer = "Words that go on and on for a while. ".repeat(30).trim().to_owned();
    script(&mock, question, &answer).await;
    let base = streaming_fast(&mock, &fake);
    let app = TestApp::spawn(move |settings| {
        base(settings);
        settings.telegram.drafts = false;
    })
    .await;
    (mock, fake, answer, app)
}

/// Wait for the preview with its Stop button; (message id, callback data).
async fn stop_button(fake: &FakeTelegram, chat_id: i64) -> (i64, String) {
    fake.wait_for("a preview with a Stop button", |_| {
        fake.visible_messages(chat_id).first().is_some_and(|m| m["reply_markup"]["inline_keyboard"].is_array())
    })
    .await;
    let preview = fake.visible_messages(chat_id)[0]["message_id"].as_i64().unwrap();
    let buttons = fake.buttons_on(chat_id, preview);
    assert_eq!(buttons.len(), 1, "{buttons:?}");
    assert_eq!(buttons[0].0, "⏹ Stop");
    assert!(buttons[0].1.starts_with("turn:stop:"), "{buttons:?}");
    (preview, buttons[0].1.clone())
}

/// Wait until the preview became the stopped answer; its text.
async fn stopped_answer(fake: &FakeTelegram, chat_id: i64, preview: i64, answer: &str) -> String {
    fake.wait_for("the stopped answer", |_| {
        fake.visible_messages(chat_id)
            .iter()
            .any(|m| m["message_id"] == preview && m["text"].as_str().unwrap().ends_with("[stopped]"))
    })
    .await;
    let messages = fake.visible_messages(chat_id);
    let stopped = messages.iter().find(|m| m["message_id"] == preview).unwrap();
    assert!(stopped["reply_markup"].is_null(), "the button is gone: {stopped}");
    let text = stopped["text"].as_str().unwrap().to_owned();
    let kept = text.trim_end_matches("[stopped]").trim_end();
    assert!(kept.len() < answer.len() && answer.starts_with(kept), "{text}");
    text
}

#[tokio::test]
async fn slash_stop_ends_the_running_answer_and_keeps_what_was_written_marked_stopped() {
    let (_mock, fake, answer, _app) = long_stream("talk for long").await;
    fake.send_text(ALICE.id, &ALICE, "talk for long");
    let (preview, _) = stop_button(&fake, ALICE.id).await;

    fake.send_text(ALICE.id, &ALICE, "/stop");
    stopped_answer(&fake, ALICE.id, preview, &answer).await;
    fake.wait_for("the confirmation", |_| fake.visible_messages(ALICE.id).iter().any(|m| m["text"] == "⏹ Stopped."))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 2, "the stopped answer and the confirmation");
}

#[tokio::test]
async fn only_the_asker_may_press_stop_on_a_group_answer() {
    let (_mock, fake, answer, _app) = long_stream("talk in the group").await;
    fake.send_text(GROUP, &ALICE, "@valor_bot talk in the group");
    let (preview, data) = stop_button(&fake, GROUP).await;

    let refused = fake.press_button(GROUP, preview, &BOB, &data);
    fake.wait_for("Bob's answer", |calls| {
        calls.iter().any(|c| c.method == "answerCallbackQuery" && c.params["callback_query_id"] == refused.as_str())
    })
    .await;
    let said = fake.calls_to("answerCallbackQuery");
    assert!(said[0].params["text"].as_str().unwrap().starts_with("Only the person who asked"), "{said:?}");
    assert!(!fake.buttons_on(GROUP, preview).is_empty(), "still running");

    fake.press_button(GROUP, preview, &ALICE, &data);
    stopped_answer(&fake, GROUP, preview, &answer).await;
    let said = fake.calls_to("answerCallbackQuery");
    assert_eq!(said.last().unwrap().params["text"], "Stopping…");
}
