//! A scripted model for the context tests, speaking the Anthropic Messages
//! API on a loopback port: streamed requests (valor's turns) get the
//! scripted answer to their last user text ("Noted." by default); plain
//! requests (summary folds) get a scripted summariser that keeps every
//! planted fact it is shown — in the previous summary or the new turns —
//! as one `- …` line. Usage is reported (4 bytes a token), so what valor
//! records as spent can be checked against what the provider counted.
//! Every request body is kept, in order.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Script {
    /// Texts the summariser keeps whenever it sees them.
    pub facts: Vec<String>,
    /// (user text, answer) for valor's turns.
    pub answers: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Seen {
    /// "summary" or "turn".
    pub kind: &'static str,
    pub body: Value,
    /// Input + output tokens the answer reported.
    pub tokens: u64,
}

struct Shared {
    script: Script,
    seen: Mutex<Vec<Seen>>,
}

pub struct ScriptedModel {
    pub url: String,
    shared: Arc<Shared>,
}

/// The text a model reads in a request: system prompt and every text block.
pub fn request_text(body: &Value) -> String {
    let mut text = match &body["system"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    };
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => text.push_str(s),
            Value::Array(blocks) => {
                for block in blocks {
                    if let Some(t) = block["text"].as_str().or_else(|| block["content"].as_str()) {
                        text.push_str(t);
                    }
                }
            }
            _ => {}
        }
    }
    text
}

fn last_user_text(body: &Value) -> String {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else { return String::new() };
    match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            blocks.iter().rev().find_map(|b| b["text"].as_str()).map(str::to_owned).unwrap_or_default()
        }
        _ => String::new(),
    }
}

async fn messages(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let read = request_text(&body);
    if body["stream"] == true {
        let question = last_user_text(&body);
        let answer = shared
            .script
            .answers
            .iter()
            .find(|(q, _)| *q == question)
            .map_or_else(|| "Noted.".to_owned(), |(_, a)| a.clone());
        let tokens = (read.len() / 4 + answer.len() / 4 + 1) as u64;
        shared.seen.lock().unwrap().push(Seen { kind: "turn", body, tokens });
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant", "model": "scripted", "content": [], "stop_reason": null, "usage": {"input_tokens": read.len() / 4, "output_tokens": 0}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": answer}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let sse: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
        return ([("content-type", "text/event-stream")], sse).into_response();
    }
    let lines: Vec<String> = shared
        .script
        .facts
        .iter()
        .filter(|fact| read.contains(fact.as_str()))
        .map(|fact| format!("- {fact}"))
        .collect();
    let summary = if lines.is_empty() { "- nothing of note yet".to_owned() } else { lines.join("\n") };
    let (input_tokens, output_tokens) = (read.len() / 4, summary.len() / 4 + 1);
    shared.seen.lock().unwrap().push(Seen {
        kind: "summary",
        body: body.clone(),
        tokens: (input_tokens + output_tokens) as u64,
    });
    Json(json!({
        "id": "msg_s", "type": "message", "role": "assistant", "model": body["model"],
        "content": [{"type": "text", "text": summary}], "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
    }))
    .into_response()
}

impl ScriptedModel {
    pub async fn start(script: Script) -> ScriptedModel {
        let shared = Arc::new(Shared { script, seen: Mutex::new(Vec::new()) });
        let router = axum::Router::new().route("/v1/messages", post(messages)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        ScriptedModel { url, shared }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn summaries(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.kind == "summary").collect()
    }

    pub fn turns(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.kind == "turn").collect()
    }

    /// A valor Anthropic client pointed at this stand-in.
    pub fn client(&self) -> valor::llm::anthropic::AnthropicClient {
        use std::time::Duration;
        valor::llm::anthropic::AnthropicClient::new(valor::llm::transport::TransportConfig {
            base_url: self.url.clone(),
            api_key: Some("sk-ant-test".to_owned().into()),
            request_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_retries: 0,
            retry_base: Duration::from_millis(10),
            retry_max: Duration::from_millis(20),
        })
        .unwrap()
    }
}

/// Messages of a model request that hold more than one thing the user
/// said: kept questions merged without the answers between them. The
/// summary (first) and valor's notices are not the user speaking; the last
/// message is the question being asked.
pub fn unanswered_user_turns(body: &Value, summary_header: &str, notice_prefix: &str) -> Vec<String> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        if message["role"] != "user" {
            continue;
        }
        let said: Vec<&str> = message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .filter(|t| !t.starts_with(summary_header) && !t.starts_with(notice_prefix))
            .collect();
        let answered = messages.get(index + 1).is_some_and(|next| next["role"] == "assistant");
        let last = index + 1 == messages.len();
        if said.len() > 1 || (!said.is_empty() && !answered && !last) {
            problems.push(format!("message {index}: {said:?}"));
        }
    }
    problems
}
