//! Test support: a real `@copilotkit/aimock` process per test (the model
//! stand-in, speaking the Anthropic, OpenAI and Ollama wire formats) and
//! `TestApp`, the real valor app on port 0 with a fresh SQLite file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use valor::app::{App, RunningApp};
use valor::config::{ProviderChoice, Settings};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Spawn a `valor serve` command (stdout dropped, stderr read here) and return once it says it listens.
pub async fn spawn_listening(mut command: Command) -> Child {
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on http://") {
                return;
            }
        }
        panic!("valor exited before listening");
    })
    .await
    .expect("valor did not start within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// A running aimock server, killed on drop.
pub struct Aimock {
    pub url: String,
    child: Child,
    _fixtures: TempDir,
    http: reqwest::Client,
}

impl Aimock {
    pub async fn start() -> Aimock {
        Self::start_with(&[]).await
    }

    /// Start with extra CLI flags, e.g. `["-l", "40"]` for 40 ms between SSE chunks.
    pub async fn start_with(extra: &[&str]) -> Aimock {
        let cli = repo_root().join("node_modules/@copilotkit/aimock/dist/cli.js");
        assert!(cli.exists(), "aimock is not installed: run `npm ci` in the repository root (scripts/test.sh does)");
        let fixtures = tempfile::tempdir().unwrap();
        // --strict refuses to start without a fixture: load one that never matches.
        std::fs::write(
            fixtures.path().join("base.json"),
            r#"{"fixtures":[{"match":{"userMessage":"__valor_never_matches__"},"response":{"content":"never"}}]}"#,
        )
        .unwrap();
        let mut child = Command::new("node")
            .arg(&cli)
            .args(["-p", "0", "--strict", "--log-level", "info", "-f"])
            .arg(fixtures.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node (is Node.js installed?)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(index) = line.find("http://") {
                    return line[index..].trim().to_owned();
                }
            }
            panic!("aimock exited before printing its address");
        })
        .await
        .expect("aimock did not start within 20 s");
        // Keep draining stdout so aimock never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // A fresh connection per control request: Node closes idle keep-alive
        // connections after 5 s, and a request racing that close is reset.
        let http = valor::llm::transport::client_builder().pool_max_idle_per_host(0).build().unwrap();
        Aimock { url, child, _fixtures: fixtures, http }
    }

    /// Append fixtures (`[{"match": {...}, "response": {...}}, ...]`).
    pub async fn add_fixtures(&self, fixtures: Value) {
        let response = self
            .http
            .post(format!("{}/__aimock/fixtures", self.url))
            .json(&json!({ "fixtures": fixtures }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "aimock refused fixtures: {}", response.text().await.unwrap());
    }

    /// The next model request fails with this status (once).
    pub async fn queue_error(&self, status: u16, kind: &str, message: &str) {
        let body = json!({"status": status, "body": {"message": message, "type": kind}});
        let response = self.http.post(format!("{}/__aimock/error", self.url)).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }

    /// Every request aimock received, oldest first.
    pub async fn journal(&self) -> Vec<Value> {
        let value: Value =
            self.http.get(format!("{}/__aimock/journal", self.url)).send().await.unwrap().json().await.unwrap();
        value.as_array().cloned().unwrap_or_default()
    }

    /// Journal entries for one path (e.g. "/v1/messages").
    pub async fn requests_to(&self, path: &str) -> Vec<Value> {
        self.journal().await.into_iter().filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with(path))).collect()
    }
}

impl Drop for Aimock {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Settings for a test: fresh data dir, port 0, fast retries, no model, word-rule intents.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings { data_dir: data_dir.to_path_buf(), ..Settings::default() };
    settings.server.addr = "127.0.0.1:0".into();
    settings.server.shutdown_grace_secs = 2;
    settings.llm.provider = ProviderChoice::None;
    settings.llm.retry_base_ms = 10;
    settings.llm.retry_max_ms = 200;
    settings.llm.request_timeout_secs = 10;
    settings.llm.connect_timeout_secs = 2;
    settings.intent.use_model = false;
    settings
}

pub fn use_anthropic(settings: &mut Settings, mock: &Aimock) {
    settings.llm.provider = ProviderChoice::Anthropic;
    settings.anthropic.api_key = Some("sk-ant-test-secret".to_owned().into());
    settings.anthropic.base_url = mock.url.clone();
}

pub fn use_openai(settings: &mut Settings, mock: &Aimock) {
    settings.llm.provider = ProviderChoice::Openai;
    settings.openai.api_key = Some("sk-openai-test-secret".to_owned().into());
    settings.openai.base_url = format!("{}/v1", mock.url);
}

/// The real app, listening on a free loopback port.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub data_dir: Option<TempDir>,
    running: Option<RunningApp>,
    shutdown: CancellationToken,
}

impl TestApp {
    pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_in(tempfile::tempdir().unwrap(), configure).await
    }

    /// Start on an existing data directory (for restart tests).
    pub async fn spawn_in(data_dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_with_tools(data_dir, configure, |_| {}).await
    }

    /// Start with an adjusted tool registry (e.g. a `read_link` allowed to reach a local page server).
    pub async fn spawn_with_tools(
        data_dir: TempDir,
        configure: impl FnOnce(&mut Settings),
        adjust: impl FnOnce(&mut valor::agent::ToolRegistry),
    ) -> TestApp {
        let mut settings = test_settings(data_dir.path());
        configure(&mut settings);
        let shutdown = CancellationToken::new();
        let app = App::build_with_tools(settings, adjust).await.expect("building the app");
        let running = app.start(shutdown.clone()).await.expect("starting the app");
        let base = format!("http://{}", running.local_addr);
        let http = valor::llm::transport::client_builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestApp { base, http, data_dir: Some(data_dir), running: Some(running), shutdown }
    }

    /// A second handle on the app's database file (SQLite WAL allows a concurrent reader).
    pub async fn store(&self) -> valor::storage::Store {
        let path = self.data_dir.as_ref().unwrap().path().join("valor.db");
        valor::storage::Store::open(&path).await.unwrap()
    }

    /// The running app's own store: unlike [`TestApp::store`], its writes
    /// wake the app's live streams (`/api/conversations/{id}/events`).
    pub fn app_store(&self) -> valor::storage::Store {
        self.running.as_ref().unwrap().store().clone()
    }

    /// A job worker of the running app (same store, handlers and outbox), for
    /// draining the queue deterministically; spawn with `jobs.workers = 0`.
    pub fn job_worker(&self, name: &str) -> valor::jobs::Worker {
        let running = self.running.as_ref().unwrap();
        running.jobs.worker(name, self.shutdown.child_token())
    }

    /// The app's per-run MCP access (`/mcp-run` tokens).
    pub fn run_access(&self) -> valor::workspace::mcp_config::RunAccess {
        self.running.as_ref().unwrap().run_access.clone()
    }

    /// Fire the app's shutdown signal without waiting: workers from
    /// [`TestApp::job_worker`] cancel their job and hand it back.
    pub fn request_shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /api/messages (JSON answer).
    pub async fn send(&self, conversation: &str, text: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/messages"))
            .json(&json!({"conversation": conversation, "text": text}))
            .send()
            .await
            .unwrap()
    }

    /// POST /api/messages and return the JSON reply, asserting 200.
    pub async fn send_ok(&self, conversation: &str, text: &str) -> Value {
        let response = self.send(conversation, text).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "unexpected answer: {body}");
        body
    }

    /// POST /api/messages as SSE; returns (event name, data) pairs in order.
    pub async fn send_streamed(&self, conversation: &str, text: &str) -> Vec<(String, Value)> {
        let response = self
            .http
            .post(self.url("/api/messages"))
            .header("accept", "text/event-stream")
            .json(&json!({"conversation": conversation, "text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        parse_sse(&response.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Stop gracefully and hand back the data directory.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.run_until_stopped().await.unwrap();
        }
        self.data_dir.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Parse an SSE body into (event, JSON data) pairs; comments and keep-alives skipped.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
        if !data.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap_or(Value::String(data))));
        }
    }
    events
}

/// A TCP port with a listener that accepts and never answers (a hung service).
pub async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

/// A loopback address where nothing listens.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
