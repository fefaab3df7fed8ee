//! The library's MCP servers as tools of valor's own agent.
//!
//! Per turn, [`McpToolset::registry_for_turn`] picks the servers that fit
//! the chat by the rule Claude Code runs use (`select_servers`: credentials
//! present, and a server with task kinds only when the turn's intent label
//! or its text names one of them), gets their tools (the first use starts
//! the server, later turns use the kept list) and adds at most
//! `[mcp_client] max_tools_per_turn` of them to a copy of the registry,
//! namespaced `server__tool`. Each choice is logged with its reason.
//!
//! Invariants: a tool counts as having side effects unless the server
//! annotates it `readOnlyHint` or the library entry lists it in
//! `read_only`, so the registry's policy keeps it from non-admins; results
//! are cut at `max_result_chars` (and say so); each server has a circuit
//! breaker `mcp:<server>` (shown in health) — an open one refuses without
//! touching the server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolRegistry};
use crate::monitoring::breaker::CircuitBreakers;
use crate::workspace::mcp_client::{McpClientError, McpClients, RemoteTool};

/// Between a server's name and its tool's in the name the model sees.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Longest tool name providers accept.
const MAX_TOOL_NAME: usize = 64;

/// The chat's MCP servers and how their tools are offered.
#[derive(Debug, Clone)]
pub struct McpToolset {
    clients: McpClients,
    breakers: CircuitBreakers,
    /// A call's limit inside the registry's (so a hung server is marked failed before the turn gives up).
    call_limit: Duration,
}

impl McpToolset {
    /// `tool_timeout` is the registry's limit for one call.
    pub fn new(clients: McpClients, breakers: CircuitBreakers, tool_timeout: Duration) -> Self {
        for server in clients.library() {
            breakers.register(&breaker_key(&server.name));
        }
        let call_limit = tool_timeout.saturating_sub(Duration::from_secs(1)).max(Duration::from_secs(1));
        Self { clients, breakers, call_limit }
    }

    pub fn clients(&self) -> &McpClients {
        &self.clients
    }

    /// `base` plus the MCP tools that fit this turn (see the module docs).
    pub async fn registry_for_turn(
        &self,
        base: &ToolRegistry,
        text: &str,
        intent: &str,
        is_admin: bool,
    ) -> ToolRegistry {
        let library: Vec<_> = self.clients.library().cloned().collect();
        // The intent label counts as a word of the task, so `kinds = ["project_management"]` matches it.
        let task = format!("{intent} {text}");
        let choices = crate::workspace::mcp_config::select_servers(&library, &task, None);
        let mut registry = base.clone();
        let mut offered = 0usize;
        let cap = self.clients.settings().max_tools_per_turn;
        // `select_servers` lists valor's own server first; the chat is already inside valor.
        for choice in choices.iter().filter(|choice| choice.name != crate::config::VALOR_SERVER_NAME) {
            if !choice.included {
                tracing::debug!(server = %choice.name, reason = %choice.reason, "MCP server not offered");
                continue;
            }
            // A kept list touches nothing (its calls go through the breaker); listing asks the server.
            let tools = match self.clients.kept_tools(&choice.name) {
                Some(tools) => tools,
                None if !self.breakers.try_acquire(&breaker_key(&choice.name)) => {
                    tracing::info!(server = %choice.name, "MCP server not offered: its breaker is open");
                    continue;
                }
                None => match self.clients.tools(&choice.name).await {
                    Ok(tools) => {
                        self.breakers.record_success(&breaker_key(&choice.name));
                        tools
                    }
                    Err(error) => {
                        self.record(&choice.name, &error);
                        tracing::warn!(server = %choice.name, %error, "MCP server not offered");
                        continue;
                    }
                },
            };
            tracing::debug!(server = %choice.name, reason = %choice.reason, "MCP server offered");
            for remote in tools.iter() {
                if offered >= cap {
                    tracing::info!(cap, "more MCP tools fit this turn than [mcp_client] max_tools_per_turn offers");
                    return registry;
                }
                let tool = McpTool::new(self.clone(), &choice.name, remote);
                if registry.policy.allows(&tool, is_admin) {
                    registry.register(Arc::new(tool));
                    offered += 1;
                }
            }
        }
        registry
    }

    fn record(&self, server: &str, error: &McpClientError) {
        match error {
            // Not the server's fault: nothing is counted.
            McpClientError::Unknown(_) | McpClientError::MissingCredentials { .. } => {
                self.breakers.abandon_probe(&breaker_key(server));
            }
            McpClientError::BackingOff { .. } => self.breakers.abandon_probe(&breaker_key(server)),
            _ => self.breakers.record_failure_because(&breaker_key(server), &error.to_string()),
        }
    }
}

fn breaker_key(server: &str) -> String {
    format!("mcp:{server}")
}

/// `server__tool`, with characters providers refuse replaced by `_`, at most 64 long.
pub fn namespaced(server: &str, tool: &str) -> String {
    let name: String = format!("{server}{NAMESPACE_SEPARATOR}{tool}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    name.chars().take(MAX_TOOL_NAME).collect()
}

/// One tool of one library server.
struct McpTool {
    set: McpToolset,
    server: String,
    remote: RemoteTool,
    name: String,
    description: String,
    schema: Value,
}

impl McpTool {
    fn new(set: McpToolset, server: &str, remote: &RemoteTool) -> Self {
        let mut schema = remote.input_schema.clone();
        normalise_schema(&mut schema);
        let description = match remote.description.trim() {
            "" => format!("{} (MCP server {server})", remote.name),
            text => format!("{text} (MCP server {server})"),
        };
        Self {
            name: namespaced(server, &remote.name),
            set,
            server: server.to_owned(),
            remote: remote.clone(),
            description,
            schema,
        }
    }
}

/// The shape every provider reads: an object schema without `$schema`, nullable types made optional.
fn normalise_schema(schema: &mut Value) {
    if !schema.is_object() {
        *schema = serde_json::json!({"type": "object", "properties": {}});
    }
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.entry("type").or_insert_with(|| Value::String("object".into()));
        if map.get("type").and_then(Value::as_str) == Some("object") {
            map.entry("properties").or_insert_with(|| serde_json::json!({}));
        }
    }
    super::without_null_types(schema);
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        self.schema.clone()
    }

    fn has_side_effects(&self) -> bool {
        !self.remote.read_only
    }

    async fn call(&self, _context: &ToolContext, input: Value) -> Result<String, ToolError> {
        let key = breaker_key(&self.server);
        if !self.set.breakers.try_acquire(&key) {
            return Err(ToolError::RespondToModel(format!(
                "the MCP server {} is unavailable right now (it failed repeatedly)",
                self.server
            )));
        }
        let outcome = self.set.clients.call(&self.server, &self.remote.name, input, self.set.call_limit).await;
        let outcome = match outcome {
            Ok(outcome) => {
                self.set.breakers.record_success(&key);
                outcome
            }
            Err(error) => {
                self.set.record(&self.server, &error);
                return Err(ToolError::RespondToModel(error.to_string()));
            }
        };
        let max = self.set.clients.settings().max_result_chars;
        let text = if outcome.text.chars().count() > max {
            let kept: String = outcome.text.chars().take(max).collect();
            format!("{kept}\n[… cut: the result was longer than {max} characters]")
        } else {
            outcome.text
        };
        if outcome.is_error { Err(ToolError::RespondToModel(text)) } else { Ok(text) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_made_safe_for_providers() {
        assert_eq!(namespaced("everything", "get-sum"), "everything__get-sum");
        assert_eq!(namespaced("fs", "read file.txt"), "fs__read_file_txt");
        assert_eq!(namespaced("s", &"x".repeat(100)).len(), MAX_TOOL_NAME);
    }

    #[test]
    fn schemas_become_plain_object_schemas() {
        let mut schema = serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"n": {"type": ["integer", "null"]}}
        });
        normalise_schema(&mut schema);
        assert_eq!(schema, serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
        let mut empty = serde_json::json!({});
        normalise_schema(&mut empty);
        assert_eq!(empty, serde_json::json!({"type": "object", "properties": {}}));
    }
}
