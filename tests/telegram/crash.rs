//! A real `valor serve` process killed with SIGKILL in the middle of a turn:
//! the accepted message is answered exactly once by the next start.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::{FakeTelegram, TOKEN};
use crate::{ALICE, configure, questions, script};

#[tokio::test]
async fn a_process_killed_mid_turn_answers_exactly_once_after_restart() {
    let mock = Aimock::start_with(&["-l", "150"]).await; // ~20 chunks: the turn takes ~3 s
    let fake = FakeTelegram::start().await;
    let answer = "Survived the crash. ".repeat(20);
    script(&mock, "survive the crash", answer.trim()).await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("valor.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[llm]\nprovider = \"openai\"\n[intent]\nuse_model = false\n\
             [telegram]\npoll_timeout_secs = 1\nstream_short_chars = 100000\nallowed_users = [{}]\n",
            data.path().display().to_string(),
            ALICE.id
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_valor"))
        .arg("serve")
        .current_dir(data.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data.path())
        .env("VALOR_CONFIG", &config)
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("OPENAI_API_KEY", "sk-openai-test-secret")
        .env("OPENAI_BASE_URL", format!("{}/v1", mock.url))
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &fake.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let asked = fake.send_text(ALICE.id, &ALICE, "survive the crash");
    fake.wait_for("the 👀 reaction", |_| fake.reactions_on(ALICE.id, asked) == ["👀"]).await;
    for _ in 0..100 {
        if !questions(&mock).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(questions(&mock).await.len(), 1, "the turn is underway");
    child.start_kill().unwrap(); // SIGKILL: no shutdown code runs
    child.wait().await.unwrap();
    assert!(fake.calls_to("sendMessage").is_empty(), "killed before replying");

    let app = TestApp::spawn_in(data, configure(&mock, &fake)).await;
    fake.wait_for("the answer", |_| {
        fake.visible_messages(ALICE.id).first().is_some_and(|m| m["text"] == answer.trim())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.visible_messages(ALICE.id).len(), 1, "answered exactly once");
    assert_eq!(fake.calls_to("sendMessage").len(), 1, "one message (its streamed preview edited into the answer)");
    assert_eq!(questions(&mock).await.len(), 2, "the interrupted turn ran again, once");

    // The message handled twice is in the history once, and so in what the model saw.
    let store = app.store().await;
    let conversation = store.kv_get(&format!("telegram:conversation:{}", ALICE.id)).await.unwrap().unwrap();
    let messages = store.recent_messages(&conversation, 50).await.unwrap();
    let asked: Vec<_> = messages.iter().filter(|m| m.text == "survive the crash").collect();
    assert_eq!(asked.len(), 1, "{messages:#?}");
    let requests = mock.requests_to("/v1/chat/completions").await;
    let sent = requests.last().unwrap()["body"]["messages"].to_string();
    assert_eq!(sent.matches("survive the crash").count(), 1, "{sent}");
}
