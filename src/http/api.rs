//! `/api/*` handlers: send a message (JSON or SSE), list conversations,
//! messages and turns.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use super::HttpState;
use super::error::ApiError;
use crate::agent::{AgentEvent, ToolCallReport, TurnFailure, TurnRequest};
use crate::markdown;
use crate::storage::{ConversationSummary, StoredMessage, Turn};

/// `Json` whose rejections are [`ApiError`]s (JSON bodies with a clear message).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Continue a conversation: its id, or its exact title (a new conversation
    /// with this title when none has it).
    #[serde(default)]
    pub conversation: Option<String>,
    /// Start a new conversation with this title, even if another one has it.
    /// Not together with `conversation`. Without either, a new conversation
    /// is titled from the text: leaving both out never joins an old one.
    #[serde(default)]
    pub title: Option<String>,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCallView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    pub output: String,
    pub is_error: bool,
}

impl From<ToolCallReport> for ToolCallView {
    fn from(call: ToolCallReport) -> Self {
        Self { id: call.id, name: call.name, input: call.input, output: call.output, is_error: call.is_error }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnInfo {
    pub id: Option<String>,
    pub intent: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageReply {
    pub conversation: String,
    pub reply: String,
    pub tool_calls: Vec<ToolCallView>,
    pub turn: TurnInfo,
    /// The turn was stopped (`POST /api/turns/{id}/cancel`) before it ended.
    pub stopped: bool,
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/event-stream"))
}

fn default_title(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("New conversation").trim();
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// Send a message; answers JSON, or SSE (`Accept: text/event-stream`) ending in a `done` event.
#[utoipa::path(post, path = "/api/messages", tag = "chat", request_body = SendMessage,
    responses(
        (status = 200, description = "The reply (JSON), or the turn's events as SSE", body = MessageReply),
        (status = 502, description = "The model provider failed (`error.code` model_failed); the body also has `reply`, `conversation` and `turn`"),
        (status = 503, description = "No model provider is configured (`no_model`), or it cannot be reached, timed out or is overloaded (`model_unavailable`: try again later)"),
        (status = 500, description = "A tool or the database failed the turn (`tool_failed`, `storage_failed`)"),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Missing or invalid bearer token"),
        (status = 413, description = "Body or message too large"),
    ),
    security(("bearer" = [])))]
pub async fn post_message(
    State(state): State<HttpState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<Response, ApiError> {
    let text = body.text.trim();
    if text.is_empty() {
        return Err(ApiError::BadRequest("`text` must not be empty".into()));
    }
    let limit = state.settings.max_message_chars;
    if text.chars().count() > limit {
        return Err(ApiError::PayloadTooLarge(format!("the message is longer than {limit} characters")));
    }
    let streamed = wants_event_stream(&headers);
    let channel = if streamed { "web" } else { "api" };
    let named =
        |field: &Option<String>| field.as_deref().map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned);
    let conversation = match (named(&body.conversation), named(&body.title)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `conversation` (continue one) or `title` (start a new one), not both".into(),
            ));
        }
        (Some(name), None) => state.agent.open_conversation(&name, channel).await?,
        (None, title) => {
            let title = title.unwrap_or_else(|| default_title(text));
            state.agent.new_conversation(&title, channel).await?
        }
    };
    // Every API caller either holds a configured token or sits on this machine (loopback-only mode).
    let request = TurnRequest {
        conversation,
        text: text.to_owned(),
        is_admin: true,
        user: None,
        images: Vec::new(),
        once_key: None,
        cancel: tokio_util::sync::CancellationToken::new(),
    };
    let receiver = state.agent.spawn_turn(request);
    if streamed {
        return Ok(Sse::new(sse_events(receiver))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }
    let mut events = ReceiverStream::new(receiver);
    let mut turn = TurnInfo { id: None, intent: None, model: None };
    let mut failed = None;
    while let Some(event) = events.next().await {
        match event {
            AgentEvent::TurnStarted { turn_id, intent, model, .. } => {
                turn = TurnInfo { id: Some(turn_id), intent: Some(intent), model: Some(model) };
            }
            AgentEvent::Error { message, failure } => failed = Some((failure, message)),
            AgentEvent::Done { conversation, reply, tool_calls, stopped } => {
                let tool_calls = tool_calls.into_iter().map(ToolCallView::from).collect();
                let answer = MessageReply { conversation, reply, tool_calls, turn, stopped };
                return Ok(match failed {
                    None => Json(answer).into_response(),
                    Some((failure, message)) => failed_turn(failure, message, answer),
                });
            }
            AgentEvent::TextDelta { .. }
            | AgentEvent::ToolStarted { .. }
            | AgentEvent::ToolFinished { .. }
            | AgentEvent::Waiting { .. } => {}
        }
    }
    Err(ApiError::Internal("the turn ended without a done event".into()))
}

/// A turn that ended early: the status says whose fault it was, the body is
/// the usual error shape plus what the turn did produce (its `reply` holds
/// any text streamed before the failure and the explanation).
fn failed_turn(failure: TurnFailure, message: String, answer: MessageReply) -> Response {
    let (status, code) = match failure {
        TurnFailure::NoModel => (StatusCode::SERVICE_UNAVAILABLE, "no_model"),
        TurnFailure::Model => (StatusCode::BAD_GATEWAY, "model_failed"),
        TurnFailure::ModelUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable"),
        TurnFailure::Tool => (StatusCode::INTERNAL_SERVER_ERROR, "tool_failed"),
        TurnFailure::Storage => (StatusCode::INTERNAL_SERVER_ERROR, "storage_failed"),
        TurnFailure::Interrupted => (StatusCode::SERVICE_UNAVAILABLE, "interrupted"),
        // A stopped turn sends no `error` event, so it is not failed here; if it were, it answered as asked.
        TurnFailure::Cancelled => (StatusCode::OK, "cancelled"),
    };
    let mut body = serde_json::to_value(&answer).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = body.as_object_mut() {
        map.insert("error".into(), serde_json::json!({"code": code, "message": message}));
    }
    (status, Json(body)).into_response()
}

/// The SSE event with the current text run rendered as HTML (not an `AgentEvent`: the web's own).
pub const TEXT_HTML_EVENT: &str = "text_html";

/// The `done` event's data on the wire: the agent's, plus the whole reply rendered (`html`).
pub fn done_data(event: &AgentEvent, reply: &str) -> serde_json::Value {
    let mut data = event.data();
    if let Some(map) = data.as_object_mut() {
        map.insert("html".into(), markdown::to_html(reply).into());
    }
    data
}

/// How often a streaming answer's rendered HTML is sent at most.
const HTML_EVERY: Duration = Duration::from_millis(100);

/// A turn's events as SSE, plus `text_html` events: the current text run
/// (the text since the last tool call) rendered by `markdown::to_html`, at
/// most every [`HTML_EVERY`] and always before a tool call and `done`
/// (which carries the whole reply's `html`).
fn sse_events(receiver: tokio::sync::mpsc::Receiver<AgentEvent>) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = TurnStream { receiver, run: String::new(), dirty: false, sent_at: None, queue: VecDeque::new() };
    futures::stream::unfold(state, |mut state| async move { state.next().await.map(|event| (Ok(event), state)) })
}

struct TurnStream {
    receiver: tokio::sync::mpsc::Receiver<AgentEvent>,
    /// The current text run's Markdown.
    run: String,
    /// Text arrived since the last `text_html`.
    dirty: bool,
    sent_at: Option<tokio::time::Instant>,
    queue: VecDeque<Event>,
}

impl TurnStream {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let due = self.sent_at.map(|at| at + HTML_EVERY);
            let received = match due.filter(|_| self.dirty) {
                Some(due) => match tokio::time::timeout_at(due, self.receiver.recv()).await {
                    Ok(received) => received,
                    Err(_) => {
                        self.flush_html();
                        continue;
                    }
                },
                None => self.receiver.recv().await,
            };
            let event = received?;
            match &event {
                AgentEvent::TextDelta { text } => {
                    self.run.push_str(text);
                    self.dirty = true;
                    self.queue.push_back(plain_event(&event));
                    if self.sent_at.is_none_or(|at| at.elapsed() >= HTML_EVERY) {
                        self.flush_html();
                    }
                }
                AgentEvent::ToolStarted { .. } => {
                    self.flush_html();
                    self.run.clear();
                    self.queue.push_back(plain_event(&event));
                }
                AgentEvent::Done { reply, .. } => {
                    self.flush_html();
                    let data = done_data(&event, reply);
                    self.queue.push_back(Event::default().event(event.name()).data(data.to_string()));
                }
                _ => self.queue.push_back(plain_event(&event)),
            }
        }
    }

    fn flush_html(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.sent_at = Some(tokio::time::Instant::now());
        let data = serde_json::json!({"html": markdown::to_html(&self.run)});
        self.queue.push_back(Event::default().event(TEXT_HTML_EVENT).data(data.to_string()));
    }
}

fn plain_event(event: &AgentEvent) -> Event {
    Event::default().event(event.name()).data(event.data().to_string())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub after: Option<i64>,
    /// Conversations only: search titles and messages.
    pub q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    pub channel: String,
    pub created_at: String,
    pub updated_at: String,
    pub message_count: i64,
    /// Searches only: the best matching message, matches marked `[like this]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl From<ConversationSummary> for ConversationView {
    fn from(summary: ConversationSummary) -> Self {
        let c = summary.conversation;
        Self {
            id: c.id,
            title: c.title,
            channel: c.channel,
            created_at: rfc3339(c.created_at_ms),
            updated_at: rfc3339(c.updated_at_ms),
            message_count: summary.message_count,
            snippet: None,
        }
    }
}

/// Conversations, newest activity first; with `q`, those whose title or messages match (titles first).
#[utoipa::path(get, path = "/api/conversations", tag = "chat",
    params(("limit" = Option<u32>, Query, description = "At most this many (default 50, max 200)"),
           ("q" = Option<String>, Query, description = "Search titles (substring) and messages (full text)")),
    responses((status = 200, body = ConversationList)), security(("bearer" = [])))]
pub async fn list_conversations(
    State(state): State<HttpState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConversationList>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let store = state.agent.store();
    let conversations = match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => store.list_conversations(limit).await?.into_iter().map(ConversationView::from).collect(),
        Some(q) => store
            .search_conversations(q, limit)
            .await?
            .into_iter()
            .map(|(summary, snippet)| ConversationView { snippet, ..ConversationView::from(summary) })
            .collect(),
    };
    Ok(Json(ConversationList { conversations }))
}

/// Longest conversation title accepted.
const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    /// The new title (1–200 characters).
    pub title: String,
}

/// Rename a conversation.
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "chat", request_body = RenameConversation,
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationView), (status = 400, description = "Empty or too long title"),
              (status = 404, description = "No such conversation")),
    security(("bearer" = [])))]
pub async fn rename_conversation(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameConversation>,
) -> Result<Json<ConversationView>, ApiError> {
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::BadRequest(format!("`title` must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    let store = state.agent.store();
    store.rename_conversation(&id, title).await?;
    Ok(Json(store.conversation_summary(&id).await?.into()))
}

/// Delete a conversation with its messages and turns (its jobs stay). A
/// Telegram chat's conversation is refused: `/reset` in the chat starts a new one.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "chat",
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such conversation"),
              (status = 409, description = "A Telegram chat's conversation")),
    security(("bearer" = [])))]
pub async fn delete_conversation(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = state.agent.store();
    let conversation = store.get_conversation(&id).await?;
    if conversation.channel == "telegram" {
        return Err(ApiError::Conflict(
            "this is a Telegram chat's conversation; `/reset` in the chat starts a new one".into(),
        ));
    }
    store.delete_conversation(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: i64,
    /// `user`, `assistant`, `tool` or `system`.
    pub role: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub turn_id: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub conversation: String,
    pub messages: Vec<MessageView>,
    /// The conversation's message revision when read: `after` for `/events`.
    pub revision: i64,
}

impl From<StoredMessage> for MessageView {
    fn from(m: StoredMessage) -> Self {
        Self {
            id: m.id,
            role: m.role.as_str().to_owned(),
            text: m.text,
            content: with_html(m.content),
            turn_id: m.turn_id,
            created_at: rfc3339(m.created_at_ms),
        }
    }
}

/// `content` with each text block's Markdown rendered as its `html` (the
/// web chat shows that; one renderer, `markdown::to_html`).
fn with_html(mut content: serde_json::Value) -> serde_json::Value {
    let blocks = match &mut content {
        serde_json::Value::Array(blocks) => Some(blocks),
        serde_json::Value::Object(map) => map.get_mut("content").and_then(serde_json::Value::as_array_mut),
        _ => None,
    };
    for block in blocks.into_iter().flatten() {
        let Some(map) = block.as_object_mut() else { continue };
        if map.get("type").and_then(serde_json::Value::as_str) != Some("text") {
            continue;
        }
        if let Some(text) = map.get("text").and_then(serde_json::Value::as_str) {
            let html = markdown::to_html(text);
            map.insert("html".into(), html.into());
        }
    }
    content
}

/// A conversation's messages, oldest first (`after` = a message id to page from).
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "chat",
    params(("id" = String, Path), ("after" = Option<i64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = MessageList), (status = 404, description = "No such conversation")),
    security(("bearer" = [])))]
pub async fn list_messages(
    State(state): State<HttpState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessageList>, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let conversation = state.agent.store().get_conversation(&id).await?;
    let limit = query.limit.unwrap_or(500).clamp(1, 1000);
    // Read first: a change made while the list is read comes again on `/events`, none is missed.
    let revision = state.agent.store().message_revision(&conversation.id).await?;
    let messages = state.agent.store().list_messages(&conversation.id, query.after.unwrap_or(0), limit).await?;
    Ok(Json(MessageList {
        conversation: conversation.id,
        messages: messages.into_iter().map(MessageView::from).collect(),
        revision,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    pub id: String,
    pub intent: String,
    pub intent_source: String,
    pub tier: String,
    pub provider: String,
    pub model: String,
    pub status: String,
    pub steps: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Estimated history tokens sent, and tokens left out by compaction.
    pub context_tokens: u64,
    pub tokens_saved: u64,
    /// Tokens the model spent summarising the conversation's older turns for this one.
    pub summary_tokens: u64,
}

impl From<Turn> for TurnView {
    fn from(t: Turn) -> Self {
        Self {
            id: t.id,
            intent: t.intent,
            intent_source: t.intent_source,
            tier: t.tier,
            provider: t.provider,
            model: t.model,
            status: t.status.as_str().to_owned(),
            steps: t.steps,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            error: t.error,
            started_at: rfc3339(t.started_at_ms),
            finished_at: t.finished_at_ms.map(rfc3339),
            context_tokens: t.context_tokens,
            tokens_saved: t.tokens_saved,
            summary_tokens: t.summary_tokens,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnList {
    pub conversation: String,
    pub turns: Vec<TurnView>,
}

/// A conversation's turns with their intent label and routed model, oldest first.
#[utoipa::path(get, path = "/api/conversations/{id}/turns", tag = "chat",
    params(("id" = String, Path)),
    responses((status = 200, body = TurnList), (status = 404, description = "No such conversation")),
    security(("bearer" = [])))]
pub async fn list_turns(
    State(state): State<HttpState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<TurnList>, ApiError> {
    let Path(id) = path?;
    let conversation = state.agent.store().get_conversation(&id).await?;
    let turns = state.agent.store().list_turns(&conversation.id).await?;
    Ok(Json(TurnList { conversation: conversation.id, turns: turns.into_iter().map(TurnView::from).collect() }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route".into())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnCancelled {
    pub turn: String,
    /// True: the stop was sent; the turn ends with what it streamed, marked stopped.
    pub cancelled: bool,
}

/// Stop a turn in progress (its answer so far is kept, marked stopped; the stream ends with `done`).
#[utoipa::path(post, path = "/api/turns/{id}/cancel", tag = "chat",
    params(("id" = String, Path, description = "Turn id (from `turn_started`)")),
    responses((status = 202, body = TurnCancelled), (status = 404, description = "No such turn"),
              (status = 409, description = "The turn already ended")),
    security(("bearer" = [])))]
pub async fn cancel_turn(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TurnCancelled>), ApiError> {
    if state.agent.cancel_turn(&id) {
        return Ok((StatusCode::ACCEPTED, Json(TurnCancelled { turn: id, cancelled: true })));
    }
    let turn = state.agent.store().get_turn(&id).await?;
    Err(ApiError::Conflict(format!("turn {} already ended ({})", turn.id, turn.status.as_str())))
}
