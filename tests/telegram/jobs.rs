//! `/jobs` and `/cancel ID` in Telegram: a chat sees its own jobs with
//! status and progress, cancels a queued one, cannot touch another chat's
//! job (answered like a missing one), and an admin can stop any job.

use std::collections::BTreeMap;

use serde_json::json;
use valor::storage::{NewJob, Store, wall_clock_ms};

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ADMIN, ALICE, BOB, configure};

fn job(conversation_id: &str, task: &str) -> NewJob {
    NewJob {
        kind: "agent_task".into(),
        payload: json!({"task": task}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: Some(conversation_id.to_owned()),
        idempotency_key: None,
    }
}

/// Send `text` and return the bot's next reply in that chat.
async fn command(fake: &FakeTelegram, chat: i64, from: &crate::fake_telegram::Person, text: &str) -> String {
    let before = fake.visible_messages(chat).len();
    fake.send_text(chat, from, text);
    fake.wait_for_replies(chat, before + 1).await.pop().unwrap()
}

async fn conversation_of(store: &Store, chat: i64) -> String {
    store.kv_get(&format!("telegram:conversation:{chat}")).await.unwrap().expect("the chat has no conversation")
}

#[tokio::test]
async fn a_chat_lists_its_jobs_and_cancels_only_its_own_while_an_admin_may_cancel_any() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let setup = configure(&mock, &fake);
    let app = TestApp::spawn(|s| {
        setup(s);
        s.jobs.workers = 0;
        s.telegram.rate_limit_per_minute = 600;
        s.telegram.rate_limit_burst = 100;
    })
    .await;
    assert_eq!(command(&fake, ALICE.id, &ALICE, "/jobs").await, "This chat has no background jobs.");
    // `/reset` gives the chat its conversation (a first model turn would too).
    command(&fake, ALICE.id, &ALICE, "/reset").await;
    let store = app.store().await;
    let alice = conversation_of(&store, ALICE.id).await;
    let queued = store.enqueue_job(job(&alice, "write the report"), wall_clock_ms()).await.unwrap().job.id;
    let running = store.enqueue_job(job(&alice, "search the web"), wall_clock_ms()).await.unwrap().job.id;
    let claimed = store.claim_job("test-worker", wall_clock_ms(), 600_000, &BTreeMap::new()).await.unwrap().unwrap();
    assert_eq!(claimed.id, queued, "oldest first");
    store.update_job_progress(queued, "test-worker", "halfway", Some(40), wall_clock_ms()).await.unwrap();

    let listing = command(&fake, ALICE.id, &ALICE, "/jobs").await;
    assert!(listing.contains(&format!("#{running} agent_task — queued")), "{listing}");
    assert!(listing.contains(&format!("#{queued} agent_task — running (40 %: halfway)")), "{listing}");
    assert!(listing.find(&format!("#{running} ")) < listing.find(&format!("#{queued} ")), "newest first: {listing}");
    assert_eq!(command(&fake, BOB.id, &BOB, "/jobs").await, "This chat has no background jobs.");

    let refused = command(&fake, BOB.id, &BOB, &format!("/cancel {running}")).await;
    assert_eq!(refused, format!("There is no job #{running} in this chat."));
    assert_eq!(store.get_job(running).await.unwrap().status.as_str(), "queued");
    assert!(command(&fake, ALICE.id, &ALICE, "/cancel").await.starts_with("Which job?"));
    assert_eq!(command(&fake, ALICE.id, &ALICE, "/cancel 999999").await, "There is no job #999999 in this chat.");

    let cancelled = command(&fake, ALICE.id, &ALICE, &format!("/cancel {running}")).await;
    assert_eq!(cancelled, format!("Cancelled job #{running} (agent_task)."));
    assert_eq!(store.get_job(running).await.unwrap().status.as_str(), "cancelled");
    let again = command(&fake, ALICE.id, &ALICE, &format!("/cancel {running}")).await;
    assert_eq!(again, format!("Job #{running} already cancelled; nothing to cancel."));

    let asked = command(&fake, ADMIN.id, &ADMIN, &format!("/cancel {queued}")).await;
    assert_eq!(asked, format!("Asked job #{queued} (agent_task) to stop; I'll confirm when it has."));
    assert!(store.get_job(queued).await.unwrap().cancel_requested);
    assert!(mock.requests_to("/v1/chat/completions").await.is_empty(), "commands never reach the model");
}

#[tokio::test]
async fn job_notices_telegram_refuses_at_first_are_retried_and_each_arrives_once() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    crate::script(&mock, "count the moons of Mars", "Mars has two moons: Phobos and Deimos.").await;
    let setup = configure(&mock, &fake);
    let app = TestApp::spawn(|s| {
        setup(s);
        s.jobs.workers = 0;
    })
    .await;
    command(&fake, ALICE.id, &ALICE, "/reset").await;
    let store = app.store().await;
    let alice = conversation_of(&store, ALICE.id).await;
    let id = store.enqueue_job(job(&alice, "count the moons of Mars"), wall_clock_ms()).await.unwrap().job.id;
    // The job's first sends are refused: rate limited, then a Telegram server error.
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", Some(1));
    fake.fail_next("sendMessage", 500, "Internal Server Error", None);
    let before = fake.calls_to("sendMessage").len();
    app.job_worker("test").try_execute_next().await.unwrap().expect("the job did not run");
    let notices = |fake: &FakeTelegram| -> Vec<String> {
        fake.visible_messages(ALICE.id)
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .filter(|text| text.contains(&format!("Job #{id}")))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while notices(&fake).len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = notices(&fake);
    assert_eq!(seen.len(), 2, "the status message and the final notice, each once: {seen:?}");
    assert!(seen[0].contains("Task: count the moons of Mars"), "{seen:?}");
    assert!(seen[1].contains("finished") && seen[1].contains("Phobos and Deimos"), "{seen:?}");
    assert!(fake.calls_to("sendMessage").len() >= before + 4, "the refused sends were not retried");
    // Later passes repeat nothing.
    assert!(app.job_worker("again").try_execute_next().await.unwrap().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(notices(&fake).len(), 2, "a notice was delivered twice");
    let delivered: Vec<String> = store.job_notices(id).await.unwrap().into_iter().map(|(key, _)| key).collect();
    assert_eq!(delivered, ["final:0"]);
}

#[tokio::test]
async fn the_daydream_summary_reaches_the_first_admins_private_chat() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let setup = configure(&mock, &fake);
    let app = TestApp::spawn(|s| {
        setup(s);
        s.jobs.workers = 0;
        s.daydream.min_available_memory_mb = 0;
    })
    .await;
    let store = app.store().await;
    let daydream = NewJob {
        kind: "daydream".into(),
        payload: json!({"trigger": "manual"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 1,
        conversation_id: None,
        idempotency_key: None,
    };
    store.enqueue_job(daydream, wall_clock_ms()).await.unwrap();
    app.job_worker("test").try_execute_next().await.unwrap().expect("the daydream job did not run");
    let replies = fake.wait_for_replies(ADMIN.id, 1).await;
    assert!(replies[0].starts_with("Daydream reviewed 0 workspace(s)."), "{replies:?}");
    let session = &store.list_daydream_sessions(1).await.unwrap()[0];
    assert_eq!(session.outcome, "completed");
    assert_eq!(session.phases.len(), 6);
}
