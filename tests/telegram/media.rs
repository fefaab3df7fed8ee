//! Files sent to the bot: documents saved into the chat's inbox folder,
//! photos shown to a vision model with the caption as the question (answered
//! clearly without one), voice notes answered clearly without OpenAI
//! (transcription: `voice.rs`), strangers' files never fetched.

use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ADMIN, ALICE, STRANGER, configure, questions, script};

#[tokio::test]
async fn a_document_is_saved_into_the_chats_inbox_and_a_caption_reaches_the_model() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "summarise this", "It says hello.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();

    let plain = fake.send_file(ALICE.id, &ALICE, "document", "../notes.txt", b"hello file", "");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert!(replies[0].contains("Saved _notes.txt") || replies[0].contains("notes.txt"), "{replies:?}");
    let saved = data_dir.join(format!("telegram/{}/inbox/{plain}-_notes.txt", ALICE.id));
    assert_eq!(std::fs::read(&saved).unwrap(), b"hello file");
    assert!(questions(&mock).await.is_empty(), "no caption: no model call");

    let captioned = fake.send_file(ALICE.id, &ALICE, "document", "report.txt", b"report body", "summarise this");
    assert_eq!(fake.wait_for_replies(ALICE.id, 2).await[1], "It says hello.");
    let asked = questions(&mock).await;
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].starts_with("summarise this") && asked[0].contains(&format!("{captioned}-report.txt")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn without_a_vision_model_photos_and_voice_notes_get_a_clear_reply_and_strangers_files_are_not_fetched() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let telegram_only = fake.clone();
    let _app = TestApp::spawn(move |settings| crate::use_telegram(settings, &telegram_only)).await;

    fake.send_file(STRANGER.id, &STRANGER, "document", "virus.exe", b"MZ", "");
    fake.send_file(ALICE.id, &ALICE, "photo", "", b"\x89PNG", "what is in this picture?");
    fake.send_file(ALICE.id, &ALICE, "voice", "", b"OggS", "");
    let replies = fake.wait_for_replies(ALICE.id, 2).await;
    assert!(replies[0].contains("can't look at images yet"), "{replies:?}");
    assert!(replies[1].contains("can't listen to voice notes: speech-to-text needs OpenAI"), "{replies:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.calls_to("getFile").is_empty(), "nothing is downloaded for photos, voice or strangers");
    assert!(fake.visible_messages(STRANGER.id).is_empty());
    assert!(questions(&mock).await.is_empty());
}

/// A tiny PNG (the first bytes are what matters to type sniffing).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

fn image_urls(request: &serde_json::Value) -> Vec<String> {
    let messages = request["body"]["messages"].as_array().cloned().unwrap_or_default();
    let parts = messages.iter().filter_map(|m| m["content"].as_array().cloned()).flatten();
    parts.filter_map(|part| part.pointer("/image_url/url").and_then(|u| u.as_str()).map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_captioned_photo_reaches_the_model_as_an_image_and_later_turns_keep_only_its_reference() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "what is in this picture", "A red square.").await;
    script(&mock, "and its colour", "Red, as I said.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();

    let photo = fake.send_file(ALICE.id, &ALICE, "photo", "", PNG, "what is in this picture?");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await[0], "A red square.");
    let fetched = fake.calls_to("getFile");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].params["file_id"], format!("FILE{photo}"), "the largest size is downloaded");
    let reference = format!("media/telegram/{}/{photo}.png", ALICE.id);
    assert_eq!(std::fs::read(data_dir.join(&reference)).unwrap(), PNG);
    let first = mock.requests_to("/v1/chat/completions").await.pop().unwrap();
    let urls = image_urls(&first);
    assert_eq!(urls.len(), 1, "{first}");
    assert!(urls[0].starts_with("data:image/png;base64,iVBORw0KGgo"), "{urls:?}");
    let asked = questions(&mock).await;
    assert_eq!(asked[0], format!("what is in this picture?\n[image: {reference}]"));

    fake.send_text(ALICE.id, &ALICE, "and its colour?");
    assert_eq!(fake.wait_for_replies(ALICE.id, 2).await[1], "Red, as I said.");
    let second = mock.requests_to("/v1/chat/completions").await.pop().unwrap();
    assert!(image_urls(&second).is_empty(), "older images travel as references: {second}");
    assert!(second["body"].to_string().contains(&format!("[image: {reference}]")));
}

/// Fixtures: "draw a lighthouse" calls `generate_image`, the images API
/// answers with `PNG`, then the model says "Here it is.".
async fn script_lighthouse(mock: &Aimock) {
    use base64::Engine as _;
    mock.add_fixtures(serde_json::json!([
        {"match": {"userMessage": "draw a lighthouse", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "generate_image", "arguments": {"prompt": "Lighthouse, watercolour"}}]}},
        {"match": {"userMessage": "Lighthouse, watercolour"},
         "response": {"image": {"b64Json": base64::engine::general_purpose::STANDARD.encode(PNG)}}},
        {"match": {"userMessage": "draw a lighthouse", "hasToolResult": true}, "response": {"content": "Here it is."}}
    ]))
    .await;
}

#[tokio::test]
async fn an_image_generated_in_the_turn_is_uploaded_to_the_chat_with_send_photo_after_the_reply() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script_lighthouse(&mock).await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ADMIN.id, &ADMIN, "draw a lighthouse");
    fake.wait_for("a sendPhoto", |calls| calls.iter().any(|c| c.method == "sendPhoto")).await;
    let shown = fake.visible_messages(ADMIN.id);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(shown[0]["text"], "Here it is.", "the reply comes first");
    assert!(shown[1]["photo"].is_array(), "then the photo: {}", shown[1]);
    let sent = fake.calls_to("sendPhoto");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].params["chat_id"], ADMIN.id.to_string());
    assert_eq!(sent[0].params["photo"]["size"], PNG.len(), "{}", sent[0].params);
    assert!(sent[0].params["photo"]["filename"].as_str().unwrap().ends_with(".png"));

    let outbox = app.store().await.telegram_outbox().await.unwrap();
    let photo = outbox.iter().find(|row| row.photo.is_some()).expect("the photo is an outbox row");
    assert!(photo.photo.as_deref().unwrap().starts_with("media/generated/"), "{photo:?}");
    assert_eq!(photo.status, "delivered");
    assert_eq!(photo.message_id, shown[1]["message_id"].as_i64(), "delivered with the id Telegram returned");
}

#[tokio::test]
async fn a_photo_refused_with_429_waits_retry_after_and_is_sent_exactly_once_after_a_restart() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script_lighthouse(&mock).await;
    fake.fail_next("sendPhoto", 429, "", Some(2));
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ADMIN.id, &ADMIN, "draw a lighthouse");
    fake.wait_for("the refused sendPhoto", |calls| calls.iter().any(|c| c.method == "sendPhoto")).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the 429 is written to the outbox
    let waiting = app.store().await.telegram_outbox().await.unwrap();
    let row = waiting.iter().find(|row| row.photo.is_some()).unwrap().clone();
    assert_eq!((row.status.as_str(), row.error.as_deref()), ("pending", Some("rate limited (429)")));

    let data = app.stop().await; // before retry_after has passed
    assert_eq!(fake.calls_to("sendPhoto").len(), 1);
    let _app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    fake.wait_for("the photo after the restart", |calls| calls.iter().filter(|c| c.method == "sendPhoto").count() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent = fake.calls_to("sendPhoto");
    assert_eq!(sent.len(), 2, "refused once, then delivered once");
    let waited = sent[1].at.duration_since(sent[0].at);
    assert!(waited >= Duration::from_secs(2), "retry_after honoured across the restart: {waited:?}");
    let photos: Vec<_> = fake.visible_messages(ADMIN.id).into_iter().filter(|m| m["photo"].is_array()).collect();
    assert_eq!(photos.len(), 1, "the user sees the photo once");
    assert_eq!(questions(&mock).await.len(), 2, "the turn was not run again");
}

/// The tool results the model was handed, in order.
async fn tool_results(mock: &Aimock) -> Vec<String> {
    let mut results = Vec::new();
    for request in mock.requests_to("/v1/chat/completions").await {
        for message in request["body"]["messages"].as_array().cloned().unwrap_or_default() {
            if message["role"] == "tool" {
                results.push(message["content"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    results.dedup();
    results
}

#[tokio::test]
async fn a_member_cannot_have_another_chats_image_analyzed_and_cannot_tell_it_exists() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let theirs = format!("media/telegram/{}/5.png", ADMIN.id);
    let absent = format!("media/telegram/{}/6.png", ADMIN.id);
    for (ask, image) in [("peek at the admin picture", &theirs), ("peek at the missing picture", &absent)] {
        mock.add_fixtures(serde_json::json!([
            {"match": {"userMessage": ask, "hasToolResult": false},
             "response": {"toolCalls": [{"name": "analyze_image", "arguments": {"image": image, "question": "What is it?"}}]}},
            {"match": {"userMessage": ask, "hasToolResult": true}, "response": {"content": "I can't see it."}}
        ]))
        .await;
    }
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();
    std::fs::create_dir_all(data_dir.join(&theirs).parent().unwrap()).unwrap();
    std::fs::write(data_dir.join(&theirs), PNG).unwrap();

    let answered = |count: usize| {
        let fake = fake.clone();
        async move {
            fake.wait_for("the answers", |_| {
                let texts = fake.visible_messages(ALICE.id);
                texts.iter().filter(|m| m["text"] == "I can't see it.").count() >= count
            })
            .await;
        }
    };
    fake.send_text(ALICE.id, &ALICE, "peek at the admin picture");
    answered(1).await;
    fake.send_text(ALICE.id, &ALICE, "peek at the missing picture");
    answered(2).await;
    let results = tool_results(&mock).await;
    assert_eq!(results.len(), 2, "{results:?}");
    let shapes: Vec<String> = results.iter().map(|r| r.replace("5.png", "N.png").replace("6.png", "N.png")).collect();
    assert_eq!(shapes[0], shapes[1], "another chat's file reads exactly like a missing one: {results:?}");
    assert!(results[0].contains("no image at"), "{results:?}");
    let vision = mock.requests_to("/v1/chat/completions").await;
    assert!(vision.iter().all(|request| image_urls(request).is_empty()), "the image never reached a model");
}
