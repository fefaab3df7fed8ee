//! The turn's event stream: the one protocol every channel (web SSE, API,
//! terminal, Telegram, jobs) consumes. Events are serialised as
//! `{"type": "...", ...}` and, over SSE, as `event: <type>` + JSON data.

use serde::Serialize;

/// One tool call as reported to channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallReport {
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
    pub output: String,
    pub is_error: bool,
}

/// Why a turn ended early: doors that answer with a status (the JSON API)
/// pick it from this, the text for people is the event's `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnFailure {
    /// No model provider is configured.
    NoModel,
    /// The model provider refused the request (credentials, model name,
    /// the request itself): trying again will not help.
    Model,
    /// The model provider could not be reached, timed out, failed or is
    /// overloaded or rate limiting: the same request may work later.
    ModelUnavailable,
    /// A tool failed in a way the turn cannot go on from.
    Tool,
    /// The conversation could not be read or saved.
    Storage,
    /// valor shut down before the turn ended (what was streamed is stored).
    Interrupted,
    /// The person stopped the turn (`TurnRequest::cancel`; what was streamed is stored).
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The turn is accepted: which conversation, how it was labelled, which model answers.
    TurnStarted {
        conversation: String,
        turn_id: String,
        intent: String,
        model: String,
    },
    TextDelta {
        text: String,
    },
    ToolStarted {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolFinished {
        id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    /// The model has not said its first word after `llm.waiting_notice_secs`
    /// (sent at most once per model call).
    Waiting {
        message: String,
    },
    /// Something went wrong; for a fatal error a `Done` carrying the
    /// user-facing explanation as `reply` still follows.
    Error {
        message: String,
        failure: TurnFailure,
    },
    /// Always the last event of a turn.
    Done {
        conversation: String,
        reply: String,
        tool_calls: Vec<ToolCallReport>,
        /// The turn was stopped (`TurnRequest::cancel`): `reply` is what was
        /// streamed before, and every client marks it stopped from this.
        stopped: bool,
    },
}

impl AgentEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentEvent::TurnStarted { .. } => "turn_started",
            AgentEvent::TextDelta { .. } => "text_delta",
            AgentEvent::ToolStarted { .. } => "tool_started",
            AgentEvent::ToolFinished { .. } => "tool_finished",
            AgentEvent::Waiting { .. } => "waiting",
            AgentEvent::Error { .. } => "error",
            AgentEvent::Done { .. } => "done",
        }
    }

    /// The event's fields without the `type` tag (the SSE data payload).
    pub fn data(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("type");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_has_fields_but_no_type_tag() {
        let event = AgentEvent::TextDelta { text: "hi".into() };
        assert_eq!(event.name(), "text_delta");
        assert_eq!(event.data(), serde_json::json!({"text": "hi"}));
    }
}
