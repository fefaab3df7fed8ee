//! Load shedding seen from outside: above the high-water mark (here one
//! turn at a time) a non-admin's new message gets the polite "busy" reply
//! without a model request, admins are still answered, and once the
//! pressure is gone the same user is answered normally again.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ADMIN, ALICE, configure, questions, script};
use valor::monitoring::resources::BUSY_REPLY;

async fn status(app: &TestApp) -> Value {
    app.get_json("/api/status").await
}

#[tokio::test]
async fn above_the_high_water_mark_non_admins_get_a_polite_busy_reply_until_the_pressure_drops() {
    // 50 ms between streamed chunks: the long answer keeps one turn running for a few seconds.
    let (mock, fake) = (Aimock::start_with(&["-l", "50"]).await, FakeTelegram::start().await);
    script(&mock, "write a long essay", &"Lorem ipsum dolor sit amet. ".repeat(40)).await;
    script(&mock, "hello while busy", "You should not see this.").await;
    script(&mock, "admin while busy", "Yes, boss.").await;
    script(&mock, "hello again", "Hi Alice.").await;
    let base = configure(&mock, &fake);
    let app = TestApp::spawn(move |settings| {
        base(settings);
        settings.resources.max_active_turns = 1;
    })
    .await;

    let (http, url) = (app.http.clone(), app.url("/api/messages"));
    let long_turn = tokio::spawn(async move {
        http.post(url).json(&json!({"conversation": "essay", "text": "write a long essay"})).send().await.unwrap()
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&app).await["resources"]["active_turns"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the long turn never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&app).await["resources"]["pressure"], "too_many_turns");

    fake.send_text(ALICE.id, &ALICE, "hello while busy");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, [BUSY_REPLY]);
    fake.send_text(ADMIN.id, &ADMIN, "admin while busy");
    assert_eq!(fake.wait_for_replies(ADMIN.id, 1).await, ["Yes, boss."], "admins are never refused");

    let answered = long_turn.await.unwrap();
    assert_eq!(answered.status(), 200, "API callers are admins: the long turn finished");
    let after = status(&app).await;
    assert_eq!(after["resources"]["shed_total"], 1);
    assert_eq!(after["resources"]["pressure"], Value::Null, "recovers by itself");

    fake.send_text(ALICE.id, &ALICE, "hello again");
    assert_eq!(fake.wait_for_replies(ALICE.id, 2).await[1], "Hi Alice.");
    assert!(!questions(&mock).await.iter().any(|q| q == "hello while busy"), "a refused message costs no model call");
}
