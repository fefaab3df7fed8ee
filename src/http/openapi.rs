//! The OpenAPI document, derived from the handlers' annotations, plus what
//! annotations cannot say: the turn's server-sent events (`x-sse-events`
//! on `POST /api/messages`, with an example stream), the MCP endpoint (a
//! nested service) and request/response examples. `/docs` renders it.
//!
//! Invariants: every route of the router has an entry (checked against
//! `http/mod.rs` by `tests/docs.rs`); the event examples are real
//! [`AgentEvent`]s serialised the way the stream serialises them, and
//! [`describe`] matches every variant, so a new event cannot go undocumented.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::approvals;
use super::branches;
use super::daydream;
use super::events;
use super::health;
use super::jobs;
use super::status;
use super::web;
use crate::agent::{AgentEvent, ToolCallReport, TurnFailure};

#[derive(OpenApi)]
#[openapi(
    info(title = "valor", description = "valor's HTTP API: chat turns (JSON or server-sent events), conversations, \
jobs, approvals, run branches, status and health.\n\nEvery `/api` route needs `Authorization: Bearer <token>` when \
tokens are configured. Errors answer JSON `{\"error\": {\"code\": \"not_found\", \"message\": \"…\"}}` with the HTTP \
status."),
    paths(
        api::post_message,
        api::list_conversations,
        api::rename_conversation,
        api::delete_conversation,
        api::list_messages,
        events::conversation_events,
        api::list_turns,
        api::cancel_turn,
        health::health,
        health::ready,
        health::metrics,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        jobs::retry_job,
        status::status,
        daydream::list_sessions,
        approvals::list_approvals,
        approvals::answer_approval,
        branches::list_branches,
        branches::branch_action,
        web::index,
        web::docs,
        web::asset,
        openapi_json,
    ),
    components(schemas(
        api::SendMessage,
        api::MessageReply,
        api::ToolCallView,
        api::TurnInfo,
        api::ConversationList,
        api::ConversationView,
        api::RenameConversation,
        api::MessageList,
        api::MessageView,
        api::TurnList,
        api::TurnView,
        api::TurnCancelled,
        jobs::JobView,
        jobs::JobList,
        jobs::CodeRunView,
        status::StatusReport,
        status::ResourcesView,
        daydream::DaydreamSessionList,
        daydream::DaydreamSessionView,
        daydream::DaydreamPhaseView,
        approvals::ApprovalView,
        approvals::ApprovalList,
        approvals::ApprovalAnswerBody,
        branches::BranchView,
        branches::BranchList,
        branches::BranchActionQueued,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/openapi.json` (built once).
#[utoipa::path(get, path = "/openapi.json", tag = "web",
    responses((status = 200, description = "This API as an OpenAPI 3.1 document")))]
pub async fn openapi_json() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

/// The derived document with the event streams, the MCP endpoint and the examples added.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    add_turn_events(&mut doc);
    add_conversation_events(&mut doc);
    add_mcp(&mut doc);
    add_examples(&mut doc);
    doc
}

/// What a turn event means, for the docs (every variant: a new one must be described here).
pub fn describe(event: &AgentEvent) -> &'static str {
    match event {
        AgentEvent::TurnStarted { .. } => {
            "First: the turn is accepted — its conversation, turn id (for `POST /api/turns/{id}/cancel`), intent \
             label and the model that answers."
        }
        AgentEvent::TextDelta { .. } => "A piece of the answer, in order; the reply is all deltas joined.",
        AgentEvent::ToolStarted { .. } => "The model called a tool, with its input.",
        AgentEvent::ToolFinished { .. } => "The tool's output (`is_error`: it failed; the model sees the error).",
        AgentEvent::Waiting { .. } => {
            "The model has not said its first word after `llm.waiting_notice_secs` (at most once per model call)."
        }
        AgentEvent::Error { .. } => {
            "Something went wrong; `failure` says whose fault (no_model, model, model_unavailable, tool, storage, \
             interrupted). A fatal error is still followed by `done`, whose reply explains it."
        }
        AgentEvent::Done { .. } => {
            "Always last: the whole reply, rendered as safe HTML (`html`), and every tool call. A stopped turn \
             ends here too, with `stopped: true` and what was streamed as its reply."
        }
    }
}

/// One turn's events as the stream sends them, in order (an `error` would come before `done`).
pub fn example_turn() -> Vec<AgentEvent> {
    let conversation = "0193f1c2-7a51-7c3e-9b1e-2f6d1c0a9e11".to_owned();
    let input = json!({"query": "launch date"});
    vec![
        AgentEvent::TurnStarted {
            conversation: conversation.clone(),
            turn_id: "0193f1c2-7b02-7a10-8c55-5e3b8f9d0a42".into(),
            intent: "question".into(),
            model: "claude-sonnet-4-5".into(),
        },
        AgentEvent::Waiting { message: "still waiting for the model…".into() },
        AgentEvent::ToolStarted { id: "toolu_01".into(), name: "search_history".into(), input: input.clone() },
        AgentEvent::ToolFinished {
            id: "toolu_01".into(),
            name: "search_history".into(),
            output: "2026-11-02 · \"the launch moves to March 3\"".into(),
            is_error: false,
        },
        AgentEvent::TextDelta { text: "We agreed the launch is on ".into() },
        AgentEvent::TextDelta { text: "**March 3**.".into() },
        AgentEvent::Error {
            message: "The model provider is overloaded; try again in a minute.".into(),
            failure: TurnFailure::ModelUnavailable,
        },
        AgentEvent::Done {
            conversation,
            reply: "We agreed the launch is on **March 3**.".into(),
            tool_calls: vec![ToolCallReport {
                id: "toolu_01".into(),
                name: "search_history".into(),
                input,
                output: "2026-11-02 · \"the launch moves to March 3\"".into(),
                is_error: false,
            }],
            stopped: false,
        },
    ]
}

/// An event's name and data on the wire: `done` carries the reply's `html` too.
fn wire(event: &AgentEvent) -> (&'static str, Value) {
    match event {
        AgentEvent::Done { reply, .. } => (event.name(), super::api::done_data(event, reply)),
        _ => (event.name(), event.data()),
    }
}

/// The `text_html` event after the deltas so far of the current text run.
fn text_html(run: &str) -> (&'static str, Value) {
    (super::api::TEXT_HTML_EVENT, json!({"html": crate::markdown::to_html(run)}))
}

/// The SSE wire events of `events`, as `POST /api/messages` writes them (a
/// `text_html` after each delta: the server sends one at most every 100 ms).
fn wire_events(events: &[AgentEvent]) -> Vec<(&'static str, Value)> {
    let mut run = String::new();
    let mut out = Vec::new();
    for event in events {
        match event {
            AgentEvent::TextDelta { text } => {
                run.push_str(text);
                out.push(wire(event));
                out.push(text_html(&run));
            }
            AgentEvent::ToolStarted { .. } => {
                run.clear();
                out.push(wire(event));
            }
            _ => out.push(wire(event)),
        }
    }
    out
}

/// The SSE wire text of `events`, as `POST /api/messages` writes it.
fn sse_text(events: &[AgentEvent]) -> String {
    wire_events(events).iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect()
}

fn add_turn_events(doc: &mut Value) {
    let events = example_turn();
    let mut catalogue: Vec<Value> = Vec::new();
    for event in &events {
        if !catalogue.iter().any(|seen| seen["event"] == event.name()) {
            let (name, data) = wire(event);
            catalogue.push(json!({"event": name, "description": describe(event), "data": data}));
        }
        if matches!(event, AgentEvent::TextDelta { .. }) && !catalogue.iter().any(|seen| seen["event"] == "text_html") {
            let (name, data) = text_html("We agreed the launch is on ");
            let description = "The current text run (the text since the last tool call) rendered as safe HTML by \
                               the server's Markdown renderer: at most every 100 ms, and before each tool call and \
                               `done`. Replace the run's element with it.";
            catalogue.push(json!({"event": name, "description": description, "data": data}));
        }
    }
    let happy: Vec<AgentEvent> =
        events.into_iter().filter(|event| !matches!(event, AgentEvent::Error { .. })).collect();
    let Some(operation) = doc.pointer_mut("/paths/~1api~1messages/post") else { return };
    operation["x-sse-events"] = Value::Array(catalogue);
    if let Some(ok) = operation.pointer_mut("/responses/200/content") {
        ok["text/event-stream"] = json!({
            "schema": {"type": "string", "description": "Server-sent events: `event: <name>` and `data: <JSON>` \
                per event (see x-sse-events); a `: keep-alive` comment every 15 s."},
            "example": sse_text(&happy),
        });
    }
    let said = operation.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
    operation["description"] = Value::String(format!(
        "{said}{}With `Accept: text/event-stream` the answer streams as server-sent events: turn_started, then \
         text_delta, tool_started/tool_finished and waiting as they happen, error on a failure, and always done \
         last. Stop a turn with `POST /api/turns/{{id}}/cancel` (the id is in turn_started).",
        if said.is_empty() { "" } else { "\n\n" }
    ));
}

fn add_mcp(doc: &mut Value) {
    let operation = |summary: &str| {
        json!({
            "tags": ["mcp"],
            "summary": summary,
            "description": "valor's tools for MCP clients (Model Context Protocol, Streamable HTTP transport): \
                JSON-RPC 2.0 requests by POST, answered as JSON or as an SSE stream; the session id travels in \
                the `Mcp-Session-Id` header. Same bearer token as `/api`.",
            "responses": {"200": {"description": "JSON-RPC response, or an SSE stream of them"},
                          "401": {"description": "Missing or invalid bearer token"}},
            "security": [{"bearer": []}],
        })
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert(
            "/mcp".into(),
            json!({
                "post": operation("Send a JSON-RPC request (initialize, tools/list, tools/call, …)"),
                "get": operation("Open the server-to-client SSE stream of a session"),
                "delete": operation("End a session"),
            }),
        );
    }
}

/// Set `value` at `pointer` when the place exists (an example for a route that is gone is dropped).
fn set(doc: &mut Value, pointer: &str, key: &str, value: Value) {
    if let Some(Value::Object(map)) = doc.pointer_mut(pointer) {
        map.insert(key.to_owned(), value);
    }
}

/// The live conversation's events (`GET /api/conversations/{id}/events`).
fn add_conversation_events(doc: &mut Value) {
    let text = "Job #7 (agent_task) finished.";
    let message = crate::storage::StoredMessage {
        id: 42,
        conversation_id: "0193f1c2-7a51-7c3e-9b1e-2f6d1c0a9e11".into(),
        role: crate::storage::MessageRole::System,
        content: json!([{"type": "text", "text": text}]),
        text: text.into(),
        turn_id: None,
        created_at_ms: 1_796_400_000_000,
    };
    let catalogue = super::events::catalogue(super::events::message_data(message, 42));
    let wire: String = catalogue
        .iter()
        .map(|e| format!("event: {}\ndata: {}\n\n", e["event"].as_str().unwrap_or_default(), e["data"]))
        .collect();
    let Some(operation) = doc.pointer_mut("/paths/~1api~1conversations~1{id}~1events/get") else { return };
    operation["x-sse-events"] = Value::Array(catalogue);
    if let Some(ok) = operation.pointer_mut("/responses/200/content") {
        ok["text/event-stream"] = json!({
            "schema": {"type": "string", "description": "Server-sent events (see x-sse-events); each `message` \
                carries its revision as the SSE id; a `: keep-alive` comment every 15 s."},
            "example": wire,
        });
    }
}

fn add_examples(doc: &mut Value) {
    let conversation = "0193f1c2-7a51-7c3e-9b1e-2f6d1c0a9e11";
    let turn = "0193f1c2-7b02-7a10-8c55-5e3b8f9d0a42";
    set(
        doc,
        "/paths/~1api~1messages/post/requestBody/content/application~1json",
        "examples",
        json!({
            "new": {"summary": "Start a new conversation", "value": {"text": "When is the launch?"}},
            "continue": {"summary": "Continue one (by id)", "value": {"conversation": conversation, "text": "And the beta?"}},
            "titled": {"summary": "A new conversation with a title", "value": {"title": "Launch plan", "text": "List the open questions."}},
        }),
    );
    let reply = json!({
        "conversation": conversation,
        "reply": "We agreed the launch is on **March 3**.",
        "tool_calls": [{"id": "toolu_01", "name": "search_history", "input": {"query": "launch date"},
                        "output": "2026-11-02 · \"the launch moves to March 3\"", "is_error": false}],
        "turn": {"id": turn, "intent": "question", "model": "claude-sonnet-4-5"},
        "stopped": false,
    });
    set(doc, "/paths/~1api~1messages/post/responses/200/content/application~1json", "example", reply);
    let conversation_view = json!({
        "id": conversation, "title": "Launch plan", "channel": "web",
        "created_at": "2026-12-04T18:02:11.120Z", "updated_at": "2026-12-04T18:05:40.004Z", "message_count": 4,
    });
    set(
        doc,
        "/paths/~1api~1conversations/get/responses/200/content/application~1json",
        "example",
        json!({"conversations": [conversation_view.clone()]}),
    );
    set(
        doc,
        "/paths/~1api~1conversations~1{id}/patch/requestBody/content/application~1json",
        "example",
        json!({"title": "Launch plan"}),
    );
    set(
        doc,
        "/paths/~1api~1conversations~1{id}/patch/responses/200/content/application~1json",
        "example",
        conversation_view,
    );
    set(
        doc,
        "/paths/~1api~1turns~1{id}/cancel/post/responses/202/content/application~1json",
        "example",
        json!({"turn": turn, "cancelled": true}),
    );
    set(
        doc,
        "/paths/~1api~1jobs~1{id}/get/responses/200/content/application~1json",
        "example",
        json!({
            "id": 7, "kind": "claude_code", "status": "succeeded",
            "payload": {"task": "Add a hello file", "workspace": "shop"},
            "priority": 0, "run_at_ms": 1_764_871_331_000_i64, "attempts": 1, "max_attempts": 2, "retries": 0,
            "cancel_requested": false, "progress_text": null, "progress_percent": 100,
            "result": {"summary": "Added hello.txt.", "files_changed": ["hello.txt"], "branch": "valor/7-add-a-hello-file"},
            "error": null, "conversation_id": conversation, "worker_id": null, "lease_until_ms": null,
            "created_at_ms": 1_764_871_331_000_i64, "started_at_ms": 1_764_871_331_200_i64,
            "finished_at_ms": 1_764_871_373_900_i64, "queue_position": null,
            "code_run": {"workspace": "shop", "executor": "claude_code", "summary": "Added hello.txt.",
                "files_changed": ["hello.txt"], "tool": null, "branch": "valor/7-add-a-hello-file", "base_branch": "main",
                "commit": "0123456789ab", "diff_stat": "1 file changed, 1 insertion(+)", "cost_usd": 0.0123, "turns": 3},
        }),
    );
    set(
        doc,
        "/paths/~1api~1jobs~1{id}/get/responses/404",
        "content",
        json!({"application/json": {
        "example": {"error": {"code": "not_found", "message": "no job 7"}}}}),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_event_stream_the_mcp_endpoint_and_examples() {
        let doc = document();
        let post = &doc["paths"]["/api/messages"]["post"];
        let names: Vec<&str> =
            post["x-sse-events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(names[0], "turn_started");
        assert_eq!(names.last(), Some(&"done"));
        assert_eq!(names.len(), names.iter().collect::<std::collections::BTreeSet<_>>().len(), "{names:?}");
        let stream = post["responses"]["200"]["content"]["text/event-stream"]["example"].as_str().unwrap();
        assert!(stream.starts_with("event: turn_started\ndata: {"), "{stream}");
        assert!(stream.ends_with("\n\n") && !stream.contains("event: error"), "{stream}");
        assert!(doc["paths"]["/mcp"]["post"].is_object());
        assert!(post["requestBody"]["content"]["application/json"]["examples"]["new"].is_object());
        assert!(doc["paths"]["/api/jobs/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
            ["code_run"]
            .is_object());
    }
}
