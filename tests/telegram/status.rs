//! `/status` in Telegram: the same health score as `/api/status` (one
//! function computes both), each component's state, and the tokens context
//! compaction saved in this chat and overall.

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ADMIN, ALICE, configure, script};
use valor::storage::{TurnFinish, TurnStatus};

#[tokio::test]
async fn status_shows_the_health_score_its_components_and_the_tokens_saved() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "hello", "Hi.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ADMIN.id, &ADMIN, "hello");
    fake.send_text(ALICE.id, &ALICE, "hello");
    fake.wait_for_replies(ADMIN.id, 1).await;
    fake.wait_for_replies(ALICE.id, 1).await;

    // Compaction's savings as the turns recorded them: 1234 here, 66 in another chat.
    let store = app.store().await;
    for (chat, saved) in [(ADMIN.id, 1234), (ALICE.id, 66)] {
        let key = format!("telegram:conversation:{chat}");
        let conversation = store.kv_get(&key).await.unwrap().unwrap();
        let turn = store.list_turns(&conversation).await.unwrap().pop().unwrap();
        let finish = TurnFinish {
            status: TurnStatus::Completed,
            steps: 1,
            input_tokens: 0,
            output_tokens: 0,
            error: None,
            context_tokens: 500,
            tokens_saved: saved,
        };
        store.finish_turn(&turn.id, finish).await.unwrap();
    }

    fake.send_text(ADMIN.id, &ADMIN, "/status");
    let status = fake.wait_for_replies(ADMIN.id, 2).await[1].clone();
    let api = app.get_json("/api/status").await;
    let score = api["health"]["score"].as_u64().unwrap();
    let level = api["health"]["level"].as_str().unwrap();
    assert!(status.contains(&format!("Health: {score}/100 ({level})")), "{status}");
    for component in api["health"]["components"].as_array().unwrap() {
        let (name, note) = (component["name"].as_str().unwrap(), component["note"].as_str().unwrap());
        // The resources note carries the newest memory sample, which may change in between.
        let line = if name == "resources" { format!("{name}: memory ") } else { format!("{name}: {note}") };
        assert!(status.contains(&line), "{line:?} missing from {status}");
    }
    assert!(status.contains("✓ database: answers"), "{status}");
    assert!(status.contains("✓ telegram: connected"), "{status}");
    assert!(status.contains("saved 1234 tokens in this chat (1300 in all)"), "{status}");
    let html = fake.visible_messages(ADMIN.id)[1]["html"].as_str().unwrap().to_owned();
    assert!(html.contains(&format!("<b>Health: {score}/100 ({level})</b>")), "{html}");
}

/// Security: a non-admin's `/status` shows the score, not valor's internals.
#[tokio::test]
async fn a_non_admins_status_shows_the_score_but_not_the_components() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    fake.send_text(ALICE.id, &ALICE, "/status");
    fake.send_text(ADMIN.id, &ADMIN, "/status");
    let alice = fake.wait_for_replies(ALICE.id, 1).await[0].clone();
    let admin = fake.wait_for_replies(ADMIN.id, 1).await[0].clone();
    let level = app.get_json("/api/status").await["health"]["level"].as_str().unwrap().to_owned();
    assert!(alice.contains(&format!("({level})")) && alice.contains("Health: "), "{alice}");
    assert!(alice.contains("tokens in this chat"), "{alice}");
    for detail in ["database:", "telegram:", "model provider", "outbox:", "background jobs", "in all"] {
        assert!(!alice.contains(detail), "{detail:?} shown to a non-admin: {alice}");
        assert!(admin.contains(detail), "{detail:?} missing for the admin: {admin}");
    }
}

fn telegram_component(health: &serde_json::Value) -> serde_json::Value {
    health["components"].as_array().unwrap().iter().find(|c| c["name"] == "telegram").cloned().unwrap()
}

/// The Bot API is unreachable when valor starts: valor keeps trying with
/// backoff, shows "connecting" meanwhile, and answers once Telegram is back.
#[tokio::test]
async fn a_bot_api_that_comes_up_late_is_connected_without_a_restart() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start_after(std::time::Duration::from_secs(2)).await;
    script(&mock, "are you there?", "Yes.").await;
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let health = app.get_json("/health").await;
    let telegram = telegram_component(&health);
    assert_eq!(telegram["on"], false, "{health:#}");
    assert!(telegram["detail"].as_str().unwrap().starts_with("connecting"), "{telegram}");
    let score =
        health["health"]["components"].as_array().unwrap().iter().find(|c| c["name"] == "telegram").unwrap().clone();
    assert_eq!(score["penalty"], 10, "not connected costs its points: {score}");

    fake.send_text(ALICE.id, &ALICE, "are you there?");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Yes."]);
    let health = app.get_json("/health").await;
    assert_eq!(telegram_component(&health)["on"], true, "{health:#}");
    assert_eq!(telegram_component(&health)["detail"], "@valor_bot");
}

/// A token Telegram rejects is not retried: the component says to check
/// `TELEGRAM_BOT_TOKEN`.
#[tokio::test]
async fn a_rejected_token_names_the_variable_and_is_not_retried() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    fake.fail_next("getMe", 401, "Unauthorized", None);
    let app = TestApp::spawn(configure(&mock, &fake)).await;
    let telegram = telegram_component(&app.get_json("/health").await);
    assert_eq!(telegram["on"], false);
    let detail = telegram["detail"].as_str().unwrap();
    assert!(detail.contains("401 Unauthorized") && detail.contains("check TELEGRAM_BOT_TOKEN"), "{detail}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(fake.calls_to("getMe").len(), 1, "a rejected token is not tried again");
}

/// A failing model shows in Telegram's `/status` too: degraded, with the
/// model line naming the failure.
#[tokio::test]
async fn status_in_telegram_shows_a_failing_model() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let setup = configure(&mock, &fake);
    let _app = TestApp::spawn(|s| {
        setup(s);
        s.llm.max_retries = 0;
        s.tools.breaker_failure_threshold = 3;
    })
    .await;
    for attempt in 1..=3 {
        mock.queue_error(500, "api_error", "internal failure").await;
        fake.send_text(ADMIN.id, &ADMIN, &format!("hello {attempt}"));
        fake.wait_for_replies(ADMIN.id, attempt).await;
    }
    fake.send_text(ADMIN.id, &ADMIN, "/status");
    let status = fake.wait_for_replies(ADMIN.id, 4).await[3].clone();
    assert!(status.contains("(degraded)"), "{status}");
    assert!(
        status.contains("⚠ model: failing: 3 call(s) in a row (last: the model provider failed with HTTP 500)"),
        "{status}"
    );
}
