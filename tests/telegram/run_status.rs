//! A code run's live status in Telegram: the real Claude Code CLI against
//! aimock in a chat mapped to a workspace. The run shows ONE status message
//! (with a Cancel button) that is edited in place and ends in its final
//! state without the button; the result is its own message. Pressing Cancel
//! stops a running run; a press by someone who may not cancel, a second
//! press and a press after the end change nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::claude_support::{
    git_workspace, processes_with, run_next_job, script_claude, script_delegation, use_claude_code, worktree,
};
use crate::common::{Aimock, TestApp};
use crate::fake_telegram::{FakeTelegram, Person};
use crate::{ADMIN, DEV_GROUP, STRANGER, configure};

/// A group the bot is in but that is not listed: only admins are answered there.
const ADMINS_ONLY_GROUP: i64 = -1003;

/// The app with `chat` working in workspace `shop` (Claude Code on aimock).
async fn app_in(mock: &Aimock, fake: &FakeTelegram, chat: i64, root: &Path, home: &Path) -> TestApp {
    app_in_data(tempfile::tempdir().unwrap(), mock, fake, chat, root, home).await
}

async fn app_in_data(
    data: tempfile::TempDir,
    mock: &Aimock,
    fake: &FakeTelegram,
    chat: i64,
    root: &Path,
    home: &Path,
) -> TestApp {
    let (root, home) = (root.to_path_buf(), home.to_path_buf());
    let telegram = configure(mock, fake);
    TestApp::spawn_in(data, move |s| {
        telegram(s);
        s.workspaces.push(valor::config::WorkspaceSettings {
            name: "shop".into(),
            path: root,
            chats: vec![chat],
            notion_database: None,
            allowed_users: Vec::new(),
            default_branch: None,
        });
        use_claude_code(s, mock, &home);
        s.claude.allowed_tools = vec!["Bash".into()];
    })
    .await
}

/// The bot's message in `chat` that shows a Cancel button: (message id, its data).
async fn wait_for_status(fake: &FakeTelegram, chat: i64) -> (i64, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for message in fake.visible_messages(chat) {
            let id = message["message_id"].as_i64().unwrap();
            if let Some((_, data)) = fake.buttons_on(chat, id).into_iter().find(|(label, _)| label.contains("Cancel")) {
                return (id, data);
            }
        }
        assert!(Instant::now() < deadline, "no status message with Cancel: {:?}", fake.visible_messages(chat));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text_of(fake: &FakeTelegram, chat: i64, id: i64) -> String {
    let messages = fake.visible_messages(chat);
    let message = messages.iter().find(|m| m["message_id"] == id).expect("no such message");
    message["text"].as_str().unwrap_or("").to_owned()
}

/// sendMessage calls into `chat` whose text contains `needle`.
fn sends_containing(fake: &FakeTelegram, chat: i64, needle: &str) -> Vec<Value> {
    fake.calls_to("sendMessage")
        .into_iter()
        .filter(|c| c.params["chat_id"] == chat && c.params["text"].as_str().is_some_and(|t| t.contains(needle)))
        .map(|c| c.params)
        .collect()
}

fn edits_of(fake: &FakeTelegram, chat: i64, id: i64) -> Vec<Value> {
    fake.calls_to("editMessageText")
        .into_iter()
        .filter(|c| c.params["chat_id"] == chat && c.params["message_id"] == id)
        .map(|c| c.params)
        .collect()
}

/// The toast a press was answered with.
async fn press(fake: &FakeTelegram, chat: i64, message: i64, who: &Person, data: &str, stale: bool) -> String {
    let query = if stale {
        fake.press_removed_button(chat, message, who, data)
    } else {
        fake.press_button(chat, message, who, data)
    };
    let matches = |call: &crate::fake_telegram::Call| call.params["callback_query_id"] == query;
    fake.wait_for("answerCallbackQuery", |calls| calls.iter().any(|c| c.method == "answerCallbackQuery" && matches(c)))
        .await;
    let calls = fake.calls_to("answerCallbackQuery");
    calls.iter().find(|c| matches(c)).unwrap().params["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_code_run_shows_one_status_message_edited_in_place_and_its_result_apart() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let task = "Create hello.txt saying hi, then check the build";
    script_delegation(&mock, "add a hello file", task, "shop").await;
    let app = app_in(&mock, &fake, DEV_GROUP, &root, home.path()).await;
    // The first job's worktree, where the run works.
    let hello = worktree(&app, "shop", 1).join("hello.txt");
    // One step with two tools: the write, then a build that takes a few seconds (so the status is edited while it runs).
    mock.add_fixtures(json!([
        {"match": {"userMessage": task, "hasToolResult": false},
         "response": {"toolCalls": [
             {"name": "Write", "arguments": {"file_path": hello, "content": "hi\n"}},
             {"name": "Bash", "arguments": {"command": "sleep 4", "description": "build"}}]}},
        {"match": {"userMessage": task, "hasToolResult": true}, "response": {"content": "Done."}}
    ]))
    .await;

    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please add a hello file");
    let (status, data) = wait_for_status(&fake, DEV_GROUP).await;
    let id = tokio::time::timeout(Duration::from_secs(150), run).await.unwrap().unwrap();
    assert_eq!(data, format!("job:cancel:{id}"));
    assert_eq!(std::fs::read_to_string(&hello).unwrap(), "hi\n");
    let result = format!("Job #{id} (claude_code) finished.");
    fake.wait_for("the result", |_| !sends_containing(&fake, DEV_GROUP, &result).is_empty()).await;
    let done = |fake: &FakeTelegram| text_of(fake, DEV_GROUP, status).contains("done");
    fake.wait_for("the status's end state", |_| done(&fake)).await;

    // One new message for the status (the run's first state), one for the result, nothing else of the job.
    let job_messages = sends_containing(&fake, DEV_GROUP, &format!("Job #{id}"));
    assert_eq!(job_messages.len(), 2, "{job_messages:#?}");
    assert!(job_messages[0]["text"].as_str().unwrap().contains("starting"), "{job_messages:#?}");
    assert!(job_messages[1]["text"].as_str().unwrap().contains("Files changed: hello.txt"), "{job_messages:#?}");
    // The status was edited in place, the last edit being its end state without the button.
    let edits = edits_of(&fake, DEV_GROUP, status);
    assert!(!edits.is_empty(), "the status was never edited");
    // While it ran, it showed the tool at work and the file written so far, with the button.
    // (States that follow each other quickly may each be shown: look for the build's.)
    let working = edits
        .iter()
        .find(|e| e["text"].as_str().unwrap().contains("working") && e["text"].as_str().unwrap().contains("Bash"))
        .expect("never working on the build");
    let working_text = working["text"].as_str().unwrap();
    assert!(
        working_text.contains("Tool: <code>Bash: build</code>") && working_text.contains("hello.txt"),
        "{working_text}"
    );
    assert_eq!(working["reply_markup"]["inline_keyboard"][0][0]["callback_data"], data.as_str());
    let shown = text_of(&fake, DEV_GROUP, status);
    assert!(shown.contains(&format!("Job #{id}")) && shown.contains("done") && shown.contains("hello.txt"), "{shown}");
    assert!(fake.buttons_on(DEV_GROUP, status).is_empty(), "the Cancel button outlived the run");
    // The result came after the status message.
    let messages = fake.visible_messages(DEV_GROUP);
    let result_id = messages.iter().find(|m| m["text"].as_str().unwrap().contains(&result)).unwrap()["message_id"]
        .as_i64()
        .unwrap();
    assert!(result_id > status);
    // Every outbox row was delivered (no edit failed, e.g. on "message is not modified").
    let counts = app.store().await.telegram_outbox_counts().await.unwrap();
    assert!(counts.iter().all(|(status, _)| status == "delivered"), "{counts:?}");
}

#[tokio::test]
async fn pressing_cancel_stops_the_run_and_a_press_by_someone_else_changes_nothing() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let task = "Nap for 36.181 seconds";
    script_delegation(&mock, "take a nap", task, "shop").await;
    let command = "python3 -c 'import time; time.sleep(36.181)'";
    script_claude(&mock, task, "Bash", json!({"command": command, "description": "nap"}), "Napped.").await;
    let app = app_in(&mock, &fake, ADMINS_ONLY_GROUP, &root, home.path()).await;

    let run = run_next_job(&app);
    fake.send_text(ADMINS_ONLY_GROUP, &ADMIN, "@valor_bot please take a nap");
    let (status, data) = wait_for_status(&fake, ADMINS_ONLY_GROUP).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with("time.sleep(36.181)").is_empty() {
        assert!(Instant::now() < deadline, "Claude Code never started the nap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id: i64 = data.rsplit(':').next().unwrap().parse().unwrap();

    // A group member who may not talk to valor here cannot cancel.
    let refused = press(&fake, ADMINS_ONLY_GROUP, status, &STRANGER, &data, false).await;
    assert_eq!(refused, "You may not cancel this job.");
    let job = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!((job["status"].as_str(), job["cancel_requested"].as_bool()), (Some("running"), Some(false)), "{job}");

    let asked = press(&fake, ADMINS_ONLY_GROUP, status, &ADMIN, &data, false).await;
    assert_eq!(asked, format!("Stopping job #{id}…"));
    let again = press(&fake, ADMINS_ONLY_GROUP, status, &ADMIN, &data, false).await;
    assert_eq!(again, format!("Job #{id} is already stopping."));
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap(), id);
    assert_eq!(app.get_json(&format!("/api/jobs/{id}")).await["status"], "cancelled");
    assert_eq!(processes_with("36.181"), Vec::<String>::new(), "the nap outlived the cancel");
    let cancelled = |fake: &FakeTelegram| text_of(fake, ADMINS_ONLY_GROUP, status).contains("cancelled");
    fake.wait_for("the status's end state", |_| cancelled(&fake)).await;
    assert!(fake.buttons_on(ADMINS_ONLY_GROUP, status).is_empty());
    fake.wait_for("the cancel notice", |_| {
        !sends_containing(&fake, ADMINS_ONLY_GROUP, &format!("Job #{id} (claude_code) was cancelled.")).is_empty()
    })
    .await;

    // A press that raced the button's removal is answered and changes nothing.
    let edits_before = edits_of(&fake, ADMINS_ONLY_GROUP, status).len();
    let late = press(&fake, ADMINS_ONLY_GROUP, status, &ADMIN, &data, true).await;
    assert_eq!(late, format!("Job #{id} already cancelled; nothing to cancel."));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(edits_of(&fake, ADMINS_ONLY_GROUP, status).len(), edits_before);
    assert_eq!(sends_containing(&fake, ADMINS_ONLY_GROUP, &format!("Job #{id}")).len(), 2, "status + cancel notice");
}

#[tokio::test]
async fn a_run_interrupted_by_a_restart_continues_its_status_message_instead_of_sending_another() {
    let mock = Aimock::start().await;
    let fake = FakeTelegram::start().await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    let home = tempfile::tempdir().unwrap();
    let task = "Nap for 37.291 seconds";
    script_delegation(&mock, "take a nap", task, "shop").await;
    // The first attempt sleeps; once `.rerun` exists (after the restart) the command returns at once.
    let command = "test -f .rerun || python3 -c 'import time; time.sleep(37.291)'";
    script_claude(&mock, task, "Bash", json!({"command": command, "description": "nap"}), "Napped.").await;
    let app = app_in(&mock, &fake, DEV_GROUP, &root, home.path()).await;
    let run = run_next_job(&app);
    fake.send_text(DEV_GROUP, &ADMIN, "please take a nap");
    let (status, data) = wait_for_status(&fake, DEV_GROUP).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with("time.sleep(37.291)").is_empty() {
        assert!(Instant::now() < deadline, "Claude Code never started the nap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.request_shutdown();
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
    // The re-run works in the same worktree.
    std::fs::write(worktree(&app, "shop", 1).join(".rerun"), "").unwrap();
    let data_dir = app.stop().await;

    let app = app_in_data(data_dir, &mock, &fake, DEV_GROUP, &root, home.path()).await;
    let id: i64 = data.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(run_next_job(&app).await.unwrap(), id);
    let finished = format!("Job #{id} (claude_code) finished.");
    fake.wait_for("the result", |_| !sends_containing(&fake, DEV_GROUP, &finished).is_empty()).await;
    fake.wait_for("the end state", |_| text_of(&fake, DEV_GROUP, status).contains("done")).await;
    // Still the one status message, edited by the second process; then the result.
    assert_eq!(sends_containing(&fake, DEV_GROUP, &format!("Job #{id}")).len(), 2);
    assert!(fake.buttons_on(DEV_GROUP, status).is_empty());
}

/// A status built from hostile CLI output still renders to Telegram HTML that
/// shows every name literally, with only the tags valor means.
#[test]
fn a_status_with_hostile_names_renders_to_literal_telegram_html() {
    use valor::channels::telegram::render::markdown_to_html;
    use valor::jobs::status::{Phase, RunStatus};
    let mut status = RunStatus {
        phase: Phase::Working,
        headline: "Claude Code is starting in workspace \"shop\"".into(),
        tool: Some("Bash: echo <script> & `id` **x**".into()),
        started_at_ms: 0,
        ..RunStatus::default()
    };
    status.set_files(["__init__.py", "a*b*.rs", "<b>.md", "x_y_z.txt"].into_iter());
    let html = markdown_to_html(&status.render(4, 61_000));
    assert!(html.contains("<code>Bash: echo &lt;script&gt; &amp; 'id' **x**</code>"), "{html}");
    for name in
        ["<code>__init__.py</code>", "<code>a*b*.rs</code>", "<code>&lt;b&gt;.md</code>", "<code>x_y_z.txt</code>"]
    {
        assert!(html.contains(name), "{name} in {html}");
    }
    let tags: Vec<&str> = html.split('<').skip(1).map(|rest| rest.split('>').next().unwrap()).collect();
    assert!(tags.iter().all(|tag| ["b", "/b", "code", "/code"].contains(tag)), "{tags:?}");
}
