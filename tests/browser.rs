//! The web chat in a real browser: headless Chromium (driven by
//! playwright-core in `tests/browser/chat.mjs`) opens the page served by the
//! real app, sends a message, sees the streamed reply and the conversation in
//! the sidebar, and saves a screenshot to `tests/output/web-chat.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Aimock, TestApp, repo_root, use_anthropic};
use serde_json::json;

#[tokio::test]
async fn the_web_chat_streams_a_reply_in_headless_chromium() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "launch date", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": "launch"}}]}},
        {"match": {"userMessage": "launch date", "hasToolResult": true},
         "response": {"content": "We agreed the launch is on **March 3**, after the beta feedback round."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let screenshot = repo_root().join("tests/output/web-chat.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&screenshot);

    let script = repo_root().join("tests/browser/chat.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("{}/", app.base))
        .arg(&screenshot)
        .arg("March 3")
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser chat: ok"), "{stdout}");
    let png = std::fs::read(&screenshot).expect("no screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");

    // The browser's turn really went through the agent and the tool.
    let conversations = app.get_json("/api/conversations").await;
    let id = conversations["conversations"][0]["id"].as_str().unwrap();
    let messages = app.get_json(&format!("/api/conversations/{id}/messages")).await;
    let roles: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
}
