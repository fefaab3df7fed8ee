//! Load shedding and the turn queue seen from outside: beyond
//! `max_active_turns` a message waits for a slot (with a short "queued"
//! note when the wait is long) and is answered; more chats than slots are
//! all answered; only memory pressure (or a full queue) gets the polite
//! "busy" reply without a model request, and admins are never refused.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::{FakeTelegram, Person};
use crate::{ADMIN, ALICE, configure, questions, script};
use valor::config::UserRef;
use valor::monitoring::resources::BUSY_REPLY;

async fn status(app: &TestApp) -> Value {
    app.get_json("/api/status").await
}

#[tokio::test]
async fn beyond_the_turn_slots_a_message_waits_is_told_it_is_queued_and_is_answered() {
    // 20 characters every 50 ms: the long answer keeps the only slot busy for about 4 s.
    let (mock, fake) = (Aimock::start_with(&["-l", "50", "-c", "20"]).await, FakeTelegram::start().await);
    script(&mock, "write a long essay", &"Lorem ipsum dolor sit amet. ".repeat(60)).await;
    script(&mock, "hello while busy", "Your turn came.").await;
    script(&mock, "admin while busy", "Yes, boss.").await;
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

    let asked = fake.send_text(ALICE.id, &ALICE, "hello while busy");
    fake.send_text(ADMIN.id, &ADMIN, "admin while busy");
    assert_eq!(fake.wait_for_replies(ADMIN.id, 1).await, ["Yes, boss."], "admins never wait");
    let note = fake.wait_for_replies(ALICE.id, 1).await;
    assert!(note[0].starts_with("⏳") && note[0].contains("queued"), "{note:?}");
    assert!(!long_turn.is_finished(), "told while the long turn still runs");
    assert_eq!(fake.reactions_on(ALICE.id, asked), ["👀"], "seen at once");

    assert_eq!(long_turn.await.unwrap().status(), 200);
    let replies = fake.wait_for_replies(ALICE.id, 2).await;
    assert_eq!(replies[1], "Your turn came.");
    assert!(!replies.iter().any(|r| r == BUSY_REPLY), "{replies:?}");
    assert_eq!(status(&app).await["resources"]["shed_total"], 0, "nobody was refused");
}

#[tokio::test]
async fn more_chats_than_turn_slots_are_all_answered() {
    // 20 characters every 100 ms: each answer takes about a second.
    let (mock, fake) = (Aimock::start_with(&["-l", "100", "-c", "20"]).await, FakeTelegram::start().await);
    let people: Vec<Person> = (0..6).map(|index| Person { id: 5000 + index, username: "someone" }).collect();
    for person in &people {
        let answer = format!("Answer for {}: {}", person.id, "a few more words. ".repeat(10).trim());
        script(&mock, &format!("question from {}", person.id), &answer).await;
    }
    let base = configure(&mock, &fake);
    let ids: Vec<i64> = people.iter().map(|p| p.id).collect();
    let app = TestApp::spawn(move |settings| {
        base(settings);
        settings.resources.max_active_turns = 2;
        settings.telegram.stream_short_chars = 100_000;
        settings.telegram.allowed_users.extend(ids.into_iter().map(UserRef::Id));
    })
    .await;

    for person in &people[..2] {
        fake.send_text(person.id, person, &format!("question from {}", person.id));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&app).await["resources"]["active_turns"] != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the first two turns never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for person in &people[2..] {
        fake.send_text(person.id, person, &format!("question from {}", person.id));
    }
    for person in &people {
        let expected = format!("Answer for {}:", person.id);
        fake.wait_for(&expected, |_| {
            fake.visible_messages(person.id).iter().any(|m| m["text"].as_str().unwrap().starts_with(&expected))
                || fake.visible_messages(person.id).iter().any(|m| m["text"] == BUSY_REPLY)
        })
        .await;
        let replies: Vec<Value> = fake.visible_messages(person.id);
        assert!(!replies.iter().any(|r| r["text"] == BUSY_REPLY), "{} was refused: {replies:?}", person.id);
    }
    assert_eq!(status(&app).await["resources"]["shed_total"], 0);
}

#[tokio::test]
async fn above_the_memory_mark_non_admins_get_a_polite_busy_reply_and_admins_are_answered() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "hello while busy", "You should not see this.").await;
    script(&mock, "admin while busy", "Yes, boss.").await;
    let base = configure(&mock, &fake);
    let app = TestApp::spawn(move |settings| {
        base(settings);
        settings.resources.max_rss_mb = 1; // the first sample is above it
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&app).await["resources"]["pressure"] != "memory_high" {
        assert!(tokio::time::Instant::now() < deadline, "no memory sample");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fake.send_text(ALICE.id, &ALICE, "hello while busy");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, [BUSY_REPLY]);
    fake.send_text(ADMIN.id, &ADMIN, "admin while busy");
    assert_eq!(fake.wait_for_replies(ADMIN.id, 1).await, ["Yes, boss."], "admins are never refused");
    assert_eq!(status(&app).await["resources"]["shed_total"], 1);
    assert!(!questions(&mock).await.iter().any(|q| q == "hello while busy"), "a refused message costs no model call");
}
