//! `search_history`: full-text search over the current conversation's stored
//! messages (FTS5). Never reaches another conversation.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolContext, ToolError, TypedTool};
use crate::storage::{MAX_QUERY_BYTES, MAX_QUERY_TERMS};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchHistoryInput {
    /// Words to look for in earlier messages of this conversation (at most 16 words).
    pub query: String,
    /// How many matches to return (1–20, default 5).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct SearchHistory;

#[async_trait::async_trait]
impl TypedTool for SearchHistory {
    type Input = SearchHistoryInput;
    const NAME: &'static str = "search_history";
    const DESCRIPTION: &'static str = "Search earlier messages of this conversation by keywords. \
        Returns matching excerpts with their date and author. Use it when the user refers to \
        something said before that is not in the recent context.";

    async fn run(&self, context: &ToolContext, input: SearchHistoryInput) -> Result<String, ToolError> {
        let query = input.query.trim();
        if query.is_empty() {
            return Err(ToolError::RespondToModel("query must not be empty".into()));
        }
        if query.len() > MAX_QUERY_BYTES || query.split_whitespace().nth(MAX_QUERY_TERMS).is_some() {
            return Err(ToolError::RespondToModel(format!(
                "query is too long: use at most {MAX_QUERY_TERMS} words and {MAX_QUERY_BYTES} bytes of keywords"
            )));
        }
        let limit = input.limit.unwrap_or(5).clamp(1, 20);
        // Ask for extra rows: the current turn's own messages are filtered out below.
        let hits = context
            .store
            .search_messages(Some(&context.conversation_id), query, limit + 4)
            .await
            .map_err(|error| ToolError::Fatal(format!("the message history could not be searched: {error}")))?;
        let lines: Vec<String> = hits
            .into_iter()
            .filter(|hit| hit.message.turn_id.as_deref() != Some(context.turn_id.as_str()))
            .take(limit as usize)
            .map(|hit| {
                let when = chrono::DateTime::from_timestamp_millis(hit.message.created_at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                format!("[{when}] {}: {}", hit.message.role.as_str(), hit.snippet)
            })
            .collect();
        if lines.is_empty() {
            return Ok(format!("No earlier messages match {query:?}."));
        }
        Ok(lines.join("\n"))
    }
}
