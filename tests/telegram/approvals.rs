//! Claude Code asks permission through the chat: the real CLI (permission
//! mode `default`, `--permission-prompt-tool mcp__valor__approve`) against
//! aimock, its question posted to a Telegram dev group with inline buttons,
//! answered by pressing them in the fake Bot API. Allow → the file is
//! written; deny → it is not; a stranger's press changes nothing; no answer
//! → denied at the deadline. A run hands a screenshot to the chat through
//! valor's `send_screenshot`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::claude_support::{
    git_workspace, png_bytes, run_git, run_next_job, script_claude, script_delegation, use_claude_code, worktree,
};
use crate::common::{Aimock, TestApp};
use crate::fake_telegram::{FakeTelegram, Person};
use crate::{ADMIN, DEV_GROUP, STRANGER, configure};

/// The app with the dev group working in workspace `shop` and approvals on.
async fn app_with_approvals(mock: &Aimock, fake: &FakeTelegram, root: &Path, home: &Path, timeout: u64) -> TestApp {
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
        s.claude.permission_mode = "default".into();
        s.claude.approvals = true;
        s.claude.approval_timeout_secs = timeout;
    })
    .await
}

/// The newest bot message in `chat` after `after` that shows a permission request's buttons: (message id, [(label, data)]).
async fn wait_for_question(fake: &FakeTelegram, chat: i64, after: i64) -> (i64, Vec<(String, String)>) {
    wait_for_buttons(fake, chat, after, "approval:").await
}

/// The newest bot message in `chat` after `after` with buttons whose data starts with `prefix`.
async fn wait_for_buttons(fake: &FakeTelegram, chat: i64, after: i64, prefix: &str) -> (i64, Vec<(String, String)>) {
    // Generous: the CLI starts slowly on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for message in fake.visible_messages(chat).iter().rev() {
            let id = message["message_id"].as_i64().unwrap();
            let buttons = fake.buttons_on(chat, id);
            if id > after && buttons.first().is_some_and(|(_, data)| data.starts_with(prefix)) {
                return (id, buttons);
            }
        }
        assert!(Instant::now() < deadline, "no {prefix} buttons: {:?}", fake.visible_messages(chat));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn data_of(buttons: &[(String, String)], answer: &str) -> String {
    buttons.iter().map(|(_, data)| data.clone()).find(|data| data.ends_with(&format!(":{answer}"))).unwrap()
}

/// The toast a callback query was answered with.
async fn toast_for(fake: &FakeTelegram, query_id: &str) -> String {
    let matches = |call: &crate::fake_telegram::Call| call.params["callback_query_id"] == query_id;
    fake.wait_for("answerCallbackQuery", |calls| calls.iter().any(|c| c.method == "answerCallbackQuery" && matches(c)))
        .await;
    let calls = fake.calls_to("answerCallbackQuery");
    calls.iter().find(|c| matches(c)).unwrap().params["text"].as_str().unwrap().to_owned()
}

async fn press(fake: &FakeTelegram, message: i64, who: &Person, data: &str) -> String {
    let query = fake.press_button(DEV_GROUP, message, who, data);
    toast_for(fake, &query).await
}

fn message_text(fake: &FakeTelegram, id: i64) -> String {
    let messages = fake.visible_messages(DEV_GROUP);
    let message = messages.iter().find(|m| m["message_id"] == id).unwrap();
    message["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_chat_allows_one_write_and_denies_the_next_through_inline_buttons() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    script_delegation(&mock, "add a hello file", "Create hello.txt saying hi", "shop").await;
    let app = app_with_approvals(&mock, &fake, &root, home.path(), 120).await;
    // The first job's worktree, where the run works.
    let hello = worktree(&app, "shop", 1).join("hello.txt");
    script_claude(
        &mock,
        "Create hello.txt saying hi",
        "Write",
        json!({"file_path": hello, "content": "hi\n"}),
        "Done.",
    )
    .await;

    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please add a hello file");
    let (question, buttons) = wait_for_question(&fake, DEV_GROUP, 0).await;
    let labels: Vec<&str> = buttons.iter().map(|(label, _)| label.as_str()).collect();
    assert_eq!(labels, ["✅ Allow once", "✅ Allow for this run", "⛔ Deny"]);
    let text = message_text(&fake, question);
    assert!(text.contains("asks to use Write") && text.contains("hello.txt"), "{text}");
    assert!(!hello.exists(), "written before anyone answered");
    // The request is stored and listed while it waits.
    let pending = app.get_json("/api/approvals").await;
    assert_eq!(pending["approvals"][0]["tool_name"], "Write", "{pending}");
    assert_eq!(pending["approvals"][0]["status"], "pending");

    // A group member who is not allowed to answer changes nothing.
    let refused = press(&fake, question, &STRANGER, &data_of(&buttons, "once")).await;
    assert_eq!(refused, "You are not allowed to answer this request.");
    assert_eq!(app.get_json("/api/approvals").await["approvals"].as_array().unwrap().len(), 1);

    let allowed = press(&fake, question, &ADMIN, &data_of(&buttons, "once")).await;
    assert_eq!(allowed, "✅ Allowed once");
    let id = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&hello).unwrap(), "hi\n");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The question now shows the decision, without buttons; a late second press is told so.
    fake.wait_for("the question edited", |_| message_text(&fake, question).contains("allowed once by @root")).await;
    assert!(fake.buttons_on(DEV_GROUP, question).is_empty());
    let store = app.store().await;
    let pending = store.pending_approvals(None).await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");

    // The next run asks again (allow once was once); this time the chat says no.
    script_delegation(&mock, "add a bye file", "Create bye.txt saying bye", "shop").await;
    let bye = root.join("bye.txt");
    script_claude(&mock, "Create bye.txt saying bye", "Write", json!({"file_path": bye, "content": "bye\n"}), "Ok.")
        .await;
    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please add a bye file");
    let (second, buttons) = wait_for_question(&fake, DEV_GROUP, question).await;
    assert_eq!(press(&fake, second, &ADMIN, &data_of(&buttons, "deny")).await, "⛔ Denied");
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    assert!(!bye.exists(), "written although denied");
    fake.wait_for("the denial shown", |_| message_text(&fake, second).contains("denied by @root")).await;
    // Claude Code was told why.
    let told = mock.requests_to("/v1/messages").await.iter().any(|request| {
        request["body"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["role"] == "tool" && m["content"].to_string().contains("The user denied Write"))
    });
    assert!(told, "the denial did not reach Claude Code");
}

#[tokio::test]
async fn the_result_of_a_run_offers_merge_push_and_discard_and_only_the_right_people_may_press() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    script_delegation(&mock, "add a hello file", "Create hello.txt saying hi", "shop").await;
    let app = app_with_approvals(&mock, &fake, &root, home.path(), 120).await;
    let hello = worktree(&app, "shop", 1).join("hello.txt");
    script_claude(
        &mock,
        "Create hello.txt saying hi",
        "Write",
        json!({"file_path": hello, "content": "hi\n"}),
        "Done.",
    )
    .await;
    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please add a hello file");
    let (question, buttons) = wait_for_question(&fake, DEV_GROUP, 0).await;
    assert_eq!(press(&fake, question, &ADMIN, &data_of(&buttons, "once")).await, "✅ Allowed once");
    let id = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    let branch = job["result"]["branch"].as_str().unwrap().to_owned();

    // The result is its own message with the branch's buttons.
    let (result, buttons) = wait_for_buttons(&fake, DEV_GROUP, question, "branch:").await;
    let text = message_text(&fake, result);
    assert!(text.contains(&format!("Job #{id} (claude_code) finished.")) && text.contains(&branch), "{text}");
    let labels: Vec<&str> = buttons.iter().map(|(label, _)| label.as_str()).collect();
    assert_eq!(labels, ["✅ Merge into main", "⬆️ Push", "🗑 Discard"]);
    // A group member who is no admin changes nothing.
    let refused = press(&fake, result, &STRANGER, &data_of(&buttons, "merge")).await;
    assert_eq!(refused, "You are not allowed to change this branch.");
    assert_eq!(app.get_json("/api/jobs").await["jobs"].as_array().unwrap().len(), 1, "something was queued");

    let run = run_next_job(&app);
    assert_eq!(press(&fake, result, &ADMIN, &data_of(&buttons, "merge")).await, format!("Merging {branch}…"));
    let merge_job = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(root.join("hello.txt")).unwrap(), "hi\n");
    let merged = format!("Job #{merge_job} (branch_action) finished.");
    fake.wait_for("the merge reported", |_| {
        fake.visible_messages(DEV_GROUP).iter().any(|m| m["text"].as_str().is_some_and(|t| t.starts_with(&merged)))
    })
    .await;
    let again = press(&fake, result, &ADMIN, &data_of(&buttons, "discard")).await;
    assert_eq!(again, format!("{branch} is already merged"));
}

#[tokio::test]
async fn an_unanswered_request_is_denied_at_its_deadline() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    script_delegation(&mock, "add a late file", "Create late.txt", "shop").await;
    let late = root.join("late.txt");
    script_claude(&mock, "Create late.txt", "Write", json!({"file_path": late, "content": "x"}), "Gave up.").await;
    let app = app_with_approvals(&mock, &fake, &root, home.path(), 2).await;

    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please add a late file");
    let (question, buttons) = wait_for_question(&fake, DEV_GROUP, 0).await;
    let id = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    assert!(!late.exists(), "written without an answer");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let store = app.store().await;
    let approval = store.get_approval(1).await.unwrap();
    assert_eq!(approval.status, "timed_out");
    // Pressing after the deadline decides nothing.
    let late_press = press(&fake, question, &ADMIN, &data_of(&buttons, "once")).await;
    assert_eq!(late_press, "Already decided: timed_out");
    let answered: Value = app
        .http
        .post(app.url("/api/approvals/1"))
        .json(&json!({"answer": "once"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answered.to_string().contains("already timed_out"), "{answered}");
}

#[tokio::test]
async fn claude_code_hands_a_screenshot_to_the_telegram_chat_through_valors_server() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    // The real CLI calls valor's `send_screenshot` (allowed without asking: valor's own tools are).
    let task = "Screenshot the checkout page";
    script_delegation(&mock, "show me the checkout", task, "shop").await;
    let input = json!({"path": "checkout.png", "caption": "Checkout page"});
    script_claude(&mock, task, "mcp__valor__send_screenshot", input, "Sent the screenshot.").await;
    // Committed, so the run's worktree has it as if the run had just taken it.
    std::fs::write(root.join("checkout.png"), png_bytes()).unwrap();
    run_git(&root, &["add", "checkout.png"]);
    run_git(&root, &["commit", "-q", "-m", "Add a screenshot"]);
    let app = app_with_approvals(&mock, &fake, &root, home.path(), 60).await;

    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please show me the checkout");
    let id = tokio::time::timeout(Duration::from_secs(150), run).await.unwrap().unwrap();
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    fake.wait_for("sendPhoto", |calls| calls.iter().any(|c| c.method == "sendPhoto")).await;
    let photo = fake.calls_to("sendPhoto").remove(0).params;
    assert_eq!(photo["chat_id"], DEV_GROUP.to_string());
    assert_eq!(photo["caption"], "Checkout page");
    assert_eq!(photo["photo"]["size"], png_bytes().len());
    let handoff = worktree(&app, "shop", id).join("checkout.png");
    assert!(!handoff.exists(), "the handoff file stayed in the workspace");
    // Claude Code got the tool's answer, not an error.
    let answered = mock.requests_to("/v1/messages").await.iter().any(|request| {
        let messages = request["body"]["messages"].as_array().into_iter().flatten();
        messages
            .filter(|m| m["role"] == "tool")
            .any(|m| m["content"].to_string().contains("The image was sent to the chat"))
    });
    assert!(answered, "send_screenshot's answer did not reach Claude Code");
}
