//! Replies under Telegram's limits, seen from outside: the "done" reaction
//! follows the answer, a burst of chats is served first come first served
//! with nobody refused, and idle the channel makes no calls and no wake-ups.

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, configure, script};

#[tokio::test]
async fn the_done_reaction_is_set_when_the_answer_is_delivered_not_when_the_turn_ends() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    script(&mock, "held back", "Here at last.").await;
    let _app = TestApp::spawn(configure(&mock, &fake)).await;
    // Telegram holds the answer for 2 s after the turn ended.
    fake.fail_next("sendMessage", 429, "Too Many Requests", Some(2));

    let asked = fake.send_text(ALICE.id, &ALICE, "held back");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Here at last."]);
    fake.wait_for("👍", |_| fake.reactions_on(ALICE.id, asked).last().is_some_and(|r| r == "👍")).await;
    let delivered = fake.calls_to("sendMessage").last().unwrap().at;
    let done =
        fake.calls_to("setMessageReaction").into_iter().find(|c| c.params["reaction"][0]["emoji"] == "👍").unwrap().at;
    assert!(done >= delivered, "👍 came {:?} before the answer", delivered - done);
    assert_eq!(fake.reactions_on(ALICE.id, asked), ["👀", "👍"]);
}

/// CPU time (utime + stime, in clock ticks of 10 ms) of a process so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    valor::monitoring::resources::parse_cpu_ticks(&stat).unwrap()
}

#[tokio::test]
async fn idle_with_telegram_on_the_process_sleeps_and_a_new_message_is_still_answered_at_once() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    script(&mock, "still awake?", "Yes.").await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("valor.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[llm]\nprovider = \"openai\"\n[intent]\nuse_model = false\n\
             [telegram]\npoll_timeout_secs = 30\nallowed_users = [{}]\n",
            data.path().display().to_string(),
            ALICE.id
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_valor"));
    command
        .arg("serve")
        .current_dir(data.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data.path())
        .env("VALOR_CONFIG", &config)
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("OPENAI_API_KEY", "sk-openai-test-secret")
        .env("OPENAI_BASE_URL", format!("{}/v1", mock.url))
        .env("TELEGRAM_BOT_TOKEN", crate::fake_telegram::TOKEN)
        .env("TELEGRAM_API_URL", &fake.url)
        .kill_on_drop(true);
    let child = crate::common::spawn_listening(command).await;
    let pid = child.id().unwrap();
    fake.wait_for("long polling", |calls| calls.iter().any(|c| c.method == "getUpdates")).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await; // startup work settles

    let before = cpu_ticks(pid);
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let used = cpu_ticks(pid) - before;
    // 0.3 % of a core at most (3 ticks in 10 s); polling every 250 ms used several times that.
    assert!(used <= 3, "idle valor used {used} ticks (10 ms each) in 10 s");

    let asked = std::time::Instant::now();
    fake.send_text(ALICE.id, &ALICE, "still awake?");
    assert_eq!(fake.wait_for_replies(ALICE.id, 1).await, ["Yes."]);
    assert!(asked.elapsed() < std::time::Duration::from_secs(3), "answered after {:?}", asked.elapsed());
}

#[tokio::test]
async fn a_burst_of_chats_is_answered_first_come_first_served_within_telegrams_limits() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let people: Vec<crate::fake_telegram::Person> =
        (0..45).map(|index| crate::fake_telegram::Person { id: 7000 + index, username: "burst" }).collect();
    for person in &people {
        script(&mock, &format!("burst {}", person.id), &format!("Reply {}.", person.id)).await;
    }
    let base = configure(&mock, &fake);
    let ids: Vec<i64> = people.iter().map(|p| p.id).collect();
    let app = TestApp::spawn(move |settings| {
        base(settings);
        settings.resources.max_active_turns = 100;
        settings.telegram.allowed_users.extend(ids.into_iter().map(valor::config::UserRef::Id));
    })
    .await;

    for person in &people {
        fake.send_text(person.id, person, &format!("burst {}", person.id));
    }
    fake.wait_for("every reply", |_| fake.calls_to("sendMessage").len() >= people.len()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sends = fake.calls_to("sendMessage");
    assert_eq!(sends.len(), people.len(), "each chat answered once");

    // In the order the replies were queued (outbox row order), whatever the chat:
    let rows = app.store().await.telegram_outbox().await.unwrap();
    let queued: Vec<i64> = rows.iter().map(|row| row.chat_id).collect();
    let sent: Vec<i64> = sends.iter().map(|call| call.params["chat_id"].as_i64().unwrap()).collect();
    // Up to four sends are in flight at once, so neighbours may arrive swapped; nobody is overtaken by more.
    for (position, chat) in sent.iter().enumerate() {
        let queued_at = queued.iter().position(|c| c == chat).unwrap();
        assert!(position.abs_diff(queued_at) <= 4, "chat {chat}: queued {queued_at}th, sent {position}th\n{sent:?}");
    }
    // At most 30 a second, and the 31st goes as soon as the first second is over.
    let at = |index: usize| sends[index].at - sends[0].at;
    assert!(at(29) < std::time::Duration::from_millis(900), "the first 30 went at once: {:?}", at(29));
    assert!(at(30) >= std::time::Duration::from_millis(990), "the 31st came {:?} after the first", at(30));
    assert!(at(30) < std::time::Duration::from_millis(1300), "the 31st waited {:?}, longer than needed", at(30));
}
