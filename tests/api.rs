//! The HTTP API driven from outside: the real app on port 0 with a fresh
//! database, against a real aimock process for the model provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Aimock, TestApp, closed_port_url, silent_server, use_anthropic, use_openai};
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_metrics_openapi_docs_and_the_web_page_answer() {
    let app = TestApp::spawn(|_| {}).await;
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "ok");
    let model = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "model").unwrap();
    assert_eq!(model["on"], false);
    assert_eq!(app.get_json("/ready").await["status"], "ready");

    let openapi = app.get_json("/openapi.json").await;
    for path in ["/api/messages", "/api/conversations", "/api/conversations/{id}/messages", "/health"] {
        assert!(openapi["paths"][path].is_object(), "openapi lacks {path}");
    }
    for (path, needle) in [("/", "<html"), ("/docs", "openapi.json"), ("/assets/app.js", "fetch")] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.text().await.unwrap().contains(needle), "{path} lacks {needle}");
    }
    // No model in this test: the turn fails with 503 and still counts.
    assert_eq!(app.send("metrics", "hello").await.status(), 503);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("valor_turns_total"));
}

#[tokio::test]
async fn a_plain_anthropic_turn_answers_and_is_persisted() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "capital of France"}, "response": {"content": "Paris."}}]))
        .await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;

    let reply = app.send_ok("geo", "What is the capital of France?").await;
    assert_eq!(reply["reply"], "Paris.");
    assert_eq!(reply["tool_calls"], json!([]));
    let conversation = reply["conversation"].as_str().unwrap().to_owned();

    let list = app.get_json("/api/conversations").await;
    let found = list["conversations"].as_array().unwrap().iter().find(|c| c["id"] == conversation.as_str()).unwrap();
    assert_eq!(found["title"], "geo");
    assert_eq!(found["message_count"], 2);
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let roles: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert_eq!(messages["messages"][1]["text"], "Paris.");

    // The wire request carried our key, version header, system prompt and tools.
    let requests = mock.requests_to("/v1/messages").await;
    assert_eq!(requests.len(), 1);
    assert!(requests[0]["headers"]["x-api-key"].is_string(), "no API key header was sent");
    assert_eq!(requests[0]["headers"]["anthropic-version"], "2023-06-01");
    let body = requests[0]["body"].to_string();
    assert!(body.contains("Valor"), "persona missing from the request: {body}");
    assert!(body.contains("search_history"), "tools missing from the request");

    // The same conversation continues by id.
    mock.add_fixtures(json!([{"match": {"userMessage": "And of Italy"}, "response": {"content": "Rome."}}])).await;
    let again = app.send_ok(&conversation, "And of Italy?").await;
    assert_eq!(again["conversation"], conversation.as_str());
    let body = mock.requests_to("/v1/messages").await[1]["body"].to_string();
    assert!(body.contains("Paris."), "history was not sent with the second turn");
}

#[tokio::test]
async fn a_streamed_turn_over_sse_sends_deltas_and_ends_with_done() {
    let mock = Aimock::start().await;
    let long = "Streaming works: this answer is long enough to arrive in several chunks of text.";
    mock.add_fixtures(json!([{"match": {"userMessage": "stream please"}, "response": {"content": long}}])).await;
    let app = TestApp::spawn(|s| use_openai(s, &mock)).await;

    let events = app.send_streamed("sse", "stream please").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"turn_started"));
    assert_eq!(names.last(), Some(&"done"));
    let deltas: Vec<&str> =
        events.iter().filter(|(n, _)| n == "text_delta").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(deltas.len() > 1, "expected several deltas, got {deltas:?}");
    assert_eq!(deltas.concat(), long);
    assert_eq!(events.last().unwrap().1["reply"], long);
    assert_eq!(events.last().unwrap().1["stopped"], false, "an answer that ran to its end is not stopped");
    let started = &events[0].1;
    assert_eq!(started["model"], "gpt-4o-mini", "the word rule labels this chat → small tier");
    assert_eq!(mock.requests_to("/v1/chat/completions").await[0]["body"]["stream"], true);
}

async fn tool_calling_turn(use_provider: fn(&mut valor::config::Settings, &Aimock), path: &str) {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "launch is planned"}, "response": {"content": "Noted."}},
        {"match": {"userMessage": "When did we say", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "search_history", "arguments": {"query": "launch"}}]}},
        {"match": {"userMessage": "When did we say", "hasToolResult": true},
         "response": {"content": "We said the launch is on March 3rd."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| use_provider(s, &mock)).await;
    app.send_ok("plans", "The launch is planned for March 3rd.").await;
    let reply = app.send_ok("plans", "When did we say the launch would be?").await;
    assert_eq!(reply["reply"], "We said the launch is on March 3rd.");
    let calls = reply["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["name"], "search_history");
    assert_eq!(calls[0]["is_error"], false);
    let output = calls[0]["output"].as_str().unwrap();
    assert!(output.contains("March 3rd"), "search_history did not find the earlier message: {output}");

    // The tool result went back to the model in the second request of the turn.
    let requests = mock.requests_to(path).await;
    assert_eq!(requests.len(), 3);
    assert!(requests[2]["body"].to_string().contains("March 3rd"));
    let conversation = reply["conversation"].as_str().unwrap();
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let roles: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "tool", "assistant"]);
}

#[tokio::test]
async fn the_model_calls_search_history_over_the_anthropic_wire_format() {
    tool_calling_turn(use_anthropic, "/v1/messages").await;
}

#[tokio::test]
async fn the_model_calls_search_history_over_the_openai_wire_format() {
    tool_calling_turn(use_openai, "/v1/chat/completions").await;
}

#[tokio::test]
async fn a_rate_limited_then_overloaded_provider_is_retried_until_it_answers() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "persist"}, "response": {"content": "Got through."}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    mock.queue_error(429, "rate_limit_error", "slow down").await;
    let reply = app.send_ok("retry", "persist please").await;
    assert_eq!(reply["reply"], "Got through.");
    mock.queue_error(529, "overloaded_error", "busy").await;
    let reply = app.send_ok("retry", "persist again").await;
    assert_eq!(reply["reply"], "Got through.");
    let statuses: Vec<u64> =
        mock.requests_to("/v1/messages").await.iter().map(|r| r["response"]["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [429, 200, 529, 200]);
}

#[tokio::test]
async fn an_unreachable_provider_gets_a_clear_reply_without_hanging() {
    let down = closed_port_url().await;
    let app = TestApp::spawn(|s| {
        s.llm.provider = valor::config::ProviderChoice::Anthropic;
        s.anthropic.api_key = Some("sk-ant-secret-do-not-leak".to_owned().into());
        s.anthropic.base_url = down;
    })
    .await;
    let started = Instant::now();
    let response = app.send("down", "hello?").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // A failed turn is not a 200 with an apology in it.
    assert_eq!(response.status(), 503);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["error"]["code"], "model_unavailable", "{reply}");
    let text = reply["reply"].as_str().unwrap();
    assert!(text.contains("can't reach the model provider at http://127.0.0.1:"), "{text}");
    assert!(text.contains("connection failed"), "the cause is named: {text}");
    assert_eq!(reply["error"]["message"], text);
    assert!(!reply.to_string().contains("sk-ant-secret"));
    let conversation = reply["conversation"].as_str().unwrap();
    let turns = app.get_json(&format!("/api/conversations/{conversation}/turns")).await;
    assert_eq!(turns["turns"][0]["status"], "failed");
    let error = turns["turns"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("model:network: could not reach the model provider: connection failed"), "{error}");
}

/// Ollama answers an unknown model with 404 and its own message; the turn
/// record, the log and the reply keep that message and say what to change.
#[tokio::test]
async fn a_refused_request_keeps_the_providers_message_and_says_what_to_fix() {
    let mock = Aimock::start().await;
    let app = TestApp::spawn(|s| {
        s.llm.provider = valor::config::ProviderChoice::Openai;
        s.openai.api_key = Some("sk-openai-secret-in-url".to_owned().into());
        // Credentials in the address never reach a reply.
        s.openai.base_url = format!("{}/v1", mock.url.replacen("http://", "http://user:hunter2@", 1));
        s.openai.models.small = "gpt-4o-mini".into();
        s.openai.models.medium = "gpt-4o-mini".into();
        s.openai.models.large = "gpt-4o-mini".into();
    })
    .await;
    mock.queue_error(404, "api_error", "model \"gpt-4o-mini\" not found, try pulling it first").await;
    let response = app.send("ollama", "hello?").await;
    assert_eq!(response.status(), 502);
    let reply: Value = response.json().await.unwrap();
    let text = reply["reply"].as_str().unwrap();
    let endpoint = format!("{}/v1", mock.url);
    assert_eq!(
        text,
        format!(
            "The model `gpt-4o-mini` at {endpoint} refused the request: model \"gpt-4o-mini\" not found, try \
             pulling it first. Set model names the server has in `[openai.models]` (`valor doctor` checks them)."
        )
    );
    assert!(!reply.to_string().contains("hunter2"), "{reply}");
    let conversation = reply["conversation"].as_str().unwrap();
    let turns = app.get_json(&format!("/api/conversations/{conversation}/turns")).await;
    let error = turns["turns"][0]["error"].as_str().unwrap();
    assert_eq!(
        error,
        "model:bad_request: the model provider refused the request: model \"gpt-4o-mini\" not found, try pulling it first"
    );
}

#[tokio::test]
async fn without_a_provider_the_reply_says_how_to_configure_one() {
    let app = TestApp::spawn(|_| {}).await;
    let events = app.send_streamed("none", "hello").await;
    let done = &events.last().unwrap().1;
    let reply = done["reply"].as_str().unwrap();
    assert!(reply.contains("no model provider is configured"), "{reply}");
    assert!(reply.contains("ANTHROPIC_API_KEY"));
    assert!(events.iter().any(|(name, _)| name == "error"));
}

#[tokio::test]
async fn the_ollama_intent_label_routes_the_turn_to_the_large_model_and_is_recorded() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"model": "intent-model"}, "response": {"content": "{\"intent\": \"code_task\"}"}},
        {"match": {"model": "claude-opus-4-1"}, "response": {"content": "Looking at the checkout test now."}}
    ]))
    .await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.intent.use_model = true;
        s.ollama.host = Some(mock.url.clone());
        s.ollama.intent_model = "intent-model".into();
    })
    .await;
    let reply = app.send_ok("route", "the checkout page is broken again").await;
    assert_eq!(reply["turn"]["intent"], "code_task");
    assert_eq!(reply["turn"]["model"], "claude-opus-4-1");
    let conversation = reply["conversation"].as_str().unwrap();
    let turn = &app.get_json(&format!("/api/conversations/{conversation}/turns")).await["turns"][0];
    assert_eq!(turn["intent"], "code_task");
    assert_eq!(turn["intent_source"], "ollama");
    assert_eq!(turn["tier"], "large");
    assert_eq!(turn["model"], "claude-opus-4-1");
    let ollama = mock.requests_to("/api/chat").await;
    assert_eq!(ollama.len(), 1);
    assert_eq!(ollama[0]["body"]["stream"], false);
}

#[tokio::test]
async fn a_hung_ollama_falls_back_to_the_word_rule_within_the_time_limit() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"model": "claude-opus-4-1"}, "response": {"content": "Fixing."}}])).await;
    let (hung, _server) = silent_server().await;
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        s.intent.use_model = true;
        s.intent.timeout_ms = 300;
        s.ollama.host = Some(hung);
    })
    .await;
    let started = Instant::now();
    let reply = app.send_ok("fallback", "fix the failing checkout test").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reply["reply"], "Fixing.");
    let conversation = reply["conversation"].as_str().unwrap();
    let turn = &app.get_json(&format!("/api/conversations/{conversation}/turns")).await["turns"][0];
    assert_eq!(turn["intent"], "code_task");
    assert_eq!(turn["intent_source"], "fallback");
    assert_eq!(turn["model"], "claude-opus-4-1");
}

#[tokio::test]
async fn api_calls_without_a_valid_token_are_refused_with_401() {
    let app = TestApp::spawn(|s| s.server.api_tokens = vec!["right-token".to_owned().into()]).await;
    let missing = app.http.get(app.url("/api/conversations")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = app.http.get(app.url("/api/conversations")).bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.http.get(app.url("/api/conversations")).bearer_auth("right-token").send().await.unwrap();
    assert_eq!(right.status(), 200);
    // Liveness stays open for load balancers.
    assert_eq!(app.http.get(app.url("/health")).send().await.unwrap().status(), 200);
    // Both refusals are in the audit log, without the presented token.
    let audit = app.store().await.list_audit(Some("auth"), 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.decision == "denied" && e.subject == "/api/conversations"));
    assert!(!format!("{audit:?}").contains("wrong-token"));
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let app = TestApp::spawn(|_| {}).await;
    let post = |body: String| {
        app.http.post(app.url("/api/messages")).header("content-type", "application/json").body(body).send()
    };
    let malformed = post("{\"text\": ".into()).await.unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("malformed JSON"));

    let missing_field = post("{\"conversation\": \"x\"}".into()).await.unwrap();
    assert_eq!(missing_field.status(), 422);
    let body: Value = missing_field.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("text"));

    let empty = post(json!({"text": "   "}).to_string()).await.unwrap();
    assert_eq!(empty.status(), 400);

    let oversized = post(json!({"text": "x".repeat(2 * 1024 * 1024)}).to_string()).await.unwrap();
    assert_eq!(oversized.status(), 413);
    let body: Value = oversized.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let too_long = post(json!({"text": "y".repeat(40_000)}).to_string()).await.unwrap();
    assert_eq!(too_long.status(), 413);

    let not_json = app.http.post(app.url("/api/messages")).body("text=hi").send().await.unwrap();
    assert_eq!(not_json.status(), 415);

    let unknown = app.http.get(app.url("/api/conversations/nope/messages")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // Nothing was stored by the refused requests.
    assert_eq!(app.get_json("/api/conversations").await["conversations"], json!([]));
}

#[tokio::test]
async fn messages_written_before_a_restart_are_there_after_it() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "remember"}, "response": {"content": "Remembered."}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let reply = app.send_ok("durable", "remember the blue door").await;
    let conversation = reply["conversation"].as_str().unwrap().to_owned();
    let data_dir = app.stop().await;

    let app = TestApp::spawn_in(data_dir, |s| use_anthropic(s, &mock)).await;
    let messages = app.get_json(&format!("/api/conversations/{conversation}/messages")).await;
    let texts: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["remember the blue door", "Remembered."]);
}

#[tokio::test]
async fn without_tokens_a_non_loopback_address_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings(data.path());
    settings.server.addr = "0.0.0.0:0".into();
    let app = valor::app::App::build(settings).await.unwrap();
    let error = app.start(tokio_util::sync::CancellationToken::new()).await.err().unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("VALOR_API_TOKENS"), "{message}");
}

/// A local OpenAI-compatible server (Ollama) out of the box: only its
/// address is set, no key, no provider, OpenAI's model names untouched.
/// valor picks the provider, learns what the server serves and answers.
#[tokio::test]
async fn a_local_server_works_with_only_its_address_set() {
    let mock = Aimock::start().await;
    mock.add_fixtures(
        json!([{"match": {"model": "llama3.2:1b"}, "response": {"content": "Hello from the local model."}}]),
    )
    .await;
    let app = TestApp::spawn(|s| {
        s.llm.provider = valor::config::ProviderChoice::Auto;
        s.openai.base_url = format!("{}/v1", mock.url);
    })
    .await;
    let reply = app.send_ok("local", "hello").await;
    assert_eq!(reply["reply"], "Hello from the local model.");
    assert_eq!(reply["turn"]["model"], "llama3.2:1b");
    let health = app.get_json("/health").await;
    let model = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "model").unwrap().clone();
    assert_eq!(model["on"], true, "{model}");
    assert!(model["detail"].as_str().unwrap().contains("llama3.2:1b"), "{model}");
}

#[tokio::test]
async fn a_message_without_a_conversation_never_joins_an_old_one_and_title_always_starts_one() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "hi"}, "response": {"content": "Hello."}}])).await;
    let app = TestApp::spawn(|s| use_anthropic(s, &mock)).await;
    let post = async |body: Value| {
        let response = app.http.post(app.url("/api/messages")).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, first) = post(json!({"text": "hi"})).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = post(json!({"text": "hi"})).await;
    assert_ne!(first["conversation"], second["conversation"], "a message without a conversation joined an old one");
    // `title` starts a new one even when that title is taken; `conversation` continues by id or title.
    let (_, titled) = post(json!({"title": "hi", "text": "hi"})).await;
    assert_ne!(titled["conversation"], first["conversation"]);
    assert_ne!(titled["conversation"], second["conversation"]);
    let id = first["conversation"].as_str().unwrap();
    let (_, again) = post(json!({"conversation": id, "text": "hi"})).await;
    assert_eq!(again["conversation"], first["conversation"]);
    let list = app.get_json("/api/conversations").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 3, "{list}");
    let (status, refused) = post(json!({"conversation": id, "title": "x", "text": "hi"})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("not both"), "{refused}");
}
