//! valor's MCP server through the official Python SDK client (`mcp` on
//! PyPI, installed by scripts/test.sh) over stdio (the real `valor mcp`
//! binary) and Streamable HTTP (the real app), plus the HTTP endpoint's
//! bearer auth and DNS-rebinding (Host/Origin) checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
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
    let local_origin = post_mcp(&app, &[auth, ("origin", "http://localhost:5173")]).await;
    assert_eq!(local_origin.status(), 200);
}

#[tokio::test]
async fn unknown_methods_get_method_not_found() {
    let app = TestApp::spawn(|_| {}).await;
    let initialized = post_mcp(&app, &[]).await;
    assert_eq!(initialized.status(), 200);
    let session = initialized.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let send = |body: Value| {
        app.http
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    let response =
        send(json!({"jsonrpc": "2.0", "id": 7, "method": "valor/no-such-method", "params": {}})).await.unwrap();
    let body = response.text().await.unwrap();
    assert!(body.contains("-32601"), "{body}");
}
