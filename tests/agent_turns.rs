//! The turn loop seen from outside: parallel tool calls, the step limit,
//! recoverable tool errors, routing through the provider's small tier, the
//! persona file, disconnects, hung providers, audit, and turn ordering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Aimock, TestApp, silent_server, use_anthropic, use_openai};
use serde_json::{Value, json};

fn roles(messages: &Value) -> Vec<String> {
    messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn two_tool_calls_in_one_step_both_run_and_both_results_go_back_in_order() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "budget is"}, "response": {"content": "Noted."}},
        {"match": {"userMessage": "Compare", "hasToolResult": false},
         "response": {"toolCalls": [
            {"name": "search_history", "arguments": {"query": "budget"}},
            {"name": "search_history", "arguments": {"query": "deadline"}}
         ]}},
        {"match": {"userMessage": "Compare", "hasToolResult": true}, "response": {"content": "Both found."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_openai(s, &mock)).await;
    app.send_ok("two", "The budget is 40k and the deadline is Friday.").await;
    let reply = app.send_ok("two", "Compare budget and deadline").await;
    let calls = reply["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["input"]["query"], "budget");
    assert_eq!(calls[1]["input"]["query"], "deadline");
    assert!(calls.iter().all(|c| c["output"].as_str().unwrap().contains("40k")));
    let last = mock.requests_to("/v1/chat/completions").await.pop().unwrap();
    let tool_messages: Vec<&Value> =
        last["body"]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2, "both results must go back to the model");

    // Each call is in the audit log.
    let store = app.store().await;
    let audit = store.list_audit(Some("tool_call"), 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.subject == "search_history" && e.decision == "ok"));
}

#[tokio::test]
async fn the_step_limit_stops_a_model_that_keeps_calling_tools() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "loop forever"},
        "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": "loop"}}]}}]))
        .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.agent.max_steps = 2;
    })
    .await;
    let reply = app.send_ok("loop", "loop forever please").await;
    assert!(reply["reply"].as_str().unwrap().contains("I stopped after 2 steps"), "{reply}");
    assert_eq!(mock.requests_to("/v1/messages").await.len(), 2);
    assert_eq!(reply["tool_calls"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_go_back_to_the_model_as_error_results() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "launch the rockets", "hasToolResult": false},
         "response": {"toolCalls": [
            {"name": "launch_rockets", "arguments": {}},
            {"name": "search_history", "arguments": {"q": "missing the query field"}}
         ]}},
        {"match": {"userMessage": "launch the rockets", "hasToolResult": true},
         "response": {"content": "I can't launch rockets."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let reply = app.send_ok("tools", "launch the rockets").await;
    assert_eq!(reply["reply"], "I can't launch rockets.");
    let calls = reply["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], true);
    assert!(calls[0]["output"].as_str().unwrap().contains("no tool named \"launch_rockets\""));
    assert_eq!(calls[1]["is_error"], true);
    assert!(calls[1]["output"].as_str().unwrap().contains("invalid arguments for search_history"));
    let conversation = reply["conversation"].as_str().unwrap();
    let turn = &app.get_json(&format!("/api/conversations/{conversation}/turns")).await["turns"][0];
    assert_eq!(turn["status"], "completed");
}

/// Security: a query of a million words is refused at once instead of keeping a core busy.
#[tokio::test]
async fn a_huge_search_history_query_goes_back_to_the_model_as_too_long() {
    let mock = Aimock::start().await;
    let huge: String = (0..200_000).map(|n| format!("w{n} ")).collect();
    mock.add_fixtures(json!([
        {"match": {"userMessage": "search a lot", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": huge}}]}},
        {"match": {"userMessage": "search a lot", "hasToolResult": true}, "response": {"content": "Too long."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let reply = app.send_ok("huge", "search a lot").await;
    let call = &reply["tool_calls"][0];
    assert_eq!(call["is_error"], true, "{call}");
    assert!(call["output"].as_str().unwrap().contains("query is too long: use at most 16 words"), "{call}");
    assert_eq!(reply["reply"], "Too long.");
}

#[tokio::test]
async fn without_ollama_the_providers_small_tier_labels_the_message() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"model": "claude-haiku-4-5"}, "response": {"content": "{\"intent\": \"search\"}"}},
        {"match": {"model": "claude-sonnet-4-5"}, "response": {"content": "Searching the web is coming soon."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.intent.use_model = true;
    })
    .await;
    let reply = app.send_ok("label", "anything new about the Rust 2027 edition").await;
    assert_eq!(reply["turn"]["intent"], "search");
    assert_eq!(reply["turn"]["model"], "claude-sonnet-4-5");
    let conversation = reply["conversation"].as_str().unwrap();
    let turn = &app.get_json(&format!("/api/conversations/{conversation}/turns")).await["turns"][0];
    assert_eq!(turn["intent_source"], "model");
    let requests = mock.requests_to("/v1/messages").await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["body"]["model"], "claude-haiku-4-5");
    assert_ne!(requests[0]["body"]["stream"], true, "classification is one short non-streamed call");
}

#[tokio::test]
async fn a_persona_file_replaces_the_embedded_persona() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "who are you"}, "response": {"content": "Arr."}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let persona = dir.path().join("persona.md");
    std::fs::write(&persona, "You are Testbot, a pirate who answers in one word.").unwrap();
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.agent.persona_file = Some(persona);
    })
    .await;
    app.send_ok("persona", "who are you?").await;
    let body = mock.requests_to("/v1/messages").await[0]["body"].to_string();
    assert!(body.contains("Testbot, a pirate"));
    assert!(!body.contains("Valor Engels"));
}

#[tokio::test]
async fn a_turn_finishes_and_is_saved_when_the_sse_client_goes_away() {
    // 40 ms between chunks of 20 characters: the answer takes about a second to stream.
    let mock = Aimock::start_with(&["-l", "40"]).await;
    let answer = "This answer streams slowly. ".repeat(20);
    mock.add_fixtures(json!([{"match": {"userMessage": "slow"}, "response": {"content": answer.trim_end()}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let mut response = app
        .http
        .post(app.url("/api/messages"))
        .header("accept", "text/event-stream")
        .json(&json!({"conversation": "gone", "text": "slow please"}))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("turn_started"));
    drop(response);

    let started = Instant::now();
    loop {
        let list = app.get_json("/api/conversations").await;
        let id = list["conversations"][0]["id"].as_str().unwrap().to_owned();
        let messages = app.get_json(&format!("/api/conversations/{id}/messages")).await;
        if roles(&messages) == ["user", "assistant"] {
            assert_eq!(messages["messages"][1]["text"], answer.trim_end());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the turn did not finish after the client left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_turns_of_one_conversation_never_interleave() {
    let mock = Aimock::start_with(&["-l", "20"]).await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "first"}, "response": {"content": "Answer to the first question, streamed in a few chunks."}},
        {"match": {"userMessage": "second"}, "response": {"content": "Answer to the second question, streamed in a few chunks."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let conversation = app.send_ok("order", "first hello").await["conversation"].as_str().unwrap().to_owned();
    let (a, b) =
        tokio::join!(app.send_ok(&conversation, "first question"), app.send_ok(&conversation, "second question"));
    assert!(a["reply"].as_str().unwrap().starts_with("Answer to the first"));
    assert!(b["reply"].as_str().unwrap().starts_with("Answer to the second"));
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    assert_eq!(roles(&messages), ["user", "assistant", "user", "assistant", "user", "assistant"]);
}

#[tokio::test]
async fn a_hung_provider_gets_a_clear_reply_after_the_timeout() {
    let (hung, _server) = silent_server().await;
    let app = TestApp::spawn(|s| {
        s.llm.provider = valor::config::ProviderChoice::Anthropic;
        s.anthropic.api_key = Some("sk-ant-hung".to_owned().into());
        s.anthropic.base_url = hung;
        // Only the first-byte limit is short: a hang is noticed without
        // waiting out the whole-response limit.
        s.llm.request_timeout_secs = 120;
        s.llm.first_byte_timeout_secs = 1;
        s.llm.max_retries = 1;
    })
    .await;
    let started = Instant::now();
    let response = app.send("hung", "hello?").await;
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_eq!(response.status(), 503);
    let reply: serde_json::Value = response.json().await.unwrap();
    let text = reply["reply"].as_str().unwrap();
    assert!(text.contains("can't reach the model provider"), "{text}");
    assert!(text.contains("did not answer in time"), "{text}");
}

/// A model slow to say its first word: the chat hears "still waiting for
/// the model…" while the turn goes on, and the answer still arrives.
#[tokio::test]
async fn a_slow_model_start_is_announced_and_the_answer_still_arrives() {
    let mock = Aimock::start().await;
    mock.add_fixtures(serde_json::json!([{
        "match": {"userMessage": "think hard"},
        "response": {"content": "Here at last."},
        "chaos": {"latencyMs": 2500}
    }]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.llm.waiting_notice_secs = 1;
    })
    .await;
    let events = app.send_streamed("slow", "think hard").await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    let waiting = names.iter().position(|name| *name == "waiting").expect("a waiting event");
    let first_text = names.iter().position(|name| *name == "text_delta").expect("the answer streamed");
    assert!(waiting < first_text, "{names:?}");
    assert_eq!(names.iter().filter(|name| **name == "waiting").count(), 1, "{names:?}");
    assert_eq!(events[waiting].1["message"], "still waiting for the model…");
    assert_eq!(events.last().unwrap().1["reply"], "Here at last.");
}

/// A workspace is configured but the Claude Code CLI is not installed: the
/// agent is not offered `delegate_code_task` (it would promise a run that
/// cannot start) and its prompt says why code work is unavailable, so it
/// can tell the user; the start-up components say it too.
#[tokio::test]
async fn without_the_claude_cli_code_work_is_not_offered_and_the_agent_knows_why() {
    let mock = Aimock::start().await;
    mock.add_fixtures(
        json!([{"match": {"userMessage": "fix the build"}, "response": {"content": "I can't run code here."}}]),
    )
    .await;
    let project = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.workspaces = vec![valor::config::WorkspaceSettings {
            name: "site".into(),
            path: project.path().to_path_buf(),
            chats: vec![],
            notion_database: None,
            allowed_users: vec![],
            default_branch: None,
        }];
        s.claude.bin = "/nonexistent/claude".into();
    })
    .await;
    app.send_ok("code", "please fix the build").await;
    // The turn's own call (not the background token count at /v1/messages/count_tokens).
    let request = mock.requests_to("/v1/messages").await.into_iter().rfind(|r| r["path"] == "/v1/messages").unwrap();
    let tools: Vec<&str> = request["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().or_else(|| t["function"]["name"].as_str()))
        .collect();
    assert!(!tools.contains(&"delegate_code_task"), "{tools:?}");
    assert!(tools.contains(&"project_context"), "the workspace itself is still readable: {tools:?}");
    let system = request["body"].to_string();
    assert!(system.contains("Unavailable here") && system.contains("`/nonexistent/claude` was not found"), "{system}");
    let health = app.get_json("/health").await;
    let code = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "code work (delegate_code_task)")
        .cloned();
    assert_eq!(code.unwrap()["on"], false, "{health:#}");
}

/// One turn stopped through its `TurnRequest::cancel` (what `valor chat`'s
/// Ctrl-C does): `Done` ends it, no `Error`; what was streamed is stored,
/// marked stopped; the turn is recorded `cancelled`.
#[tokio::test]
async fn a_cancelled_turn_stores_what_was_streamed_marked_stopped_and_ends_with_done() {
    use valor::agent::{AgentEvent, CANCELLED_RECORD, STOPPED_MARK, TurnFailure, TurnRequest};
    let mock = Aimock::start_with(&["-l", "150", "-c", "5"]).await;
    let answer = "A long answer that streams slowly, five characters at a time, for several seconds.";
    mock.add_fixtures(json!([{"match": {"userMessage": "stream slowly"}, "response": {"content": answer}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(dir.path());
    use_anthropic(&mut settings, &mock);
    let app = valor::app::App::build(settings).await.unwrap();
    let conversation = app.agent.open_conversation("stop me", "api").await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let request = TurnRequest {
        conversation: conversation.clone(),
        text: "please stream slowly".into(),
        is_admin: true,
        user: None,
        images: Vec::new(),
        once_key: None,
        cancel: cancel.clone(),
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
    let agent = app.agent.clone();
    let turn = tokio::spawn(async move { agent.run_turn(request, &sender).await });
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await.unwrap() {
        let streaming = matches!(event, AgentEvent::TextDelta { .. });
        events.push(event);
        if streaming {
            break;
        }
    }
    cancel.cancel();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap() {
        events.push(event);
    }
    let outcome = turn.await.unwrap();
    assert_eq!(outcome.failure, Some(TurnFailure::Cancelled));
    // `Done` says so: every client marks the answer stopped from it, not from its own Stop press.
    assert!(matches!(events.last(), Some(AgentEvent::Done { stopped: true, .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Error { .. })), "{events:?}");
    assert!(!outcome.reply.is_empty() && answer.starts_with(&outcome.reply), "{:?}", outcome.reply);

    let turns = app.store.list_turns(&conversation.id).await.unwrap();
    assert_eq!(turns[0].status, valor::storage::TurnStatus::Cancelled);
    assert_eq!(turns[0].error.as_deref(), Some(CANCELLED_RECORD));
    let messages = app.store.recent_messages(&conversation.id, 10).await.unwrap();
    let roles: Vec<_> = messages.iter().map(|m| m.role).collect();
    use valor::storage::MessageRole;
    assert_eq!(roles, [MessageRole::User, MessageRole::Assistant], "no failure notice: {messages:?}");
    assert_eq!(messages[1].text, format!("{}{STOPPED_MARK}", outcome.reply.trim_end()));
    app.store.close().await;
}

/// A turn still `running` when valor starts was left by a crash (a clean
/// stop finishes its turns): the start marks it `interrupted`, with the
/// time it was found, so no turn stays running forever.
#[tokio::test]
async fn a_turn_left_running_by_a_crash_is_marked_interrupted_when_valor_starts() {
    use valor::storage::{NewConversation, NewTurn, Store, TurnStatus};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "crashed".into(), channel: "api".into(), chat_id: None })
        .await
        .unwrap();
    let new_turn = || NewTurn {
        conversation_id: conversation.id.clone(),
        intent: "chat".into(),
        intent_source: "fallback".into(),
        tier: "small".into(),
        provider: "anthropic".into(),
        model: "claude-test".into(),
    };
    let crashed = store.start_turn(new_turn(), None).await.unwrap();
    store.close().await;

    let app = TestApp::spawn_in(dir, |_| {}).await;
    let store = app.store().await;
    let turn = store.get_turn(&crashed.id).await.unwrap();
    assert_eq!(turn.status, TurnStatus::Interrupted, "{turn:?}");
    assert_eq!(turn.error.as_deref(), Some(valor::agent::CRASH_RECORD));
    assert!(turn.finished_at_ms.is_some_and(|at| at >= turn.started_at_ms), "{turn:?}");
    // A turn that starts after the sweep is its own and stays running until it ends.
    let fresh = store.start_turn(new_turn(), None).await.unwrap();
    assert_eq!(store.get_turn(&fresh.id).await.unwrap().status, TurnStatus::Running);
    app.stop().await;
}
