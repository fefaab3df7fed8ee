//! `GET /api/conversations/{id}/events` over real HTTP: new and changed
//! messages and approval requests arrive as they are committed, a
//! reconnect with `Last-Event-ID` resumes after the last revision seen,
//! auth and unknown conversations are refused; and a turn's own SSE stream
//! carries its answer rendered as HTML (`text_html`, `done.html`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Aimock, TestApp, use_anthropic};
use futures::StreamExt;
use serde_json::{Value, json};
use valor::storage::{MessageRole, NewMessage, Store};

/// Reads an SSE response event by event.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One event: its name, id (if any) and JSON data.
#[derive(Debug)]
struct Received {
    name: String,
    id: Option<String>,
    data: Value,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Events { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event, within `within`; `None` when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = ("message".to_owned(), None, String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some(Received { name, id, data: serde_json::from_str(&data).unwrap() });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.expect("no event in time");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes.unwrap())),
                None => return None,
            }
        }
    }

    /// The next event, which must be named `name`.
    async fn expect(&mut self, name: &str) -> Received {
        let event = self.next(Duration::from_secs(2)).await.unwrap_or_else(|| panic!("the stream ended before {name}"));
        assert_eq!(event.name, name, "{event:?}");
        event
    }
}

async fn open(app: &TestApp, conversation: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url(&format!("/api/conversations/{conversation}/events")));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

fn notice(conversation: &str, text: &str) -> NewMessage {
    NewMessage {
        conversation_id: conversation.into(),
        role: MessageRole::System,
        content: json!([{"type": "text", "text": text}]),
        text: text.into(),
        turn_id: None,
    }
}

async fn status(store: &Store, conversation: &str, text: &str) {
    store.put_status_message(notice(conversation, text), "job:9:0").await.unwrap();
}

#[tokio::test]
async fn the_conversation_stream_carries_messages_changes_and_approvals_and_resumes() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "hello"}, "response": {"content": "Hi **there**."}},
        {"match": {"userMessage": "from another client"}, "response": {"content": "Seen."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let conversation = app.send_ok("events", "hello").await["conversation"].as_str().unwrap().to_owned();
    let listed = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let revision = listed["revision"].as_i64().unwrap();
    assert_eq!(revision, 2, "{listed}");
    assert_eq!(listed["messages"][1]["content"][0]["html"], "<p>Hi <strong>there</strong>.</p>\n", "{listed}");

    let store = app.app_store();
    let listeners = store.change_listeners();
    let mut events = Events::new(open(&app, &conversation, None).await);
    let ready = events.expect("ready").await;
    assert_eq!(store.change_listeners(), listeners + 1, "the stream listens to the change feed");
    assert_eq!((ready.id.as_deref(), &ready.data), (Some("2"), &json!({"revision": 2})));
    assert_eq!(events.expect("approvals").await.data, json!({"approvals": []}));

    // A job's notice, then its live status created and changed in place.
    let started = std::time::Instant::now();
    store.append_message(notice(&conversation, "Job #9 **queued**")).await.unwrap();
    let queued = events.expect("message").await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(queued.id.as_deref(), Some("3"));
    assert_eq!(queued.data["role"], "system");
    assert_eq!(queued.data["revision"], 3);
    assert_eq!(queued.data["content"][0]["html"], "<p>Job #9 <strong>queued</strong></p>\n");
    status(&store, &conversation, "working · 1 s").await;
    let first = events.expect("message").await;
    status(&store, &conversation, "working · 3 s").await;
    let second = events.expect("message").await;
    assert_eq!(first.data["id"], second.data["id"], "the status message changed in place");
    assert_eq!((second.id.as_deref(), second.data["text"].as_str()), (Some("5"), Some("working · 3 s")));

    // A message another client sends into the conversation: its question, then the answer.
    let other = app.send_ok(&conversation, "from another client").await;
    assert_eq!(other["conversation"], conversation.as_str());
    let question = events.expect("message").await;
    assert_eq!(
        (question.data["role"].as_str(), question.data["text"].as_str()),
        (Some("user"), Some("from another client"))
    );
    let answer = events.expect("message").await;
    assert_eq!((answer.data["role"].as_str(), answer.data["text"].as_str()), (Some("assistant"), Some("Seen.")));

    // A permission request, pending, then answered.
    let approval = store
        .open_approval(9, &conversation, "Bash", &json!({"command": "make"}), valor::storage::wall_clock_ms() + 60_000)
        .await
        .unwrap();
    let pending = events.expect("approvals").await;
    assert_eq!(pending.data["approvals"][0]["tool_name"], "Bash", "{:?}", pending.data);
    let answered = app
        .http
        .post(app.url(&format!("/api/approvals/{}", approval.id)))
        .json(&json!({"answer": "deny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(events.expect("approvals").await.data, json!({"approvals": []}));
    // A closed tab: the connection goes, and with it the stream and its subscription.
    drop(events);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.change_listeners() > listeners {
        assert!(std::time::Instant::now() < deadline, "a closed stream still listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Disconnected after revision 3: the status changed twice more meanwhile. The
    // reconnect gets the status message once, in its newest state, and what followed.
    status(&store, &conversation, "done · 9 s").await;
    let mut resumed = Events::new(open(&app, &conversation, Some("3")).await);
    assert_eq!(resumed.expect("ready").await.id.as_deref(), Some("3"));
    let texts: Vec<String> = {
        let mut texts = Vec::new();
        for _ in 0..3 {
            let event = resumed.expect("message").await;
            texts.push(event.data["text"].as_str().unwrap().to_owned());
        }
        texts
    };
    assert_eq!(texts, ["from another client", "Seen.", "done · 9 s"]);
    resumed.expect("approvals").await;

    // `?after=` works the same for a client that cannot set headers.
    let after = app.http.get(app.url(&format!("/api/conversations/{conversation}/events?after=7"))).send().await;
    let mut after = Events::new(after.unwrap());
    assert_eq!(after.expect("ready").await.id.as_deref(), Some("7"));
    assert_eq!(after.expect("message").await.data["text"], "done · 9 s");

    // Deleting the conversation ends its stream.
    store.delete_conversation(&conversation).await.unwrap();
    resumed.expect("deleted").await;
    assert!(resumed.next(Duration::from_secs(2)).await.is_none(), "the stream stays open after deletion");
}

#[tokio::test]
async fn the_conversation_stream_refuses_unknown_conversations_bad_cursors_and_missing_tokens() {
    let app = TestApp::spawn(|s| s.server.api_tokens = vec!["right-token".to_owned().into()]).await;
    let store = app.app_store();
    let conversation = store
        .create_conversation(valor::storage::NewConversation {
            title: "t".into(),
            channel: "web".into(),
            chat_id: None,
        })
        .await
        .unwrap()
        .id;
    let url = app.url(&format!("/api/conversations/{conversation}/events"));
    let refused = app.http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = app.http.get(&url).bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown =
        app.http.get(app.url("/api/conversations/nope/events")).bearer_auth("right-token").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("not found"), "{body}");
    let bad = app.http.get(&url).bearer_auth("right-token").header("last-event-id", "x").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let mut events = Events::new(app.http.get(&url).bearer_auth("right-token").send().await.unwrap());
    assert_eq!(events.expect("ready").await.data, json!({"revision": 0}));
}

#[tokio::test]
async fn a_streamed_turn_sends_its_answer_rendered_as_html() {
    let mock = Aimock::start().await;
    let answer = "## Plan\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n\n<script>x()</script>";
    mock.add_fixtures(json!([{"match": {"userMessage": "plan"}, "response": {"content": answer}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let events = app.send_streamed("html", "make a plan").await;
    let html: Vec<&str> =
        events.iter().filter(|(name, _)| name == "text_html").map(|(_, d)| d["html"].as_str().unwrap()).collect();
    let last = html.last().expect("no text_html event");
    for part in ["<h2>Plan</h2>", "<table>", "<code class=\"language-rust\">", "&lt;script&gt;x()&lt;/script&gt;"] {
        assert!(last.contains(part), "{part} not in {last}");
    }
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(done["html"].as_str(), Some(*last), "done carries the whole answer's HTML");
    assert!(!last.contains("<script"), "{last}");
}

/// The keys of every object in `value`, recursively (arrays by their first item).
fn keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), keys(v))).collect()),
        Value::Array(items) => Value::Array(items.first().map(keys).into_iter().collect()),
        _ => Value::Null,
    }
}

/// `/openapi.json` documents this stream's events (`x-sse-events`), and the
/// documented data has the fields the real events carry.
#[tokio::test]
async fn the_documented_conversation_events_match_what_the_stream_sends() {
    let app = TestApp::spawn(|_| {}).await;
    let doc = app.get_json("/openapi.json").await;
    let documented: std::collections::BTreeMap<String, Value> =
        doc["paths"]["/api/conversations/{id}/events"]["get"]["x-sse-events"]
            .as_array()
            .expect("the stream's events are documented")
            .iter()
            .map(|e| (e["event"].as_str().unwrap().to_owned(), e["data"].clone()))
            .collect();
    let names: Vec<&str> = documented.keys().map(String::as_str).collect();
    assert_eq!(names, ["approvals", "deleted", "error", "message", "ready"]);

    let store = app.app_store();
    let new = valor::storage::NewConversation { title: "docs".into(), channel: "web".into(), chat_id: None };
    let conversation = store.create_conversation(new).await.unwrap().id;
    let mut events = Events::new(open(&app, &conversation, None).await);
    for name in ["ready", "approvals"] {
        let real = events.expect(name).await;
        assert_eq!(keys(&documented[name]), keys(&real.data), "{name}");
    }
    store.append_message(notice(&conversation, "Job #7 (agent_task) finished.")).await.unwrap();
    let real = events.expect("message").await;
    assert_eq!(keys(&documented["message"]), keys(&real.data), "message");
    store.delete_conversation(&conversation).await.unwrap();
    let real = events.expect("deleted").await;
    assert_eq!(keys(&documented["deleted"]), keys(&real.data), "deleted");
}
