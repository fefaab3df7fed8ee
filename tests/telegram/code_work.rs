//! Code work as the agent sees it in a Telegram chat mapped to a workspace:
//! the system prompt names the chat's workspace (name, path, default branch,
//! whether code work is available, what a run does and what needs the
//! user's approval), and a finished run's outcome — summary and files
//! changed, or the failure reason — is in the next model request, once,
//! although the final notice itself went to Telegram only.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::claude_support::{git_workspace, script_claude, script_delegation, use_claude_code, worktree};
use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ADMIN, DEV_GROUP, configure, script};

/// The app with the dev group working in workspace `shop` (the real Claude Code CLI on aimock).
async fn app_in_shop(
    mock: &Aimock,
    fake: &FakeTelegram,
    root: &Path,
    home: &Path,
    configure_more: impl FnOnce(&mut valor::config::Settings),
) -> TestApp {
    let (root, home) = (root.to_path_buf(), home.to_path_buf());
    let telegram = configure(mock, fake);
    TestApp::spawn(move |s| {
        telegram(s);
        s.workspaces.push(valor::config::WorkspaceSettings {
            name: "shop".into(),
            path: root,
            chats: vec![DEV_GROUP],
            notion_database: None,
            allowed_users: Vec::new(),
            default_branch: None,
        });
        use_claude_code(s, mock, &home);
        configure_more(s);
    })
    .await
}

/// Every valor model request's system prompt and the request as text, oldest first.
async fn valor_requests(mock: &Aimock) -> Vec<(String, String)> {
    mock.requests_to("/v1/chat/completions")
        .await
        .iter()
        .map(|request| {
            let messages = request["body"]["messages"].as_array().cloned().unwrap_or_default();
            let system = messages
                .iter()
                .find(|m| m["role"] == "system")
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_owned();
            (system, request["body"]["messages"].to_string())
        })
        .collect()
}

/// Wait until a bot message in the dev group contains `needle`.
async fn wait_for_text(fake: &FakeTelegram, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let messages = fake.visible_messages(DEV_GROUP);
        if messages.iter().any(|m| m["text"].as_str().is_some_and(|text| text.contains(needle))) {
            return;
        }
        assert!(Instant::now() < deadline, "no message with {needle:?}: {messages:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn the_system_prompt_names_the_chats_workspace_and_what_a_run_there_does() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    script(&mock, "which project is this", "The shop.").await;
    let _app = app_in_shop(&mock, &fake, &root, home.path(), |_| {}).await;

    fake.send_text(DEV_GROUP, &ADMIN, "which project is this?");
    wait_for_text(&fake, "The shop.", Duration::from_secs(20)).await;
    let requests = valor_requests(&mock).await;
    let (prompt, _) = requests.last().expect("the model was not asked");
    assert!(!prompt.contains("No project workspace"), "{prompt}");
    for expected in [
        "workspace \"shop\"".to_owned(),
        root.display().to_string(),
        "default branch main".to_owned(),
        "delegate_code_task".to_owned(),
        "project_context".to_owned(),
        "valor/<job>-<slug>".to_owned(),
        "approval".to_owned(),
    ] {
        assert!(prompt.contains(&expected), "{expected:?} missing from the prompt:\n{prompt}");
    }
}

#[tokio::test]
async fn a_finished_runs_outcome_is_in_the_next_model_request_once() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    script_delegation(&mock, "add a hello file", "Create hello.txt saying hi", "shop").await;
    script(&mock, "what did you change", "I added hello.txt.").await;
    let app = app_in_shop(&mock, &fake, &root, home.path(), |_| {}).await;
    // The first job's worktree, where the run works.
    let hello = worktree(&app, "shop", 1).join("hello.txt");
    script_claude(
        &mock,
        "Create hello.txt saying hi",
        "Write",
        json!({"file_path": hello, "content": "hi\n"}),
        "Wrote the greeting file.",
    )
    .await;

    fake.send_text(DEV_GROUP, &ADMIN, "please add a hello file");
    wait_for_text(&fake, "On it.", Duration::from_secs(20)).await;
    let worker = app.job_worker("w");
    let outcome = tokio::time::timeout(Duration::from_secs(150), worker.try_execute_next()).await.unwrap().unwrap();
    assert!(outcome.is_some(), "the code run did not start");
    assert!(hello.exists(), "Claude Code did not write the file");
    wait_for_text(&fake, "Files changed: hello.txt", Duration::from_secs(20)).await;

    fake.send_text(DEV_GROUP, &ADMIN, "what did you change?");
    wait_for_text(&fake, "I added hello.txt.", Duration::from_secs(20)).await;
    let requests = valor_requests(&mock).await;
    let (_, last) = requests.last().unwrap();
    assert!(last.contains("what did you change"), "{last}");
    assert_eq!(occurrences(last, "Wrote the greeting file."), 1, "the run's summary, once: {last}");
    assert_eq!(occurrences(last, "Files changed: hello.txt"), 1, "the files changed, once: {last}");
    let branch = "Branch `valor/1-create-hello-txt-saying-hi` · commit ";
    assert_eq!(occurrences(last, branch), 1, "the branch and commit, once: {last}");
    assert_eq!(occurrences(last, "1 file changed"), 1, "the diff stat, once: {last}");

    // Later passes and turns add nothing: still once in the request after.
    script(&mock, "anything else", "No.").await;
    assert!(worker.try_execute_next().await.unwrap().is_none());
    fake.send_text(DEV_GROUP, &ADMIN, "anything else?");
    wait_for_text(&fake, "No.", Duration::from_secs(20)).await;
    let requests = valor_requests(&mock).await;
    let (_, last) = requests.last().unwrap();
    assert_eq!(occurrences(last, "Files changed: hello.txt"), 1, "{last}");
}

#[tokio::test]
async fn a_failed_runs_reason_is_in_the_next_model_request_once() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    // A CLI there when valor starts (so code work is offered), gone when the run starts.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("claude");
    std::fs::write(&bin, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script_delegation(&mock, "add a hello file", "Create hello.txt saying hi", "shop").await;
    script(&mock, "did it work", "No, Claude Code is missing.").await;
    let configured = bin.display().to_string();
    let app = app_in_shop(&mock, &fake, &root, home.path(), |s| s.claude.bin = configured).await;

    fake.send_text(DEV_GROUP, &ADMIN, "please add a hello file");
    wait_for_text(&fake, "On it.", Duration::from_secs(20)).await;
    std::fs::remove_file(&bin).unwrap();
    app.job_worker("w").try_execute_next().await.unwrap().expect("the code run did not start");
    wait_for_text(&fake, "failed", Duration::from_secs(20)).await;

    fake.send_text(DEV_GROUP, &ADMIN, "did it work?");
    wait_for_text(&fake, "Claude Code is missing", Duration::from_secs(20)).await;
    let requests = valor_requests(&mock).await;
    let (_, last) = requests.last().unwrap();
    let reason = format!("Claude Code could not be started ({})", bin.display());
    assert_eq!(occurrences(last, &reason), 1, "the failure reason, once: {last}");
}
