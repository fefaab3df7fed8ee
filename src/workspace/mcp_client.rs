//! valor's own agent as an MCP client of the `[[mcp_server]]` library
//! (rmcp's client side): stdio servers started as child processes, and
//! Streamable HTTP servers reached at their URL.
//!
//! A server starts on first use (listing its tools, or a call), stays up
//! while used, is stopped when idle (`[mcp_client] idle_secs`) and at
//! shutdown. One that dies is started again on the next use, after a
//! backoff that doubles with each failure in a row (1 s … 60 s); a call
//! meanwhile gets a clear error. Its tool list is kept after it stops, so
//! offering its tools never starts it; only a call does.
//!
//! Invariants: a command server's environment is the allow-listed child
//! environment plus its entry's `env` and credentials, never valor's own
//! (no API keys, no bot token); it runs in its own process group, recorded
//! in `child_processes` like Claude Code runs (a valor killed hard has it
//! stopped by the next start's sweep), and the group is stopped with it.
//! A server missing a credential is never started.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{Peer, RoleClient, RunningService};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::config::{ChildEnv, McpClientSettings, McpServerSettings};
use crate::storage::Store;

/// One tool a library server offers, as it listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTool {
    pub name: String,
    pub description: String,
    /// The server's JSON schema of the input object.
    pub input_schema: Value,
    /// Its annotations (or the library entry's `read_only`) say it changes nothing.
    pub read_only: bool,
}

/// What a tool call answered: its text (content blocks joined) and whether the server flagged it an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    pub text: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpClientError {
    #[error("there is no MCP server named {0:?} in the library")]
    Unknown(String),
    #[error("the MCP server {server:?} is missing credentials: {missing}")]
    MissingCredentials { server: String, missing: String },
    #[error("the MCP server {server:?} could not be started: {reason}")]
    Start { server: String, reason: String },
    #[error("the MCP server {server:?} failed recently; it is started again in {wait_secs} s")]
    BackingOff { server: String, wait_secs: u64 },
    #[error("the MCP server {server:?} did not answer within {secs} s")]
    TimedOut { server: String, secs: u64 },
    #[error("the MCP server {server:?} failed: {reason}")]
    Call { server: String, reason: String },
}

/// A library server's state, for `valor mcp-servers list`, doctor and the Status tab.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub chat: bool,
    pub missing_credentials: Vec<String>,
    pub running: bool,
    /// A running command server's process (group) id.
    pub pid: Option<u32>,
    /// Tools known from its last listing (empty until it was started once).
    pub tools: Vec<String>,
    /// Failures in a row since it last worked.
    pub failures: u32,
    pub last_error: Option<String>,
}

/// Every library server, shared by the agent's turns (cheap to clone).
#[derive(Clone)]
pub struct McpClients {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.inner.servers.iter().map(|server| &server.settings.name)).finish()
    }
}

struct Inner {
    servers: Vec<Server>,
    store: Option<Store>,
    child_env: ChildEnv,
    settings: McpClientSettings,
    http: reqwest::Client,
}

struct Server {
    settings: McpServerSettings,
    /// The live connection; held only to start or stop it, never during a call.
    connection: tokio::sync::Mutex<Option<Connection>>,
    state: Mutex<ServerState>,
}

#[derive(Default)]
struct ServerState {
    tools: Option<Arc<Vec<RemoteTool>>>,
    running: bool,
    pid: Option<u32>,
    last_used: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

struct Connection {
    service: RunningService<RoleClient, ClientConfig>,
    process: Option<ServerProcess>,
}

/// A command server's process: its group is stopped with it.
struct ServerProcess {
    child: tokio::process::Child,
    group: u32,
}

/// Between TERM and KILL when stopping a server's process group.
const STOP_GRACE: Duration = Duration::from_secs(2);
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl McpClients {
    /// The library's servers marked for the chat (`chat = true`). `http`
    /// reaches URL servers; `store` records command servers' pids (tests may
    /// pass `None`).
    pub fn new(
        library: &[McpServerSettings],
        child_env: ChildEnv,
        settings: McpClientSettings,
        http: reqwest::Client,
        store: Option<Store>,
    ) -> Self {
        let servers = library
            .iter()
            .filter(|server| server.chat)
            .map(|settings| Server {
                settings: settings.clone(),
                connection: tokio::sync::Mutex::new(None),
                state: Mutex::new(ServerState::default()),
            })
            .collect();
        Self { inner: Arc::new(Inner { servers, store, child_env, settings, http }) }
    }

    pub fn is_empty(&self) -> bool {
        self.inner.servers.is_empty()
    }

    pub fn settings(&self) -> &McpClientSettings {
        &self.inner.settings
    }

    /// The library entries the chat may use.
    pub fn library(&self) -> impl Iterator<Item = &McpServerSettings> {
        self.inner.servers.iter().map(|server| &server.settings)
    }

    /// The server's last listing, if it was ever listed (nothing is started or asked).
    pub fn kept_tools(&self, name: &str) -> Option<Arc<Vec<RemoteTool>>> {
        self.server(name).ok()?.lock_state().tools.clone()
    }

    /// The server's tools: the last listing, else it is started and asked.
    pub async fn tools(&self, name: &str) -> Result<Arc<Vec<RemoteTool>>, McpClientError> {
        let server = self.server(name)?;
        if let Some(tools) = server.lock_state().tools.clone() {
            return Ok(tools);
        }
        let peer = self.connect(server).await?;
        let limit = Duration::from_secs(self.inner.settings.start_timeout_secs);
        let listed = match tokio::time::timeout(limit, peer.list_all_tools()).await {
            Ok(Ok(listed)) => listed,
            Ok(Err(error)) => return Err(self.failed(server, error.to_string()).await),
            Err(_) => {
                self.failed(server, format!("listing tools took over {} s", limit.as_secs())).await;
                return Err(McpClientError::TimedOut { server: name.to_owned(), secs: limit.as_secs() });
            }
        };
        let tools: Vec<RemoteTool> = listed
            .into_iter()
            .map(|tool| {
                let hinted = tool.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false);
                let listed_read_only = server.settings.read_only.iter().any(|n| n.as_str() == tool.name.as_ref());
                RemoteTool {
                    read_only: hinted || listed_read_only,
                    description: tool.description.map(|d| d.into_owned()).unwrap_or_default(),
                    input_schema: Value::Object((*tool.input_schema).clone()),
                    name: tool.name.into_owned(),
                }
            })
            .collect();
        let tools = Arc::new(tools);
        server.lock_state().tools = Some(tools.clone());
        tracing::info!(server = name, tools = tools.len(), "listed an MCP server's tools");
        Ok(tools)
    }

    /// Call `tool` on server `name`, within `limit`. A server that fails
    /// (dies, closes, hangs) is stopped; the next use starts it again.
    pub async fn call(
        &self,
        name: &str,
        tool: &str,
        arguments: Value,
        limit: Duration,
    ) -> Result<CallOutcome, McpClientError> {
        let server = self.server(name)?;
        let peer = self.connect(server).await?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let result = match tokio::time::timeout(limit, peer.call_tool(params)).await {
            Ok(Ok(result)) => result,
            Ok(Err(rmcp::ServiceError::McpError(error))) => {
                // The server answered with a protocol error (unknown tool, bad arguments): it works.
                self.succeeded(server);
                return Ok(CallOutcome { text: error.message.to_string(), is_error: true });
            }
            Ok(Err(error)) => return Err(self.failed(server, error.to_string()).await),
            Err(_) => {
                self.failed(server, format!("a call to {tool} took over {} s", limit.as_secs())).await;
                return Err(McpClientError::TimedOut { server: name.to_owned(), secs: limit.as_secs() });
            }
        };
        self.succeeded(server);
        let mut parts = Vec::new();
        for block in &result.content {
            match block.as_text() {
                Some(text) => parts.push(text.text.clone()),
                None => parts.push(non_text_summary(block)),
            }
        }
        if parts.is_empty()
            && let Some(structured) = &result.structured_content
        {
            parts.push(structured.to_string());
        }
        Ok(CallOutcome { text: parts.join("\n"), is_error: result.is_error.unwrap_or(false) })
    }

    /// Stop servers unused for `[mcp_client] idle_secs` (their tool lists are kept).
    pub async fn stop_idle(&self) {
        let idle = Duration::from_secs(self.inner.settings.idle_secs);
        for server in &self.inner.servers {
            let stale = {
                let state = server.lock_state();
                state.running && state.last_used.is_some_and(|used| used.elapsed() >= idle)
            };
            if stale {
                tracing::info!(server = %server.settings.name, "stopping an idle MCP server");
                self.stop(server).await;
            }
        }
    }

    /// Stop every running server (at shutdown).
    pub async fn shutdown(&self) {
        for server in &self.inner.servers {
            self.stop(server).await;
        }
    }

    pub fn status(&self) -> Vec<ServerStatus> {
        self.inner
            .servers
            .iter()
            .map(|server| {
                let state = server.lock_state();
                ServerStatus {
                    name: server.settings.name.clone(),
                    transport: if server.settings.url.is_some() { "http" } else { "stdio" },
                    chat: server.settings.chat,
                    missing_credentials: server.settings.missing_credentials().into_iter().map(str::to_owned).collect(),
                    running: state.running,
                    pid: state.pid,
                    tools: state.tools.iter().flat_map(|tools| tools.iter().map(|t| t.name.clone())).collect(),
                    failures: state.failures,
                    last_error: state.last_error.clone(),
                }
            })
            .collect()
    }

    fn server(&self, name: &str) -> Result<&Server, McpClientError> {
        self.inner
            .servers
            .iter()
            .find(|server| server.settings.name == name)
            .ok_or_else(|| McpClientError::Unknown(name.to_owned()))
    }

    /// The server's live peer, starting it if it is not running.
    async fn connect(&self, server: &Server) -> Result<Peer<RoleClient>, McpClientError> {
        let name = &server.settings.name;
        let mut connection = server.connection.lock().await;
        if let Some(live) = connection.as_ref() {
            if !live.service.is_closed() {
                server.lock_state().last_used = Some(Instant::now());
                return Ok(live.service.peer().clone());
            }
            // It closed by itself (the process died): clean up, then start again.
            if let Some(dead) = connection.take() {
                self.forget(server, dead).await;
            }
        }
        let missing = server.settings.missing_credentials();
        if !missing.is_empty() {
            return Err(McpClientError::MissingCredentials { server: name.clone(), missing: missing.join(", ") });
        }
        if let Some(retry_at) = server.lock_state().retry_at
            && let Some(wait) = retry_at.checked_duration_since(Instant::now())
        {
            return Err(McpClientError::BackingOff { server: name.clone(), wait_secs: wait.as_secs().max(1) });
        }
        let limit = Duration::from_secs(self.inner.settings.start_timeout_secs);
        let started = match tokio::time::timeout(limit, self.start(server)).await {
            Ok(started) => started,
            Err(_) => Err(format!("it did not finish starting within {} s", limit.as_secs())),
        };
        match started {
            Ok(live) => {
                let peer = live.service.peer().clone();
                let pid = live.process.as_ref().map(|process| process.group);
                *connection = Some(live);
                let mut state = server.lock_state();
                state.running = true;
                state.pid = pid;
                state.last_used = Some(Instant::now());
                tracing::info!(server = %name, "started an MCP server");
                Ok(peer)
            }
            Err(reason) => {
                drop(connection);
                self.record_failure(server, &reason);
                Err(McpClientError::Start { server: name.clone(), reason })
            }
        }
    }

    async fn start(&self, server: &Server) -> Result<Connection, String> {
        let info =
            ClientConfig::new(ClientCapabilities::default(), Implementation::new("valor", env!("CARGO_PKG_VERSION")));
        match (&server.settings.command, &server.settings.url) {
            (_, Some(url)) => {
                use rmcp::transport::StreamableHttpClientTransport;
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                let mut headers = HashMap::new();
                let mut auth = None;
                for (key, value) in server.settings.resolved_headers() {
                    if key.eq_ignore_ascii_case("authorization") {
                        // rmcp adds the `Bearer ` prefix itself.
                        auth = Some(value.strip_prefix("Bearer ").unwrap_or(&value).to_owned());
                        continue;
                    }
                    let name = reqwest::header::HeaderName::try_from(key.as_str())
                        .map_err(|e| format!("header {key}: {e}"))?;
                    let value =
                        reqwest::header::HeaderValue::try_from(value).map_err(|e| format!("header {key}: {e}"))?;
                    headers.insert(name, value);
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                config.auth_header = auth;
                config.custom_headers = headers;
                let transport = StreamableHttpClientTransport::with_client(self.inner.http.clone(), config);
                let service = info.serve(transport).await.map_err(|error| error.to_string())?;
                Ok(Connection { service, process: None })
            }
            (command, None) => {
                let program = command.as_deref().unwrap_or_default();
                let env = self.inner.child_env.with(&server.settings.server_env());
                let mut command = super::child::command(program, &env);
                command
                    .args(&server.settings.args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .kill_on_drop(true);
                let mut child = command.spawn().map_err(|error| format!("{program}: {error}"))?;
                let group = child.id().ok_or("it exited at once")?;
                self.record_child(group, program).await;
                let (Some(stdout), Some(stdin), Some(stderr)) =
                    (child.stdout.take(), child.stdin.take(), child.stderr.take())
                else {
                    return Err("its pipes could not be opened".into());
                };
                let name = server.settings.name.clone();
                tokio::spawn(async move {
                    // Its log lines, at debug level, bounded per line.
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let line: String = line.chars().take(500).collect();
                        tracing::debug!(server = %name, "{line}");
                    }
                });
                let process = ServerProcess { child, group };
                match info.serve((stdout, stdin)).await {
                    Ok(service) => Ok(Connection { service, process: Some(process) }),
                    Err(error) => {
                        self.stop_process(process).await;
                        Err(error.to_string())
                    }
                }
            }
        }
    }

    fn succeeded(&self, server: &Server) {
        let mut state = server.lock_state();
        state.failures = 0;
        state.retry_at = None;
        state.last_used = Some(Instant::now());
    }

    /// A call or listing failed at the transport: the server is stopped and backs off.
    async fn failed(&self, server: &Server, reason: String) -> McpClientError {
        tracing::warn!(server = %server.settings.name, %reason, "an MCP server failed; stopping it");
        self.stop(server).await;
        self.record_failure(server, &reason);
        McpClientError::Call { server: server.settings.name.clone(), reason }
    }

    fn record_failure(&self, server: &Server, reason: &str) {
        let mut state = server.lock_state();
        state.failures += 1;
        let exponent = state.failures.saturating_sub(1).min(6);
        let wait = (BACKOFF_BASE * 2u32.pow(exponent)).min(BACKOFF_MAX);
        // The first failure is retried on the next use at once (a server that died once is just restarted).
        state.retry_at = (state.failures > 1).then(|| Instant::now() + wait);
        state.last_error = Some(reason.to_owned());
    }

    async fn stop(&self, server: &Server) {
        let taken = server.connection.lock().await.take();
        if let Some(connection) = taken {
            self.forget(server, connection).await;
        }
    }

    async fn forget(&self, server: &Server, connection: Connection) {
        {
            let mut state = server.lock_state();
            state.running = false;
            state.pid = None;
        }
        let Connection { service, process } = connection;
        let _ = tokio::time::timeout(STOP_GRACE, service.cancel()).await;
        if let Some(process) = process {
            self.stop_process(process).await;
        }
    }

    async fn stop_process(&self, mut process: ServerProcess) {
        super::process::stop_child_group(process.group, STOP_GRACE, &mut process.child).await;
        if let Some(store) = &self.inner.store
            && let Err(error) = store.remove_child_process(i64::from(process.group)).await
        {
            tracing::warn!(%error, "could not forget an MCP server's process");
        }
    }

    async fn record_child(&self, group: u32, program: &str) {
        let Some(store) = &self.inner.store else { return };
        let record = super::orphans::child_record(
            i64::from(group),
            format!("mcp server {program}"),
            chrono::Utc::now().timestamp_millis(),
        );
        if let Err(error) = store.register_child_process(&record).await {
            tracing::warn!(%error, "could not record an MCP server's process");
        }
    }
}

impl Server {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A one-line stand-in for content the model cannot read as text.
fn non_text_summary(block: &rmcp::model::ContentBlock) -> String {
    match block {
        rmcp::model::ContentBlock::Image(image) => format!("[image: {}]", image.mime_type),
        rmcp::model::ContentBlock::Audio(audio) => format!("[audio: {}]", audio.mime_type),
        rmcp::model::ContentBlock::Resource(_) => "[embedded resource]".to_owned(),
        rmcp::model::ContentBlock::ResourceLink(link) => format!("[resource: {}]", link.uri),
        rmcp::model::ContentBlock::Text(text) => text.text.clone(),
        _ => "[content of a kind valor does not read]".to_owned(),
    }
}
