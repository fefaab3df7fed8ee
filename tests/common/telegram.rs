//! A fake Telegram Bot API for tests: an axum server on port 0 answering
//! `/bot<TOKEN>/<method>` with the published shapes (`{"ok":true,"result":…}`
//! or `{"ok":false,"error_code":…,"description":…,"parameters":{…}}`).
//! It holds queued incoming updates for `getUpdates` (long polling honouring
//! `offset` and `timeout`), keeps the messages the bot sent (so replies and
//! edits can be checked the way a user would see them), validates HTML the
//! way Telegram does (only its tags, only `&lt; &gt; &amp; &quot;`), records
//! every call with its time, and can fail the next call of a method. Inline
//! keyboards are kept on the message (an edit without one removes it), a
//! person can press a shown button (`callback_query`), and each callback
//! query can be answered once (`answerCallbackQuery`). Drafts
//! (`sendMessageDraft`, Bot API 9.3) are kept in order, or refused with the
//! 404 of an older server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[path = "telegram_wire.rs"]
mod wire;
use wire::{entities_of, error, ok, public, unix_now, visible_text};

pub const TOKEN: &str = "123456:TEST-token";
pub const BOT_ID: i64 = 777_000;
pub const BOT_USERNAME: &str = "valor_bot";

/// One recorded Bot API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<Call>,
    /// method → queued failures (error_code, description, retry_after).
    failures: HashMap<String, VecDeque<(i64, String, Option<u64>)>>,
    /// (chat, message id) → the bot's message as Telegram stores it.
    bot_messages: HashMap<(i64, i64), Value>,
    /// The registered webhook (`url`, `secret_token`), if any.
    webhook: Option<Value>,
    /// file_id → (file_path, bytes) for getFile and downloads.
    files: HashMap<String, (String, Vec<u8>)>,
    /// callback_query ids sent to the bot → answered yet?
    callbacks: HashMap<String, bool>,
    /// Answer sendMessageDraft like a Bot API server older than 9.3 (404).
    no_drafts: bool,
    /// Drafts shown, in order: (chat, draft_id, visible text).
    drafts: Vec<(i64, i64, String)>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    _server: Arc<tokio::task::JoinHandle<()>>,
}

/// Someone writing to the bot.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub username: &'static str,
}

impl Person {
    fn json(&self) -> Value {
        json!({"id": self.id, "is_bot": false, "first_name": self.username, "username": self.username})
    }
}

type Shared = (Arc<Mutex<Inner>>, Arc<Notify>);

fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/{bot}/{method}", post(handle).get(handle))
        .route("/file/{bot}/{*path}", axum::routing::get(download))
        .with_state(shared)
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let inner = Arc::new(Mutex::new(Inner { next_update_id: 1000, next_message_id: 5000, ..Inner::default() }));
        let arrived = Arc::new(Notify::new());
        let router = routes((inner.clone(), arrived.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeTelegram { url, inner, arrived, _server: Arc::new(server) }
    }

    /// A Bot API that is down (nothing listens on its address) for `delay`,
    /// then comes up there.
    pub async fn start_after(delay: Duration) -> FakeTelegram {
        let up = Self::start().await;
        let addr: std::net::SocketAddr = up.url.trim_start_matches("http://").parse().unwrap();
        up._server.abort();
        let (inner, arrived) = (up.inner.clone(), up.arrived.clone());
        let router = routes((inner.clone(), arrived.clone()));
        let server = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            axum::serve(listener, router).await.unwrap();
        });
        FakeTelegram { url: up.url.clone(), inner, arrived, _server: Arc::new(server) }
    }

    /// Queue an incoming message; returns its message id. Entities for
    /// `@mentions` and `/commands` are added the way Telegram's server does.
    pub fn send_text(&self, chat_id: i64, from: &Person, text: &str) -> i64 {
        self.queue_message(chat_id, from, text, None)
    }

    /// Queue a reply to an earlier message (e.g. one of the bot's).
    pub fn send_reply(&self, chat_id: i64, from: &Person, text: &str, reply_to: i64) -> i64 {
        self.queue_message(chat_id, from, text, Some(reply_to))
    }

    /// Queue a message carrying a file: `kind` is "document", "photo" or "voice".
    pub fn send_file(&self, chat_id: i64, from: &Person, kind: &str, name: &str, bytes: &[u8], caption: &str) -> i64 {
        let message_id = self.queue_message(chat_id, from, caption, None);
        let mut inner = self.inner.lock().unwrap();
        let file_id = format!("FILE{message_id}");
        let folder = match kind {
            "photo" => "photos",
            "voice" => "voice",
            _ => "documents",
        };
        let file_path = format!("{folder}/file_{message_id}");
        inner.files.insert(file_id.clone(), (file_path, bytes.to_vec()));
        let file = json!({"file_id": file_id, "file_unique_id": format!("U{message_id}"), "file_size": bytes.len()});
        let update = inner.updates.back_mut().unwrap();
        let message = update["message"].as_object_mut().unwrap();
        let text = message.remove("text").unwrap_or(json!(""));
        if let Some(entities) = message.remove("entities") {
            message.insert("caption_entities".into(), entities);
        }
        if !caption.is_empty() {
            message.insert("caption".into(), text);
        }
        let mut attached = file.clone();
        match kind {
            "photo" => {
                let mut small = file.clone();
                small["file_id"] = json!(format!("{file_id}-small"));
                attached["width"] = json!(1280);
                attached["height"] = json!(720);
                small["width"] = json!(90);
                small["height"] = json!(51);
                message.insert("photo".into(), json!([small, attached]));
            }
            "voice" => {
                attached["duration"] = json!(3);
                attached["mime_type"] = json!("audio/ogg");
                message.insert("voice".into(), attached);
            }
            _ => {
                attached["file_name"] = json!(name);
                attached["mime_type"] = json!("text/plain");
                message.insert("document".into(), attached);
            }
        }
        message_id
    }

    /// Queue a message in a forum topic of a supergroup.
    pub fn send_in_topic(&self, chat_id: i64, thread_id: i64, from: &Person, text: &str) -> i64 {
        let message_id = self.queue_message(chat_id, from, text, None);
        let mut inner = self.inner.lock().unwrap();
        let update = inner.updates.back_mut().unwrap();
        update["message"]["message_thread_id"] = json!(thread_id);
        update["message"]["is_topic_message"] = json!(true);
        update["message"]["chat"]["is_forum"] = json!(true);
        message_id
    }

    fn queue_message(&self, chat_id: i64, from: &Person, text: &str, reply_to: Option<i64>) -> i64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_message_id += 1;
        let message_id = inner.next_message_id;
        let chat = if chat_id > 0 {
            json!({"id": chat_id, "type": "private", "first_name": from.username, "username": from.username})
        } else {
            json!({"id": chat_id, "type": "supergroup", "title": "Team"})
        };
        let mut message = json!({"message_id": message_id, "date": unix_now(), "chat": chat, "from": from.json(),
                                 "text": text});
        let entities = entities_of(text);
        if !entities.is_empty() {
            message["entities"] = Value::Array(entities);
        }
        if let Some(replied) = reply_to {
            let original = inner.bot_messages.get(&(chat_id, replied)).cloned();
            message["reply_to_message"] = original.unwrap_or_else(|| {
                json!({"message_id": replied, "date": 0,
                "chat": message["chat"].clone(), "from": from.json(), "text": ""})
            });
        }
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        inner.updates.push_back(json!({"update_id": update_id, "message": message}));
        drop(inner);
        self.arrived.notify_waiters();
        message_id
    }

    /// A person presses an inline button under one of the bot's messages:
    /// queues a `callback_query` update like Telegram's (only a button the
    /// message really shows can be pressed). Returns the callback query id.
    pub fn press_button(&self, chat_id: i64, message_id: i64, from: &Person, data: &str) -> String {
        let inner = self.inner.lock().unwrap();
        let message = inner.bot_messages.get(&(chat_id, message_id)).cloned().expect("no such bot message");
        let shown = message["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .any(|button| button["callback_data"] == data);
        assert!(shown, "message {message_id} shows no button {data:?}: {message}");
        drop(inner);
        self.press_removed_button(chat_id, message_id, from, data)
    }

    /// A press of a button the message no longer shows: a client that had
    /// not yet seen the edit removing the keyboard sends it all the same.
    pub fn press_removed_button(&self, chat_id: i64, message_id: i64, from: &Person, data: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        let message = inner.bot_messages.get(&(chat_id, message_id)).cloned().expect("no such bot message");
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        let id = format!("{}{update_id}", from.id);
        inner.callbacks.insert(id.clone(), false);
        inner.updates.push_back(json!({"update_id": update_id, "callback_query": {
            "id": id, "from": from.json(), "message": public(&message),
            "chat_instance": format!("ci{chat_id}"), "data": data}}));
        drop(inner);
        self.arrived.notify_waiters();
        id
    }

    /// The inline keyboard a bot message shows now (button texts and data), if any.
    pub fn buttons_on(&self, chat_id: i64, message_id: i64) -> Vec<(String, String)> {
        let inner = self.inner.lock().unwrap();
        let Some(message) = inner.bot_messages.get(&(chat_id, message_id)) else { return Vec::new() };
        message["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .map(|b| {
                (b["text"].as_str().unwrap_or("").to_owned(), b["callback_data"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// Queue the same update again (Telegram redelivers after a lost ack).
    pub fn redeliver_last(&self) {
        let mut inner = self.inner.lock().unwrap();
        let mut last = inner.updates.back().cloned().expect("an update to repeat");
        last["update_id"] = json!(inner.next_update_id);
        inner.next_update_id += 1;
        inner.updates.push_back(last);
        drop(inner);
        self.arrived.notify_waiters();
    }

    /// The next call of `method` fails with this error (queued, once each).
    pub fn fail_next(&self, method: &str, code: i64, description: &str, retry_after: Option<u64>) {
        let mut inner = self.inner.lock().unwrap();
        inner.failures.entry(method.to_owned()).or_default().push_back((code, description.to_owned(), retry_after));
    }

    /// From now on answer sendMessageDraft as a server without it does (404 Not Found).
    pub fn refuse_drafts(&self) {
        self.inner.lock().unwrap().no_drafts = true;
    }

    /// Every draft streamed so far: (chat, draft_id, visible text).
    pub fn drafts(&self) -> Vec<(i64, i64, String)> {
        self.inner.lock().unwrap().drafts.clone()
    }

    /// Take the oldest queued update (as Telegram would POST it to a webhook).
    pub fn take_update(&self) -> Value {
        self.inner.lock().unwrap().updates.pop_front().expect("a queued update")
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|call| call.method == method).collect()
    }

    /// The text of every message the bot has in `chat_id` now, oldest first,
    /// as the user sees it (after edits, tags stripped).
    pub fn visible_messages(&self, chat_id: i64) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        let mut messages: Vec<Value> =
            inner.bot_messages.iter().filter(|((chat, _), _)| *chat == chat_id).map(|(_, m)| m.clone()).collect();
        messages.sort_by_key(|m| m["message_id"].as_i64());
        messages
    }

    /// Wait until `check` holds for the recorded calls (5 s), else panic with them.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if check(&self.calls()) {
                return;
            }
            if Instant::now() > deadline {
                let calls: Vec<String> = self
                    .calls()
                    .iter()
                    .filter(|c| c.method != "getUpdates")
                    .map(|c| format!("{} {}", c.method, c.params))
                    .collect();
                panic!("timed out waiting for {what}; calls: {calls:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `count` sendMessage calls succeeded in `chat_id`; returns their texts.
    pub async fn wait_for_replies(&self, chat_id: i64, count: usize) -> Vec<String> {
        self.wait_for(&format!("{count} message(s) in chat {chat_id}"), |_| {
            self.visible_messages(chat_id).len() >= count
        })
        .await;
        self.visible_messages(chat_id).iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect()
    }

    /// Reactions set on a message, in order.
    pub fn reactions_on(&self, chat_id: i64, message_id: i64) -> Vec<String> {
        self.calls_to("setMessageReaction")
            .iter()
            .filter(|c| c.params["chat_id"] == chat_id && c.params["message_id"] == message_id)
            .filter_map(|c| c.params["reaction"][0]["emoji"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn handle(
    State((inner, arrived)): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Json<Value>) {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let params = match content_type.split_once("boundary=") {
        Some((kind, boundary)) if kind.starts_with("multipart/form-data") => multipart_params(&body, boundary),
        _ => serde_json::from_slice(&body).unwrap_or_else(|_| json!({})),
    };
    let answer = answer(&inner, &arrived, &bot, &method, params).await;
    let status = answer.0["error_code"].as_u64().and_then(|c| axum::http::StatusCode::from_u16(c as u16).ok());
    (status.unwrap_or(axum::http::StatusCode::OK), answer)
}

async fn answer(inner: &Arc<Mutex<Inner>>, arrived: &Notify, bot: &str, method: &str, params: Value) -> Json<Value> {
    if bot != format!("bot{TOKEN}") {
        return error(401, "Unauthorized", None);
    }
    {
        let mut state = inner.lock().unwrap();
        state.calls.push(Call { method: method.to_owned(), params: params.clone(), at: Instant::now() });
        if let Some((code, description, retry_after)) = state.failures.get_mut(method).and_then(VecDeque::pop_front) {
            let description = match retry_after {
                Some(seconds) if code == 429 => format!("Too Many Requests: retry after {seconds}"),
                _ => description,
            };
            return error(code, &description, retry_after);
        }
    }
    match method {
        "getMe" => ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Valor", "username": BOT_USERNAME,
                             "can_join_groups": true, "can_read_all_group_messages": false,
                             "supports_inline_queries": false, "can_connect_to_business": false,
                             "has_main_web_app": false})),
        "getUpdates" => {
            if inner.lock().unwrap().webhook.is_some() {
                return error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                    None,
                );
            }
            get_updates(inner, arrived, &params).await
        }
        "sendPhoto" => {
            if params["photo"]["size"].as_u64().unwrap_or(0) == 0 {
                return error(400, "Bad Request: there is no photo in the request", None);
            }
            let Some(chat_id) = params["chat_id"].as_str().and_then(|id| id.parse::<i64>().ok()) else {
                return error(400, "Bad Request: chat not found", None);
            };
            let mut state = inner.lock().unwrap();
            state.next_message_id += 1;
            let chat_type = if chat_id > 0 { "private" } else { "supergroup" };
            let message = json!({"message_id": state.next_message_id, "date": unix_now(),
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "Valor", "username": BOT_USERNAME},
                "photo": [{"file_id": "SENT", "file_unique_id": "S", "width": 1, "height": 1,
                           "file_size": params["photo"]["size"]}]});
            // The user sees the photo as one of the bot's messages in the chat.
            let message_id = state.next_message_id;
            state.bot_messages.insert((chat_id, message_id), message.clone());
            ok(message)
        }
        "getFile" => {
            let state = inner.lock().unwrap();
            match state.files.get(params["file_id"].as_str().unwrap_or("")) {
                Some((path, bytes)) => ok(json!({"file_id": params["file_id"], "file_unique_id": "U",
                                                 "file_size": bytes.len(), "file_path": path})),
                None => error(400, "Bad Request: invalid file_id", None),
            }
        }
        "setWebhook" => {
            let url = params["url"].as_str().unwrap_or("");
            if !url.starts_with("https://") {
                return error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook", None);
            }
            inner.lock().unwrap().webhook = Some(params.clone());
            ok(json!(true))
        }
        "deleteWebhook" => {
            inner.lock().unwrap().webhook = None;
            ok(json!(true))
        }
        "sendMessage" => send_message(inner, &params),
        "answerCallbackQuery" => {
            let mut state = inner.lock().unwrap();
            let id = params["callback_query_id"].as_str().unwrap_or("");
            match state.callbacks.get_mut(id) {
                Some(answered) if !*answered => {
                    *answered = true;
                    ok(json!(true))
                }
                _ => error(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                    None,
                ),
            }
        }
        "editMessageText" => edit_message_text(inner, &params),
        "sendMessageDraft" if !inner.lock().unwrap().no_drafts => send_message_draft(inner, &params),
        "sendChatAction" => {
            if params["chat_id"].is_i64() && params["action"] == "typing" {
                ok(json!(true))
            } else {
                error(400, "Bad Request: wrong parameter action in request", None)
            }
        }
        "setMyCommands" => {
            let valid = params["commands"].as_array().is_some_and(|list| {
                list.iter().all(|c| {
                    let name = c["command"].as_str().unwrap_or("");
                    (1..=32).contains(&name.len())
                        && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                        && c["description"].as_str().is_some_and(|d| (1..=256).contains(&d.chars().count()))
                })
            });
            if valid { ok(json!(true)) } else { error(400, "Bad Request: BOT_COMMAND_INVALID", None) }
        }
        "setMessageReaction" => {
            let allowed = ["👍", "👎", "❤", "🔥", "👀", "🤔", "🎉", "👌", "🙏", "✍", "🫡", "😢"];
            let emoji = params["reaction"][0]["emoji"].as_str().unwrap_or("");
            if params["reaction"][0]["type"] == "emoji" && allowed.contains(&emoji) {
                ok(json!(true))
            } else {
                error(400, "Bad Request: REACTION_INVALID", None)
            }
        }
        _ => error(404, "Not Found", None),
    }
}

async fn download(
    State((inner, _)): State<Shared>,
    Path((bot, path)): Path<(String, String)>,
) -> (axum::http::StatusCode, Vec<u8>) {
    let state = inner.lock().unwrap();
    let found = state.files.values().find(|(file_path, _)| *file_path == path);
    match (bot == format!("bot{TOKEN}"), found) {
        (true, Some((_, bytes))) => (axum::http::StatusCode::OK, bytes.clone()),
        _ => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
    }
}

async fn get_updates(inner: &Arc<Mutex<Inner>>, arrived: &Notify, params: &Value) -> Json<Value> {
    let offset = params["offset"].as_i64();
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = arrived.notified();
        {
            let mut state = inner.lock().unwrap();
            // An offset confirms (forgets) every update below it.
            if let Some(offset) = offset {
                state.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            }
            if !state.updates.is_empty() {
                return ok(Value::Array(state.updates.iter().take(100).cloned().collect()));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

/// Bot API 9.3: an ephemeral draft in a private chat (the text may be empty:
/// a "Thinking…" placeholder); the bot then sends the message itself.
fn send_message_draft(inner: &Arc<Mutex<Inner>>, params: &Value) -> Json<Value> {
    let Some(chat_id) = params["chat_id"].as_i64() else { return error(400, "Bad Request: chat not found", None) };
    if chat_id < 0 {
        return error(400, "Bad Request: drafts can be sent only to private chats", None);
    }
    let draft_id = params["draft_id"].as_i64().unwrap_or(0);
    if draft_id == 0 {
        return error(400, "Bad Request: draft_id must be non-zero", None);
    }
    let visible = if params["text"].as_str().unwrap_or("").is_empty() {
        String::new()
    } else {
        match visible_text(params) {
            Ok(visible) => visible,
            Err(answer) => return answer,
        }
    };
    inner.lock().unwrap().drafts.push((chat_id, draft_id, visible));
    ok(json!(true))
}

fn send_message(inner: &Arc<Mutex<Inner>>, params: &Value) -> Json<Value> {
    let Some(chat_id) = params["chat_id"].as_i64() else { return error(400, "Bad Request: chat not found", None) };
    let visible = match visible_text(params) {
        Ok(visible) => visible,
        Err(answer) => return answer,
    };
    if let Err(answer) = check_markup(&params["reply_markup"]) {
        return answer;
    }
    let mut state = inner.lock().unwrap();
    state.next_message_id += 1;
    let chat_type = if chat_id > 0 { "private" } else { "supergroup" };
    let mut message = json!({"message_id": state.next_message_id, "date": unix_now(),
        "chat": {"id": chat_id, "type": chat_type},
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Valor", "username": BOT_USERNAME},
        "text": visible, "html": params["text"].clone()});
    if let Some(thread) = params["message_thread_id"].as_i64() {
        message["message_thread_id"] = json!(thread);
        message["is_topic_message"] = json!(true);
    }
    if let Some(reply_to) = params["reply_parameters"]["message_id"].as_i64() {
        message["reply_to_message"] = json!({"message_id": reply_to, "date": 0, "chat": message["chat"].clone()});
    }
    if !params["reply_markup"].is_null() {
        message["reply_markup"] = params["reply_markup"].clone();
    }
    let message_id = state.next_message_id;
    state.bot_messages.insert((chat_id, message_id), message.clone());
    ok(public(&message))
}

/// An inline keyboard as Telegram checks it: rows of buttons, each with a
/// text and 1–64 bytes of `callback_data` (other markups pass unchecked).
fn check_markup(markup: &Value) -> Result<(), Json<Value>> {
    let Some(rows) = markup.get("inline_keyboard") else { return Ok(()) };
    let buttons: Vec<Value> = match rows.as_array() {
        Some(rows) if rows.iter().all(Value::is_array) => {
            rows.iter().flat_map(|row| row.as_array().cloned().unwrap_or_default()).collect()
        }
        _ => return Err(error(400, "Bad Request: field \"inline_keyboard\" must be an Array of Array", None)),
    };
    for button in buttons {
        if button["text"].as_str().is_none_or(str::is_empty) {
            return Err(error(400, "Bad Request: text buttons are unallowed in the inline keyboard", None));
        }
        let data = button["callback_data"].as_str().unwrap_or("");
        if data.is_empty() || data.len() > 64 {
            return Err(error(400, "Bad Request: BUTTON_DATA_INVALID", None));
        }
    }
    Ok(())
}

fn edit_message_text(inner: &Arc<Mutex<Inner>>, params: &Value) -> Json<Value> {
    let (Some(chat_id), Some(message_id)) = (params["chat_id"].as_i64(), params["message_id"].as_i64()) else {
        return error(400, "Bad Request: message identifier is not specified", None);
    };
    let visible = match visible_text(params) {
        Ok(visible) => visible,
        Err(answer) => return answer,
    };
    let mut state = inner.lock().unwrap();
    let Some(message) = state.bot_messages.get_mut(&(chat_id, message_id)) else {
        return error(400, "Bad Request: message to edit not found", None);
    };
    // Like Telegram: "not modified" only when the text and the keyboard stay the same.
    let markup = params.get("reply_markup").cloned().unwrap_or(Value::Null);
    let same_markup = message.get("reply_markup").cloned().unwrap_or(Value::Null) == markup;
    if message["text"] == visible.as_str() && message["html"] == params["text"] && same_markup {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            None,
        );
    }
    message["text"] = json!(visible);
    message["html"] = params["text"].clone();
    message["edit_date"] = json!(unix_now());
    // Like Telegram: an edit without `reply_markup` removes the inline keyboard.
    match params.get("reply_markup") {
        Some(markup) => message["reply_markup"] = markup.clone(),
        None => {
            if let Some(map) = message.as_object_mut() {
                map.remove("reply_markup");
            }
        }
    }
    ok(public(message))
}

/// A multipart/form-data body → params: text fields as strings, file fields
/// as `{"filename", "size"}` (what tests assert on: the uploaded bytes' size).
fn multipart_params(body: &[u8], boundary: &str) -> Value {
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let text = body.iter().map(|&b| b as char).collect::<String>(); // byte-preserving
    let mut params = serde_json::Map::new();
    for part in text.split(&delimiter).skip(1) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else { continue };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let field = |key: &str| {
            head.split(&format!("{key}=\"")).nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned)
        };
        let Some(name) = field("name") else { continue };
        let value = match field("filename") {
            Some(filename) => json!({"filename": filename, "size": content.chars().count()}),
            None => json!(content),
        };
        params.insert(name, value);
    }
    Value::Object(params)
}
