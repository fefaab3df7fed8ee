//! Files sent to the bot: documents saved into the chat's inbox folder,
//! photos and voice notes answered clearly, strangers' files never fetched.

use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, STRANGER, configure, questions, script};

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
async fn photos_and_voice_notes_get_a_clear_reply_and_strangers_files_are_not_fetched() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let _app = TestApp::spawn(configure(&mock, &fake)).await;

    fake.send_file(STRANGER.id, &STRANGER, "document", "virus.exe", b"MZ", "");
    fake.send_file(ALICE.id, &ALICE, "photo", "", b"\x89PNG", "what is in this picture?");
    fake.send_file(ALICE.id, &ALICE, "voice", "", b"OggS", "");
    let replies = fake.wait_for_replies(ALICE.id, 2).await;
    assert!(replies[0].contains("can't look at images yet"), "{replies:?}");
    assert!(replies[1].contains("can't listen to voice notes yet"), "{replies:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.calls_to("getFile").is_empty(), "nothing is downloaded for photos, voice or strangers");
    assert!(fake.visible_messages(STRANGER.id).is_empty());
    assert!(questions(&mock).await.is_empty());
}
