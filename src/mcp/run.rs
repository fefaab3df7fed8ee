//! valor's MCP server as a Claude Code run sees it, at `/mcp-run`.
//!
//! Every request carries the run's bearer token (minted per run by
//! `workspace::mcp_config::RunAccess`); [`require_run_token`] turns it into
//! the run's [`RunScope`] (job, chat, workspace) or answers 401. The tool
//! list is the agent's registry **without** `delegate_code_task` (a run must
//! not start runs) and without `chat_id` (bound to the run's chat), plus:
//! `approve` (the CLI's permission prompt tool, see `approvals`) and
//! `send_screenshot` (an image inside the workspace, or base64, posted to the
//! run's chat as a photo; a workspace file is removed once handed off).
//!
//! Registry tools act with the permissions of the person who asked for the
//! run (stored with the job): a non-admin's run neither lists nor calls the
//! tools a non-admin may not use, and its spending counts against the chat.
//!
//! Invariants: a path goes through the run's `Workspace::resolve`; the image
//! is copied under `<data_dir>/media/screenshots/` before it is posted;
//! failures are MCP tool errors (`isError: true`) with a clear text.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::mcp_tool;
use crate::agent::outbox::{Notice, NoticeKind, Outbox};
use crate::agent::tools::{ToolContext, ToolError, ToolRegistry};
use crate::config::McpSettings;
use crate::storage::Store;
use crate::workspace::PathRefusal;
use crate::workspace::mcp_config::{APPROVE_TOOL, RunAccess, RunScope};

/// Never offered to a run: it would let Claude Code start Claude Code.
const HIDDEN_FROM_RUNS: &[&str] = &["delegate_code_task"];
pub const SCREENSHOT_TOOL: &str = "send_screenshot";

/// The run-scoped MCP server.
#[derive(Clone)]
pub struct RunMcpServer {
    tools: ToolRegistry,
    store: Store,
    outbox: Arc<dyn Outbox>,
    tool_timeout: Duration,
    data_dir: PathBuf,
}

impl std::fmt::Debug for RunMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMcpServer").field("tools", &self.tools).finish_non_exhaustive()
    }
}

/// 401 unless the bearer token is a live run's; the run's scope goes into the request.
pub async fn require_run_token(State(access): State<RunAccess>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|token| access.scope(token)) {
        Some(scope) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "a live run's bearer token is required").into_response(),
    }
}

impl RunMcpServer {
    pub fn new(
        tools: ToolRegistry,
        store: Store,
        outbox: Arc<dyn Outbox>,
        tool_timeout: Duration,
        data_dir: PathBuf,
    ) -> Self {
        Self { tools, store, outbox, tool_timeout, data_dir }
    }

    /// The Streamable HTTP service; mount it at `RUN_MCP_PATH` behind [`require_run_token`].
    pub fn http_service(
        self,
        settings: &McpSettings,
        shutdown: CancellationToken,
    ) -> StreamableHttpService<RunMcpServer, LocalSessionManager> {
        super::streamable_http(move || self.clone(), settings, shutdown)
    }

    /// The run's tools for a requester who is (or is not) an admin.
    fn listed(&self, is_admin: bool) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self
            .tools
            .tools_for(is_admin)
            .filter(|tool| !HIDDEN_FROM_RUNS.contains(&tool.name()))
            .map(|tool| mcp_tool(tool.as_ref(), false))
            .collect();
        tools.push(Tool::new(
            APPROVE_TOOL,
            "Claude Code's permission prompt: asks the person in the chat whether a tool may run.",
            schema(
                json!({
                    "tool_name": {"type": "string", "description": "The tool asking for permission."},
                    "input": {"type": "object", "description": "Its input."},
                    "tool_use_id": {"type": "string"}
                }),
                &["tool_name", "input"],
            ),
        ));
        tools.push(Tool::new(
            SCREENSHOT_TOOL,
            "Send an image (a screenshot you saved in the workspace, or base64 PNG/JPEG) to the chat this task \
             came from, as a photo. A workspace file is removed after it was handed off.",
            schema(json!({
                "path": {"type": "string", "description": "The image file, relative to the workspace (or absolute inside it)."},
                "image_base64": {"type": "string", "description": "The image bytes, base64 (instead of path)."},
                "caption": {"type": "string", "description": "A short caption."}
            }), &[]),
        ));
        tools
    }

    async fn run(&self, scope: &RunScope, name: &str, arguments: Map<String, Value>) -> Result<String, String> {
        match name {
            APPROVE_TOOL => {
                let tool_name = arguments.get("tool_name").and_then(Value::as_str).unwrap_or("?").to_owned();
                let input = arguments.get("input").cloned().unwrap_or_else(|| json!({}));
                let answer =
                    super::approvals::decide(&self.store, self.outbox.as_ref(), scope, &tool_name, &input).await;
                Ok(answer.to_string())
            }
            SCREENSHOT_TOOL => self.send_screenshot(scope, &arguments).await,
            _ if HIDDEN_FROM_RUNS.contains(&name) || !self.tools.names().contains(&name) => {
                Err(format!("there is no tool named {name:?}"))
            }
            _ => {
                let context = ToolContext {
                    store: self.store.clone(),
                    conversation_id: scope.conversation_id.clone(),
                    turn_id: format!("run-{}-{}", scope.job_id, uuid::Uuid::now_v7()),
                    is_admin: scope.requester.is_admin,
                    user: scope.requester.user.clone(),
                };
                let call = self.tools.call(&context, name, Value::Object(arguments), self.tool_timeout);
                call.await.map_err(|error| match error {
                    ToolError::RespondToModel(text) | ToolError::Fatal(text) => text,
                })
            }
        }
    }

    async fn send_screenshot(&self, scope: &RunScope, arguments: &Map<String, Value>) -> Result<String, String> {
        let text = |key: &str| arguments.get(key).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let (bytes, handoff) = match (text("path"), text("image_base64")) {
            (Some(path), None) => {
                // Opened once; read and removed through what was opened (no check-then-use).
                let (workspace, requested) = (scope.workspace.clone(), path.to_owned());
                let opened = tokio::task::spawn_blocking(move || {
                    let mut file = workspace.open_file(&requested)?;
                    let bytes = file
                        .read_up_to(crate::agent::media::MAX_IMAGE_BYTES)
                        .map_err(|error| PathRefusal::Unreadable(error.to_string()))?;
                    Ok::<_, PathRefusal>((bytes, file))
                })
                .await
                .map_err(|_| "the file could not be read".to_owned())?;
                let (bytes, file) = match opened {
                    Ok(opened) => opened,
                    Err(PathRefusal::Missing) => return Err(format!("no file at {path:?}")),
                    Err(PathRefusal::NotAFile) => return Err(format!("{path:?} is not a file")),
                    Err(refusal) => return Err(format!("{path:?} refused: {refusal}")),
                };
                let Some(bytes) = bytes else { return Err("the image is larger than 10 MB".into()) };
                (bytes, Some(file))
            }
            (None, Some(data)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| "image_base64 is not valid base64".to_owned())?;
                (bytes, None)
            }
            _ => return Err("give exactly one of `path` (inside the workspace) or `image_base64`".into()),
        };
        let extension = match crate::agent::media::sniff_media_type(&bytes) {
            Some("image/png") => "png",
            Some("image/jpeg") => "jpg",
            Some("image/gif") => "gif",
            Some(_) => "webp",
            None => return Err("that is not a PNG, JPEG, GIF or WebP image".into()),
        };
        let reference = format!("media/screenshots/job-{}-{}.{extension}", scope.job_id, uuid::Uuid::now_v7().simple());
        crate::agent::media::save(&self.data_dir, reference.clone(), bytes).await?;
        let caption = text("caption").map_or_else(|| format!("Screenshot from job #{}", scope.job_id), str::to_owned);
        let notice = Notice {
            conversation_id: scope.conversation_id.clone(),
            kind: NoticeKind::Info,
            text: caption,
            dedupe_key: format!("screenshot:{reference}"),
        };
        self.outbox.post_image(notice, &reference).await.map_err(|error| {
            tracing::error!(job = scope.job_id, "the screenshot was not posted: {error}");
            "the screenshot could not be posted; see valor's log".to_owned()
        })?;
        if let Some(file) = handoff {
            match tokio::task::spawn_blocking(move || file.remove()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(job = scope.job_id, "the handed-off file stays: {error}"),
                Err(join_error) => tracing::warn!(job = scope.job_id, "the handed-off file stays: {join_error}"),
            }
        }
        tracing::info!(job = scope.job_id, "screenshot {reference} posted to the chat");
        Ok(format!("The image was sent to the chat (stored as {reference})."))
    }
}

fn schema(properties: Value, required: &[&str]) -> Arc<Map<String, Value>> {
    let mut map = Map::new();
    map.insert("type".into(), json!("object"));
    map.insert("properties".into(), properties);
    map.insert("required".into(), json!(required));
    Arc::new(map)
}

/// The run a request belongs to (put there by [`require_run_token`]).
fn scope_of(context: &RequestContext<RoleServer>) -> Option<RunScope> {
    let parts = context.extensions.get::<axum::http::request::Parts>()?;
    parts.extensions.get::<RunScope>().cloned()
}

impl ServerHandler for RunMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("valor", env!("CARGO_PKG_VERSION")))
            .with_instructions("valor's tools for this task; calls act in the chat the task came from.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let is_admin = scope_of(&context).is_some_and(|scope| scope.requester.is_admin);
        Ok(ListToolsResult::with_all_items(self.listed(is_admin)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let outcome = match scope_of(&context) {
            Some(scope) => self.run(&scope, &request.name, request.arguments.unwrap_or_default()).await,
            None => Err("this call is not part of a run".to_owned()),
        };
        let result = match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        Ok(result.into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Without a request there is no requester: every tool a run can have (calls still check).
        self.listed(true).into_iter().find(|tool| tool.name == name)
    }
}
