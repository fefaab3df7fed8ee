//! Executor routing and the Gemini CLI executor end to end: valor's model
//! delegates background work, the router sends it to the real Gemini CLI
//! (npm `@google/gemini-cli`) talking to aimock (explicit `-m`), which really
//! writes a file in the workspace; progress and the result reach the
//! conversation, the route and its reason are in the job record; a
//! cancelled run's process group is gone. Interactive work still goes to
//! Claude Code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/claude.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Aimock, TestApp, repo_root, use_anthropic};
use serde_json::{Value, json};
use support::{
    cli_env, job_id_in, jobs_driven_by_the_test, processes_with, system_notices, tool_output, with_workspace,
};
use valor::config::Settings;

const MODEL: &str = "gemini-2.5-flash";

fn gemini_bin() -> PathBuf {
    let bin = repo_root().join("node_modules/.bin/gemini");
    assert!(bin.exists(), "the Gemini CLI is not installed: run `npm ci` (scripts/test.sh does)");
    bin
}

/// A workspace named shop, the Gemini CLI enabled against aimock with its own HOME.
fn configure(settings: &mut Settings, mock: &Aimock, root: &Path, home: &Path) {
    use_anthropic(settings, mock);
    with_workspace(settings, "shop", root);
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    let auth = json!({"security": {"auth": {"selectedType": "gemini-api-key"}}});
    std::fs::write(home.join(".gemini/settings.json"), auth.to_string()).unwrap();
    let gemini = &mut settings.gemini;
    gemini.enabled = true;
    gemini.bin = gemini_bin().display().to_string();
    gemini.models.small = MODEL.into();
    gemini.models.medium = MODEL.into();
    gemini.env = cli_env(
        home,
        &[
            ("GOOGLE_GEMINI_BASE_URL", mock.url.as_str()),
            ("GEMINI_API_KEY", "x"),
            ("GEMINI_CLI_TRUST_WORKSPACE", "true"),
        ],
    );
    jobs_driven_by_the_test(settings);
}

/// Script valor's model to delegate `task` (with `extra` tool arguments) when the user says `ask`.
async fn script_delegation(mock: &Aimock, ask: &str, task: &str, extra: Value) {
    let mut arguments = json!({"task": task, "workspace": "shop"});
    arguments.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    mock.add_fixtures(json!([
        {"match": {"userMessage": ask, "hasToolResult": false},
         "response": {"toolCalls": [{"name": "delegate_code_task", "arguments": arguments}]}},
        {"match": {"userMessage": ask, "hasToolResult": true}, "response": {"content": "On it."}}
    ]))
    .await;
}

#[tokio::test]
async fn background_work_runs_in_the_gemini_cli_writes_the_file_and_reports_to_the_chat() {
    let mock = Aimock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    std::fs::create_dir_all(&root).unwrap();
    let home = tempfile::tempdir().unwrap();
    let task = "Write todo.txt listing the open clean-ups";
    script_delegation(&mock, "sweep the todos", task, json!({"background": true})).await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": task, "hasToolResult": false},
         "response": {"toolCalls": [{"name": "write_file",
                                     "arguments": {"file_path": root.join("todo.txt"), "content": "- drop v1 api\n"}}]}},
        {"match": {"userMessage": task, "hasToolResult": true}, "response": {"content": "Wrote todo.txt."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| configure(s, &mock, &root, home.path())).await;

    let reply = app.send_ok("maint", "Please sweep the todos in the shop").await;
    let output = tool_output(&reply);
    assert!(output.contains("for Gemini CLI") && output.contains("Gemini CLI is enabled"), "{output}");
    let id = job_id_in(&output);
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["kind"], "gemini_cli");
    assert_eq!(job["payload"]["route"]["executor"], "gemini_cli");
    assert_eq!(job["payload"]["route"]["model"], MODEL);
    assert!(job["payload"]["route"]["reason"].as_str().unwrap().contains("background"), "{job}");

    let outcome = app.job_worker("w").try_execute_next().await.unwrap().expect("the Gemini run did not start");
    assert_eq!(outcome.job_id, id);
    assert_eq!(std::fs::read_to_string(root.join("todo.txt")).unwrap(), "- drop v1 api\n");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["executor"], "gemini_cli");
    assert_eq!(job["result"]["files_changed"], json!(["todo.txt"]));
    assert_eq!(job["result"]["summary"], "Wrote todo.txt.");
    let requests = mock.requests_to("/v1beta/models/").await;
    assert!(!requests.is_empty(), "the Gemini CLI never asked the model");
    assert!(requests.iter().all(|r| r["path"].as_str().unwrap().contains(MODEL)), "not the routed model");

    let conversation = reply["conversation"].as_str().unwrap();
    let notices = system_notices(&app, conversation).await;
    assert_eq!(notices.len(), 2, "one status message and the result: {notices:?}");
    assert!(notices[0].starts_with(&format!("✅ **Job #{id}** · done · ")), "{notices:?}");
    assert!(notices[0].contains(&format!("Gemini CLI ({MODEL}) is starting in workspace \"shop\"")), "{notices:?}");
    assert!(notices[0].contains("`todo.txt`"), "{notices:?}");
    let last = notices.last().unwrap();
    assert!(last.starts_with(&format!("Job #{id} (gemini_cli) finished.")), "{notices:?}");
    assert!(last.contains("Wrote todo.txt.") && last.contains("Files changed: todo.txt"), "{last}");
    // Not a git repository: the run worked in place and says nothing was committed.
    assert!(last.contains("Not a git repository: nothing was committed."), "{last}");
    // No Claude Code session is recorded for a Gemini run.
    assert_eq!(app.store().await.claude_session(conversation, "shop").await.unwrap(), None);

    // Interactive work in the same app still goes to Claude Code.
    script_delegation(&mock, "fix the checkout", "Fix the checkout test", json!({"effort": "deep"})).await;
    let output = tool_output(&app.send_ok("dev", "Please fix the checkout").await);
    assert!(output.contains("for Claude Code") && output.contains("large tier (opus)"), "{output}");
    let job = app.get_json(&format!("/api/jobs/{}", job_id_in(&output))).await;
    assert_eq!((job["kind"].as_str(), job["payload"]["route"]["tier"].as_str()), (Some("claude_code"), Some("large")));
}

#[tokio::test]
async fn cancelling_a_gemini_run_kills_its_process_group() {
    let mock = Aimock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    std::fs::create_dir_all(&root).unwrap();
    let home = tempfile::tempdir().unwrap();
    let task = "Slow sweep 41.223";
    script_delegation(&mock, "slow sweep", task, json!({"background": true})).await;
    // The model answers very slowly, so the CLI is still running when the cancel comes.
    mock.add_fixtures(json!([
        {"match": {"userMessage": task}, "response": {"content": "done eventually"}, "latency": 30000}
    ]))
    .await;
    let app = TestApp::spawn(|s| configure(s, &mock, &root, home.path())).await;
    let id = job_id_in(&tool_output(&app.send_ok("slow", "Please do the slow sweep").await));
    let worker = app.job_worker("w");
    let run = tokio::spawn(async move { worker.try_execute_next().await.unwrap() });

    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.requests_to("/v1beta/models/").await.is_empty() {
        assert!(Instant::now() < deadline, "the Gemini CLI never asked the model");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!processes_with("--prompt=Slow sweep 41.223").is_empty(), "the gemini process is not visible");
    let store = app.store().await;
    let children = store.child_processes().await.unwrap();
    assert!(children.iter().any(|child| child.command.starts_with("gemini (job #")), "{children:?}");
    let response = app.http.post(app.url(&format!("/api/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome = tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap().job_id, id);
    assert_eq!(app.get_json(&format!("/api/jobs/{id}")).await["status"], "cancelled");
    assert_eq!(processes_with("Slow sweep 41.223"), Vec::<String>::new(), "processes outlived the cancelled run");
    assert_eq!(store.child_processes().await.unwrap(), Vec::new(), "the pid was not forgotten");
}
