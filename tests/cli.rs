//! The `valor` binary from outside: `serve` on embedded defaults, graceful
//! shutdown on SIGTERM, `doctor`, `migrate`, `backup`, `chat`, and config errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_valor");

/// A command with a clean environment: no provider keys leak in from the machine.
fn valor(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", dir);
    command.kill_on_drop(true);
    command
}

#[tokio::test]
async fn serve_starts_on_defaults_creates_the_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = valor(dir.path())
        .arg("serve")
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if let Some(index) = line.find("listening on http://") {
                return line[index + "listening on ".len()..].trim().to_owned();
            }
        }
        panic!("valor exited before listening: {log:?}");
    })
    .await
    .expect("valor did not start listening within 30 s");
    let client = valor::llm::transport::client_builder().build().unwrap();
    let health = client.get(format!("{address}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    eprintln!("startup to /health 200: {} ms", started.elapsed().as_millis());
    assert!(dir.path().join("data/valor.db").exists(), "./data/valor.db was not created");

    // The reasons for what is off come right after the listening line.
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await {
        log.push(line);
        if log.iter().any(|l| l.contains("telegram: off")) {
            break;
        }
    }
    let joined = log.join("\n");
    assert!(joined.contains("telegram: off — set TELEGRAM_BOT_TOKEN"), "{joined}");
    assert!(joined.contains("model: off"), "{joined}");

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("no exit after SIGTERM").unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let rest: Vec<String> = {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    };
    assert!(rest.iter().any(|l| l.contains("SIGTERM received")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("valor stopped")), "{rest:?}");
}

#[tokio::test]
async fn a_bad_config_value_exits_with_code_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("valor.toml"), "[agent]\nmax_steps = \"lots\"\n").unwrap();
    let output = valor(dir.path()).arg("doctor").output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_steps"), "{stderr}");
}

/// `valor doctor | head`, `valor jobs list | true`: a reader that goes away is no panic.
#[tokio::test]
async fn commands_whose_reader_closed_the_pipe_end_quietly_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["doctor"][..], &["migrate"], &["jobs", "list"]] {
        let mut child = valor(dir.path()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // The read end is closed before valor writes anything.
        drop(child.stdout.take());
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "valor {args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "valor {args:?} panicked: {stderr}");
    }
}

#[tokio::test]
async fn doctor_prints_a_table_of_what_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    // Before valor ever ran here: the database row says so, and looking creates nothing.
    let output = valor(dir.path()).arg("doctor").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let database = stdout.lines().find(|l| l.starts_with("database")).unwrap_or_default().to_owned();
    assert!(database.contains("off") && database.contains("there is no valor database at"), "{stdout}");
    assert!(!dir.path().join("data/valor.db").exists(), "doctor created an empty database");
    let migrated = valor(dir.path()).arg("migrate").output().await.unwrap();
    assert!(migrated.status.success());

    let output = valor(dir.path()).arg("doctor").env("VALOR_HTTP_ADDR", "127.0.0.1:0").output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let row = |part: &str| {
        stdout.lines().find(|l| l.starts_with(part)).unwrap_or_else(|| panic!("no {part} row in:\n{stdout}")).to_owned()
    };
    assert!(row("database").contains("ready"));
    assert!(row("model").contains("off"));
    assert!(row("telegram").contains("TELEGRAM_BOT_TOKEN"));

    // An unreachable provider is reported as such, and its key never printed.
    let output = valor(dir.path())
        .arg("doctor")
        .env("ANTHROPIC_API_KEY", "sk-ant-doctor-secret")
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("model (anthropic)") && l.contains("unreachable")), "{stdout}");
    assert!(!stdout.contains("sk-ant-doctor-secret"));
    assert_eq!(output.status.code(), Some(3), "unreachable exits 3: {stdout}");
}

/// Each broken part has its row and the exit code says how bad: a workspace
/// that is not a git repository, a missing Claude Code CLI, model names the
/// OpenAI-compatible server does not serve (misconfigured: 1), a taken port.
#[tokio::test]
async fn doctor_names_each_broken_part_and_exits_non_zero() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(serde_json::json!([{"match": {"model": "llama3.2"}, "response": {"content": "hi"}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        dir.path().join("valor.toml"),
        format!("[[workspace]]\nname = \"site\"\npath = \"{}\"\n", project.display()),
    )
    .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = || {
        let mut command = valor(dir.path());
        command
            .arg("doctor")
            .env("OPENAI_BASE_URL", format!("{}/v1", mock.url))
            .env("VALOR_CLAUDE_BIN", dir.path().join("no-such-claude"))
            .env("VALOR_HTTP_ADDR", taken.local_addr().unwrap().to_string());
        command
    };
    let mut wrong = base();
    for tier in ["SMALL", "MEDIUM", "LARGE"] {
        wrong.env(format!("VALOR__OPENAI__MODELS__{tier}"), "qwen2.5");
    }
    let output = wrong.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let row = |part: &str| {
        stdout.lines().find(|l| l.starts_with(part)).unwrap_or_else(|| panic!("no {part} row:\n{stdout}")).to_owned()
    };
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let model = row("model (openai-compatible)");
    assert!(model.contains("misconfigured") && model.contains("does not serve `qwen2.5`"), "{model}");
    assert!(model.contains("it has llama3.2") && model.contains("[openai.models]"), "{model}");
    let workspace = row("workspace site");
    assert!(workspace.contains("misconfigured") && workspace.contains("is not a git repository"), "{workspace}");
    let claude = row("claude");
    assert!(claude.contains("misconfigured") && claude.contains("VALOR_CLAUDE_BIN"), "{claude}");
    let http = row("http");
    assert!(http.contains("misconfigured") && http.contains("taken by another program"), "{http}");
    assert!(row("schedules").contains("daydream"), "{stdout}");

    // Fixed: OpenAI's default names left (the server's own are used), a git
    // repository, a free port; only the missing CLI is left.
    assert!(Command::new("git").args(["init", "-q", "-b", "trunk"]).current_dir(&project).status().unwrap().success());
    // A repository without a commit has no branch a run could start from.
    let output = base().env("VALOR_HTTP_ADDR", "127.0.0.1:0").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let site = stdout.lines().find(|l| l.starts_with("workspace site")).unwrap_or_default().to_owned();
    assert!(site.contains("misconfigured") && site.contains("has no commit yet"), "{stdout}");
    let commit = ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"];
    assert!(Command::new("git").args(commit).current_dir(&project).status().unwrap().success());
    let output = base().env("VALOR_HTTP_ADDR", "127.0.0.1:0").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let row = |part: &str| {
        stdout.lines().find(|l| l.starts_with(part)).unwrap_or_else(|| panic!("no {part} row:\n{stdout}")).to_owned()
    };
    assert!(row("model (openai-compatible)").contains("ready"), "{stdout}");
    assert!(
        row("workspace site").contains("ready") && row("workspace site").contains("runs branch from trunk"),
        "{stdout}"
    );
    assert!(row("http").contains("is free"), "{stdout}");
    assert_eq!(output.status.code(), Some(1), "the missing CLI is still misconfigured: {stdout}");
}

/// Run in the wrong folder, `backup` and `jobs` refuse, naming the path they looked at.
#[tokio::test]
async fn commands_that_read_the_database_refuse_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("copy.db");
    for args in [vec!["backup", backup.to_str().unwrap()], vec!["jobs", "list"]] {
        let output = valor(dir.path()).args(&args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "valor {args:?} succeeded without a database");
        let looked_at = dir.path().join("data/valor.db");
        let said = format!("there is no valor database at {}", dir.path().display());
        assert!(stderr.contains(&said) && stderr.contains("data/valor.db"), "{stderr}");
        assert!(stderr.contains("VALOR_DATA_DIR"), "{stderr}");
        assert!(!looked_at.exists() && !backup.exists(), "valor {args:?} created a database");
    }
}

#[tokio::test]
async fn migrate_and_backup_work_on_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = valor(dir.path()).arg("migrate").output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.split('_').next()?.parse::<i64>().ok())
        .max()
        .unwrap();
    assert!(stdout.contains(&format!("schema version {newest}")), "{stdout}");
    assert!(dir.path().join("data/valor.db").exists());

    // Put a conversation in through `valor chat` (no provider: the reply explains how to configure one).
    let mut chat = valor(dir.path())
        .args(["chat", "--conversation", "cli"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin.take().unwrap().write_all(b"hello from the terminal\n").await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), chat.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("no model provider is configured"), "{stdout}");
    assert_eq!(stdout.matches("no model provider is configured").count(), 1, "said once, labelled: {stdout}");
    assert!(stdout.contains("[error] I can't answer yet"), "{stdout}");

    let backup = dir.path().join("backup/valor-copy.db");
    let output = valor(dir.path()).arg("backup").arg(&backup).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = valor::storage::Store::open(&backup).await.unwrap();
    let conversations = store.list_conversations(10).await.unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0].conversation.title, "cli");
    let hits = store.search_messages(None, "terminal", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    store.close().await;

    // A second backup to the same path is refused rather than overwriting.
    let output = valor(dir.path()).arg("backup").arg(&backup).output().await.unwrap();
    assert!(!output.status.success());
}

#[tokio::test]
async fn chat_reads_stdin_and_json_logs_go_to_the_chat_log_not_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut chat = valor(dir.path())
        .arg("chat")
        .env("VALOR__LOG__FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin.take().unwrap().write_all(b"first line\n\nsecond line\n/help\n/exit\nnever sent\n").await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), chat.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("valor> ").count(), 2, "one answer per non-empty line before /exit: {stdout}");
    assert!(stdout.contains("/new"), "/help is answered locally: {stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert!(!stdout.contains("turn started"), "logs must not reach stdout");
    let log = std::fs::read_to_string(dir.path().join("data/logs/chat.log")).unwrap();
    let turn_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["message"] == "turn started")
        .collect();
    assert_eq!(turn_lines.len(), 2, "expected two JSON 'turn started' log lines in: {log}");
    assert_eq!(turn_lines[0]["intent_source"], "fallback");
}

/// SIGTERM in the middle of a streamed answer: after the grace period the
/// turn is interrupted, and what it had streamed is stored, marked, before
/// valor exits.
#[tokio::test]
async fn sigterm_mid_answer_stores_what_was_streamed_marked_interrupted() {
    let mock = common::Aimock::start_with(&["-l", "250", "-c", "8"]).await;
    let answer = "The launch plan has five parts: budget, timeline, staffing, risks and the press release. \
                  Budget first: we agreed on forty thousand.";
    mock.add_fixtures(
        serde_json::json!([{"match": {"userMessage": "the launch plan"}, "response": {"content": answer}}]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = valor(dir.path())
        .arg("serve")
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("VALOR__SERVER__SHUTDOWN_GRACE_SECS", "1")
        .env("VALOR__INTENT__USE_MODEL", "false")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(index) = line.find("listening on http://") {
                return line[index + "listening on ".len()..].trim().to_owned();
            }
        }
        panic!("valor exited before listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let client = valor::llm::transport::client_builder().build().unwrap();
    let mut response = client
        .post(format!("{address}/api/messages"))
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({"conversation": "launch", "text": "Walk me through the launch plan"}))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("event: text_delta") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("no exit").unwrap();
    assert!(status.success(), "{status}");

    let store = valor::storage::Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let conversation = store
        .list_conversations(10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.conversation.title == "launch")
        .unwrap()
        .conversation;
    let messages = store.recent_messages(&conversation.id, 20).await.unwrap();
    let partial = messages
        .iter()
        .find(|m| m.role == valor::storage::MessageRole::Assistant)
        .expect("the partial answer was stored");
    let text = partial.text.strip_suffix(valor::agent::INTERRUPTED_MARK).expect("marked interrupted");
    assert!(!text.is_empty() && answer.starts_with(text) && text.len() < answer.len(), "{:?}", partial.text);
    let turn = store.list_turns(&conversation.id).await.unwrap().pop().unwrap();
    assert_eq!(turn.status, valor::storage::TurnStatus::Interrupted);
    assert_eq!(turn.error.as_deref(), Some("interrupted: valor shut down before the turn ended"));
}
