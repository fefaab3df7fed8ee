//! The fake model: Anthropic's `POST /v1/messages` with a streamed answer
//! (`message_start` … `content_block_delta` … `message_stop`, the published
//! SSE event shapes). It waits `latency` before the first token and `gap`
//! between tokens (model time, which the harness excludes), and records
//! per question tag when the request arrived and when the last token left.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::time::Instant;

/// What the model saw for one question.
#[derive(Debug, Clone, Default)]
pub struct ModelTurn {
    pub requested: Vec<Instant>,
    pub last_token: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    turns: HashMap<String, ModelTurn>,
    untagged: u64,
}

#[derive(Clone)]
pub struct FakeModel {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone)]
struct Config {
    inner: Arc<Mutex<Inner>>,
    latency: Duration,
    gap: Duration,
    tokens: usize,
}

impl FakeModel {
    pub async fn start(latency: Duration, gap: Duration, tokens: usize) -> anyhow::Result<FakeModel> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let config = Config { inner: inner.clone(), latency, gap, tokens };
        let router = Router::new().route("/v1/messages", post(messages)).with_state(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(FakeModel { url, inner })
    }

    pub fn turns(&self) -> HashMap<String, ModelTurn> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).turns.clone()
    }

    /// Requests whose last user message carried no question tag.
    pub fn untagged(&self) -> u64 {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).untagged
    }
}

/// The tag (`q<chat>x<n>`) in the newest user message of a request body.
pub fn question_tag(body: &Value) -> Option<String> {
    let last_user = body["messages"].as_array()?.iter().rev().find(|message| message["role"] == "user")?;
    let text = match &last_user["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|block| block["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => return None,
    };
    find_tag(&text)
}

/// The last `q<digits|->x<digits>` word in `text`.
pub fn find_tag(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .rev()
        .find(|word| {
            word.strip_prefix('q').and_then(|rest| rest.split_once('x')).is_some_and(|(chat, n)| {
                !chat.is_empty()
                    && chat.trim_start_matches('-').chars().all(|c| c.is_ascii_digit())
                    && !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_digit())
            })
        })
        .map(str::to_owned)
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

async fn messages(State(config): State<Config>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "body is not JSON"}});
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    };
    let tag = question_tag(&request);
    {
        let mut inner = config.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match &tag {
            Some(tag) => inner.turns.entry(tag.clone()).or_default().requested.push(arrived),
            None => inner.untagged += 1,
        }
    }
    let answer_words: Vec<String> = std::iter::once(format!("Answer to {} :", tag.as_deref().unwrap_or("?")))
        .chain((1..config.tokens).map(|n| format!(" word{n}")))
        .collect();
    if request["stream"] != true {
        tokio::time::sleep(config.latency).await;
        let text = answer_words.concat();
        record_last_token(&config, tag.as_deref());
        return axum::Json(json!({
            "id": "msg_load", "type": "message", "role": "assistant", "model": request["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": config.tokens}
        }))
        .into_response();
    }
    let model = request["model"].clone();
    let stream = async_stream(config, tag, model, answer_words);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn record_last_token(config: &Config, tag: Option<&str>) {
    if let Some(tag) = tag {
        let mut inner = config.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.turns.entry(tag.to_owned()).or_default().last_token = Some(Instant::now());
    }
}

fn async_stream(
    config: Config,
    tag: Option<String>,
    model: Value,
    words: Vec<String>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    tokio::spawn(async move {
        let start = json!({"type": "message_start", "message": {"id": "msg_load", "type": "message",
            "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}});
        tokio::time::sleep(config.latency).await;
        let mut chunks = vec![
            event("message_start", &start),
            event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for (index, word) in words.iter().enumerate() {
            chunks.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
            ));
            let last = index + 1 == words.len();
            if last {
                chunks.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
                chunks.push(event(
                    "message_delta",
                    &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                            "usage": {"output_tokens": words.len()}}),
                ));
                chunks.push(event("message_stop", &json!({"type": "message_stop"})));
            }
            let batch: Vec<u8> = chunks.drain(..).flat_map(|chunk| chunk.to_vec()).collect();
            if sender.send(Ok(Bytes::from(batch))).await.is_err() {
                return;
            }
            if last {
                record_last_token(&config, tag.as_deref());
            } else if !config.gap.is_zero() {
                tokio::time::sleep(config.gap).await;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_comes_from_the_newest_user_message() {
        let body = json!({"messages": [
            {"role": "user", "content": "hello q5x0"},
            {"role": "assistant", "content": "Answer to q5x0"},
            {"role": "user", "content": [{"type": "text", "text": "next q-100x1 please"}]}
        ]});
        assert_eq!(question_tag(&body).as_deref(), Some("q-100x1"));
        assert_eq!(find_tag("no tag here, quux"), None);
    }
}
