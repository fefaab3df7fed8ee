//! Provider-neutral conversation types: what the agent says to any model and
//! what any model says back. Wire formats (Anthropic, OpenAI-compatible) convert
//! to and from these in their own files; nothing here knows about HTTP.

use serde::{Deserialize, Serialize};

/// Who wrote a message. Tool results travel as `User` messages carrying
/// [`ContentBlock::ToolResult`] blocks (the Anthropic shape); the OpenAI wire
/// format turns them into `role: "tool"` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    /// The model asks for a tool call. `input` is the parsed JSON arguments.
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// The result of one tool call, answering the `ToolUse` with the same id.
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
    /// An image the model should look at, inline as base64 (both wire
    /// formats accept this). Only ever built for the request it belongs to:
    /// the transcript keeps a `[image: …]` text reference instead (see
    /// `agent::media`), so stored history never holds megabytes of base64.
    Image {
        /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        media_type: String,
        /// The image bytes, standard base64 with padding.
        data_base64: String,
    },
}

impl ContentBlock {
    /// An inline image block from raw bytes.
    pub fn image(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        Self::Image {
            media_type: media_type.into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// One message of the conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![ContentBlock::Text { text: text.into() }] }
    }

    pub fn assistant_text(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![ContentBlock::Text { text: text.into() }] }
    }

    /// All text blocks joined, without tool calls or results.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text } = block {
                out.push_str(text);
            }
        }
        out
    }

    /// The tool calls this message requests, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &serde_json::Value)> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}

/// A tool offered to the model: name, description and JSON schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// Everything a model call needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The concrete model name sent on the wire (e.g. `claude-sonnet-4-5`).
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    /// Ask for a JSON object answer (OpenAI `response_format`; Anthropic: prompt only).
    pub json_output: bool,
}

impl ChatRequest {
    pub fn new(model: impl Into<String>, system: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            system: system.into(),
            messages,
            tools: Vec::new(),
            max_tokens: 4096,
            temperature: None,
            json_output: false,
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A complete model answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Always `Role::Assistant`; text and tool-use blocks in the order produced.
    pub message: Message,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// The model name the provider reports (may differ from the requested alias).
    pub model: String,
}

/// What a streaming call yields: text as it arrives, then exactly one
/// `Finished` with the assembled answer (tool-call arguments already parsed).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    Finished(ChatResponse),
}
