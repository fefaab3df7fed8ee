//! Provider clients against a real `@copilotkit/aimock` process: completions,
//! streamed text and tool calls, retry on 429/529/503, no retry on 401,
//! unreachable endpoints, and the Ollama JSON client (including its timeout).
//! Each test starts its own aimock on port 0, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use valor::llm::anthropic::AnthropicClient;
use valor::llm::ollama::OllamaClient;
use valor::llm::openai::OpenAiClient;
use valor::llm::transport::TransportConfig;
use valor::llm::{ChatModel, ChatRequest, ContentBlock, LlmError, Message, StopReason, StreamEvent, ToolSpec};

/// A running aimock; killed when dropped.
struct Aimock {
    child: Child,
    url: String,
    http: reqwest::Client,
    _fixtures: tempfile::TempDir,
}

impl Aimock {
    fn start() -> Self {
        // `--strict` refuses to start on an empty directory, so it gets one
        // fixture no test ever matches; everything else is scripted per test.
        let fixtures = tempfile::tempdir().unwrap();
        let placeholder = json!({ "fixtures": [{
            "match": { "userMessage": "__placeholder_never_sent__" }, "response": { "content": "unused" },
        }] });
        std::fs::write(fixtures.path().join("placeholder.json"), placeholder.to_string()).unwrap();
        // The listening port is only printed at log level `info`.
        let mut child = Command::new("node")
            .arg("node_modules/@copilotkit/aimock/dist/cli.js")
            .args(["-p", "0", "--strict", "--log-level", "info", "-f"])
            .arg(fixtures.path())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs aimock");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("aimock printed its address").unwrap();
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_owned();
            }
        };
        // Keep draining the log so aimock never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url, http: valor::llm::transport::client_builder().build().unwrap(), _fixtures: fixtures }
    }

    async fn control(&self, path: &str, body: Value) {
        let response = self.http.post(format!("{}/__aimock/{path}", self.url)).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "aimock refused {path}: {}", response.text().await.unwrap());
    }

    async fn script(&self, fixtures: Value) {
        self.control("fixtures", json!({ "fixtures": fixtures })).await;
    }

    async fn fail_next(&self, status: u16, kind: &str) {
        self.control("error", json!({ "status": status, "body": { "message": "scripted failure", "type": kind } }))
            .await;
    }

    /// Journal entries for requests to `path`.
    async fn requests_to(&self, path: &str) -> Vec<Value> {
        let journal: Vec<Value> =
            self.http.get(format!("{}/__aimock/journal", self.url)).send().await.unwrap().json().await.unwrap();
        journal.into_iter().filter(|entry| entry["path"] == path).collect()
    }
}

impl Drop for Aimock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, Debug)]
enum Provider {
    Anthropic,
    OpenAi,
}

impl Provider {
    fn client(self, base: &str) -> Box<dyn ChatModel> {
        let config = transport_config(base, self);
        match self {
            Provider::Anthropic => Box::new(AnthropicClient::new(config).unwrap()),
            Provider::OpenAi => Box::new(OpenAiClient::new(config).unwrap()),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Provider::Anthropic => "/v1/messages",
            Provider::OpenAi => "/v1/chat/completions",
        }
    }
}

fn transport_config(base: &str, provider: Provider) -> TransportConfig {
    let base_url = match provider {
        Provider::Anthropic => base.to_owned(),
        Provider::OpenAi => format!("{base}/v1"),
    };
    TransportConfig {
        base_url,
        api_key: Some(SecretString::from("test-key".to_owned())),
        request_timeout: Duration::from_secs(10),
        first_byte_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_retries: 2,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("test-model", "You are a test.", vec![Message::user_text(text)])
}

fn weather_request() -> ChatRequest {
    let mut request = ask("what is the weather in Paris?");
    request.tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        input_schema: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
    }];
    request
}

async fn script_greeting(mock: &Aimock) {
    mock.script(json!([{ "match": { "userMessage": "hello" }, "response": { "content": "Hi there, how can I help you today?" } }]))
        .await;
}

async fn plain_completion(provider: Provider) {
    let mock = Aimock::start();
    script_greeting(&mock).await;
    let response = provider.client(&mock.url).complete(&ask("hello")).await.unwrap();
    assert_eq!(response.message.text(), "Hi there, how can I help you today?");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    let requests = mock.requests_to(provider.path()).await;
    assert_eq!(requests.len(), 1);
    // aimock's journal shows credentials as "[REDACTED]": assert they were sent.
    let headers = &requests[0]["headers"];
    match provider {
        Provider::Anthropic => {
            assert!(headers["x-api-key"].is_string(), "{headers}");
            assert_eq!(headers["anthropic-version"], "2023-06-01");
        }
        Provider::OpenAi => assert!(headers["authorization"].is_string(), "{headers}"),
    }
}

async fn streamed_text(provider: Provider) {
    let mock = Aimock::start();
    script_greeting(&mock).await;
    let stream = provider.client(&mock.url).stream(&ask("hello")).await.unwrap();
    let events: Vec<StreamEvent> = stream.map(Result::unwrap).collect().await;
    let (last, deltas) = events.split_last().unwrap();
    let text: String = deltas
        .iter()
        .map(|event| match event {
            StreamEvent::TextDelta(text) => text.as_str(),
            StreamEvent::Finished(_) => panic!("Finished before the end"),
        })
        .collect();
    assert!(deltas.len() > 1, "the answer arrived in several deltas");
    assert_eq!(text, "Hi there, how can I help you today?");
    let StreamEvent::Finished(response) = last else { panic!("no Finished at the end") };
    assert_eq!(response.message.text(), text);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
}

async fn streamed_tool_call(provider: Provider) {
    let mock = Aimock::start();
    let arguments = json!({ "city": "Paris", "unit": "celsius", "note": "long enough to arrive in several pieces" });
    mock.script(json!([{ "match": { "toolName": "get_weather" }, "response": { "toolCalls": [{ "name": "get_weather", "arguments": arguments }] } }]))
        .await;
    let stream = provider.client(&mock.url).stream(&weather_request()).await.unwrap();
    let events: Vec<StreamEvent> = stream.map(Result::unwrap).collect().await;
    let Some(StreamEvent::Finished(response)) = events.last() else { panic!("no Finished at the end") };
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    let [ContentBlock::ToolUse { id, name, input }] = response.message.content.as_slice() else {
        panic!("expected one tool call, got {:?}", response.message.content)
    };
    assert!(!id.is_empty());
    assert_eq!(name, "get_weather");
    assert_eq!(input, &arguments);
}

async fn rate_limited_then_success(provider: Provider) {
    let mock = Aimock::start();
    script_greeting(&mock).await;
    mock.fail_next(429, "rate_limit_error").await;
    let started = Instant::now();
    let response = provider.client(&mock.url).complete(&ask("hello")).await.unwrap();
    assert_eq!(response.message.text(), "Hi there, how can I help you today?");
    assert_eq!(mock.requests_to(provider.path()).await.len(), 2, "one 429, one retry");
    // aimock sends `Retry-After: 1`; the 10 ms backoff alone would be far shorter.
    assert!(started.elapsed() >= Duration::from_millis(900), "retry-after was not honoured");
}

async fn overloaded_then_success(provider: Provider, status: u16) {
    let mock = Aimock::start();
    script_greeting(&mock).await;
    mock.fail_next(status, "overloaded_error").await;
    let stream = provider.client(&mock.url).stream(&ask("hello")).await.unwrap();
    let events: Vec<StreamEvent> = stream.map(Result::unwrap).collect().await;
    assert!(matches!(events.last(), Some(StreamEvent::Finished(_))));
    assert_eq!(mock.requests_to(provider.path()).await.len(), 2, "one {status}, one retry");
}

async fn unauthorized_is_not_retried(provider: Provider) {
    let mock = Aimock::start();
    script_greeting(&mock).await;
    mock.fail_next(401, "authentication_error").await;
    let err = provider.client(&mock.url).complete(&ask("hello")).await.unwrap_err();
    assert!(matches!(err, LlmError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("test-key"));
    assert_eq!(mock.requests_to(provider.path()).await.len(), 1);
}

async fn closed_port_is_a_quick_network_error(provider: Provider) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let err = provider.client(&base).complete(&ask("hello")).await.unwrap_err();
    assert!(matches!(err, LlmError::Network(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn anthropic_plain_completion_returns_the_scripted_text() {
    plain_completion(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_plain_completion_returns_the_scripted_text() {
    plain_completion(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_streamed_text_arrives_as_deltas_then_one_finished() {
    streamed_text(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_streamed_text_arrives_as_deltas_then_one_finished() {
    streamed_text(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_streamed_tool_call_has_its_arguments_assembled() {
    streamed_tool_call(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_streamed_tool_call_has_its_arguments_assembled() {
    streamed_tool_call(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_429_is_retried_after_retry_after() {
    rate_limited_then_success(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_429_is_retried_after_retry_after() {
    rate_limited_then_success(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_529_overload_is_retried_before_streaming() {
    overloaded_then_success(Provider::Anthropic, 529).await;
}

#[tokio::test]
async fn openai_503_overload_is_retried_before_streaming() {
    overloaded_then_success(Provider::OpenAi, 503).await;
}

#[tokio::test]
async fn anthropic_401_is_an_auth_error_without_retry() {
    unauthorized_is_not_retried(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_401_is_an_auth_error_without_retry() {
    unauthorized_is_not_retried(Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_closed_port_is_a_quick_network_error() {
    closed_port_is_a_quick_network_error(Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_closed_port_is_a_quick_network_error() {
    closed_port_is_a_quick_network_error(Provider::OpenAi).await;
}

#[tokio::test]
async fn ollama_chat_json_returns_the_parsed_json_answer() {
    let mock = Aimock::start();
    mock.script(json!([{ "match": { "userMessage": "classify" }, "response": { "content": "{\"intent\":\"chat\",\"confidence\":0.9}" } }]))
        .await;
    let client = OllamaClient::new(mock.url.clone(), Duration::from_secs(5)).unwrap();
    let answer = client.chat_json("qwen3", "Classify the intent.", "classify: hi there").await.unwrap();
    assert_eq!(answer, json!({ "intent": "chat", "confidence": 0.9 }));
    let requests = mock.requests_to("/api/chat").await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["body"]["messages"][0]["role"], "system");
}

#[tokio::test]
async fn ollama_chat_json_times_out_on_a_server_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let client = OllamaClient::new(base, Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let err = client.chat_json("qwen3", "system", "user").await.unwrap_err();
    assert_eq!(err, LlmError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    silent.abort();
}
