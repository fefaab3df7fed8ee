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
    RunClient, git_workspace, job_id_in, png_bytes, script_claude, script_delegation, tool_output, use_claude_code,
    with_workspace,
};
use valor::config::McpServerSettings;
use valor::workspace::mcp_config::RunScope;
use valor::workspace::{ChatUser, Requester};

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
        // These tests are about runs; the chat's use of the library is tests/mcp_client.rs.
        chat: false,
        read_only: Vec::new(),
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
        requester: Requester::admin(),
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
    let refused =
        RunClient::unconnected(&app, &token).post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(refused.status(), 401);
}

/// Waits until `count` requests are pending and each one's question has been
/// posted to `conversation` (the row is stored before the question goes out).
async fn wait_for_pending(app: &TestApp, conversation: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending = app.get_json("/api/approvals").await["approvals"].as_array().cloned().unwrap();
        let notices = support::system_notices(app, conversation).await;
        let asked = |request: &Value| {
            let mention = format!("POST /api/approvals/{}", request["id"]);
            notices.iter().any(|notice| notice.contains(&mention))
        };
        if pending.len() == count && pending.iter().all(asked) {
            return pending;
        }
        assert!(std::time::Instant::now() < deadline, "expected {count} pending and asked: {pending:?} {notices:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn answer(app: &TestApp, id: &Value, body: Value) -> reqwest::Response {
    app.http.post(app.url(&format!("/api/approvals/{id}"))).json(&body).send().await.unwrap()
}

/// The CLI's answer (the tool's JSON text) to an `approve` call.
async fn approve(client: &RunClient<'_>, tool: &str, input: Value) -> Value {
    let (is_error, text) =
        client.call("approve", json!({"tool_name": tool, "input": input, "tool_use_id": "t1"})).await;
    assert!(!is_error, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn chat_app(mock: &Aimock, root: &std::path::Path, data: tempfile::TempDir) -> (TestApp, String) {
    mock.add_fixtures(json!([{"match": {"userMessage": "hello there"}, "response": {"content": "Hi."}}])).await;
    let app = TestApp::spawn_in(data, |s| {
        use_anthropic(s, mock);
        with_workspace(s, "shop", root);
        s.jobs.workers = 0;
    })
    .await;
    let conversation = app.send_ok("asks", "hello there").await["conversation"].as_str().unwrap().to_owned();
    (app, conversation)
}

fn scope(root: &std::path::Path, conversation: &str, timeout: Duration) -> RunScope {
    let workspace = valor::workspace::Workspace::open("shop", root, &[]).unwrap();
    RunScope {
        job_id: 5,
        conversation_id: conversation.to_owned(),
        workspace,
        requester: Requester::admin(),
        approval_timeout: timeout,
    }
}

async fn tool_names(client: &RunClient<'_>) -> Vec<String> {
    let listed = client.request("tools/list", json!({})).await;
    listed["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_non_admins_run_gets_only_the_tools_a_non_admin_may_use() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let (app, conversation) = chat_app(&mock, &root, tempfile::tempdir().unwrap()).await;
    let admin_grant = app.run_access().grant(scope(&root, &conversation, Duration::from_secs(5)));
    let admins = tool_names(&RunClient::connect(&app, admin_grant.token()).await).await;
    assert!(admins.iter().any(|name| name == "queue_task"), "{admins:?}");

    let member = Requester { user: Some(ChatUser { id: 4242, username: Some("member".into()) }), is_admin: false };
    let member_scope = RunScope { requester: member, ..scope(&root, &conversation, Duration::from_secs(5)) };
    let member_grant = app.run_access().grant(member_scope);
    let client = RunClient::connect(&app, member_grant.token()).await;
    let members = tool_names(&client).await;
    assert!(!members.iter().any(|name| name == "queue_task"), "a side-effect tool for a non-admin: {members:?}");
    for expected in ["approve", "send_screenshot", "search_history"] {
        assert!(members.iter().any(|name| name == expected), "{expected} missing: {members:?}");
    }
    let (is_error, text) = client.call("queue_task", json!({"task": "mine bitcoin"})).await;
    assert!(is_error && text.contains("admins only"), "{text}");
    let queued = app.get_json("/api/jobs").await;
    assert!(queued["jobs"].as_array().unwrap().is_empty(), "{queued}");
}

#[tokio::test]
async fn allow_for_this_run_remembers_the_tool_and_the_api_answers_with_clear_errors() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let (app, conversation) = chat_app(&mock, &root, tempfile::tempdir().unwrap()).await;
    let grant = app.run_access().grant(scope(&root, &conversation, Duration::from_secs(30)));
    let client = RunClient::connect(&app, grant.token()).await;

    let (first, pending) = tokio::join!(approve(&client, "Bash", json!({"command": "ls"})), async {
        let pending = wait_for_pending(&app, &conversation, 1).await;
        // The web/API chat gets the question as a notice naming the request.
        let notices = support::system_notices(&app, &conversation).await;
        let id = &pending[0]["id"];
        assert!(notices.last().unwrap().contains(&format!("POST /api/approvals/{id}")), "{notices:?}");
        assert_eq!(answer(&app, id, json!({"answer": "maybe"})).await.status(), 400);
        assert_eq!(answer(&app, &json!(999), json!({"answer": "run"})).await.status(), 404);
        let decided = answer(&app, id, json!({"answer": "run"})).await;
        assert_eq!(decided.status(), 200);
        let decided: Value = decided.json().await.unwrap();
        assert_eq!((decided["status"].as_str(), decided["scope"].as_str()), (Some("allowed"), Some("run")));
        assert_eq!(answer(&app, id, json!({"answer": "deny"})).await.status(), 409);
        pending
    });
    assert_eq!(first, json!({"behavior": "allow", "updatedInput": {"command": "ls"}}));
    assert_eq!(pending[0]["tool_name"], "Bash");
    let asked = support::system_notices(&app, &conversation).await.len();

    // Bash again in this run: allowed without asking.
    let again = tokio::time::timeout(Duration::from_secs(5), approve(&client, "Bash", json!({"command": "pwd"}))).await;
    assert_eq!(again.unwrap(), json!({"behavior": "allow", "updatedInput": {"command": "pwd"}}));
    assert_eq!(support::system_notices(&app, &conversation).await.len(), asked, "asked again");
    // Another tool still asks; a deny reaches the CLI as a deny with a reason.
    let (denied, ()) = tokio::join!(approve(&client, "Write", json!({"file_path": "a"})), async {
        let pending = wait_for_pending(&app, &conversation, 1).await;
        assert_eq!(answer(&app, &pending[0]["id"], json!({"answer": "deny"})).await.status(), 200);
    });
    assert_eq!(denied["behavior"], "deny");
    assert!(denied["message"].as_str().unwrap().contains("denied Write"), "{denied}");
}

#[tokio::test]
async fn a_pending_request_survives_a_restart_and_the_rerun_waits_on_it() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let (app, conversation) = chat_app(&mock, &root, tempfile::tempdir().unwrap()).await;
    let grant = app.run_access().grant(scope(&root, &conversation, Duration::from_secs(600)));
    let client = RunClient::connect(&app, grant.token()).await;
    let input = json!({"command": "make deploy"});
    tokio::select! {
        answer = approve(&client, "Bash", input.clone()) => panic!("answered without anyone asked: {answer}"),
        pending = wait_for_pending(&app, &conversation, 1) => assert_eq!(pending[0]["input"], input),
    }
    drop(client);
    drop(grant);
    let data = app.stop().await;

    // After the restart the request is still there and the re-run of job 5 asks the same thing: no second question.
    let (app, _) = chat_app(&mock, &root, data).await;
    let pending = wait_for_pending(&app, &conversation, 1).await;
    let asked = support::system_notices(&app, &conversation).await.iter().filter(|n| n.contains("asks to use")).count();
    assert_eq!(asked, 1);
    let grant = app.run_access().grant(scope(&root, &conversation, Duration::from_secs(600)));
    let client = RunClient::connect(&app, grant.token()).await;
    let (allowed, ()) = tokio::join!(approve(&client, "Bash", input.clone()), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(answer(&app, &pending[0]["id"], json!({"answer": "once"})).await.status(), 200);
    });
    assert_eq!(allowed["behavior"], "allow");
    let asked = support::system_notices(&app, &conversation).await.iter().filter(|n| n.contains("asks to use")).count();
    assert_eq!(asked, 1, "the re-run asked a second time");
}
