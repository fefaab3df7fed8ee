//! `valor chat` as a person uses it: the real binary on a pseudo-terminal
//! (rexpect), the model played by aimock. Line editing reaches the model as
//! the edited text, Ctrl-C stops a streaming answer without merging it into
//! the next question, local commands never reach the model, logs stay off
//! the terminal and the model's escape sequences are shown, not obeyed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rexpect::session::PtySession;
use serde_json::{Value, json};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_valor");
const PROMPT: &str = "you> ";
const LEFT_ARROW: &str = "\x1b[D";

/// `valor chat --conversation NAME` in `dir` with a clean environment, talking to the model at `model_url`.
fn chat_command(dir: &Path, model_url: &str, conversation: &str) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("TERM", "xterm-256color")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", model_url)
        .env("VALOR__INTENT__USE_MODEL", "false")
        .args(["chat", "--conversation", conversation]);
    command
}

/// `valor chat` on a pseudo-terminal, talking to `mock`.
/// Returns the session and what it showed before its first prompt.
fn spawn_chat(dir: &Path, model_url: &str) -> (PtySession, String) {
    let command = chat_command(dir, model_url, "pty");
    let mut session = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    let greeting = session.exp_string(PROMPT).expect("the chat shows its prompt");
    (session, greeting)
}

/// Run blocking terminal work off the async runtime (aimock's pipes are drained there).
async fn on_terminal<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// The turn requests (not token counts) aimock received.
async fn turn_requests(mock: &common::Aimock) -> Vec<Value> {
    mock.journal().await.into_iter().filter(|entry| entry["path"] == "/v1/messages").collect()
}

/// The text of every user message of one recorded request, in order.
fn user_texts(request: &Value) -> Vec<String> {
    let messages = request["body"]["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|message| message["role"] == "user")
        .map(|message| match &message["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        })
        .collect()
}

fn database(dir: &Path) -> PathBuf {
    dir.join("data/valor.db")
}

#[tokio::test(flavor = "multi_thread")]
async fn arrow_keys_edit_the_line_before_it_is_sent() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "hello world"}, "response": {"content": "Hi there."}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        // "hello wrld", three steps left, insert the missing "o".
        chat.send("hello wrld").unwrap();
        chat.send(&LEFT_ARROW.repeat(3)).unwrap();
        chat.send("o").unwrap();
        chat.send("\r").unwrap();
        chat.flush().unwrap();
        chat.exp_string("Hi there.").expect("the edited question was answered");
        chat.exp_string(PROMPT).unwrap();
        chat.send_control('d').unwrap();
        chat.exp_eof().unwrap();
    })
    .await;
    let requests = turn_requests(&mock).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(user_texts(&requests[0]), vec!["hello world".to_owned()]);
    // The line is in the history file, readable only by its owner.
    let history = dir.path().join("data/chat_history");
    assert!(std::fs::read_to_string(&history).unwrap().contains("hello world"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&history).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_a_streaming_answer_and_the_next_question_is_answered_alone() {
    // 6 characters every 200 ms: the long answer takes about 15 s.
    let mock = common::Aimock::start_with(&["-l", "200", "-c", "6"]).await;
    let story = "Once upon a time there was a very long story that nobody wanted to hear to the end, \
                 because it went on and on about budgets, timelines, staffing and the press release.";
    mock.add_fixtures(json!([
        {"match": {"userMessage": "tell me the long story"}, "response": {"content": story}},
        {"match": {"userMessage": "what is two plus two"}, "response": {"content": "Four."}},
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        chat.send_line("tell me the long story").unwrap();
        chat.exp_string("Once upon").expect("the answer starts streaming");
        chat.send_control('c').unwrap();
        chat.exp_string("[stopped]").expect("the answer is marked stopped");
        chat.exp_string(PROMPT).expect("the prompt comes back after a stop");
        chat.send_line("what is two plus two").unwrap();
        chat.exp_string("Four.").expect("the next question is answered");
        chat.exp_string(PROMPT).unwrap();
        chat.send_control('d').unwrap();
        chat.exp_eof().expect("Ctrl-D exits");
    })
    .await;

    let requests = turn_requests(&mock).await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    let second = user_texts(&requests[1]);
    assert_eq!(second.last().map(String::as_str), Some("what is two plus two"), "answered alone: {second:?}");
    assert_eq!(second.len(), 2, "the stopped question stays its own message: {second:?}");

    let store = valor::storage::Store::open(&database(dir.path())).await.unwrap();
    let conversation = store.find_conversation("pty").await.unwrap().unwrap();
    let turns = store.list_turns(&conversation.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].status, valor::storage::TurnStatus::Cancelled, "{:?}", turns[0]);
    assert_eq!(turns[0].error.as_deref(), Some(valor::agent::CANCELLED_RECORD), "{:?}", turns[0]);
    let messages = store.recent_messages(&conversation.id, 20).await.unwrap();
    let partial = messages
        .iter()
        .find(|m| m.role == valor::storage::MessageRole::Assistant)
        .expect("what was streamed is stored");
    let text = partial.text.strip_suffix(valor::agent::STOPPED_MARK).expect("marked stopped");
    assert!(!text.is_empty() && story.starts_with(text) && text.len() < story.len(), "{:?}", partial.text);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_at_an_empty_prompt_gives_a_hint_and_does_not_exit() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "still there"}, "response": {"content": "Yes."}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        chat.send_control('c').unwrap();
        chat.exp_string("Ctrl-D").expect("a hint on how to leave");
        chat.exp_string(PROMPT).unwrap();
        chat.send_line("still there").unwrap();
        chat.exp_string("Yes.").expect("the chat goes on");
        chat.send_line("/exit").unwrap();
        chat.exp_eof().expect("/exit leaves");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_new_are_answered_locally_and_never_reach_the_model() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "first question"}, "response": {"content": "First answer."}},
        {"match": {"userMessage": "fresh question"}, "response": {"content": "Fresh answer."}},
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    let help = on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        chat.send_line("/help").unwrap();
        let help = chat.exp_string(PROMPT).unwrap();
        chat.send_line("first question").unwrap();
        chat.exp_string("First answer.").unwrap();
        chat.exp_string(PROMPT).unwrap();
        chat.send_line("/new").unwrap();
        chat.exp_string("new conversation").expect("/new says it started a new conversation");
        chat.exp_string(PROMPT).unwrap();
        chat.send_line("fresh question").unwrap();
        chat.exp_string("Fresh answer.").unwrap();
        chat.exp_string(PROMPT).unwrap();
        chat.send_control('d').unwrap();
        chat.exp_eof().unwrap();
        help
    })
    .await;
    assert!(help.contains("/new") && help.contains("/exit") && help.contains("Ctrl-C"), "{help}");
    let requests = turn_requests(&mock).await;
    assert_eq!(requests.len(), 2, "only the two questions reached the model: {requests:?}");
    assert!(requests.iter().all(|r| !r["body"].to_string().contains("/help")), "{requests:?}");
    assert_eq!(user_texts(&requests[1]), vec!["fresh question".to_owned()], "/new starts an empty history");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_log_line_reaches_the_terminal_and_the_start_says_where_they_go() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "say hello"}, "response": {"content": "Hello."}}])).await;
    // A second turn fails (strict aimock has no fixture): its WARN line must not show either.
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    let seen = on_terminal(move || {
        let (mut chat, mut seen) = spawn_chat(&root, &url);
        chat.send_line("say hello").unwrap();
        seen.push_str(&chat.exp_string("Hello.").unwrap());
        seen.push_str(&chat.exp_string(PROMPT).unwrap());
        chat.send_line("an unscripted question").unwrap();
        seen.push_str(&chat.exp_string(PROMPT).unwrap());
        chat.send_control('d').unwrap();
        seen.push_str(&chat.exp_eof().unwrap());
        seen
    })
    .await;
    assert!(seen.contains("Logs go to ") && seen.contains("chat.log"), "the start says where logs go: {seen}");
    for marker in [" INFO ", " WARN ", "turn started", "turn ended early"] {
        assert!(!seen.contains(marker), "log line {marker:?} in the terminal: {seen}");
    }
    assert_eq!(seen.matches("[error]").count(), 1, "the failure is shown once: {seen}");
    let log = std::fs::read_to_string(dir.path().join("data/logs/chat.log")).expect("the chat log file");
    assert!(log.contains("turn started"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escape_sequence_in_the_answer_is_printed_escaped() {
    let mock = common::Aimock::start().await;
    let answer = "Look:\u{1b}]0;pwned\u{7} and \u{1b}[2J\tdone\nnext line";
    mock.add_fixtures(json!([{"match": {"userMessage": "escape me"}, "response": {"content": answer}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    let seen = on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        chat.send_line("escape me").unwrap();
        let seen = chat.exp_string("next line").expect("the answer arrives");
        chat.send_control('d').unwrap();
        chat.exp_eof().unwrap();
        seen
    })
    .await;
    assert!(seen.contains(r"Look:\x1b]0;pwned\x07 and \x1b[2J"), "shown escaped: {seen:?}");
    assert!(!seen.contains("\u{1b}]0;pwned"), "never sent raw: {seen:?}");
    assert!(seen.contains("\tdone"), "tabs are kept: {seen:?}");
}

/// A Markdown answer streams as written and ends rendered as plain text:
/// emphasis marks gone, the heading underlined, the table aligned — and
/// through a pipe only the rendering is printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_markdown_answer_streams_and_ends_rendered_as_plain_text() {
    let mock = common::Aimock::start_with(&["-l", "20", "-c", "12"]).await;
    let answer = "# Plan\n\nWe ship **Friday**.\n\n| step | who |\n|---|---|\n| build | Ann |\n\nAsk me *anything*.";
    mock.add_fixtures(json!([{"match": {"userMessage": "the plan"}, "response": {"content": answer}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, url) = (dir.path().to_path_buf(), mock.url.clone());
    let seen = on_terminal(move || {
        let (mut chat, _) = spawn_chat(&root, &url);
        chat.send_line("what is the plan").unwrap();
        let seen = chat.exp_string("Ask me anything.").expect("the answer ends rendered");
        chat.exp_string(PROMPT).unwrap();
        chat.send_control('d').unwrap();
        chat.exp_eof().unwrap();
        seen
    })
    .await;
    // rexpect hands over each byte as a char; the pseudo-terminal writes each `\n` as `\r\n`.
    let bytes: Vec<u8> = seen.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    let seen = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
    assert!(seen.contains("Plan\n════"), "the heading, underlined: {seen:?}");
    assert!(seen.contains("We ship Friday."), "{seen:?}");
    assert!(seen.contains("step  | who\n------+----\nbuild | Ann"), "the table, aligned: {seen:?}");
    // What streamed raw was erased (clear to the end of the screen) before its rendering.
    let raw = seen.find("We ship **").expect("the open block streams as written");
    assert!(seen[raw..].contains("\x1b[J"), "{seen:?}");

    // The same answer through a pipe: the rendering alone, no cursor movement.
    let mut command = tokio::process::Command::from(chat_command(dir.path(), &mock.url, "pipe"));
    command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    use tokio::io::AsyncWriteExt as _;
    child.stdin.take().unwrap().write_all(b"what is the plan\n").await.unwrap();
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        printed,
        "valor> Plan\n════\n\nWe ship Friday.\n\nstep  | who\n------+----\nbuild | Ann\n\nAsk me anything.\n"
    );
}
