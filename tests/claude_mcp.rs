//! Claude Code runs and valor's MCP library, end to end with the real CLI
//! against aimock: the per-run `--mcp-config` holds valor's run server plus
//! the library servers that fit (one of them a real stdio server: `valor
//! mcp`), the CLI accepts it and calls a valor tool in the run's chat, the
//! recursion tool is hidden, the file is gone after the run; and the
//! screenshot handoff posts an image from the workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/claude.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Aimock, TestApp, use_anthropic};
use serde_json::{Value, json};
use support::{
    git_workspace, job_id_in, script_claude, script_delegation, tool_output, use_claude_code, with_workspace,
};
use valor::config::McpServerSettings;
use valor::workspace::mcp_config::RunScope;

fn library_server(name: &str, command: &str, args: &[&str], credentials: &[(&str, Option<&str>)]) -> McpServerSettings {
    McpServerSettings {
        name: name.into(),
        command: Some(command.into()),
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        url: None,
        credentials: credentials.iter().map(|(key, _)| (*key).to_owned()).collect(),
        env: BTreeMap::new(),
        headers: BTreeMap::new(),
        kinds: Vec::new(),
        credential_values: credentials
            .iter()
            .filter_map(|(key, value)| value.map(|value| ((*key).to_owned(), value.to_owned().into())))
            .collect(),
    }
}

/// The text of every tool result in a request (aimock's journal holds the chat-completions shape).
fn tool_results(request: &Value) -> Vec<String> {
    let messages = request["body"]["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].to_string()).collect()
}

#[tokio::test]
async fn a_run_gets_valors_server_and_the_fitting_library_servers_and_calls_a_valor_tool() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let notes_data = tempfile::tempdir().unwrap();
    let task = "Search the chat history for zebra";
    script_delegation(&mock, "find my zebra note", task, "shop").await;
    script_claude(&mock, task, "mcp__valor__search_history", json!({"query": "zebra"}), "Found the note.").await;
    let mut notes = library_server("notes", env!("CARGO_BIN_EXE_valor"), &["mcp"], &[("NOTES_TOKEN", Some("n-1"))]);
    notes.env.insert("VALOR_DATA_DIR".into(), notes_data.path().display().to_string());
    let sentry = library_server("sentry", "sentry-mcp", &[], &[("SENTRY_TOKEN", None)]);
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        with_workspace(s, "shop", &root);
        use_claude_code(s, &mock, home.path());
        s.mcp_servers = vec![notes, sentry];
    })
    .await;

    let reply = app.send_ok("zebra", "Please find my zebra note, the striped one").await;
    let id = job_id_in(&tool_output(&reply));
    app.job_worker("w").try_execute_next().await.unwrap().expect("the run did not start");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // The choices and their reasons are in the job record.
    let servers = &job["result"]["mcp_servers"];
    assert_eq!(
        servers,
        &json!([
            {"name": "valor", "included": true, "reason": "valor's own server is in every run"},
            {"name": "notes", "included": true, "reason": "serves every task"},
            {"name": "sentry", "included": false, "reason": "missing credentials: SENTRY_TOKEN"}
        ]),
        "{job}"
    );
    // Claude Code connected to both (valor's over HTTP with the run's token, `valor mcp` over stdio).
    assert_eq!(job["result"]["mcp_status"], json!({"valor": "connected", "notes": "connected"}), "{job}");

    // Claude Code called valor's tool, which searched the run's own conversation.
    let requests = mock.requests_to("/v1/messages").await;
    let results: Vec<String> = requests.iter().flat_map(tool_results).collect();
    assert!(results.iter().any(|r| r.contains("the striped one")), "{results:?}");

    // The per-run config (it holds a token) is gone, and the token no longer works.
    let leftovers: Vec<_> = std::fs::read_dir(app.data_dir.as_ref().unwrap().path().join("tmp/mcp"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(leftovers, Vec::<std::path::PathBuf>::new());
    let response = app
        .http
        .post(app.url("/mcp-run"))
        .header("authorization", "Bearer vr_not_a_live_token")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// A minimal Streamable HTTP MCP client for `/mcp-run`, holding a run's token.
struct RunClient<'a> {
    app: &'a TestApp,
    token: String,
    session: String,
}

impl<'a> RunClient<'a> {
    async fn connect(app: &'a TestApp, token: &str) -> RunClient<'a> {
        let mut client = RunClient { app, token: token.to_owned(), session: String::new() };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}});
        let response = client.post(&init).await;
        assert_eq!(response.status(), 200);
        client.session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        client.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        client
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
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
    async fn request(&self, method: &str, params: Value) -> Value {
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
    async fn call(&self, tool: &str, arguments: Value) -> (bool, String) {
        let result = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        let text = result["content"][0]["text"].as_str().unwrap_or("").to_owned();
        (result["isError"] == true, text)
    }
}

/// A tiny valid PNG header (what valor sniffs) plus filler.
fn png_bytes() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
    bytes
}

#[tokio::test]
async fn a_runs_server_hides_delegation_binds_the_chat_and_hands_off_screenshots() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "hello there"}, "response": {"content": "Hi."}}])).await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        with_workspace(s, "shop", &root);
        s.jobs.workers = 0;
    })
    .await;
    let conversation = app.send_ok("shots", "hello there").await["conversation"].as_str().unwrap().to_owned();
    let workspace = valor::workspace::Workspace::open("shop", &root, &[]).unwrap();
    let scope = RunScope {
        job_id: 77,
        conversation_id: conversation.clone(),
        workspace,
        approval_timeout: Duration::from_secs(5),
    };
    let grant = app.run_access().grant(scope);
    let client = RunClient::connect(&app, grant.token()).await;

    let listed = client.request("tools/list", json!({})).await;
    let tools: Vec<&str> = listed["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in ["approve", "send_screenshot", "search_history", "project_context"] {
        assert!(tools.contains(&expected), "{expected} missing: {tools:?}");
    }
    assert!(!tools.contains(&"delegate_code_task"), "a run could start runs: {tools:?}");
    let search = listed["tools"].as_array().unwrap().iter().find(|t| t["name"] == "search_history").unwrap();
    assert!(search["inputSchema"]["properties"].get("chat_id").is_none(), "{search}");
    let (is_error, text) = client.call("delegate_code_task", json!({"task": "recurse"})).await;
    assert!(is_error && text.contains("no tool named"), "{text}");
    // Tools act in the run's chat.
    let (is_error, text) = client.call("search_history", json!({"query": "hello"})).await;
    assert!(!is_error && text.contains("user: [hello] there"), "{text}");

    // A screenshot saved in the workspace goes to the chat and the handoff file is removed.
    std::fs::create_dir_all(root.join("shots")).unwrap();
    std::fs::write(root.join("shots/home page.png"), png_bytes()).unwrap();
    let (is_error, text) =
        client.call("send_screenshot", json!({"path": "shots/home page.png", "caption": "Home"})).await;
    assert!(!is_error, "{text}");
    assert!(!root.join("shots/home page.png").exists(), "the handoff file stayed");
    let reference = text.split("stored as ").nth(1).unwrap().trim_end_matches(").").to_owned();
    assert!(reference.starts_with("media/screenshots/job-77-") && reference.ends_with(".png"), "{reference}");
    let stored = app.data_dir.as_ref().unwrap().path().join(&reference);
    assert_eq!(std::fs::read(&stored).unwrap(), png_bytes());
    let notices = support::system_notices(&app, &conversation).await;
    assert_eq!(notices.last().unwrap(), &format!("Home\n[image: {reference}]"), "{notices:?}");

    // Base64 works too; bad input is refused with a clear error and nothing is removed.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(png_bytes());
    let (is_error, text) = client.call("send_screenshot", json!({"image_base64": encoded})).await;
    assert!(!is_error, "{text}");
    assert!(support::system_notices(&app, &conversation).await.last().unwrap().starts_with("Screenshot from job #77"));
    let secret = outside.path().join("secret.png");
    std::fs::write(&secret, png_bytes()).unwrap();
    std::fs::write(root.join("notes.png"), "not an image").unwrap();
    for (arguments, expected) in [
        (json!({"path": "../secret.png"}), "refused"),
        (json!({"path": secret.display().to_string()}), "refused"),
        (json!({"path": "missing.png"}), "no file"),
        (json!({"path": "shots"}), "not a file"),
        (json!({"path": "notes.png"}), "not a PNG"),
        (json!({"image_base64": "%%%"}), "not valid base64"),
        (json!({}), "exactly one of"),
    ] {
        let (is_error, text) = client.call("send_screenshot", arguments.clone()).await;
        assert!(is_error && text.contains(expected), "{arguments}: {text}");
    }
    assert!(secret.exists() && root.join("notes.png").exists());

    // The token ends with the run.
    let token = grant.token().to_owned();
    drop(grant);
    let refused = RunClient { app: &app, token, session: String::new() }
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(refused.status(), 401);
}
