//! The web chat in a real browser: headless Chromium (driven by
//! playwright-core in `tests/browser/chat.mjs`) opens the page served by the
//! real app, sends a message, sees the streamed reply and the conversation in
//! the sidebar, and saves a screenshot to `tests/output/web-chat.png`; the
//! Status and Jobs views; and the permission prompt of a Claude Code run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/claude.rs"]
mod support;

use std::time::Duration;

use common::{Aimock, TestApp, repo_root, use_anthropic};
use serde_json::json;

/// `tests/browser/chat.mjs` against `app` (it must succeed); its stdout.
async fn run_chat(app: &TestApp, screenshot: &std::path::Path, expected: &str, env: &[(&str, &str)]) -> String {
    let run = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/browser/chat.mjs"))
        .arg(format!("{}/", app.base))
        .arg(screenshot)
        .arg(expected)
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    stdout
}

/// A screenshot path under `tests/output/`, any old file removed.
fn screenshot_path(name: &str) -> std::path::PathBuf {
    let png = repo_root().join("tests/output").join(name);
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&png);
    png
}

/// Run `tests/browser/<script>.mjs` with `args`: it must succeed and print
/// "browser <script>: ok"; the screenshot `png` must be saved.
async fn run_check(script: &str, args: &[&std::ffi::OsStr], png: &std::path::Path) {
    let run = tokio::process::Command::new("node")
        .arg(repo_root().join(format!("tests/browser/{script}.mjs")))
        .args(args)
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("browser {script}: ok")), "{stdout}");
    assert!(std::fs::read(png).unwrap().starts_with(b"\x89PNG"), "no screenshot");
}

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

    // The same question again in "+ New conversation": a second conversation (the page used to send the
    // question as the conversation's name, and the API joined the first one by its title).
    let stdout = run_chat(&app, &screenshot, "March 3", &[("ASK_AGAIN_IN_NEW", "1")]).await;
    assert!(stdout.contains("browser chat: ok"), "{stdout}");
    let png = std::fs::read(&screenshot).expect("no screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");

    // The browser's turns really went through the agent and the tool, one per conversation.
    let conversations = app.get_json("/api/conversations").await;
    assert_eq!(conversations["conversations"].as_array().unwrap().len(), 2, "{conversations}");
    let id = conversations["conversations"][0]["id"].as_str().unwrap();
    let messages = app.get_json(&format!("/api/conversations/{id}/messages")).await;
    let roles: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
}

/// A model slow to start answering: the web chat shows "still waiting for
/// the model…" beside the typing dots, then the answer replaces it.
#[tokio::test]
async fn the_web_chat_says_when_the_model_is_slow_to_start() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{
        "match": {"userMessage": "launch date"},
        "response": {"content": "The launch is on March 3."},
        "chaos": {"latencyMs": 3000}
    }]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.llm.waiting_notice_secs = 1;
    })
    .await;
    let output_dir = repo_root().join("tests/output");
    std::fs::create_dir_all(&output_dir).unwrap();
    let (screenshot, waiting) = (output_dir.join("web-chat-slow.png"), output_dir.join("web-chat-waiting.png"));
    let _ = std::fs::remove_file(&waiting);
    let waiting_path = waiting.to_str().unwrap();
    let env = [("EXPECT_WAITING", "still waiting for the model"), ("WAITING_SCREENSHOT", waiting_path)];
    run_chat(&app, &screenshot, "March 3", &env).await;
    assert!(std::fs::read(&waiting).expect("no screenshot of the waiting note").starts_with(b"\x89PNG"));
}

/// Put straight into the database (no workers run, so they stay as they
/// are): a finished code run (files, branch, cost) and a finished task, both
/// of which once reported "started working on it"; a running job with
/// progress; and a queued one.
async fn seed_jobs(app: &TestApp) {
    use valor::storage::{NewJob, wall_clock_ms};
    let store = app.store().await;
    let job = |kind: &str, payload: serde_json::Value, priority: i64| NewJob {
        kind: kind.into(),
        payload,
        priority,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: None,
        idempotency_key: None,
    };
    let now = wall_clock_ms();
    let finished = [
        (
            job("claude_code", json!({"task": "Add a hello file to the shop", "workspace": "shop"}), 30),
            json!({"summary": "Added hello.txt and a greeting test.", "files_changed": ["hello.txt", "tests/hello.rs"],
                "cost_usd": 0.0123, "turns": 3, "workspace": "shop", "executor": "claude_code",
                "branch": "valor/1-add-a-hello-file", "base_branch": "main", "commit": "0123456789abcdef",
                "diff_stat": " 2 files changed, 9 insertions(+)\n", "reply": "Added hello.txt."}),
        ),
        (
            job("agent_task", json!({"task": "Draft the release notes"}), 30),
            json!({"reply": "Release notes drafted: three fixes and one new command."}),
        ),
    ];
    for (new, result) in finished {
        store.enqueue_job(new, now).await.unwrap();
        let claimed = store.claim_job("browser-test", now, 600_000, &Default::default()).await.unwrap().unwrap();
        assert!(
            store.update_job_progress(claimed.id, "browser-test", "started working on it", Some(0), now).await.unwrap()
        );
        store.complete_job(claimed.id, "browser-test", &result, now + 42_000).await.unwrap().unwrap();
    }
    store.enqueue_job(job("agent_task", json!({"task": "Summarise the launch notes"}), 10), now).await.unwrap();
    store.enqueue_job(job("agent_task", json!({"task": "Clean the inbox"}), 0), now).await.unwrap();
    let claimed = store.claim_job("browser-test", now, 600_000, &Default::default()).await.unwrap().unwrap();
    assert!(
        store
            .update_job_progress(claimed.id, "browser-test", "halfway through the notes", Some(50), now)
            .await
            .unwrap()
    );
}

/// Status and Jobs at 1280×800 and 390×844: real data, charts with axes and
/// a tooltip, the score inside its ring at every width, nothing wider than a
/// phone, a card's details dialog (click, keyboard, Esc, Back), cancel and retry.
#[tokio::test]
async fn the_status_and_jobs_views_render_real_data_in_headless_chromium() {
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.resources.sample_interval_secs = 1;
    })
    .await;
    seed_jobs(&app).await;
    let pngs: Vec<std::path::PathBuf> =
        ["web-status.png", "web-jobs.png", "web-job-details.png", "web-status-phone.png", "web-jobs-phone.png"]
            .into_iter()
            .map(screenshot_path)
            .collect();
    // A few samples, so the charts draw lines over a time axis.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = format!("{}/#status", app.base);
    let mut args: Vec<&std::ffi::OsStr> = vec![url.as_ref()];
    args.extend(pngs.iter().map(|png| png.as_os_str()));
    run_check("dashboard", &args, &pngs[0]).await;
    for png in &pngs {
        assert!(std::fs::read(png).unwrap().starts_with(b"\x89PNG"), "{} is not a PNG", png.display());
    }
    // The buttons really acted: the cancelled job was retried and waits again.
    let queued = app.get_json("/api/jobs?status=queued").await;
    assert_eq!(queued["jobs"][0]["payload"]["task"], "Clean the inbox");
    assert_eq!(queued["jobs"][0]["retries"], 1);
}

#[tokio::test]
async fn the_web_chat_answers_a_permission_request_in_headless_chromium() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "deploy it"}, "response": {"content": "Deploying."}}])).await;
    let root = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let conversation = app.send_ok("deploys", "deploy it").await["conversation"].as_str().unwrap().to_owned();
    let workspace = valor::workspace::Workspace::open("shop", root.path(), &[]).unwrap();
    let scope = valor::workspace::mcp_config::RunScope {
        job_id: 3,
        conversation_id: conversation.clone(),
        workspace,
        requester: valor::workspace::Requester::admin(),
        approval_timeout: Duration::from_secs(60),
    };
    let grant = app.run_access().grant(scope);
    let client = support::RunClient::connect(&app, grant.token()).await;
    let png = repo_root().join("tests/output/web-approval.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&png);

    let ask = client.call("approve", json!({"tool_name": "Bash", "input": {"command": "make deploy"}}));
    let browse = async {
        let run = tokio::process::Command::new("node")
            .arg(repo_root().join("tests/browser/approvals.mjs"))
            .arg(format!("{}/#c/{conversation}", app.base))
            .arg(&png)
            .current_dir(repo_root())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap()
    };
    let ((is_error, answer), output) = tokio::join!(ask, browse);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser approvals: ok"), "{stdout}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // The click answered Claude Code: allowed, for the rest of the run.
    assert!(!is_error, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, json!({"behavior": "allow", "updatedInput": {"command": "make deploy"}}));
    let store = app.store().await;
    assert!(store.tool_allowed_for_run(3, "Bash").await.unwrap());
}

#[tokio::test]
async fn a_jobs_live_status_updates_in_place_and_cancels_in_headless_chromium() {
    use valor::agent::outbox::{Outbox, StatusNotice, TranscriptOutbox, cancel_button};
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "long job"}, "response": {"content": "Queued."}}])).await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.jobs.workers = 0;
    })
    .await;
    let conversation = app.send_ok("jobs", "start the long job").await["conversation"].as_str().unwrap().to_owned();
    let store = app.store().await;
    let job = valor::storage::NewJob {
        kind: "agent_task".into(),
        payload: json!({"task": "a long job"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 1,
        conversation_id: Some(conversation.clone()),
        idempotency_key: None,
    };
    let id = store.enqueue_job(job, valor::storage::wall_clock_ms()).await.unwrap().job.id;
    // The app's own store, as its job workers use: the page's live stream wakes on its writes.
    let outbox = TranscriptOutbox::new(app.app_store());
    let status =
        |text: String, buttons| StatusNotice { conversation_id: conversation.clone(), key: "t".into(), text, buttons };
    outbox.post_status(status(format!("⚙️ **Job #{id}** · working · 3 s"), vec![cancel_button(id)])).await.unwrap();
    // Not web-status.png: that is the Status tab's, saved by another test at the same time.
    let png = screenshot_path("web-job-live-status.png");

    let browse = async {
        let run = tokio::process::Command::new("node")
            .arg(repo_root().join("tests/browser/status.mjs"))
            .arg(format!("{}/#c/{conversation}", app.base))
            .arg(&png)
            .arg(id.to_string())
            .current_dir(repo_root())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap()
    };
    // Once the click has cancelled the job, the server ends the status message (as the final-notice pass does).
    let end = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while store.get_job(id).await.unwrap().status.as_str() != "cancelled" {
            assert!(std::time::Instant::now() < deadline, "the Cancel button did not cancel the job");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        outbox.post_status(status(format!("⏹ **Job #{id}** · cancelled · 5 s"), Vec::new())).await.unwrap();
    };
    let (output, ()) = tokio::join!(browse, end);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser status: ok"), "{stdout}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn a_code_runs_result_merges_its_branch_from_the_web_chat_in_headless_chromium() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = support::git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        support::with_workspace(s, "shop", &root);
        support::use_claude_code(s, &mock, home.path());
    })
    .await;
    support::script_delegation(&mock, "add a hello file", "Create hello.txt", "shop").await;
    let reply = app.send_ok("web", "Please add a hello file to the shop").await;
    let id = support::job_id_in(&support::tool_output(&reply));
    let conversation = reply["conversation"].as_str().unwrap().to_owned();
    let hello = support::worktree(&app, "shop", id).join("hello.txt");
    support::script_claude(&mock, "Create hello.txt", "Write", json!({"file_path": hello, "content": "hi\n"}), "Done.")
        .await;
    let worker = app.job_worker("w");
    worker.try_execute_next().await.unwrap().expect("the run did not start");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    let branch = job["result"]["branch"].as_str().expect("the run has no branch").to_owned();
    let png = screenshot_path("web-branch.png");
    let url = format!("{}/#c/{conversation}", app.base);
    let args: [&std::ffi::OsStr; 3] = [url.as_ref(), png.as_os_str(), branch.as_ref()];
    let browse = run_check("branches", &args, &png);
    // The press queues a branch_action job: run it as the workers would.
    let merge = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if worker.try_execute_next().await.unwrap().is_some() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the Merge button queued nothing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::join!(browse, merge);
    assert_eq!(std::fs::read_to_string(root.join("hello.txt")).unwrap(), "hi\n", "main was not merged");
}

#[tokio::test]
async fn the_composer_counts_near_the_limit_keeps_refused_text_and_shows_an_error_once() {
    let mock = Aimock::start().await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.server.max_message_chars = 50;
    })
    .await;
    let png = screenshot_path("web-composer.png");
    let url = format!("{}/", app.base);
    run_check("composer", &[url.as_ref(), png.as_os_str(), "50".as_ref()], &png).await;
    // Only the failing turn reached the server: the over-long and the dropped message did not.
    let conversations = app.get_json("/api/conversations").await;
    assert_eq!(conversations["conversations"].as_array().unwrap().len(), 1, "{conversations}");
}

#[tokio::test]
async fn conversations_are_searched_renamed_deleted_and_background_ones_kept_aside_in_headless_chromium() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "launch"}, "response": {"content": "Noted."}},
                             {"match": {"userMessage": "budget"}, "response": {"content": "Noted."}}]))
        .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    for (title, text) in [("Launch plan", "The launch moves to March 3"), ("Budget", "The budget is 10k")] {
        let response =
            app.http.post(app.url("/api/messages")).json(&json!({"title": title, "text": text})).send().await;
        assert_eq!(response.unwrap().status(), 200);
    }
    let store = app.store().await;
    let job = valor::storage::NewConversation { title: "job #7".into(), channel: "job".into(), chat_id: None };
    store.create_conversation(job).await.unwrap();
    let telegram =
        valor::storage::NewConversation { title: "chat".into(), channel: "telegram".into(), chat_id: Some(5) };
    let telegram = store.create_conversation(telegram).await.unwrap().id;
    let png = screenshot_path("web-conversations.png");

    // The Telegram conversation is not deletable (the chat would lose its conversation); bad renames are refused.
    let delete = app.http.delete(app.url(&format!("/api/conversations/{telegram}"))).send().await.unwrap();
    assert_eq!(delete.status(), 409);
    let rename = |id: &str, title: &str| {
        app.http.patch(app.url(&format!("/api/conversations/{id}"))).json(&json!({"title": title})).send()
    };
    assert_eq!(rename(&telegram, " ").await.unwrap().status(), 400);
    assert_eq!(rename("nope", "x").await.unwrap().status(), 404);
    store.delete_conversation(&telegram).await.unwrap();

    let url = format!("{}/", app.base);
    run_check("conversations", &[url.as_ref(), png.as_os_str()], &png).await;
    let list = app.get_json("/api/conversations").await;
    let mut titles: Vec<&str> =
        list["conversations"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["Launch (renamed)", "job #7"], "{list}");
    let found = app.get_json("/api/conversations?q=budget").await;
    assert_eq!(found["conversations"], json!([]), "the deleted conversation's messages are still searchable");
}

#[tokio::test]
async fn stop_ends_a_streaming_answer_in_headless_chromium_and_the_turn_is_recorded_stopped() {
    // 150 ms between streamed chunks: the answer takes seconds, so Stop lands mid-way.
    let mock = Aimock::start_with(&["-l", "150"]).await;
    let long = "word ".repeat(200);
    mock.add_fixtures(json!([{"match": {"userMessage": "tell me a long story"}, "response": {"content": long}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let png = screenshot_path("web-stop.png");
    let url = format!("{}/", app.base);
    run_check("stop", &[url.as_ref(), png.as_os_str(), "Please tell me a long story".as_ref()], &png).await;
    let conversations = app.get_json("/api/conversations").await;
    let id = conversations["conversations"][0]["id"].as_str().unwrap();
    let turns = app.get_json(&format!("/api/conversations/{id}/turns")).await;
    let turn = &turns["turns"][0];
    assert_eq!(
        (turn["status"].as_str(), &turn["error"]),
        (Some("cancelled"), &json!(valor::agent::CANCELLED_RECORD)),
        "{turns}"
    );
    let messages = app.get_json(&format!("/api/conversations/{id}/messages")).await;
    let answer = messages["messages"].as_array().unwrap().iter().find(|m| m["role"] == "assistant").unwrap().clone();
    let text = answer["text"].as_str().unwrap();
    assert!(text.ends_with("[stopped]") && text.len() < long.len(), "{text}");
    // Stopping an ended turn is a conflict; an unknown one is not found.
    let turn_id = turn["id"].as_str().unwrap();
    let again = app.http.post(app.url(&format!("/api/turns/{turn_id}/cancel"))).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let unknown = app.http.post(app.url("/api/turns/nope/cancel")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_docs_page_describes_every_route_and_the_turn_events_in_headless_chromium() {
    let app = TestApp::spawn(|_| {}).await;
    let png = screenshot_path("web-docs.png");
    let url = format!("{}/docs", app.base);
    run_check("docs", &[url.as_ref(), png.as_os_str()], &png).await;
}

/// `tests/browser/screenshots.mjs`, the README screenshots' script (which
/// `scripts/screenshots.sh` runs against the real binary), against the app
/// with the same model fixtures: a Markdown answer, a job that runs and
/// posts its result, the Status tab; each PNG under 200 KB.
#[tokio::test]
async fn the_readme_screenshots_script_works_in_headless_chromium() {
    let mock = Aimock::start().await;
    let fixtures = std::fs::read_to_string(repo_root().join("tests/fixtures/screenshots/aimock.json")).unwrap();
    let fixtures: serde_json::Value = serde_json::from_str(&fixtures).unwrap();
    mock.add_fixtures(fixtures["fixtures"].clone()).await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.resources.sample_interval_secs = 1;
    })
    .await;
    let (chat, status) = (screenshot_path("readme-web-chat.png"), screenshot_path("readme-status.png"));
    let url = format!("{}/", app.base);
    run_check("screenshots", &[url.as_ref(), chat.as_os_str(), status.as_os_str()], &chat).await;
    assert!(std::fs::read(&status).unwrap().starts_with(b"\x89PNG"));
    let jobs = app.get_json("/api/jobs").await;
    assert_eq!(jobs["jobs"][0]["status"], "succeeded", "{jobs}");
}

/// `tests/browser/live.mjs` with its step protocol: a JSON line per step on
/// its stdin, "seen <label>" back on its stdout.
struct LivePage {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl LivePage {
    async fn open(url: &str, desktop: &std::path::Path, phone: &std::path::Path) -> LivePage {
        let mut child = tokio::process::Command::new("node")
            .arg(repo_root().join("tests/browser/live.mjs"))
            .args([url.as_ref(), desktop.as_os_str(), phone.as_os_str()])
            .current_dir(repo_root())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
        let mut page = LivePage { child, stdin, lines };
        page.expect("live", Duration::from_secs(30)).await;
        page
    }

    async fn expect(&mut self, want: &str, within: Duration) {
        let line = tokio::time::timeout(within, self.lines.next_line()).await.expect("the browser check hung");
        let line = line.unwrap().unwrap_or_default();
        if line != want {
            let mut rest = vec![line];
            while let Ok(Ok(Some(more))) = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line()).await {
                rest.push(more);
            }
            panic!("expected {want:?} from the browser, got:\n{}", rest.join("\n"));
        }
    }

    /// Send one step; the page must confirm it.
    async fn step(&mut self, mut step: serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let label = step["label"].as_str().unwrap().to_owned();
        step["at"] = json!(valor::storage::wall_clock_ms());
        self.stdin.write_all(format!("{step}\n").as_bytes()).await.unwrap();
        self.expect(&format!("seen {label}"), Duration::from_secs(60)).await;
    }

    async fn finish(mut self) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"{\"label\": \"done\"}\n").await.unwrap();
        self.expect("browser live: ok", Duration::from_secs(30)).await;
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.unwrap().unwrap();
        assert!(status.success());
    }
}

/// The open conversation is live, nothing needs a reload: a message posted
/// through the HTTP API (another client) and its answer, a real Claude Code
/// run's live status and result, and a permission request with its buttons.
#[tokio::test]
async fn api_messages_code_run_progress_and_approvals_appear_live_in_headless_chromium() {
    let mock = Aimock::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = support::git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        support::with_workspace(s, "shop", &root);
        support::use_claude_code(s, &mock, home.path());
    })
    .await;
    support::script_delegation(&mock, "add a hello file", "Create hello.txt", "shop").await;
    let store = app.app_store();
    let new = valor::storage::NewConversation { title: "Live".into(), channel: "web".into(), chat_id: None };
    let conversation = store.create_conversation(new).await.unwrap().id;
    let (desktop, phone) = (screenshot_path("web-live.png"), screenshot_path("web-live-phone.png"));
    let mut page = LivePage::open(&format!("{}/#c/{conversation}", app.base), &desktop, &phone).await;

    // Another client writes into the open conversation.
    let reply = app.send_ok(&conversation, "Please add a hello file to the shop").await;
    let fast = |label: &str, selector: &str, text: &str| json!({"label": label, "selector": selector, "text": text, "within": 1500});
    page.step(fast("question", ".msg.user .bubble", "Please add a hello file")).await;
    page.step(fast("answer", ".msg.assistant .bubble .text", "On it.")).await;
    page.step(fast("tool call", ".msg.assistant .tool", "delegate_code_task")).await;

    // The run: its status message while it works, then the result beside it.
    let id = support::job_id_in(&support::tool_output(&reply));
    let hello = support::worktree(&app, "shop", id).join("hello.txt");
    support::script_claude(&mock, "Create hello.txt", "Write", json!({"file_path": hello, "content": "hi\n"}), "Done.")
        .await;
    let run = support::run_next_job(&app);
    let status = format!("Job #{id} ·");
    page.step(json!({"label": "progress", "selector": ".msg.system", "text": status, "within": 60_000})).await;
    assert_eq!(run.await.unwrap(), id);
    let finished = format!("Job #{id} (claude_code) finished");
    page.step(fast("result", ".msg.system", &finished)).await;
    page.step(
        json!({"label": "status in place", "selector": ".msg.system", "text": status, "within": 1500, "count": 1}),
    )
    .await;

    // A permission request: shown with its buttons, answered, gone.
    let expires = valor::storage::wall_clock_ms() + 60_000;
    let input = json!({"command": "make deploy"});
    store.open_approval(id, &conversation, "Bash", &input, expires).await.unwrap();
    page.step(json!({"label": "approval", "approval": "Bash", "within": 1500})).await;
    page.finish().await;
    assert!(store.pending_approvals(Some(&conversation)).await.unwrap().is_empty(), "Deny did not answer");
    for png in [&desktop, &phone] {
        assert!(std::fs::read(png).unwrap().starts_with(b"\x89PNG"), "{}", png.display());
    }
}

/// The model's Markdown renders as elements while it streams and from the
/// stored conversation; code blocks and messages copy; no payload runs.
#[tokio::test]
async fn markdown_answers_render_as_elements_copy_and_run_no_script_in_headless_chromium() {
    // 40 ms between streamed chunks: the answer arrives in pieces, as a model's does.
    let mock = Aimock::start_with(&["-l", "40"]).await;
    let answer = std::fs::read_to_string(repo_root().join("tests/fixtures/web_answer.md")).unwrap();
    mock.add_fixtures(json!([{"match": {"userMessage": "show me the formats"}, "response": {"content": answer}}]))
        .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let (desktop, phone) = (screenshot_path("web-markdown.png"), screenshot_path("web-markdown-phone.png"));
    let url = format!("{}/", app.base);
    let question = "Please show me the formats you know";
    let run = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/browser/markdown.mjs"))
        .args([url.as_ref(), desktop.as_os_str(), phone.as_os_str(), question.as_ref()])
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run).await.expect("the browser test hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser markdown: ok"), "{stdout}");
    for png in [&desktop, &phone] {
        assert!(std::fs::read(png).unwrap().starts_with(b"\x89PNG"), "{}", png.display());
    }
}
