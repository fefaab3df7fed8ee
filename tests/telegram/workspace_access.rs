//! A workspace's `allowed_users` in a real Telegram conversation: a chat
//! member who is not listed cannot delegate code work there (the model gets
//! a clear refusal to relay, nothing is queued, the refusal is audit-logged),
//! a listed member can, and a run queued for someone who lost access is
//! refused again when it starts.

use std::path::Path;

use serde_json::{Value, json};
use valor::config::{UserRef, WorkspaceSettings};
use valor::storage::{NewJob, wall_clock_ms};

use crate::common::{Aimock, TestApp};
use crate::fake_telegram::FakeTelegram;
use crate::{ALICE, BOB, configure};

fn shop(root: &Path) -> WorkspaceSettings {
    WorkspaceSettings {
        name: "shop".into(),
        path: root.to_path_buf(),
        chats: vec![ALICE.id, BOB.id],
        notion_database: None,
        allowed_users: vec![UserRef::Username("@Alice".into())],
        default_branch: None,
    }
}

/// The tool results the model was sent, as text.
async fn tool_results(mock: &Aimock) -> Vec<String> {
    let mut found = Vec::new();
    for request in mock.requests_to("/v1/chat/completions").await {
        for message in request["body"]["messages"].as_array().cloned().unwrap_or_default() {
            if message["role"] == "tool" {
                found.push(match &message["content"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                });
            }
        }
    }
    found
}

/// Wait until the turn's final answer replaced the "⏳ tool…" preview; the chat's messages.
async fn final_reply(fake: &FakeTelegram, chat: i64) -> Vec<Value> {
    let answered = |messages: &[Value]| messages.iter().any(|m| m["text"] == "Answered.");
    fake.wait_for("the final answer", |_| answered(&fake.visible_messages(chat))).await;
    fake.visible_messages(chat)
}

#[tokio::test]
async fn only_allowed_members_delegate_code_work_and_refusals_are_audit_logged() {
    let (mock, fake) = (Aimock::start().await, FakeTelegram::start().await);
    mock.add_fixtures(json!([
        {"match": {"userMessage": "fix the checkout", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "delegate_code_task", "arguments": {"task": "Fix the checkout test"}}]}},
        {"match": {"userMessage": "fix the checkout", "hasToolResult": true}, "response": {"content": "Answered."}}
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    std::fs::create_dir_all(&root).unwrap();
    let setup = configure(&mock, &fake);
    let app = TestApp::spawn(|s| {
        setup(s);
        s.jobs.workers = 0;
        s.workspaces.push(shop(&root));
        // Code work is offered only with the CLI found (it never runs here).
        s.claude.bin = crate::claude_support::claude_bin().display().to_string();
        // Everyone may use every tool here: the workspace's own list is what is tested.
        s.tools.non_admin_tools = Some(vec!["delegate_code_task".into()]);
    })
    .await;

    fake.send_text(BOB.id, &BOB, "please fix the checkout");
    let replies = final_reply(&fake, BOB.id).await;
    let refusals = tool_results(&mock).await;
    assert_eq!(refusals.len(), 1, "tool results {refusals:?}; Bob saw {replies:?}");
    assert!(
        refusals[0].contains("@Bob (200) may not work in workspace \"shop\"") && refusals[0].contains("allowed_users"),
        "{refusals:?}"
    );
    let store = app.store().await;
    let jobs = store.list_jobs(&valor::storage::JobFilter { status: None, conversation_id: None, limit: 10 }).await;
    assert!(jobs.unwrap().is_empty(), "nothing may be queued for a member without access");
    let audit = store.list_audit(Some("workspace"), 20).await.unwrap();
    let denied = audit.iter().find(|e| e.decision == "denied").expect("the refusal was not audit-logged");
    assert_eq!((denied.subject.as_str(), &denied.detail["requester"]["user"]["id"]), ("shop", &json!(BOB.id)));

    fake.send_text(ALICE.id, &ALICE, "please fix the checkout");
    let replies = final_reply(&fake, ALICE.id).await;
    let results = tool_results(&mock).await;
    assert!(results.last().unwrap().starts_with("Queued as job #"), "{results:?}; Alice saw {replies:?}");
    let filter = valor::storage::JobFilter { status: None, conversation_id: None, limit: 10 };
    let queued = store.list_jobs(&filter).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].payload["requester"],
        json!({"user": {"id": ALICE.id, "username": "alice"}, "is_admin": false})
    );

    // A run queued for Bob (say, before he was removed from the list) is refused when it starts.
    let mut payload = queued[0].payload.clone();
    payload["requester"] = json!({"user": {"id": BOB.id, "username": "Bob"}, "is_admin": false});
    let new = NewJob {
        kind: "claude_code".into(),
        payload,
        priority: 10,
        run_at_ms: None,
        max_attempts: 1,
        conversation_id: queued[0].conversation_id.clone(),
        idempotency_key: None,
    };
    let bobs = store.enqueue_job(new, wall_clock_ms()).await.unwrap().job.id;
    let outcome = app.job_worker("w").try_execute_next().await.unwrap().unwrap();
    assert_eq!(outcome.job_id, bobs);
    let job = store.get_job(bobs).await.unwrap();
    assert_eq!(job.status.as_str(), "failed");
    assert!(job.error.as_deref().unwrap_or("").contains("may not work in workspace"), "{:?}", job.error);
}
