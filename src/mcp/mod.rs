//! valor's MCP server (official `rmcp` SDK, pinned; this is the only module
//! that uses it). The tool list is derived from the agent's [`ToolRegistry`]
//! — never written twice — and every tool's input schema gains a required
//! `chat_id`: the conversation (id or title) whose context the call acts in.
//!
//! Transports: stdio (`valor mcp`; stdout carries only protocol messages,
//! logs go to stderr) and Streamable HTTP mounted at `/mcp` by the app,
//! behind the API bearer token, with Host/Origin checks against DNS
//! rebinding (rmcp's allow-lists, from `[mcp]` settings).
//!
//! Logging (`logging/setLevel`): each session keeps the level its client
//! chose (default `warning`); a failed tool call is also sent as a
//! `notifications/message` at `warning` when the level lets it through.
//!
//! Permissions: a call acts with the permissions of the people of its
//! `chat_id`'s conversation (`access.rs`: an admin's Telegram chat or a
//! web/API/terminal conversation as admin, other allowed chats as
//! non-admins, the rest refused); the registry then applies the tool
//! permissions and the non-admin spending limit, as for the agent.
//!
//! Invariants: tool failures, bad arguments, unknown chats and refused
//! permissions are MCP tool errors (`isError: true`), never protocol errors.

pub mod approvals;
pub mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
// MCP logging is deprecated by SEP-2577 but still part of the protocol
// versions valor speaks (2025-06-18, 2025-11-25), whose clients call it.
#[allow(deprecated)]
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::agent::tools::{Tool as ValorTool, ToolContext, ToolError, ToolRegistry};
use crate::config::{McpSettings, Settings, TelegramSettings};
use crate::storage::Store;

mod access;

use access::acts_as_admin;

/// The MCP view of the registry.
#[derive(Clone)]
pub struct McpServer {
    tools: ToolRegistry,
    store: Store,
    tool_timeout: Duration,
    /// Who a `chat_id` acts as (Telegram's access rules).
    telegram: Arc<TelegramSettings>,
    /// The session's `logging/setLevel` choice (a fresh one per HTTP session).
    log_level: Arc<AtomicU8>,
}

/// MCP's syslog levels in order of severity (`LoggingLevel` has no order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogLevel(u8);

impl LogLevel {
    const WARNING: LogLevel = LogLevel(3);

    #[allow(deprecated)]
    fn of(level: LoggingLevel) -> Self {
        LogLevel(match level {
            LoggingLevel::Debug => 0,
            LoggingLevel::Info => 1,
            LoggingLevel::Notice => 2,
            LoggingLevel::Warning => 3,
            LoggingLevel::Error => 4,
            LoggingLevel::Critical => 5,
            LoggingLevel::Alert => 6,
            LoggingLevel::Emergency => 7,
        })
    }
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").field("tools", &self.tools).finish_non_exhaustive()
    }
}

impl McpServer {
    pub fn new(tools: ToolRegistry, store: Store, settings: &Settings) -> Self {
        Self {
            tools,
            store,
            tool_timeout: Duration::from_secs(settings.agent.tool_timeout_secs),
            telegram: Arc::new(settings.telegram.clone()),
            log_level: Arc::new(AtomicU8::new(LogLevel::WARNING.0)),
        }
    }

    /// The same server with its own session state (logging level).
    fn for_session(&self) -> Self {
        Self { log_level: Arc::new(AtomicU8::new(LogLevel::WARNING.0)), ..self.clone() }
    }

    fn logs(&self, level: LogLevel) -> bool {
        level.0 >= self.log_level.load(Ordering::Relaxed)
    }

    /// Serve one client over stdin/stdout until it disconnects.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    }

    /// The Streamable HTTP service (mount it at `/mcp` behind bearer auth).
    pub fn http_service(
        self,
        settings: &McpSettings,
        shutdown: CancellationToken,
    ) -> StreamableHttpService<McpServer, LocalSessionManager> {
        streamable_http(move || self.for_session(), settings, shutdown)
    }

    async fn run(&self, name: &str, arguments: Option<Map<String, Value>>) -> Result<String, String> {
        if !self.tools.names().contains(&name) {
            return Err(format!("there is no tool named {name:?}"));
        }
        let mut arguments = arguments.unwrap_or_default();
        let chat_id = match arguments.remove("chat_id") {
            Some(Value::String(chat_id)) if !chat_id.trim().is_empty() => chat_id,
            _ => return Err("chat_id is required: the conversation (id or title) to act in".into()),
        };
        let conversation = match self.store.find_conversation(chat_id.trim()).await {
            Ok(Some(conversation)) => conversation,
            Ok(None) => return Err(format!("unknown chat_id {chat_id:?}: no such conversation")),
            Err(error) => {
                tracing::error!(%error, "MCP: looking up a conversation failed");
                return Err("the conversation could not be looked up; see valor's log".into());
            }
        };
        let is_admin = acts_as_admin(&self.telegram, &conversation)?;
        let context = ToolContext {
            store: self.store.clone(),
            conversation_id: conversation.id,
            turn_id: format!("mcp-{}", uuid::Uuid::now_v7()),
            is_admin,
            user: None,
        };
        self.tools.call(&context, name, Value::Object(arguments), self.tool_timeout).await.map_err(
            |error| match error {
                ToolError::RespondToModel(text) | ToolError::Fatal(text) => text,
            },
        )
    }
}

/// A Streamable HTTP service whose sessions `session` makes, with the
/// `[mcp]` Host/Origin allow-lists.
fn streamable_http<S: ServerHandler + Send + 'static>(
    session: impl Fn() -> S + Send + Sync + 'static,
    settings: &McpSettings,
    shutdown: CancellationToken,
) -> StreamableHttpService<S, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        .enforce_origin_validation()
        .with_cancellation_token(shutdown);
    StreamableHttpService::new(move || Ok(session()), Arc::new(LocalSessionManager::default()), config)
}

/// A registry tool as MCP lists it: its schema, plus the required `chat_id`
/// unless the caller's chat is already bound (a run's server).
pub fn mcp_tool(tool: &dyn ValorTool, with_chat_id: bool) -> Tool {
    let mut schema = match tool.input_schema() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    schema.insert("type".into(), json!("object"));
    if !with_chat_id {
        return annotated(tool, schema);
    }
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(
            "chat_id".into(),
            json!({"type": "string", "description": "The valor conversation (id or title) this call acts in."}),
        );
    }
    let required = schema.entry("required").or_insert_with(|| json!([]));
    if let Some(required) = required.as_array_mut() {
        required.push(json!("chat_id"));
    }
    annotated(tool, schema)
}

fn annotated(tool: &dyn ValorTool, schema: Map<String, Value>) -> Tool {
    let read_only = !tool.has_side_effects() && !tool.spends_money();
    let annotations = ToolAnnotations::from_raw(None, Some(read_only), Some(tool.has_side_effects()), None, Some(true));
    let mut listed = Tool::new(tool.name().to_owned(), tool.description().to_owned(), Arc::new(schema));
    listed.annotations = Some(annotations);
    listed
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder().enable_tools().enable_logging().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("valor", env!("CARGO_PKG_VERSION")))
            .with_instructions("valor's tools. Every call needs chat_id: the valor conversation to act in.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.tools().map(|tool| mcp_tool(tool.as_ref(), true)).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = match self.run(&request.name, request.arguments).await {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(text) => {
                if self.logs(LogLevel::WARNING) {
                    #[allow(deprecated)]
                    let message = LoggingMessageNotificationParam::new(
                        LoggingLevel::Warning,
                        json!({"tool": request.name.as_ref(), "error": text}),
                    )
                    .with_logger("valor");
                    #[allow(deprecated)]
                    if let Err(error) = context.peer.notify_logging_message(message).await {
                        tracing::debug!(%error, "MCP: the log notification was not delivered");
                    }
                }
                CallToolResult::error(vec![ContentBlock::text(text)])
            }
        };
        Ok(result.into())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log_level.store(LogLevel::of(request.level).0, Ordering::Relaxed);
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.tools().find(|tool| tool.name() == name).map(|tool| mcp_tool(tool.as_ref(), true))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::agent::tools::SearchHistory;

    #[test]
    fn listed_tools_keep_their_schema_and_require_a_chat_id() {
        let tool = mcp_tool(&SearchHistory, true);
        let schema = Value::Object((*tool.input_schema).clone());
        assert_eq!(schema["properties"]["query"]["type"], "string");
        assert_eq!(schema["properties"]["chat_id"]["type"], "string");
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(required, ["query", "chat_id"]);
        assert_eq!(tool.annotations.unwrap().read_only_hint, Some(true));
    }
}
