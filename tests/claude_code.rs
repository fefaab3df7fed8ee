//! Code work through the real app: `project_context` through the agent, and
//! delegated runs of the real Claude Code CLI (npm `@anthropic-ai/claude-code`)
//! against aimock in a temporary git workspace — a file really written,
//! progress and the summary in the conversation, the session resumed, a
//! cancelled run's process group gone, path escapes refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/claude.rs"]
mod support;

use common::{Aimock, TestApp, use_anthropic};
use serde_json::{Value, json};
use support::{
    ROUTED_MODEL, git_out, git_workspace, job_id_in, processes_with, script_claude, script_delegation, system_notices,
    tool_output, use_claude_code, valor_requests, with_workspace, worktree,
};
use valor::config::Settings;

/// A git workspace "shop" (inside a temporary directory) and a HOME for the
/// CLI: what every delegated run here needs.
struct Shop {
    _outside: tempfile::TempDir,
    root: std::path::PathBuf,
    home: tempfile::TempDir,
}

impl Shop {
    fn new() -> Self {
        let outside = tempfile::tempdir().unwrap();
        let root = git_workspace(outside.path());
        Self { _outside: outside, root, home: tempfile::tempdir().unwrap() }
    }

    /// valor with Anthropic on `mock`, this workspace and Claude Code, then `configure`.
    async fn spawn(&self, mock: &Aimock, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.spawn_in(mock, tempfile::tempdir().unwrap(), configure).await
    }

    async fn spawn_in(&self, mock: &Aimock, data: tempfile::TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::spawn_in(data, |s| {
            use_anthropic(s, mock);
            with_workspace(s, "shop", &self.root);
            use_claude_code(s, mock, self.home.path());
            configure(s);
        })
        .await
    }
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

#[tokio::test]
async fn the_system_prompt_of_an_api_conversation_lists_the_workspaces_to_name() {
    let mock = Aimock::start().await;
    let shop = Shop::new();
    let blog = shop._outside.path().join("blog");
    std::fs::create_dir_all(&blog).unwrap();
    support::run_git(&blog, &["init", "-q", "-b", "trunk"]);
    mock.add_fixtures(json!([{"match": {"userMessage": "which projects"}, "response": {"content": "Two."}}])).await;
    let app = shop.spawn(&mock, |s| with_workspace(s, "blog", &blog)).await;

    app.send_ok("api", "Tell me which projects you know").await;
    let requests = valor_requests(&mock).await;
    let (prompt, _) = requests.last().expect("the model was not asked");
    assert!(!prompt.contains("No project workspace"), "{prompt}");
    for expected in [
        format!("shop: {}", shop.root.display()),
        format!("blog: {}", blog.display()),
        "must name".to_owned(),
        "delegate_code_task".to_owned(),
        "valor/<job>-<slug>".to_owned(),
    ] {
        assert!(prompt.contains(&expected), "{expected:?} missing from the prompt:\n{prompt}");
    }
}

#[tokio::test]
async fn a_delegated_run_works_on_its_own_branch_commits_and_the_follow_up_resumes_the_session() {
    let mock = Aimock::start().await;
    let shop = Shop::new();
    let root = &shop.root;
    script_delegation(&mock, "add a hello file", "Create hello.txt saying hi", "shop").await;
    let app = shop.spawn(&mock, |_| {}).await;

    let reply = app.send_ok("code", "Please add a hello file to the shop").await;
    let id = job_id_in(&tool_output(&reply));
    let conversation = reply["conversation"].as_str().unwrap().to_owned();
    // The run works in its own worktree, so that is where Claude Code writes.
    let tree = worktree(&app, "shop", id);
    let hello = tree.join("hello.txt");
    script_claude(
        &mock,
        "Create hello.txt saying hi",
        "Write",
        json!({"file_path": hello, "content": "hi\n"}),
        "Created hello.txt.",
    )
    .await;
    let worker = app.job_worker("w");
    let outcome = worker.try_execute_next().await.unwrap().expect("the code run did not start");
    assert_eq!(outcome.job_id, id);
    assert_eq!(std::fs::read_to_string(&hello).unwrap(), "hi\n");
    // The user's checkout is untouched: no new file, their uncommitted change as it was, still on main.
    assert!(!root.join("hello.txt").exists());
    assert_eq!(git_out(root, &["status", "--porcelain"]), "?? notes.txt");
    assert_eq!(git_out(root, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    let models: Vec<Value> =
        mock.requests_to("/v1/messages").await.iter().map(|r| r["body"]["model"].clone()).collect();
    assert!(models.contains(&json!(ROUTED_MODEL)), "the routed model was not used: {models:?}");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["files_changed"], json!(["hello.txt"]));
    let branch = format!("valor/{id}-create-hello-txt-saying-hi");
    assert_eq!(job["result"]["branch"], json!(branch), "{job}");
    // Committed on the branch, by valor, with the summary as subject; main has not moved.
    assert_eq!(git_out(root, &["log", "-1", "--format=%an|%s", &branch]), "valor|Created hello.txt.");
    assert_eq!(git_out(root, &["show", "--name-only", "--format=", &branch]), "hello.txt");
    assert_eq!(git_out(root, &["log", "-1", "--format=%s", "main"]), "Add the checkout service");
    assert_eq!(git_out(&tree, &["status", "--porcelain"]), "", "the worktree was left dirty");
    let commit = job["result"]["commit"].as_str().unwrap();
    assert!(git_out(root, &["rev-parse", &branch]).starts_with(commit), "{job}");
    let session = job["result"]["session_id"].as_str().unwrap().to_owned();
    let store = app.store().await;
    assert_eq!(store.claude_session(&conversation, "shop").await.unwrap().as_deref(), Some(session.as_str()));
    // One status message (updated in place to its end state), then the result.
    let notices = system_notices(&app, &conversation).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    let status = &notices[0];
    assert!(status.starts_with(&format!("✅ **Job #{id}** · done · ")), "{status}");
    let start = format!("Claude Code is starting in workspace \"shop\" on branch `{branch}` · MCP servers: valor");
    assert!(status.contains(&start), "{status}");
    assert!(status.contains("Files (1): `hello.txt`"), "{status}");
    let last = notices.last().unwrap();
    assert!(last.starts_with(&format!("Job #{id} (claude_code) finished.")), "{notices:?}");
    assert!(last.contains("Created hello.txt.") && last.contains("Files changed: hello.txt"), "{last}");
    assert!(last.contains(&format!("Branch `{branch}` · commit {commit} · 1 file changed")), "{last}");

    // A follow-up in the same conversation continues the branch, its worktree and the session.
    script_delegation(&mock, "add a bye file", "Create bye.txt too", "shop").await;
    let bye = tree.join("bye.txt");
    script_claude(
        &mock,
        "Create bye.txt too",
        "Write",
        json!({"file_path": bye, "content": "bye\n"}),
        "Created bye.txt.",
    )
    .await;
    let reply = app.send_ok(&conversation, "Now add a bye file as well").await;
    // The model saw how the first run ended, once (the transcript's copy of the final notice).
    let requests = valor_requests(&mock).await;
    let (_, follow_up) = requests.iter().find(|(_, body)| body.contains("Now add a bye file")).unwrap();
    assert_eq!(follow_up.matches("Files changed: hello.txt").count(), 1, "{follow_up}");
    assert_eq!(follow_up.matches("Created hello.txt.").count(), 1, "{follow_up}");
    let second = job_id_in(&tool_output(&reply));
    worker.try_execute_next().await.unwrap().expect("the follow-up did not run");
    let job = app.get_json(&format!("/api/jobs/{second}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["branch"], json!(branch), "{job}");
    assert_eq!(job["result"]["files_changed"], json!(["bye.txt"]), "only this run's changes: {job}");
    assert!(bye.exists() && !root.join("bye.txt").exists());
    assert_eq!(git_out(root, &["log", "--format=%s", &branch]).lines().count(), 3);
    let notices = system_notices(&app, &conversation).await;
    assert_eq!(notices.len(), 4, "a status and a result per run: {notices:?}");
    assert!(notices[2].contains("continuing the previous session") && notices[2].contains("done"), "{notices:?}");
    // Claude Code sent the first run's history along: the session really was resumed.
    let resumed = mock.requests_to("/v1/messages").await.into_iter().any(|entry| {
        let body = entry["body"].to_string();
        body.contains("Create bye.txt too") && body.contains("Create hello.txt saying hi")
    });
    assert!(resumed, "the follow-up did not carry the first session's history");
}

async fn start_sleeping_run(
    mock: &Aimock,
    seconds: &str,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, i64, Shop) {
    let command = format!("python3 -c 'import time; time.sleep({seconds})'");
    start_run_of(mock, seconds, &command, configure).await
}

/// A delegated run whose Claude Code runs `command` in Bash (the task text names `seconds`).
async fn start_run_of(
    mock: &Aimock,
    seconds: &str,
    command: &str,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, i64, Shop) {
    let shop = Shop::new();
    let task = format!("Nap for {seconds} seconds");
    script_delegation(mock, "take a nap", &task, "shop").await;
    script_claude(mock, &task, "Bash", json!({"command": command, "description": "nap"}), "Napped.").await;
    let app = shop
        .spawn(mock, |s| {
            s.claude.allowed_tools = vec!["Bash".into()];
            configure(s);
        })
        .await;
    let reply = app.send_ok("nap", "Please take a nap in the shop").await;
    let id = job_id_in(&tool_output(&reply));
    (app, id, shop)
}

/// The conversation's status message of job `id` once its text contains `showing` (20 s).
async fn status_message(app: &TestApp, conversation: &str, id: i64, showing: &str) -> Value {
    let wanted = format!("**Job #{id}** · ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
        let found = messages["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "system" && m["text"].as_str().is_some_and(|text| text.contains(&wanted)));
        if let Some(found) = found.filter(|m| m["text"].as_str().unwrap().contains(showing)) {
            return found.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no status of job #{id} showing {showing:?}: {messages}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn wait_for_process(marker: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while processes_with(marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "Claude Code never ran `{marker}`");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cancelling_a_run_kills_its_whole_process_group() {
    let mock = Aimock::start().await;
    let (app, id, _shop) = start_sleeping_run(&mock, "30.417", |_| {}).await;
    let worker = app.job_worker("w");
    let run = tokio::spawn(async move { worker.try_execute_next().await.unwrap() });
    wait_for_process("time.sleep(30.417)").await;
    assert!(!processes_with("Nap for 30.417 seconds").is_empty(), "the claude process is not visible");
    // The running CLI is recorded (the daydream's cleanup reads this) and forgotten after the run.
    let store = app.store().await;
    let children = store.child_processes().await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(children[0].command.starts_with("claude (job #"), "{children:?}");
    // The conversation's status message offers Cancel while the run works.
    let conversation = app.get_json(&format!("/api/jobs/{id}")).await["conversation_id"].as_str().unwrap().to_owned();
    let status = status_message(&app, &conversation, id, " · working · ").await;
    assert_eq!(status["content"][1]["buttons"][0]["data"], format!("job:cancel:{id}"), "{status}");
    let response = app.http.post(app.url(&format!("/api/jobs/{id}/cancel"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(20), run).await.unwrap().unwrap();
    assert_eq!(outcome.unwrap().job_id, id);
    assert_eq!(app.get_json(&format!("/api/jobs/{id}")).await["status"], "cancelled");
    // The same message, ended: cancelled, without the button; the notice follows it.
    let ended = status_message(&app, &conversation, id, "cancelled").await;
    assert_eq!(ended["id"], status["id"]);
    assert!(ended["text"].as_str().unwrap().starts_with(&format!("⏹ **Job #{id}** · cancelled · ")), "{ended}");
    assert_eq!(ended["content"].as_array().unwrap().len(), 1, "the Cancel button outlived the run: {ended}");
    let notices = system_notices(&app, &conversation).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    // The transcript's copy of the notice is the run's outcome (what the model reads too).
    assert!(notices[1].starts_with(&format!("Job #{id} (claude_code) was cancelled.\nWorkspace shop")), "{notices:?}");
    assert_eq!(processes_with("30.417"), Vec::<String>::new(), "processes outlived the cancelled run");
    assert_eq!(store.child_processes().await.unwrap(), Vec::new(), "the pid was not forgotten");
}

#[tokio::test]
async fn a_run_over_its_time_limit_is_stopped_and_reported_failed() {
    let mock = Aimock::start().await;
    let (app, id, _shop) = start_sleeping_run(&mock, "31.529", |s| s.claude.time_limit_secs = 4).await;
    let worker = app.job_worker("w");
    tokio::time::timeout(std::time::Duration::from_secs(40), worker.try_execute_next()).await.unwrap().unwrap();
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("time limit"), "{job}");
    assert_eq!(processes_with("31.529"), Vec::<String>::new(), "processes outlived the run");
}

/// A CLI that cannot be started fails its job with the fix, in the job and in the chat.
#[tokio::test]
async fn a_cli_that_cannot_be_started_fails_with_how_to_fix_it() {
    let mock = Aimock::start().await;
    // There when valor starts (so code work is offered), gone when the run starts.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("claude");
    std::fs::write(&bin, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let configured = bin.display().to_string();
    let (app, id, _shop) = start_sleeping_run(&mock, "1.5", |s| s.claude.bin = configured).await;
    std::fs::remove_file(&bin).unwrap();
    app.job_worker("w").try_execute_next().await.unwrap();
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains(&format!("Claude Code could not be started ({})", bin.display())), "{job}");
    assert!(error.contains("set VALOR_CLAUDE_BIN"), "{job}");
    let conversation = job["conversation_id"].as_str().unwrap();
    let notices = system_notices(&app, conversation).await;
    assert!(notices.iter().any(|notice| notice.contains("set VALOR_CLAUDE_BIN")), "{notices:?}");
}

#[tokio::test]
async fn workspaces_that_point_outside_or_into_valors_data_are_refused() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let etc_link = outside.path().join("etc-link");
    std::os::unix::fs::symlink("/etc", &etc_link).unwrap();
    let data = tempfile::tempdir().unwrap();
    let inside_data = data.path().join("projects");
    std::fs::create_dir_all(&inside_data).unwrap();
    script_delegation(&mock, "fix the etc project", "Edit the passwd file", "etc").await;
    script_delegation(&mock, "fix the data project", "Edit the database", "data").await;
    let app = TestApp::spawn_in(data, |s| {
        use_anthropic(s, &mock);
        with_workspace(s, "etc", &etc_link);
        with_workspace(s, "data", &inside_data);
        s.jobs.workers = 0;
    })
    .await;
    for ask in ["Please fix the etc project", "Please fix the data project"] {
        let reply = app.send_ok(ask, ask).await;
        let output = tool_output(&reply);
        assert!(output.contains("is not usable"), "{ask}: {output}");
    }
    let jobs = app.get_json("/api/jobs").await;
    assert_eq!(jobs["jobs"], json!([]), "nothing may be queued for a refused workspace");
}

#[tokio::test]
async fn a_run_whose_task_is_dropped_leaves_no_process_behind() {
    let mock = Aimock::start().await;
    let (app, _id, _shop) = start_sleeping_run(&mock, "33.853", |_| {}).await;
    let worker = app.job_worker("w");
    let run = tokio::spawn(async move { worker.try_execute_next().await });
    wait_for_process("time.sleep(33.853)").await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_with("33.853").is_empty() {
        assert!(std::time::Instant::now() < deadline, "left behind: {:?}", processes_with("33.853"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_run_interrupted_by_shutdown_is_handed_back_and_runs_again_after_the_restart() {
    let mock = Aimock::start().await;
    // The first attempt sleeps; once `.rerun` exists (after the restart) the command returns at once.
    let command = "test -f .rerun || python3 -c 'import time; time.sleep(34.967)'";
    let (app, id, shop) = start_run_of(&mock, "34.967", command, |_| {}).await;
    let worker = app.job_worker("w");
    let run = tokio::spawn(async move { worker.try_execute_next().await.unwrap() });
    wait_for_process("time.sleep(34.967)").await;
    app.request_shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(20), run).await.unwrap().unwrap();
    assert_eq!(processes_with("34.967"), Vec::<String>::new(), "processes outlived the shutdown");
    // The re-run works in the run's worktree: the marker goes there.
    std::fs::write(worktree(&app, "shop", id).join(".rerun"), "").unwrap();
    let data = app.stop().await;
    let store = valor::storage::Store::open(&data.path().join("valor.db")).await.unwrap();
    assert_eq!(store.get_job(id).await.unwrap().status.as_str(), "queued", "the run was not handed back");
    store.close().await;

    std::fs::write(shop.root.join(".rerun"), "").unwrap();
    let app = shop.spawn_in(&mock, data, |s| s.claude.allowed_tools = vec!["Bash".into()]).await;
    let outcome = app.job_worker("w2").try_execute_next().await.unwrap().expect("the run was lost");
    assert_eq!(outcome.job_id, id);
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["summary"], "Napped.");
    // The re-run continued the run's one status message (ended done), then the result.
    let notices = system_notices(&app, job["conversation_id"].as_str().unwrap()).await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].starts_with(&format!("✅ **Job #{id}** · done · ")), "{notices:?}");
}

#[tokio::test]
async fn a_session_the_cli_no_longer_knows_is_replaced_by_a_new_one() {
    let mock = Aimock::start().await;
    let shop = Shop::new();
    script_delegation(&mock, "add a todo file", "Create todo.txt", "shop").await;
    let app = shop.spawn(&mock, |_| {}).await;
    let reply = app.send_ok("todo", "Please add a todo file").await;
    let first = job_id_in(&tool_output(&reply));
    let tree = worktree(&app, "shop", first);
    script_claude(
        &mock,
        "Create todo.txt",
        "Write",
        json!({"file_path": tree.join("todo.txt"), "content": "x"}),
        "Done.",
    )
    .await;
    let conversation = reply["conversation"].as_str().unwrap().to_owned();
    let worker = app.job_worker("w");
    worker.try_execute_next().await.unwrap().expect("the first run did not start");
    // The branch's session is one the CLI does not know (its history was wiped, say).
    let store = app.store().await;
    let stale = "11111111-2222-3333-4444-555555555555";
    store.set_claude_session(&conversation, "shop", stale).await.unwrap();

    script_delegation(&mock, "add a done file", "Create done.txt", "shop").await;
    script_claude(
        &mock,
        "Create done.txt",
        "Write",
        json!({"file_path": tree.join("done.txt"), "content": "y"}),
        "Done.",
    )
    .await;
    let reply = app.send_ok(&conversation, "Please add a done file").await;
    let id = job_id_in(&tool_output(&reply));
    worker.try_execute_next().await.unwrap().expect("the follow-up did not start");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(tree.join("done.txt").exists());
    let session = store.claude_session(&conversation, "shop").await.unwrap().unwrap();
    assert_ne!(session, stale);
    let notices = system_notices(&app, &conversation).await;
    assert!(notices.iter().any(|n| n.contains("could not be resumed")), "{notices:?}");
}

#[tokio::test]
async fn a_run_waiting_behind_the_concurrency_limit_shows_its_place_in_line() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    for (ask, task) in [("first run", "Task one"), ("second run", "Task two"), ("third run", "Task three")] {
        script_delegation(&mock, ask, task, "shop").await;
    }
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        with_workspace(s, "shop", &root);
        s.jobs.workers = 0;
        s.jobs.concurrency.insert("claude_code".into(), 1);
    })
    .await;

    let first = tool_output(&app.send_ok("a", "Start the first run").await);
    assert!(first.contains("starts as soon as a worker is free"), "{first}");
    let store = app.store().await;
    let limits = std::collections::BTreeMap::from([("claude_code".to_owned(), 1)]);
    let running = store.claim_job("w", valor::storage::wall_clock_ms(), 600_000, &limits).await.unwrap().unwrap();
    assert_eq!(running.id, job_id_in(&first));

    let second = tool_output(&app.send_ok("b", "Start the second run").await);
    assert!(second.contains("queued, position 1"), "{second}");
    let third = tool_output(&app.send_ok("c", "Start the third run").await);
    assert!(third.contains("queued, position 2"), "{third}");
    let (second, third) = (job_id_in(&second), job_id_in(&third));
    assert_eq!(app.get_json(&format!("/api/jobs/{second}")).await["queue_position"], 1);
    assert_eq!(app.get_json(&format!("/api/jobs/{third}")).await["queue_position"], 2);
    assert_eq!(app.get_json(&format!("/api/jobs/{}", running.id)).await["queue_position"], Value::Null);
    let listed = app.get_json("/api/jobs?status=queued").await;
    let positions: Vec<&Value> = listed["jobs"].as_array().unwrap().iter().map(|j| &j["queue_position"]).collect();
    assert_eq!(positions, [&json!(2), &json!(1)], "newest first");
    let summary = store.job_summary(&store.get_job(third).await.unwrap()).await.unwrap();
    assert!(summary.ends_with("queued at position 2"), "{summary}");

    // The line moves up once the run ahead is gone.
    store.request_job_cancel(second, valor::storage::wall_clock_ms()).await.unwrap();
    assert_eq!(app.get_json(&format!("/api/jobs/{third}")).await["queue_position"], 1);
}

/// Delegate `task` (asked as `ask`) in `conversation` and run it: Claude Code
/// writes `file` in the branch's worktree (`tree_of`: the branch's first job,
/// else this one). Returns the finished job.
#[allow(clippy::too_many_arguments)]
async fn run_write(
    app: &TestApp,
    mock: &Aimock,
    worker: &valor::jobs::Worker,
    conversation: &str,
    (ask, task): (&str, &str),
    tree_of: Option<i64>,
    file: &str,
    content: &str,
) -> Value {
    script_delegation(mock, ask, task, "shop").await;
    let reply = app.send_ok(conversation, &format!("Please {ask}")).await;
    let id = job_id_in(&tool_output(&reply));
    let target = worktree(app, "shop", tree_of.unwrap_or(id)).join(file);
    script_claude(mock, task, "Write", json!({"file_path": target, "content": content}), "Done.").await;
    worker.try_execute_next().await.unwrap().expect("the run did not start");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job
}

async fn post_branch(app: &TestApp, id: i64, action: &str) -> (u16, Value) {
    let response = app.http.post(app.url(&format!("/api/branches/{id}/{action}"))).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Ask for `action` and run the `branch_action` job; the notice it posted.
async fn act_on_branch(
    app: &TestApp,
    worker: &valor::jobs::Worker,
    id: i64,
    action: &str,
    conversation: &str,
) -> String {
    let (status, body) = post_branch(app, id, action).await;
    assert_eq!(status, 202, "{action}: {body}");
    let outcome = worker.try_execute_next().await.unwrap().expect("the branch action did not run");
    assert_eq!(outcome.job_id, body["job_id"].as_i64().unwrap());
    system_notices(app, conversation).await.pop().unwrap()
}

#[tokio::test]
async fn a_person_merges_pushes_and_discards_run_branches_and_nothing_is_ever_forced() {
    let mock = Aimock::start().await;
    let shop = Shop::new();
    let root = shop.root.clone();
    let app = shop.spawn(&mock, |s| s.daydream.min_available_memory_mb = 0).await;
    let worker = app.job_worker("w");

    // Run A adds a file; merging fast-forwards main in the user's checkout around their own change.
    let a =
        run_write(&app, &mock, &worker, "a", ("add a hello file", "Create hello.txt"), None, "hello.txt", "hi\n").await;
    let (a_branch, a_id) =
        (a["result"]["branch"].as_str().unwrap().to_owned(), a["result"]["run_branch"].as_i64().unwrap());
    let a_conversation = a["conversation_id"].as_str().unwrap().to_owned();
    let notice = act_on_branch(&app, &worker, a_id, "merge", &a_conversation).await;
    assert!(notice.contains(&format!("Merged `{a_branch}` into `main` (fast-forward")), "{notice}");
    assert_eq!(std::fs::read_to_string(root.join("hello.txt")).unwrap(), "hi\n");
    assert_eq!(std::fs::read_to_string(root.join("notes.txt")).unwrap(), "draft\n");
    assert_eq!(git_out(&root, &["status", "--porcelain"]), "?? notes.txt");
    assert_eq!(git_out(&root, &["log", "-1", "--format=%s", "main"]), "Done.");
    let (status, body) = post_branch(&app, a_id, "merge").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or(&body.to_string()).contains("already merged"), "{body}");

    // Run B (another conversation, so another branch) retitles the README while the user commits their own title.
    let b = run_write(
        &app,
        &mock,
        &worker,
        "b",
        ("retitle the readme", "Retitle README.md"),
        None,
        "README.md",
        "# Shop by valor\n",
    )
    .await;
    let (b_branch, b_id) =
        (b["result"]["branch"].as_str().unwrap().to_owned(), b["result"]["run_branch"].as_i64().unwrap());
    let b_tree = worktree(&app, "shop", b["id"].as_i64().unwrap());
    let b_conversation = b["conversation_id"].as_str().unwrap().to_owned();
    assert_ne!(a_branch, b_branch);
    std::fs::write(root.join("README.md"), "# Shop by me\n").unwrap();
    support::run_git(&root, &["commit", "-q", "-am", "My title"]);
    let main_before = git_out(&root, &["rev-parse", "main"]);
    let notice = act_on_branch(&app, &worker, b_id, "merge", &b_conversation).await;
    assert!(notice.contains("does not merge cleanly") && notice.contains("`README.md`"), "{notice}");
    assert_eq!(git_out(&root, &["rev-parse", "main"]), main_before, "a conflicted merge moved main");
    assert_eq!(std::fs::read_to_string(root.join("README.md")).unwrap(), "# Shop by me\n");
    assert_eq!(git_out(&root, &["status", "--porcelain"]), "?? notes.txt");

    // Push: without a remote a clear answer; with a (bare, local) one the branch arrives; no `gh` → no PR, said so.
    let notice = act_on_branch(&app, &worker, b_id, "push", &b_conversation).await;
    assert!(notice.contains("was not pushed") && notice.contains("no remote"), "{notice}");
    let bare = shop.root.parent().unwrap().join("remote.git");
    support::run_git(shop.root.parent().unwrap(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
    support::run_git(&root, &["remote", "add", "origin", bare.to_str().unwrap()]);
    let notice = act_on_branch(&app, &worker, b_id, "push", &b_conversation).await;
    assert!(
        notice.contains(&format!("Pushed `{b_branch}` to `origin`")) && notice.contains("No pull request:"),
        "{notice}"
    );
    assert_eq!(git_out(&bare, &["rev-parse", &b_branch]), git_out(&root, &["rev-parse", &b_branch]));

    // Discard removes worktree and branch.
    let notice = act_on_branch(&app, &worker, b_id, "discard", &b_conversation).await;
    assert!(notice.contains(&format!("Discarded `{b_branch}`")), "{notice}");
    assert!(!b_tree.exists(), "the discarded worktree is still there");
    assert_eq!(git_out(&root, &["branch", "--list", &b_branch]), "");
    let (status, _) = post_branch(&app, b_id, "push").await;
    assert_eq!(status, 409);
    let (status, body) = post_branch(&app, b_id, "rebase").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(post_branch(&app, 999, "merge").await.0, 404);

    // The daydream's cleanup removes the merged branch's worktree (the branch stays).
    let a_tree = worktree(&app, "shop", a["id"].as_i64().unwrap());
    assert!(a_tree.exists());
    let store = app.store().await;
    let daydream = valor::storage::NewJob {
        kind: "daydream".into(),
        payload: json!({"trigger": "manual"}),
        priority: 100,
        run_at_ms: None,
        max_attempts: 1,
        conversation_id: None,
        idempotency_key: None,
    };
    store.enqueue_job(daydream, valor::storage::wall_clock_ms()).await.unwrap();
    worker.try_execute_next().await.unwrap().expect("the daydream did not run");
    assert!(!a_tree.exists(), "the merged branch's worktree was not cleaned up");
    assert_eq!(git_out(&root, &["branch", "--list", &a_branch]), a_branch.as_str());
    let listed = app.get_json("/api/branches?workspace=shop").await;
    let states: Vec<&str> =
        listed["branches"].as_array().unwrap().iter().map(|b| b["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["discarded", "merged"], "{listed}");
}

#[tokio::test]
async fn two_runs_at_once_get_their_own_worktrees_and_branches() {
    let mock = Aimock::start().await;
    let shop = Shop::new();
    let root = shop.root.clone();
    let app = shop.spawn(&mock, |s| _ = s.jobs.concurrency.insert("claude_code".into(), 2)).await;
    let mut ids = Vec::new();
    for (conversation, ask, task, file) in
        [("one", "add file one", "Create one.txt", "one.txt"), ("two", "add file two", "Create two.txt", "two.txt")]
    {
        script_delegation(&mock, ask, task, "shop").await;
        let reply = app.send_ok(conversation, &format!("Please {ask}")).await;
        let id = job_id_in(&tool_output(&reply));
        let target = worktree(&app, "shop", id).join(file);
        script_claude(&mock, task, "Write", json!({"file_path": target, "content": file}), "Done.").await;
        ids.push(id);
    }
    let (w1, w2) = (app.job_worker("w1"), app.job_worker("w2"));
    let (first, second) = tokio::join!(w1.try_execute_next(), w2.try_execute_next());
    assert!(first.unwrap().is_some() && second.unwrap().is_some());
    let mut branches = Vec::new();
    for (id, file, other) in [(ids[0], "one.txt", "two.txt"), (ids[1], "two.txt", "one.txt")] {
        let job = app.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let branch = job["result"]["branch"].as_str().unwrap().to_owned();
        assert_eq!(git_out(&root, &["show", "--name-only", "--format=", &branch]), file);
        let tree = worktree(&app, "shop", id);
        assert!(tree.join(file).exists() && !tree.join(other).exists());
        branches.push(branch);
    }
    assert_ne!(branches[0], branches[1]);
    assert_eq!(git_out(&root, &["status", "--porcelain"]), "?? notes.txt", "the user's checkout changed");
}
