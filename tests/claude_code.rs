//! Code work through the real app: `project_context` through the agent, and
//! delegated runs of the real Claude Code CLI (npm `@anthropic-ai/claude-code`)
//! against aimock in a temporary git workspace — a file really written,
//! progress and the summary in the conversation, the session resumed, a
//! cancelled run's process group gone, path escapes refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Aimock, TestApp, repo_root, use_anthropic};
use serde_json::{Value, json};
use valor::config::{Settings, WorkspaceSettings};

fn run_git(dir: &Path, args: &[&str]) {
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
fn git_workspace(parent: &Path) -> PathBuf {
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

fn with_workspace(settings: &mut Settings, name: &str, path: &Path) {
    settings.workspaces.push(WorkspaceSettings {
        name: name.into(),
        path: path.to_path_buf(),
        chats: Vec::new(),
        notion_database: None,
        allowed_users: Vec::new(),
    });
}

fn tool_output(reply: &Value) -> String {
    reply["tool_calls"][0]["output"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn project_context_describes_the_named_workspace_through_the_agent() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "what is the shop project", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "project_context", "arguments": {"workspace": "shop"}}]}},
        {"match": {"userMessage": "what is the shop project", "hasToolResult": true},
         "response": {"content": "It is the checkout service."}},
        {"match": {"userMessage": "describe my project", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "project_context", "arguments": {}}]}},
        {"match": {"userMessage": "describe my project", "hasToolResult": true},
         "response": {"content": "Which workspace?"}}
    ]))
    .await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        with_workspace(s, "shop", &root);
    })
    .await;

    let reply = app.send_ok("code", "Tell me: what is the shop project about?").await;
    assert_eq!(reply["reply"], "It is the checkout service.");
    let output = tool_output(&reply);
    for expected in ["The checkout service.", "make test", "Add the checkout service", "?? notes.txt"] {
        assert!(output.contains(expected), "{expected:?} missing from:\n{output}");
    }

    // Outside Telegram a conversation must name its workspace: a clear answer, no default directory.
    let reply = app.send_ok("other", "Please describe my project").await;
    let output = tool_output(&reply);
    assert!(output.contains("name the workspace") && output.contains("shop"), "{output}");
    let audit = app.store().await.list_audit(Some("workspace"), 50).await.unwrap();
    assert!(audit.iter().any(|e| e.decision == "allowed" && e.subject == "shop"));
    assert!(audit.iter().any(|e| e.decision == "denied"));
}

#[allow(dead_code)]
fn claude_bin() -> PathBuf {
    let bin = repo_root().join("node_modules/.bin/claude");
    assert!(bin.exists(), "Claude Code is not installed: run `npm ci` (scripts/test.sh does)");
    bin
}
