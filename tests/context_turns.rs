//! Context compaction through the real app: a long stored conversation is
//! sent as a summary plus the newest messages, within the budget, with the
//! saving recorded on the turn and the summary stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/summariser.rs"]
mod summariser;

use common::{Aimock, TestApp, use_anthropic};
use serde_json::{Value, json};
use valor::agent::context::{self, summary::SUMMARY_HEADER};
use valor::agent::history::NOTICE_PREFIX;
use valor::config::{Settings, Tier};
use valor::storage::{MessageRole, NewConversation, NewMessage, Store};

/// A conversation with 600 stored messages and one fact planted early.
async fn seed(data_dir: &std::path::Path) -> String {
    let store = Store::open(&data_dir.join("valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "long".into(), channel: "api".into(), chat_id: None })
        .await
        .unwrap();
    for i in 0..300 {
        let user = if i == 3 {
            "We decided to launch the billing rewrite on 14 March.".to_owned()
        } else {
            format!("just chatting about nothing in particular, message {i}")
        };
        for (role, text) in [(MessageRole::User, user), (MessageRole::Assistant, "Sure, happy to chat.".to_owned())] {
            let content = json!([{"type": "text", "text": text}]);
            let new = NewMessage { conversation_id: conversation.id.clone(), role, content, text, turn_id: None };
            store.append_message(new).await.unwrap();
        }
    }
    store.close().await;
    conversation.id
}

fn small_budget(settings: &mut Settings, mock: &Aimock) {
    use_anthropic(settings, mock);
    settings.context.budget_tokens = 1500;
    settings.context.summary_tokens = 300;
}

async fn spawn_seeded(mock: &Aimock, configure: impl FnOnce(&mut Settings)) -> (TestApp, String) {
    let data = tempfile::tempdir().unwrap();
    let conversation = seed(data.path()).await;
    let app = TestApp::spawn_in(data, |s| {
        small_budget(s, mock);
        configure(s);
    })
    .await;
    (app, conversation)
}

#[tokio::test]
async fn a_long_history_is_sent_as_an_extractive_summary_plus_the_newest_messages() {
    let mock = Aimock::start().await;
    mock.add_fixtures(
        json!([{"match": {"userMessage": "When do we launch"}, "response": {"content": "On 14 March."}}]),
    )
    .await;
    let (app, conversation) = spawn_seeded(&mock, |s| s.context.summarize_with_model = false).await;
    let reply = app.send_ok(&conversation, "When do we launch the billing rewrite?").await;
    assert_eq!(reply["reply"], "On 14 March.");

    let request = &mock.requests_to("/v1/messages").await[0]["body"];
    let sent = request["messages"].to_string();
    assert!(sent.contains(&SUMMARY_HEADER.replace('"', "\\\"")), "no summary in {sent:.400}");
    assert!(sent.contains("14 March"), "the planted fact was lost");
    assert!(!sent.contains("message 150"), "the middle of the history should have been condensed");
    assert!(sent.contains("message 299"), "the newest messages must be sent");

    let turn = &app.get_json(&format!("/api/conversations/{conversation}/turns")).await["turns"][0];
    assert!(turn["tokens_saved"].as_u64().unwrap() > 3000, "{turn}");
    assert!(turn["context_tokens"].as_u64().unwrap() <= 1500, "{turn}");
    // The rolling summary is stored with the span it covers: everything
    // before the kept window, which starts with a whole turn.
    let store = app.store().await;
    let rolling = store.rolling_summary(&conversation).await.unwrap().expect("rolling summary not stored");
    assert_eq!(rolling.method, "extractive");
    assert!(rolling.text.contains("14 March"));
    assert_eq!(rolling.first_message_id, 1);
    let stored = store.recent_messages(&conversation, 2000).await.unwrap();
    let seen_by_turn: Vec<_> = stored.into_iter().take(601).collect();
    let selection = context::select(&seen_by_turn, &context::policy_from(&small()));
    let last_summarised = selection.summarised_messages(&seen_by_turn).last().unwrap().id;
    assert_eq!(rolling.last_message_id, last_summarised);
    assert_eq!(seen_by_turn[selection.kept[0]].role, MessageRole::User, "the window starts with a question");
    assert_eq!(store.conversation_summary_tokens(&conversation).await.unwrap(), 0, "no model was asked");
}

fn small() -> valor::config::ContextSettings {
    valor::config::ContextSettings { budget_tokens: 1500, summary_tokens: 300, ..Default::default() }
}

#[tokio::test]
async fn the_small_tier_writes_the_summary_when_it_answers_in_time() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"model": "claude-haiku-4-5"}, "response": {"content": "- The billing rewrite launches on 14 March."}},
        {"match": {"model": "claude-sonnet-4-5"}, "response": {"content": "On 14 March."}}
    ]))
    .await;
    let (app, conversation) = spawn_seeded(&mock, |s| s.intent.routes.chat = Tier::Medium).await;
    app.send_ok(&conversation, "remind me of the plan").await;
    let requests = mock.requests_to("/v1/messages").await;
    assert_eq!(requests[0]["body"]["model"], "claude-haiku-4-5", "the summary is asked first");
    let turn_request = requests[1]["body"]["messages"].to_string();
    assert!(turn_request.contains("- The billing rewrite launches on 14 March."), "{turn_request:.300}");
}

#[tokio::test]
async fn a_slow_summary_falls_back_to_the_extractive_one() {
    // Every answer is held back 300 ms: longer than the 50 ms the summary may take.
    let mock = Aimock::start_with(&["--chaos-latency", "300"]).await;
    mock.add_fixtures(json!([
        {"match": {"model": "claude-haiku-4-5"}, "response": {"content": "- a model summary that arrives far too late"}},
        {"match": {"model": "claude-sonnet-4-5"}, "response": {"content": "Done."}}
    ]))
    .await;
    let (app, conversation) = spawn_seeded(&mock, |s| {
        s.intent.routes.chat = Tier::Medium;
        s.context.summary_timeout_ms = 50;
    })
    .await;
    let reply = app.send_ok(&conversation, "tell me something nice").await;
    assert_eq!(reply["reply"], "Done.");
    let turn_request =
        mock.requests_to("/v1/messages").await.into_iter().find(|r| r["body"]["model"] == "claude-sonnet-4-5").unwrap();
    let sent = turn_request["body"]["messages"].to_string();
    assert!(sent.contains("14 March"), "the extractive summary should carry the planted fact");
    assert!(!sent.contains("arrives far too late"));
}

/// The Anthropic Messages API as far as these turns need it: a streamed
/// answer that reports no usage (as aimock does), and `count_tokens`, which
/// counts one token per 1.75 bytes of text — twice the default estimate's
/// density — plus the per-message overhead.
async fn anthropic_that_counts_tokens() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
    use axum::Json;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

    fn text_bytes(value: &Value) -> usize {
        match value {
            Value::Object(fields) => fields
                .iter()
                .map(|(key, v)| match v {
                    Value::String(s) if key == "text" || key == "content" => s.len(),
                    _ => text_bytes(v),
                })
                .sum(),
            Value::Array(items) => items.iter().map(text_bytes).sum(),
            _ => 0,
        }
    }
    async fn messages(State(seen): State<Seen>, Json(body): Json<Value>) -> impl axum::response::IntoResponse {
        seen.lock().unwrap().push(("messages".into(), body));
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Noted."}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 0}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let sse: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
        ([("content-type", "text/event-stream")], sse)
    }
    async fn count(State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let tools = body.get("tools").map_or(0, |t| t.to_string().len());
        let bytes = text_bytes(&body["system"]) + text_bytes(&body["messages"]) + tools;
        let messages = body["messages"].as_array().map_or(0, Vec::len);
        seen.lock().unwrap().push((format!("count key={key}"), body));
        Json(json!({ "input_tokens": (bytes as f64 / 1.75) as usize + 4 * messages }))
    }
    let seen = Seen::default();
    let router = axum::Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn anthropics_token_count_calibrates_the_budget_for_the_next_turn() {
    let (url, seen) = anthropic_that_counts_tokens().await;
    let data = tempfile::tempdir().unwrap();
    let conversation = seed(data.path()).await;
    let app = TestApp::spawn_in(data, |s| {
        s.llm.provider = valor::config::ProviderChoice::Anthropic;
        s.anthropic.api_key = Some("sk-ant-test-secret".to_owned().into());
        s.anthropic.base_url = url;
        s.context.budget_tokens = 1500;
        s.context.summary_tokens = 300;
        s.context.summarize_with_model = false;
    })
    .await;
    app.send_ok(&conversation, "first question").await;

    // The count is asked once, in the background, with the request the model read.
    let mut ratio = None;
    for _ in 0..100 {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        ratio = metrics
            .lines()
            // This turn's model: other tests in this process calibrate theirs.
            .find(|l| l.starts_with("valor_context_bytes_per_token{") && l.contains("claude-haiku-4-5"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if ratio.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ratio = ratio.expect("no calibrated ratio in /metrics");
    assert!((1.6..1.9).contains(&ratio), "learned {ratio} bytes per token, the counter says 1.75");
    let (label, counted) = seen.lock().unwrap().iter().find(|(l, _)| l.starts_with("count")).cloned().unwrap();
    assert_eq!(label, "count key=sk-ant-test-secret");
    let mut fields: Vec<&String> = counted.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["messages", "model", "system", "tools"], "generation fields must not be sent");

    app.send_ok(&conversation, "second question").await;
    let sent: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| l == "messages")
        .map(|(_, body)| body["messages"].as_array().unwrap().len())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1] * 4 < sent[0] * 3, "the denser count must keep fewer messages: {sent:?}");
    assert_eq!(seen.lock().unwrap().iter().filter(|(l, _)| l.starts_with("count")).count(), 1, "counted once");
}

/// The app against the scripted model (tests/common/summariser.rs).
async fn spawn_scripted(model: &summariser::ScriptedModel, data: tempfile::TempDir) -> TestApp {
    let url = model.url.clone();
    TestApp::spawn_in(data, move |s| {
        s.llm.provider = valor::config::ProviderChoice::Anthropic;
        s.anthropic.api_key = Some("sk-ant-test-secret".to_owned().into());
        s.anthropic.base_url = url;
        s.intent.routes.chat = Tier::Medium;
        s.context.budget_tokens = 900;
        s.context.summary_tokens = 300;
        s.context.summary_timeout_ms = 10_000;
    })
    .await
}

#[tokio::test]
async fn a_long_question_and_answer_thread_is_sent_in_whole_turns_with_a_rolling_summary() {
    // 160 questions, each answered with a fact; the early ones are asked again at the end.
    let qa: Vec<(String, String)> = (0..160)
        .map(|i| (format!("Which port does service {i} use?"), format!("Service {i} listens on port {}.", 7000 + i)))
        .collect();
    let facts: Vec<String> = (0..160).map(|i| format!("port {}", 7000 + i)).collect();
    let model = summariser::ScriptedModel::start(summariser::Script { facts, answers: qa.clone() }).await;
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "ports".into(), channel: "api".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    store.close().await;
    let app = spawn_scripted(&model, data).await;
    for (question, answer) in &qa {
        assert_eq!(app.send_ok(&conversation, question).await["reply"], answer.as_str());
    }
    app.send_ok(&conversation, "Which ports did services 0 to 4 use?").await;

    let turns = model.turns();
    let summaries = model.summaries();
    assert_eq!(turns.len(), 161);
    // Every request the model received holds whole turns: no question without its answer.
    for (index, turn) in turns.iter().enumerate() {
        let torn = summariser::unanswered_user_turns(&turn.body, SUMMARY_HEADER, NOTICE_PREFIX);
        assert!(torn.is_empty(), "turn request {index}: {torn:?}");
    }
    // Once condensed, at most one summary request per ten turns, each bounded.
    let condensed = turns.iter().filter(|t| summariser::request_text(&t.body).contains(SUMMARY_HEADER)).count();
    assert!(condensed > 100, "only {condensed} condensed turns");
    assert!(summaries.len() * 10 <= condensed, "{} summary requests in {condensed} condensed turns", summaries.len());
    for summary in &summaries {
        let bytes = summariser::request_text(&summary.body).len();
        assert!(bytes <= context::summary::MAX_INPUT_BYTES, "{bytes}");
    }
    // Each fold's input is the previous summary plus the newly dropped turns.
    assert!(summariser::request_text(&summaries[0].body).contains("Summary so far:\n(nothing yet)"));
    for summary in &summaries[1..] {
        let text = summariser::request_text(&summary.body);
        assert!(text.contains("Summary so far:\n- port 7000\n- port 7001"), "{text:.400}");
        assert!(text.contains("\nuser: Which port does service"), "new turns follow: {text:.400}");
    }
    // The model summary carried every early answer to the last request.
    let last = summariser::request_text(&turns[160].body);
    for port in 7000..7005 {
        assert!(last.contains(&format!("port {port}")), "port {port} lost: {last:.600}");
    }
    // What the summaries cost is recorded on the turns that asked for them.
    let store = app.store().await;
    let spent: u64 = summaries.iter().map(|s| s.tokens).sum();
    assert!(spent > 0);
    assert_eq!(store.conversation_summary_tokens(&conversation).await.unwrap(), spent);
    // The API's turn view says it per turn: as many turns as summary requests, adding up.
    let view = app.get_json(&format!("/api/conversations/{conversation}/turns")).await;
    let per_turn: Vec<u64> =
        view["turns"].as_array().unwrap().iter().map(|t| t["summary_tokens"].as_u64().unwrap()).collect();
    assert_eq!(per_turn.iter().filter(|&&tokens| tokens > 0).count(), summaries.len(), "{per_turn:?}");
    assert_eq!(per_turn.iter().sum::<u64>(), spent);
    let rolling = store.rolling_summary(&conversation).await.unwrap().unwrap();
    assert_eq!((rolling.method.as_str(), rolling.folds), ("model", summaries.len() as u64));
}

#[tokio::test]
async fn a_long_stored_history_is_folded_in_bounded_requests() {
    let model =
        summariser::ScriptedModel::start(summariser::Script { facts: vec!["14 March".into()], answers: vec![] }).await;
    let data = tempfile::tempdir().unwrap();
    // 600 stored messages with long ones: about 60 KB to condense at once.
    let conversation = seed(data.path()).await;
    let store = Store::open(&data.path().join("valor.db")).await.unwrap();
    for i in 0..100 {
        let text = format!("a long pasted note number {i}: {}", "with plenty of words in it ".repeat(18));
        let new = NewMessage {
            conversation_id: conversation.clone(),
            role: MessageRole::User,
            content: json!([{"type": "text", "text": text}]),
            text,
            turn_id: None,
        };
        store.append_message(new).await.unwrap();
    }
    store.close().await;
    let app = spawn_scripted(&model, data).await;
    for i in 0..6 {
        app.send_ok(&conversation, &format!("next {i}")).await;
    }
    let summaries = model.summaries();
    assert!(summaries.len() >= 3, "the backlog is folded over several turns: {}", summaries.len());
    for (index, summary) in summaries.iter().enumerate() {
        let bytes = summariser::request_text(&summary.body).len();
        assert!(bytes <= context::summary::MAX_INPUT_BYTES, "{bytes}");
        let last = index + 1 == summaries.len();
        assert!(last || bytes > 8_000, "each fold takes a large bounded share of the backlog: {bytes}");
    }
    // The fact from the start survives every fold.
    let last = summariser::request_text(&model.turns().last().unwrap().body);
    assert!(last.contains("- 14 March"), "{last:.500}");
}
