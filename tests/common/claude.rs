//! Shared by the Claude Code tests: a git workspace, `[claude]` pointed at
//! the real CLI (npm `@anthropic-ai/claude-code`) talking to aimock with its
//! own HOME, scripted delegations and CLI turns, job ids and notices.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use valor::config::{Settings, WorkspaceSettings};

use crate::common::{Aimock, TestApp, repo_root};

pub fn run_git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A git repository with one commit, a README and an uncommitted change.
pub fn git_workspace(parent: &Path) -> PathBuf {
    let dir = parent.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    run_git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# Shop\nThe checkout service.\n").unwrap();
    std::fs::write(dir.join("CLAUDE.md"), "Run `make test` before committing.\n").unwrap();
    run_git(&dir, &["add", "."]);
    run_git(&dir, &["commit", "-q", "-m", "Add the checkout service"]);
    std::fs::write(dir.join("notes.txt"), "draft\n").unwrap();
    dir
}

/// A workspace; with the stand-in Claude Code CLI as `claude.bin` unless a
/// test chose one (valor offers code work only when the CLI is found).
pub fn with_workspace(settings: &mut Settings, name: &str, path: &Path) {
    if settings.claude.bin == Settings::default().claude.bin {
        settings.claude.bin = claude_bin().display().to_string();
    }
    settings.workspaces.push(WorkspaceSettings {
        name: name.into(),
        path: path.to_path_buf(),
        chats: Vec::new(),
        notion_database: None,
        allowed_users: Vec::new(),
        default_branch: None,
    });
}

/// Where job `first_job`'s branch of `workspace` has its worktree (the job that created the branch).
pub fn worktree(app: &TestApp, workspace: &str, first_job: i64) -> PathBuf {
    app.data_dir.as_ref().unwrap().path().join("worktrees").join(workspace).join(first_job.to_string())
}

/// `git <args>` in `dir`; its trimmed stdout.
pub fn git_out(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn tool_output(reply: &Value) -> String {
    reply["tool_calls"][0]["output"].as_str().unwrap().to_owned()
}

pub fn claude_bin() -> PathBuf {
    let bin = repo_root().join("node_modules/.bin/claude");
    assert!(bin.exists(), "Claude Code is not installed: run `npm ci` (scripts/test.sh does)");
    bin
}

/// A CLI's environment: `pairs` and its own `HOME`.
pub fn cli_env(home: &Path, pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    let home = ("HOME", home.to_str().unwrap());
    pairs.iter().chain([&home]).map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

/// Run queued jobs in the background until one has run; its id (150 s at most).
pub fn run_next_job(app: &TestApp) -> tokio::task::JoinHandle<i64> {
    let worker = app.job_worker("w");
    tokio::spawn(async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
        loop {
            if let Some(outcome) = worker.try_execute_next().await.unwrap() {
                return outcome.job_id;
            }
            assert!(std::time::Instant::now() < deadline, "no job was queued");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
}

/// No background workers (the test runs jobs with `try_execute_next`), and
/// short leases so a stopped run is taken up again quickly.
pub fn jobs_driven_by_the_test(settings: &mut Settings) {
    settings.jobs.workers = 0;
    settings.jobs.lease_secs = 3;
}

/// Point `[claude]` at the real CLI, talking to aimock, with its own HOME.
pub fn use_claude_code(settings: &mut Settings, mock: &Aimock, home: &Path) {
    settings.claude.bin = claude_bin().display().to_string();
    settings.claude.env = cli_env(
        home,
        &[
            ("ANTHROPIC_BASE_URL", mock.url.as_str()),
            ("ANTHROPIC_API_KEY", "test"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
    );
    jobs_driven_by_the_test(settings);
    // The router's model for interactive work reaches the CLI (as ANTHROPIC_MODEL).
    settings.routing.claude_models.medium = ROUTED_MODEL.into();
}

pub const ROUTED_MODEL: &str = "claude-routed-medium-1";

/// Script valor's model to delegate `task` when the user says `ask`.
pub async fn script_delegation(mock: &Aimock, ask: &str, task: &str, workspace: &str) {
    mock.add_fixtures(json!([
        {"match": {"userMessage": ask, "hasToolResult": false},
         "response": {"toolCalls": [{"name": "delegate_code_task", "arguments": {"task": task, "workspace": workspace}}]}},
        {"match": {"userMessage": ask, "hasToolResult": true}, "response": {"content": "On it."}}
    ]))
    .await;
}

/// Script Claude Code: for `task`, call `tool` with `input`, then answer `done`.
pub async fn script_claude(mock: &Aimock, task: &str, tool: &str, input: Value, done: &str) {
    mock.add_fixtures(json!([
        {"match": {"userMessage": task, "hasToolResult": false},
         "response": {"toolCalls": [{"name": tool, "arguments": input}]}},
        {"match": {"userMessage": task, "hasToolResult": true}, "response": {"content": done}}
    ]))
    .await;
}

pub fn job_id_in(output: &str) -> i64 {
    let start = output.find("job #").expect("no job id in the tool output") + "job #".len();
    output[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

pub async fn system_notices(app: &TestApp, conversation: &str) -> Vec<String> {
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Processes other than this test's whose command line contains `marker`
/// (zombies have none), as "pid: command line".
pub fn processes_with(marker: &str) -> Vec<String> {
    let own = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if entry.file_name().to_str() == Some(own.as_str()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// A minimal Streamable HTTP MCP client for `/mcp-run`, holding a run's token.
pub struct RunClient<'a> {
    app: &'a TestApp,
    token: String,
    session: String,
}

impl<'a> RunClient<'a> {
    /// A client that has not run `initialize` (to see a refusal).
    pub fn unconnected(app: &'a TestApp, token: &str) -> RunClient<'a> {
        RunClient { app, token: token.to_owned(), session: String::new() }
    }

    pub async fn connect(app: &'a TestApp, token: &str) -> RunClient<'a> {
        let mut client = RunClient { app, token: token.to_owned(), session: String::new() };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}});
        let response = client.post(&init).await;
        assert_eq!(response.status(), 200);
        client.session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        client
    }

    pub async fn post(&self, body: &Value) -> reqwest::Response {
        let mut request = self
            .app
            .http
            .post(self.app.url("/mcp-run"))
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if !self.session.is_empty() {
            request = request.header("mcp-session-id", &self.session).header("mcp-protocol-version", "2025-06-18");
        }
        request.send().await.unwrap()
    }

    /// A request's `result`.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let response = self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).await;
        let body = response.text().await.unwrap();
        let message = body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|message| message["id"] == 1)
            .unwrap_or_else(|| serde_json::from_str(&body).unwrap_or(Value::Null));
        assert!(message.get("result").is_some(), "{body}");
        message["result"].clone()
    }

    /// `(is_error, text)` of a tool call.
    pub async fn call(&self, tool: &str, arguments: Value) -> (bool, String) {
        let result = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        let text = result["content"][0]["text"].as_str().unwrap_or("").to_owned();
        (result["isError"] == true, text)
    }
}

/// A tiny valid PNG header (what valor sniffs) plus filler.
pub fn png_bytes() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
    bytes
}

/// valor's own model requests on `/v1/messages` (Claude Code's go there too):
/// each as (system prompt, messages as JSON text), oldest first.
pub async fn valor_requests(mock: &Aimock) -> Vec<(String, String)> {
    // aimock's journal shows requests in OpenAI shape: the system prompt is the first message.
    let text_of = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    };
    let system_of = |body: &Value| {
        let first = &body["messages"][0];
        if first["role"] == "system" { text_of(&first["content"]) } else { text_of(&body["system"]) }
    };
    mock.requests_to("/v1/messages")
        .await
        .iter()
        .map(|entry| (system_of(&entry["body"]), entry["body"]["messages"].to_string()))
        .filter(|(system, _)| system.starts_with("# Valor"))
        .collect()
}
