//! The MCP servers a Claude Code run gets, and the per-run access to
//! valor's own server.
//!
//! Before each run: [`select_servers`] picks from the `[[mcp_server]]`
//! library the servers whose credentials are present and which serve the
//! task's kind (each choice with its reason); [`RunMcpFile::write`] writes
//! the CLI's `--mcp-config` JSON under `<data_dir>/tmp/mcp/` (mode 0600: it
//! holds credentials) and removes it when dropped. valor's own server is
//! always in it: Streamable HTTP at `/mcp-run` with a bearer token minted for
//! this run ([`RunAccess::grant`]). The token binds the run's job, chat and
//! workspace, so Claude Code's calls act in that chat only; the grant ends
//! with the run.
//!
//! Invariants: a server missing any credential is never written; credential
//! values never reach logs or the job record (only names and reasons do).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Requester, Workspace};
use crate::config::{McpServerSettings, VALOR_SERVER_NAME};

/// Where valor's per-run MCP endpoint is mounted.
pub const RUN_MCP_PATH: &str = "/mcp-run";

/// One library server and whether this run gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerChoice {
    pub name: String,
    pub included: bool,
    pub reason: String,
}

/// Decide for every library server whether a run of `task` (of `kind`, if
/// the delegation named one) gets it. valor's own server is listed first.
pub fn select_servers(catalog: &[McpServerSettings], task: &str, kind: Option<&str>) -> Vec<ServerChoice> {
    let mut choices = vec![ServerChoice {
        name: VALOR_SERVER_NAME.to_owned(),
        included: true,
        reason: "valor's own server is in every run".to_owned(),
    }];
    let words: Vec<String> =
        task.split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_').map(str::to_lowercase).collect();
    for server in catalog {
        let missing = server.missing_credentials();
        let (included, reason) = if !missing.is_empty() {
            (false, format!("missing credentials: {}", missing.join(", ")))
        } else if server.kinds.is_empty() {
            (true, "serves every task".to_owned())
        } else if let Some(kind) = kind {
            match server.kinds.iter().find(|served| served.eq_ignore_ascii_case(kind)) {
                Some(served) => (true, format!("serves task kind {served:?}")),
                None => (false, format!("serves {:?}, not task kind {kind:?}", server.kinds)),
            }
        } else {
            match server.kinds.iter().find(|served| words.contains(&served.to_lowercase())) {
                Some(served) => (true, format!("the task mentions {served:?}")),
                None => (false, format!("the task mentions none of {:?}", server.kinds)),
            }
        };
        choices.push(ServerChoice { name: server.name.clone(), included, reason });
    }
    choices
}

/// What a run's token grants: the run's job, chat and workspace.
#[derive(Debug, Clone)]
pub struct RunScope {
    pub job_id: i64,
    pub conversation_id: String,
    pub workspace: Workspace,
    /// Who asked for the run: valor's tools act with their permissions.
    pub requester: Requester,
    /// An unanswered permission request is denied after this long.
    pub approval_timeout: Duration,
}

/// valor's per-run MCP access: where `/mcp-run` listens and the live grants.
/// Cheap to clone; the app and the `claude_code` handler share one.
#[derive(Debug, Clone, Default)]
pub struct RunAccess {
    inner: Arc<RunAccessInner>,
}

#[derive(Debug, Default)]
struct RunAccessInner {
    /// `http://host:port` valor serves on (set when the listener is bound).
    base_url: OnceLock<String>,
    /// SHA-256 of a token → the run it grants.
    grants: Mutex<HashMap<[u8; 32], RunScope>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl RunAccess {
    /// Record the address valor listens on (an unspecified address becomes loopback).
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let _ = self.inner.base_url.set(format!("http://{host}:{}", addr.port()));
    }

    /// The `/mcp-run` URL, once valor listens.
    pub fn endpoint(&self) -> Option<String> {
        self.inner.base_url.get().map(|base| format!("{base}{RUN_MCP_PATH}"))
    }

    /// A fresh random token for `scope`; valid until the grant is dropped.
    pub fn grant(&self, scope: RunScope) -> RunGrant {
        let token = format!("vr_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        self.grants().insert(digest(&token), scope);
        RunGrant { access: self.clone(), token }
    }

    /// The run a bearer token belongs to, if it is live.
    pub fn scope(&self, token: &str) -> Option<RunScope> {
        self.grants().get(&digest(token)).cloned()
    }

    fn grants(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], RunScope>> {
        self.inner.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live token; revoked when dropped (the run is over).
#[derive(Debug)]
pub struct RunGrant {
    access: RunAccess,
    token: String,
}

impl RunGrant {
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for RunGrant {
    fn drop(&mut self) {
        self.access.grants().remove(&digest(&self.token));
    }
}

/// The run's `--mcp-config` file; removed when dropped.
#[derive(Debug)]
pub struct RunMcpFile {
    path: PathBuf,
}

impl RunMcpFile {
    /// Write the config for the included servers to `<dir>/<job>-<random>.json`.
    pub fn write(
        dir: &Path,
        job_id: i64,
        valor: (&str, &str),
        catalog: &[McpServerSettings],
        choices: &[ServerChoice],
    ) -> std::io::Result<RunMcpFile> {
        let (url, token) = valor;
        let mut servers = BTreeMap::new();
        servers.insert(
            VALOR_SERVER_NAME.to_owned(),
            json!({"type": "http", "url": url, "headers": {"Authorization": format!("Bearer {token}")}}),
        );
        for server in catalog {
            if choices.iter().any(|choice| choice.included && choice.name == server.name) {
                servers.insert(server.name.clone(), server_entry(server));
            }
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{job_id}-{}.json", uuid::Uuid::new_v4().simple()));
        let text = serde_json::to_string_pretty(&json!({ "mcpServers": servers }))?;
        write_private(&path, text.as_bytes())?;
        Ok(RunMcpFile { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunMcpFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove the run's MCP config {}: {error}", self.path.display());
        }
    }
}

fn server_entry(server: &McpServerSettings) -> Value {
    match (&server.command, &server.url) {
        (_, Some(url)) => json!({"type": "http", "url": url, "headers": server.resolved_headers()}),
        (command, None) => json!({
            "type": "stdio",
            "command": command.clone().unwrap_or_default(),
            "args": server.args,
            "env": server.server_env(),
        }),
    }
}

/// What the `claude_code` handler needs to give each run its MCP servers.
#[derive(Debug, Clone)]
pub struct RunMcpSetup {
    /// The `[[mcp_server]]` library.
    pub catalog: Vec<McpServerSettings>,
    pub access: RunAccess,
    /// Where per-run config files are written (`<data_dir>/tmp/mcp`).
    pub dir: PathBuf,
    /// Route permission requests to the chat (`[claude] approvals`).
    pub approvals: bool,
    pub approval_timeout: Duration,
}

/// The name Claude Code gives a valor MCP tool.
pub fn valor_tool(tool: &str) -> String {
    format!("mcp__{VALOR_SERVER_NAME}__{tool}")
}

/// The permission prompt tool on valor's run server.
pub const APPROVE_TOOL: &str = "approve";

/// One run's MCP servers: its config file and token live as long as this.
#[derive(Debug)]
pub struct PreparedRun {
    pub choices: Vec<ServerChoice>,
    file: RunMcpFile,
    _grant: RunGrant,
    approvals: bool,
    approval_timeout: Duration,
}

impl RunMcpSetup {
    /// Choose the servers, mint the run's token and write the config file.
    pub fn prepare(
        &self,
        job_id: i64,
        conversation_id: &str,
        workspace: &Workspace,
        requester: &Requester,
        task: &str,
        kind: Option<&str>,
    ) -> Result<PreparedRun, String> {
        let endpoint = self.access.endpoint().ok_or("valor's MCP endpoint is not listening yet")?;
        let choices = select_servers(&self.catalog, task, kind);
        let scope = RunScope {
            job_id,
            conversation_id: conversation_id.to_owned(),
            workspace: workspace.clone(),
            requester: requester.clone(),
            approval_timeout: self.approval_timeout,
        };
        let grant = self.access.grant(scope);
        let file = RunMcpFile::write(&self.dir, job_id, (&endpoint, grant.token()), &self.catalog, &choices)
            .map_err(|error| format!("the run's MCP config could not be written: {error}"))?;
        Ok(PreparedRun {
            choices,
            file,
            _grant: grant,
            approvals: self.approvals,
            approval_timeout: self.approval_timeout,
        })
    }
}

impl PreparedRun {
    /// `base` plus this run's MCP config, valor's tools allowed, and the approval tool.
    pub fn run_config(&self, base: &super::claude::ClaudeRunConfig) -> super::claude::ClaudeRunConfig {
        let mut config = base.clone();
        config.mcp_config = Some(self.file.path().to_path_buf());
        config.allowed_tools.push(format!("mcp__{VALOR_SERVER_NAME}"));
        // Start only once the servers are connected: else a permission request made
        // before valor's server is up finds no prompt tool and is denied.
        config.env.entry("MCP_CONNECTION_NONBLOCKING".to_owned()).or_insert_with(|| "false".to_owned());
        if self.approvals {
            config.permission_prompt_tool = Some(valor_tool(APPROVE_TOOL));
            // The approval call waits for a person: the CLI must not give up on it first.
            let wait = self.approval_timeout.saturating_add(Duration::from_secs(60)).as_millis();
            config.env.entry("MCP_TOOL_TIMEOUT".to_owned()).or_insert_with(|| wait.to_string());
        }
        config
    }

    /// "valor, github (left out: sentry — missing credentials: SENTRY_ORG)".
    pub fn describe(&self) -> String {
        let chosen: Vec<&str> = self.choices.iter().filter(|c| c.included).map(|c| c.name.as_str()).collect();
        let left: Vec<String> =
            self.choices.iter().filter(|c| !c.included).map(|c| format!("{} — {}", c.name, c.reason)).collect();
        if left.is_empty() {
            chosen.join(", ")
        } else {
            format!("{} (left out: {})", chosen.join(", "), left.join("; "))
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server(name: &str, credentials: &[&str], present: &[&str], kinds: &[&str]) -> McpServerSettings {
        McpServerSettings {
            name: name.into(),
            command: Some(format!("{name}-mcp")),
            args: vec!["stdio".into()],
            url: None,
            credentials: credentials.iter().map(|c| (*c).to_owned()).collect(),
            env: BTreeMap::from([("LOG".to_owned(), "warn".to_owned())]),
            headers: BTreeMap::new(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            chat: true,
            read_only: Vec::new(),
            credential_values: present.iter().map(|c| ((*c).to_owned(), format!("secret-{c}").into())).collect(),
        }
    }

    fn included(choices: &[ServerChoice]) -> Vec<&str> {
        choices.iter().filter(|c| c.included).map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn servers_missing_a_credential_are_left_out_with_the_reason() {
        let catalog = [
            server("github", &["GITHUB_TOKEN"], &["GITHUB_TOKEN"], &[]),
            server("sentry", &["SENTRY_TOKEN", "SENTRY_ORG"], &["SENTRY_TOKEN"], &[]),
            server("docs", &[], &[], &[]),
        ];
        let choices = select_servers(&catalog, "fix the build", None);
        assert_eq!(included(&choices), ["valor", "github", "docs"]);
        let sentry = choices.iter().find(|c| c.name == "sentry").unwrap();
        assert_eq!(sentry.reason, "missing credentials: SENTRY_ORG");
    }

    #[test]
    fn task_kinds_filter_by_the_named_kind_or_the_words_of_the_task() {
        let catalog = [
            server("stripe", &[], &[], &["payments", "stripe"]),
            server("linear", &[], &[], &["issues"]),
            server("any", &[], &[], &[]),
        ];
        assert_eq!(
            included(&select_servers(&catalog, "refund the order", Some("payments"))),
            ["valor", "stripe", "any"]
        );
        assert_eq!(included(&select_servers(&catalog, "Check Stripe webhooks", None)), ["valor", "stripe", "any"]);
        // A word containing a kind is not the kind ("issuesx"), and a named kind wins over words.
        assert_eq!(included(&select_servers(&catalog, "close issuesx", None)), ["valor", "any"]);
        assert_eq!(included(&select_servers(&catalog, "stripe issues", Some("issues"))), ["valor", "linear", "any"]);
        let choices = select_servers(&catalog, "x", Some("docs"));
        assert_eq!(choices[2].reason, "serves [\"issues\"], not task kind \"docs\"");
    }

    #[test]
    fn the_written_file_holds_valor_and_the_included_servers_only_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut linear = server("linear", &["LINEAR_TOKEN"], &["LINEAR_TOKEN"], &[]);
        linear.command = None;
        linear.url = Some("https://mcp.linear.app/mcp".into());
        linear.headers = BTreeMap::from([("Authorization".to_owned(), "Bearer ${LINEAR_TOKEN}".to_owned())]);
        let catalog =
            [server("github", &["GITHUB_TOKEN"], &["GITHUB_TOKEN"], &[]), server("gone", &["X"], &[], &[]), linear];
        let choices = select_servers(&catalog, "t", None);
        let file =
            RunMcpFile::write(dir.path(), 42, ("http://127.0.0.1:1/mcp-run", "vr_tok"), &catalog, &choices).unwrap();
        let path = file.path().to_path_buf();
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("42-"));
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let servers = config["mcpServers"].as_object().unwrap();
        assert_eq!(servers.keys().collect::<Vec<_>>(), ["github", "linear", "valor"]);
        assert_eq!(servers["valor"]["headers"]["Authorization"], "Bearer vr_tok");
        assert_eq!(servers["github"]["env"]["GITHUB_TOKEN"], "secret-GITHUB_TOKEN");
        assert_eq!(servers["github"]["env"]["LOG"], "warn");
        assert_eq!(servers["github"]["args"], json!(["stdio"]));
        assert_eq!(servers["linear"]["headers"]["Authorization"], "Bearer secret-LINEAR_TOKEN");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        drop(file);
        assert!(!path.exists(), "the per-run config outlived the run");
    }

    #[test]
    fn a_prepared_run_adds_its_config_valors_tools_and_the_approval_tool_and_cleans_up() {
        let data = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::open("w", root.path(), &[]).unwrap();
        let access = RunAccess::default();
        let setup = RunMcpSetup {
            catalog: vec![server("gh", &["GH"], &[], &[])],
            access: access.clone(),
            dir: data.path().join("tmp/mcp"),
            approvals: true,
            approval_timeout: Duration::from_secs(30),
        };
        assert!(
            setup.prepare(1, "c", &workspace, &Requester::admin(), "t", None).unwrap_err().contains("not listening")
        );
        access.set_listen_addr("127.0.0.1:9".parse().unwrap());
        let prepared = setup.prepare(1, "c", &workspace, &Requester::admin(), "t", None).unwrap();
        assert_eq!(prepared.describe(), "valor (left out: gh — missing credentials: GH)");
        let base = super::super::claude::ClaudeRunConfig {
            bin: "claude".into(),
            time_limit: Duration::from_secs(5),
            permission_mode: "default".into(),
            allowed_tools: vec!["Read".into()],
            env: BTreeMap::new(),
            kill_grace: Duration::from_secs(1),
            mcp_config: None,
            permission_prompt_tool: None,
        };
        let config = prepared.run_config(&base);
        let file = config.mcp_config.clone().unwrap();
        assert!(file.exists());
        assert_eq!(config.allowed_tools, ["Read", "mcp__valor"]);
        assert_eq!(config.permission_prompt_tool.as_deref(), Some("mcp__valor__approve"));
        assert_eq!(config.env["MCP_TOOL_TIMEOUT"], "90000");
        assert_eq!(config.env["MCP_CONNECTION_NONBLOCKING"], "false");
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let token =
            written["mcpServers"]["valor"]["headers"]["Authorization"].as_str().unwrap().trim_start_matches("Bearer ");
        assert_eq!(access.scope(token).unwrap().conversation_id, "c");
        drop(prepared);
        assert!(!file.exists());
        assert!(access.scope(token).is_none(), "the token outlived the run");
        let off = RunMcpSetup { approvals: false, ..setup }
            .prepare(2, "c", &workspace, &Requester::admin(), "t", None)
            .unwrap();
        assert_eq!(off.run_config(&base).permission_prompt_tool, None);
    }

    #[test]
    fn a_grant_is_valid_until_dropped_and_tokens_are_unguessable() {
        let access = RunAccess::default();
        assert_eq!(access.endpoint(), None);
        access.set_listen_addr("0.0.0.0:8080".parse().unwrap());
        assert_eq!(access.endpoint().as_deref(), Some("http://127.0.0.1:8080/mcp-run"));
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::open("w", root.path(), &[]).unwrap();
        let scope = RunScope {
            job_id: 5,
            conversation_id: "c".into(),
            workspace,
            requester: Requester::admin(),
            approval_timeout: Duration::from_secs(1),
        };
        let grant = access.grant(scope.clone());
        let other = access.grant(scope);
        assert_ne!(grant.token(), other.token());
        assert!(grant.token().len() >= 64);
        assert_eq!(access.scope(grant.token()).unwrap().job_id, 5);
        assert!(access.scope("vr_guess").is_none());
        let token = grant.token().to_owned();
        drop(grant);
        assert!(access.scope(&token).is_none());
        assert!(access.scope(other.token()).is_some());
    }
}
