//! Voice notes: downloaded through `getFile`, kept in the chat's inbox,
//! transcribed by OpenAI's `audio/transcriptions` (aimock) with the
//! configured model, and answered with the transcript as the user's text and
//! quoted above the reply. A failing transcription service and an oversized
//! note get clear replies; nothing is lost.

use serde_json::json;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, configure, questions, script};

/// The first bytes of an Ogg/Opus file, as Telegram stores voice notes.
const OGG: &[u8] = b"OggS\0\x02\0\0\0\0\0\0\0\0OpusHead";
const TRANSCRIPTIONS: &str = "/v1/audio/transcriptions";

#[tokio::test]
async fn a_voice_note_is_transcribed_with_the_configured_model_and_the_turn_runs_on_the_transcript() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    mock.add_fixtures(json!([{"match": {"endpoint": "transcription", "model": "gpt-4o-mini-transcribe"},
                              "response": {"transcription": {"text": " Remind me to buy milk. "}}}]))
        .await;
    script(&mock, "Remind me to buy milk.", "Noted: **milk**.").await;
    let configure = configure(&mock, &fake);
    let app = TestApp::spawn(move |settings| {
        configure(settings);
        settings.openai.transcription_model = "gpt-4o-mini-transcribe".into();
    })
    .await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();

    let voice = fake.send_file(ALICE.id, &ALICE, "voice", "", OGG, "");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert_eq!(replies, ["🎤 “Remind me to buy milk.”\n\nNoted: milk."], "the user sees what was heard");
    let html = fake.visible_messages(ALICE.id)[0]["html"].as_str().unwrap().to_owned();
    assert!(html.contains("<b>milk</b>"), "{html}");

    let fetched = fake.calls_to("getFile");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].params["file_id"], format!("FILE{voice}"));
    let kept = data_dir.join(format!("telegram/{}/inbox/{voice}-voice.ogg", ALICE.id));
    assert_eq!(std::fs::read(&kept).unwrap(), OGG, "the voice note is kept");
    let transcriptions = mock.requests_to(TRANSCRIPTIONS).await;
    assert_eq!(transcriptions.len(), 1);
    assert_eq!(transcriptions[0]["body"]["model"], "gpt-4o-mini-transcribe");
    assert_eq!(questions(&mock).await, ["Remind me to buy milk."], "the transcript is the user's text");
    assert_eq!(fake.reactions_on(ALICE.id, voice), ["👀", "👍"]);
}

#[tokio::test]
async fn a_failing_transcription_service_gets_a_clear_reply_and_the_voice_note_is_kept() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    mock.add_fixtures(json!([{"match": {"endpoint": "transcription"},
        "response": {"error": {"message": "upstream exploded", "type": "server_error"}, "status": 500}}]))
        .await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();

    let voice = fake.send_file(ALICE.id, &ALICE, "voice", "", OGG, "");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert!(replies[0].starts_with("I couldn't transcribe your voice note"), "{replies:?}");
    assert!(replies[0].contains("unavailable right now") && replies[0].contains("kept it"), "{replies:?}");
    assert!(!replies[0].contains("sk-openai-test-secret"));
    let kept = data_dir.join(format!("telegram/{}/inbox/{voice}-voice.ogg", ALICE.id));
    assert_eq!(std::fs::read(&kept).unwrap(), OGG, "nothing is lost");
    let attempts = mock.requests_to(TRANSCRIPTIONS).await.len();
    assert!(attempts > 1, "a 5xx is retried before giving up ({attempts} attempts)");
    assert!(questions(&mock).await.is_empty(), "no turn without a transcript");
    let store = app.store().await;
    let updates = store.telegram_updates().await.unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].status, "processed", "answered, not left hanging");
}

#[tokio::test]
async fn a_voice_note_over_the_bot_api_download_limit_is_refused_without_fetching_it() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let _app = TestApp::spawn(configure(&mock, &fake)).await;

    let huge = vec![0u8; 20 * 1024 * 1024 + 1];
    fake.send_file(ALICE.id, &ALICE, "voice", "", &huge, "");
    let replies = fake.wait_for_replies(ALICE.id, 1).await;
    assert!(replies[0].contains("larger than the 20 MB"), "{replies:?}");
    assert!(fake.calls_to("getFile").is_empty());
    assert!(mock.requests_to(TRANSCRIPTIONS).await.is_empty());
    assert!(questions(&mock).await.is_empty());
}
