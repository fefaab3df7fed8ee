//! Webhook mode: updates are POSTed to the app; the secret token is checked.

use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, configure, questions, script};

#[tokio::test]
async fn webhook_mode_registers_the_webhook_refuses_a_wrong_secret_and_answers_the_right_one() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "via webhook", "Hooked.").await;
    let configure = configure(&mock, &fake);
    let app = TestApp::spawn(|settings| {
        configure(settings);
        settings.telegram.webhook_url = Some("https://valor.example.com/telegram/webhook".into());
        settings.telegram.webhook_secret = Some("s3cret-token_1-long-enough".to_owned().into());
    })
    .await;
    fake.wait_for("setWebhook", |calls| calls.iter().any(|c| c.method == "setWebhook")).await;
    let registered = &fake.calls_to("setWebhook")[0].params;
    assert_eq!(registered["url"], "https://valor.example.com/telegram/webhook");
    assert_eq!(registered["secret_token"], "s3cret-token_1-long-enough");

    fake.send_text(ALICE.id, &ALICE, "via webhook");
    let update = fake.take_update();
    let post = |secret: Option<&str>| {
        let mut request = app.http.post(app.url("/telegram/webhook")).json(&update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(questions(&mock).await.is_empty(), "a refused update is never processed");
    assert!(app.store().await.telegram_updates().await.unwrap().is_empty(), "nor stored");

    assert_eq!(post(Some("s3cret-token_1-long-enough")).await.unwrap().status(), 200);
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Hooked."]);
    assert_eq!(post(Some("s3cret-token_1-long-enough")).await.unwrap().status(), 200, "a redelivery is acknowledged");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "…and handled once");
    assert!(fake.calls_to("getUpdates").is_empty(), "no polling in webhook mode");
}

#[tokio::test]
async fn polling_mode_removes_a_leftover_webhook_first() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "after the webhook", "Polling again.").await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ALICE.id, &ALICE, "after the webhook");
    fake.wait_for_replies(ALICE.id, 1).await;
    let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
    let delete = methods.iter().position(|m| m == "deleteWebhook").expect("deleteWebhook was called");
    let first_poll = methods.iter().position(|m| m == "getUpdates").unwrap();
    assert!(delete < first_poll);
}

#[tokio::test]
async fn in_polling_mode_there_is_no_webhook_route_even_with_an_empty_secret() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "forged", "Should never be answered.").await;
    let configure = configure(&mock, &fake);
    let app = TestApp::spawn(|settings| {
        configure(settings);
        // A leftover empty secret without webhook_url: polling mode.
        settings.telegram.webhook_secret = Some(String::new().into());
    })
    .await;
    // Built by hand, not queued: the poller must not see it.
    let update = serde_json::json!({"update_id": 900, "message": {
        "message_id": 900, "date": 0, "text": "forged",
        "chat": {"id": ALICE.id, "type": "private"},
        "from": {"id": ALICE.id, "is_bot": false, "first_name": "Alice"},
    }});
    for secret in [None, Some("")] {
        let mut request = app.http.post(app.url("/telegram/webhook")).json(&update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), 404, "secret {secret:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(questions(&mock).await.is_empty(), "a forged update is never processed");
    assert!(app.store().await.telegram_updates().await.unwrap().is_empty(), "nor stored");
}

#[test]
fn webhook_settings_are_validated() {
    use valor::config::{self, EnvSource};
    let load = |toml: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valor.toml");
        std::fs::write(&path, toml).unwrap();
        config::load(Some(&path), &EnvSource::default())
    };
    let ok =
        load("[telegram]\nwebhook_url = \"https://x.dev/telegram/webhook\"\nwebhook_secret = \"abc_DEF-1-0123456\"\n");
    assert!(ok.is_ok(), "{ok:?}");
    for (toml, key) in [
        ("[telegram]\nwebhook_url = \"http://x.dev/hook\"\nwebhook_secret = \"abc\"\n", "telegram.webhook_url"),
        ("[telegram]\nwebhook_url = \"https://x.dev/hook\"\n", "telegram.webhook_secret"),
        (
            "[telegram]\nwebhook_url = \"https://x.dev/hook\"\nwebhook_secret = \"has space 0123456789\"\n",
            "telegram.webhook_secret",
        ),
        // Guessable: shorter than 16 characters.
        ("[telegram]\nwebhook_url = \"https://x.dev/hook\"\nwebhook_secret = \"abc_DEF-1\"\n", "16–256 characters"),
    ] {
        let error = load(toml).unwrap_err().to_string();
        assert!(error.contains(key), "{error}");
    }
}
