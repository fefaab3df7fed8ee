//! `GET /api/conversations/{id}/events`: the open conversation, live (SSE).
//!
//! Wakes on the store's change feed (`storage/changes.rs`) and reads what is
//! new since its cursor, a message revision: every appended message and
//! every message changed in place (a job's live status), as `message`
//! events whose SSE id is that revision, so a reconnect with
//! `Last-Event-ID` (or `?after=`) resumes exactly; the conversation's
//! pending approval requests as `approvals` snapshots; `deleted` when the
//! conversation goes, which ends the stream.
//!
//! Invariants: idle, it waits on the feed and never polls SQLite (a
//! keep-alive comment every 15 s); memory per stream is bounded (reads of
//! at most [`BATCH`] messages, produced only as fast as the client takes
//! them; a client that lags behind the feed re-reads from its cursor, it is
//! never buffered for); the stream is the request's body, so a closed tab
//! drops it and its feed subscription with it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::HttpState;
use super::api::MessageView;
use super::approvals::ApprovalView;
use super::error::ApiError;
use crate::storage::{Change, Store};

/// The stream's event names.
pub const READY: &str = "ready";
pub const MESSAGE: &str = "message";
pub const APPROVALS: &str = "approvals";
pub const DELETED: &str = "deleted";
pub const ERROR: &str = "error";

/// A `message` event's data: the message as the messages list shows it, plus its revision.
pub fn message_data(message: crate::storage::StoredMessage, revision: i64) -> serde_json::Value {
    let mut view = serde_json::to_value(MessageView::from(message)).unwrap_or_default();
    if let Some(map) = view.as_object_mut() {
        map.insert("revision".into(), revision.into());
    }
    view
}

/// Every event of the stream with what it means and an example of its data, for `/docs`.
pub fn catalogue(message_example: serde_json::Value) -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({"event": READY, "description": "First: the stream is open; `revision` is the cursor it starts \
            after (also its SSE id).", "data": {"revision": 41}}),
        json!({"event": MESSAGE, "description": "A message appended to the conversation or changed in place (a job's \
            live status), as in the messages list, with its `revision` (the SSE id: reconnect with `Last-Event-ID` \
            to resume after it).", "data": message_example}),
        json!({"event": APPROVALS, "description": "The conversation's pending Claude Code permission requests, sent \
            when the stream opens and after each change (an empty list: none pending).", "data": {"approvals": []}}),
        json!({"event": DELETED, "description": "The conversation was deleted; the stream ends.", "data": {}}),
        json!({"event": ERROR, "description": "The stream could not read the conversation (e.g. the database is \
            unavailable); it continues when it can.", "data": {"message": "storage unavailable"}}),
    ]
}

/// Messages read per query.
const BATCH: u32 = 100;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Resume after this revision (`revision` of the messages list); `Last-Event-ID` wins.
    pub after: Option<i64>,
}

/// The conversation's new and changed messages and its approval requests, live (SSE).
#[utoipa::path(get, path = "/api/conversations/{id}/events", tag = "chat",
    params(("id" = String, Path, description = "Conversation id"),
           ("after" = Option<i64>, Query, description = "Resume after this revision (the messages list's `revision`); without it and without `Last-Event-ID`, from now on"),
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this revision (sent by EventSource on reconnect)")),
    responses((status = 200, description = "`text/event-stream`: `ready` (the cursor), `message` (id = revision; a message view with `revision`, text blocks carry `html`), `approvals` ({approvals: [...]}, the pending ones), `deleted`"),
              (status = 400, description = "`Last-Event-ID` or `after` is not a revision number"),
              (status = 401, description = "Missing or invalid bearer token"),
              (status = 404, description = "No such conversation")),
    security(("bearer" = [])))]
pub async fn conversation_events(
    State(state): State<HttpState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|value| value.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::BadRequest("`Last-Event-ID` must be a revision number".into()))?,
        ),
    };
    let store = state.agent.store().clone();
    let conversation = store.get_conversation(&id).await?;
    // Subscribed before the cursor is read: nothing committed after it is missed.
    let changes = store.subscribe_changes();
    let cursor = match resume.or(query.after) {
        Some(cursor) => cursor.max(0),
        None => store.message_revision(&conversation.id).await?,
    };
    let feed = Feed {
        store,
        conversation: conversation.id,
        cursor,
        changes,
        queue: VecDeque::from([ready(cursor)]),
        messages_due: true,
        approvals_due: true,
        ended: false,
    };
    Ok(Sse::new(feed.into_stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

fn ready(cursor: i64) -> Event {
    Event::default().event(READY).id(cursor.to_string()).data(serde_json::json!({"revision": cursor}).to_string())
}

/// One stream's state: the cursor, what is due to be read, and the events
/// read but not yet taken by the client.
struct Feed {
    store: Store,
    conversation: String,
    cursor: i64,
    changes: Receiver<Change>,
    queue: VecDeque<Event>,
    messages_due: bool,
    approvals_due: bool,
    ended: bool,
}

impl Feed {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures::stream::unfold(self, |mut feed| async move { feed.next().await.map(|event| (Ok(event), feed)) })
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let read = if self.messages_due {
                self.read_messages().await
            } else if self.approvals_due {
                self.read_approvals().await
            } else {
                self.wait().await;
                Ok(())
            };
            if let Err(error) = read {
                // The client reconnects with its Last-Event-ID and resumes.
                let data = serde_json::json!({"message": error.to_string()}).to_string();
                self.queue.push_back(Event::default().event(ERROR).data(data));
                self.ended = true;
            }
        }
    }

    async fn read_messages(&mut self) -> Result<(), ApiError> {
        let changed = self.store.changed_messages(&self.conversation, self.cursor, BATCH).await?;
        self.messages_due = changed.len() == BATCH as usize;
        for (revision, message) in changed {
            self.cursor = revision;
            let view = message_data(message, revision);
            self.queue.push_back(Event::default().event(MESSAGE).id(revision.to_string()).data(view.to_string()));
        }
        Ok(())
    }

    async fn read_approvals(&mut self) -> Result<(), ApiError> {
        self.approvals_due = false;
        let pending = self.store.pending_approvals(Some(&self.conversation)).await?;
        let approvals: Vec<ApprovalView> = pending.into_iter().map(ApprovalView::from).collect();
        let data = serde_json::json!({"approvals": approvals}).to_string();
        self.queue.push_back(Event::default().event(APPROVALS).data(data));
        Ok(())
    }

    /// Sleep until this conversation changes, then take every signal
    /// already waiting too (a burst is read once).
    async fn wait(&mut self) {
        let mut signal = self.changes.recv().await;
        loop {
            match signal {
                Ok(change) if change.conversation() != self.conversation => {}
                Ok(Change::Messages(_)) => self.messages_due = true,
                Ok(Change::Approvals(_)) => self.approvals_due = true,
                Ok(Change::Deleted(_)) => {
                    self.queue.push_back(Event::default().event(DELETED).data("{}"));
                    self.ended = true;
                    return;
                }
                // Fell behind the feed: read everything from the cursor.
                Err(RecvError::Lagged(_)) => (self.messages_due, self.approvals_due) = (true, true),
                Err(RecvError::Closed) => {
                    self.ended = true;
                    return;
                }
            }
            signal = match self.changes.try_recv() {
                Ok(change) => Ok(change),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => return,
            };
        }
    }
}
