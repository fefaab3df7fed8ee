//! The fake Telegram Bot API of the load harness: `/bot<TOKEN>/<method>` with
//! the published answer shapes, `getUpdates` long polling (offset
//! acknowledges, `timeout` holds, at most `limit` (100) updates per answer),
//! `sendMessage` / `editMessageText` with Telegram's HTML check,
//! `sendChatAction`, `setMessageReaction`.
//!
//! It enforces Telegram's sending limits the way the real server does (a
//! 429 with `retry_after`) and counts every violation: more than one message
//! a second to a chat, more than 20 a minute to a group, more than 30 a
//! second overall. Edits count as messages. For every accepted message it
//! also notes the earliest moment the limits would have allowed it, so the
//! harness can tell deliberate pacing from valor's own delay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

#[allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]
#[path = "../../tests/common/telegram_wire.rs"]
mod wire;

pub const TOKEN: &str = "4242:LOAD-harness-token";
const BOT_ID: i64 = 4242;
pub const BOT_USERNAME: &str = "valor_load_bot";

const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const GROUP_WINDOW: Duration = Duration::from_secs(60);
const GROUP_MAX: usize = 20;
const GLOBAL_WINDOW: Duration = Duration::from_secs(1);
const GLOBAL_MAX: usize = 30;
const MAX_UPDATES_PER_ANSWER: usize = 100;

/// One reply (a sendMessage answering a user's message).
#[derive(Debug, Clone)]
pub struct Reply {
    pub received: Instant,
    /// The earliest moment Telegram's limits allowed this message.
    pub allowed_from: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Violations {
    pub per_chat: u64,
    pub per_group: u64,
    pub global: u64,
}

struct Inner {
    /// Not yet acknowledged updates, oldest first.
    pending: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    /// update_id → first time a getUpdates answer carried it.
    handed_out: HashMap<i64, Instant>,
    /// (chat, user message id) → question tag.
    questions: HashMap<(i64, i64), String>,
    /// question tag → its update id.
    update_of: HashMap<String, i64>,
    /// question tag → replies (sendMessage answering it).
    replies: HashMap<String, Vec<Reply>>,
    /// question tag → who waits for the first reply.
    waiters: HashMap<String, oneshot::Sender<()>>,
    last_to_chat: HashMap<i64, Instant>,
    group_sends: HashMap<i64, VecDeque<Instant>>,
    global_sends: VecDeque<Instant>,
    violations: Violations,
    calls: HashMap<String, u64>,
    rejected_html: u64,
    /// When the fake started: "allowed from" for a message no limit holds.
    epoch: Instant,
}

impl Inner {
    fn new(epoch: Instant) -> Inner {
        Inner {
            pending: VecDeque::new(),
            next_update_id: 1,
            next_message_id: 1_000_000,
            handed_out: HashMap::new(),
            questions: HashMap::new(),
            update_of: HashMap::new(),
            replies: HashMap::new(),
            waiters: HashMap::new(),
            last_to_chat: HashMap::new(),
            group_sends: HashMap::new(),
            global_sends: VecDeque::new(),
            violations: Violations::default(),
            calls: HashMap::new(),
            rejected_html: 0,
            epoch,
        }
    }
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

/// The state, the "an update arrived" signal, and the network round trip to emulate.
type Shared = (Arc<Mutex<Inner>>, Arc<Notify>, Duration);

impl FakeTelegram {
    /// `round_trip`: added before every answer, like the network to api.telegram.org.
    pub async fn start(round_trip: Duration) -> anyhow::Result<FakeTelegram> {
        let inner = Arc::new(Mutex::new(Inner::new(Instant::now())));
        let arrived = Arc::new(Notify::new());
        let router = Router::new().route("/{bot}/{method}", post(handle)).with_state((
            inner.clone(),
            arrived.clone(),
            round_trip,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(FakeTelegram { url, inner, arrived })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A user writes `text` (which carries `tag`) to `chat`; resolves when the first reply arrives.
    pub fn user_says(&self, chat_id: i64, user_id: i64, text: &str, tag: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        {
            let mut inner = self.lock();
            let update_id = inner.next_update_id;
            inner.next_update_id += 1;
            let message_id = inner.next_message_id;
            inner.next_message_id += 1;
            let chat = if chat_id < 0 {
                json!({"id": chat_id, "type": "supergroup", "title": format!("load group {chat_id}")})
            } else {
                json!({"id": chat_id, "type": "private", "first_name": format!("user{user_id}")})
            };
            let update = json!({"update_id": update_id, "message": {
                "message_id": message_id, "date": wire::unix_now(), "chat": chat, "text": text,
                "from": {"id": user_id, "is_bot": false, "first_name": format!("user{user_id}"),
                         "username": format!("user{user_id}")}
            }});
            inner.pending.push_back(update);
            inner.questions.insert((chat_id, message_id), tag.to_owned());
            inner.update_of.insert(tag.to_owned(), update_id);
            inner.waiters.insert(tag.to_owned(), sender);
        }
        self.arrived.notify_waiters();
        receiver
    }

    /// When the update carrying `tag` was first handed to valor.
    pub fn handed_out(&self, tag: &str) -> Option<Instant> {
        let inner = self.lock();
        inner.update_of.get(tag).and_then(|id| inner.handed_out.get(id)).copied()
    }

    pub fn replies(&self) -> HashMap<String, Vec<Reply>> {
        self.lock().replies.clone()
    }

    pub fn violations(&self) -> Violations {
        self.lock().violations
    }

    pub fn calls(&self) -> Vec<(String, u64)> {
        let mut calls: Vec<_> = self.lock().calls.iter().map(|(k, v)| (k.clone(), *v)).collect();
        calls.sort();
        calls
    }

    pub fn rejected_html(&self) -> u64 {
        self.lock().rejected_html
    }
}

async fn handle(
    State((inner, arrived, round_trip)): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Json<Value> {
    if bot != format!("bot{TOKEN}") {
        return wire::error(401, "Unauthorized", None);
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(params) => params,
            Err(_) => return wire::error(400, "Bad Request: invalid JSON", None),
        }
    };
    *inner.lock().unwrap_or_else(PoisonError::into_inner).calls.entry(method.clone()).or_default() += 1;
    if !round_trip.is_zero() {
        // Half on the way in (the server sees the request later), half on the way back.
        tokio::time::sleep(round_trip / 2).await;
    }
    let answer = answer(&inner, &arrived, &method, &params).await;
    if !round_trip.is_zero() {
        tokio::time::sleep(round_trip / 2).await;
    }
    if method == "getUpdates" {
        // Handed out = the moment the answer leaves for valor.
        let now = Instant::now();
        let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
        for id in answer.0["result"].as_array().into_iter().flatten().filter_map(|update| update["update_id"].as_i64())
        {
            inner.handed_out.entry(id).or_insert(now);
        }
    }
    answer
}

async fn answer(inner: &Mutex<Inner>, arrived: &Notify, method: &str, params: &Value) -> Json<Value> {
    match method {
        "getMe" => wire::ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "valor", "username": BOT_USERNAME})),
        "deleteWebhook" | "setMyCommands" | "setMessageReaction" | "sendChatAction" => wire::ok(json!(true)),
        "getUpdates" => get_updates(inner, arrived, params).await,
        "sendMessage" | "editMessageText" => send(inner, method, params),
        _ => wire::error(404, "Not Found: method not found", None),
    }
}

async fn get_updates(inner: &Mutex<Inner>, arrived: &Notify, params: &Value) -> Json<Value> {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let limit = params["limit"].as_u64().map_or(MAX_UPDATES_PER_ANSWER, |l| (l as usize).clamp(1, 100));
    let deadline = Instant::now() + timeout;
    loop {
        let notified = arrived.notified();
        {
            let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
            while inner.pending.front().is_some_and(|update| update["update_id"].as_i64().unwrap_or(0) < offset) {
                inner.pending.pop_front();
            }
            if !inner.pending.is_empty() {
                let batch: Vec<Value> = inner.pending.iter().take(limit).cloned().collect();
                return wire::ok(Value::Array(batch));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return wire::ok(json!([]));
        }
    }
}

fn send(inner: &Mutex<Inner>, method: &str, params: &Value) -> Json<Value> {
    let Some(chat_id) = params["chat_id"].as_i64() else {
        return wire::error(400, "Bad Request: chat_id is empty", None);
    };
    if let Err(answer) = wire::visible_text(params) {
        inner.lock().unwrap_or_else(PoisonError::into_inner).rejected_html += 1;
        return answer;
    }
    let now = Instant::now();
    let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
    let inner = &mut *inner;
    // Telegram's limits, over the messages it accepted before this one. The
    // queues hold the newest GLOBAL_MAX (per group GROUP_MAX) accepted sends:
    // a full queue whose oldest entry is inside the window means one too many.
    // With no earlier message to hold it, a message is allowed at once: from the start of time.
    let mut allowed_from = inner.last_to_chat.get(&chat_id).map_or(inner.epoch, |&at| at + PER_CHAT_GAP);
    let mut broken = None;
    if allowed_from > now {
        inner.violations.per_chat += 1;
        broken = Some(allowed_from - now);
    }
    if inner.global_sends.len() >= GLOBAL_MAX {
        let from = inner.global_sends[0] + GLOBAL_WINDOW;
        allowed_from = allowed_from.max(from);
        if from > now {
            inner.violations.global += 1;
            broken = Some(from - now);
        }
    }
    let group = (chat_id < 0).then(|| inner.group_sends.entry(chat_id).or_default());
    if let Some(sends) = group.filter(|sends| sends.len() >= GROUP_MAX) {
        let from = sends[0] + GROUP_WINDOW;
        allowed_from = allowed_from.max(from);
        if from > now {
            inner.violations.per_group += 1;
            broken = Some(from - now);
        }
    }
    if let Some(wait) = broken {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        return wire::error(429, &format!("Too Many Requests: retry after {seconds}"), Some(seconds));
    }
    inner.last_to_chat.insert(chat_id, now);
    push_bounded(&mut inner.global_sends, now, GLOBAL_MAX);
    if chat_id < 0 {
        push_bounded(inner.group_sends.entry(chat_id).or_default(), now, GROUP_MAX);
    }
    if method == "editMessageText" {
        return wire::ok(
            json!({"message_id": params["message_id"], "chat": {"id": chat_id}, "date": wire::unix_now()}),
        );
    }
    let message_id = inner.next_message_id;
    inner.next_message_id += 1;
    let reply_to = params["reply_parameters"]["message_id"].as_i64();
    if let Some(tag) = reply_to.and_then(|id| inner.questions.get(&(chat_id, id))).cloned() {
        inner.replies.entry(tag.clone()).or_default().push(Reply { received: now, allowed_from });
        if let Some(waiter) = inner.waiters.remove(&tag) {
            let _ = waiter.send(());
        }
    }
    wire::ok(
        json!({"message_id": message_id, "chat": {"id": chat_id}, "date": wire::unix_now(), "text": params["text"]}),
    )
}

fn push_bounded(queue: &mut VecDeque<Instant>, at: Instant, max: usize) {
    queue.push_back(at);
    while queue.len() > max {
        queue.pop_front();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn message(chat_id: i64) -> Value {
        json!({"chat_id": chat_id, "text": "hi"})
    }

    fn fake() -> Mutex<Inner> {
        Mutex::new(Inner::new(Instant::now()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_message_to_a_chat_within_a_second_is_refused_and_counted() {
        let inner = fake();
        assert_eq!(send(&inner, "sendMessage", &message(5)).0["ok"], true);
        let refused = send(&inner, "editMessageText", &json!({"chat_id": 5, "message_id": 100, "text": "x"}));
        assert_eq!(refused.0["error_code"], 429);
        assert_eq!(refused.0["parameters"]["retry_after"], 1);
        assert_eq!(send(&inner, "sendMessage", &message(6)).0["ok"], true, "other chats are not held");
        tokio::time::advance(PER_CHAT_GAP).await;
        assert_eq!(send(&inner, "sendMessage", &message(5)).0["ok"], true);
        let violations = inner.lock().unwrap().violations;
        assert_eq!((violations.per_chat, violations.per_group, violations.global), (1, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_thirty_first_message_in_a_second_is_refused_and_counted() {
        let inner = fake();
        for chat in 0..30 {
            assert_eq!(send(&inner, "sendMessage", &message(chat)).0["ok"], true);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert_eq!(send(&inner, "sendMessage", &message(99)).0["error_code"], 429);
        assert_eq!(inner.lock().unwrap().violations.global, 1);
        tokio::time::advance(Duration::from_millis(710)).await; // the first send is now 1 s old
        assert_eq!(send(&inner, "sendMessage", &message(99)).0["ok"], true);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_twenty_messages_a_minute() {
        let inner = fake();
        for _ in 0..20 {
            assert_eq!(send(&inner, "sendMessage", &message(-100)).0["ok"], true);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(send(&inner, "sendMessage", &message(-100)).0["error_code"], 429);
        assert_eq!(inner.lock().unwrap().violations.per_group, 1);
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(send(&inner, "sendMessage", &message(-100)).0["ok"], true);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_is_matched_to_its_question_with_the_moment_the_limits_allowed_it() {
        let inner = fake();
        {
            let mut state = inner.lock().unwrap();
            state.questions.insert((5, 42), "q5x0".into());
        }
        let start = Instant::now();
        assert_eq!(send(&inner, "sendMessage", &message(5)).0["ok"], true);
        tokio::time::advance(Duration::from_millis(1500)).await;
        let reply = json!({"chat_id": 5, "text": "answer", "reply_parameters": {"message_id": 42}});
        assert_eq!(send(&inner, "sendMessage", &reply).0["ok"], true);
        let replies = inner.lock().unwrap().replies.clone();
        let recorded = &replies["q5x0"];
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].received - start, Duration::from_millis(1500));
        assert_eq!(recorded[0].allowed_from - start, PER_CHAT_GAP, "the chat's previous message held it until 1 s");
        let bad_html = json!({"chat_id": 7, "text": "<b>open", "parse_mode": "HTML"});
        assert_eq!(send(&inner, "sendMessage", &bad_html).0["error_code"], 400);
        assert_eq!(inner.lock().unwrap().rejected_html, 1);
    }
}
