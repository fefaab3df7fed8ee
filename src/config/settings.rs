//! The settings tree. Every struct denies unknown fields and has defaults, so
//! an empty configuration is valid and a typo is an error naming the key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Database, media, handoff and log files (`VALOR_DATA_DIR`).
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub llm: LlmSettings,
    pub anthropic: AnthropicSettings,
    pub openai: OpenAiSettings,
    pub perplexity: PerplexitySettings,
    pub ollama: OllamaSettings,
    pub notion: NotionSettings,
    pub telegram: TelegramSettings,
    pub claude: ClaudeSettings,
    pub git: GitSettings,
    pub agent: AgentSettings,
    pub context: ContextSettings,
    pub intent: IntentSettings,
    pub tools: super::ToolsSettings,
    pub mcp: super::McpSettings,
    pub jobs: JobsSettings,
    pub resources: super::ResourcesSettings,
    #[serde(rename = "schedule")]
    pub schedules: Vec<ScheduleSettings>,
    pub daydream: super::DaydreamSettings,
    pub gemini: super::GeminiSettings,
    pub routing: super::RoutingSettings,
    #[serde(rename = "workspace")]
    pub workspaces: Vec<WorkspaceSettings>,
    /// The MCP library (`[[mcp_server]]`): servers a Claude Code run may get.
    #[serde(rename = "mcp_server")]
    pub mcp_servers: Vec<super::McpServerSettings>,
    /// How the chat uses the library's servers (`[mcp_client]`).
    pub mcp_client: super::McpClientSettings,
    /// The file these settings were read from, if any (not a key).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// What child processes inherit from valor's environment (not a key).
    #[serde(skip)]
    pub child_env: super::ChildEnv,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerSettings::default(),
            log: LogSettings::default(),
            llm: LlmSettings::default(),
            anthropic: AnthropicSettings::default(),
            openai: OpenAiSettings::default(),
            perplexity: PerplexitySettings::default(),
            ollama: OllamaSettings::default(),
            notion: NotionSettings::default(),
            telegram: TelegramSettings::default(),
            claude: ClaudeSettings::default(),
            git: GitSettings::default(),
            agent: AgentSettings::default(),
            context: ContextSettings::default(),
            intent: IntentSettings::default(),
            tools: super::ToolsSettings::default(),
            mcp: super::McpSettings::default(),
            jobs: JobsSettings::default(),
            resources: super::ResourcesSettings::default(),
            schedules: Vec::new(),
            daydream: super::DaydreamSettings::default(),
            gemini: super::GeminiSettings::default(),
            routing: super::RoutingSettings::default(),
            workspaces: Vec::new(),
            mcp_servers: Vec::new(),
            mcp_client: super::McpClientSettings::default(),
            source_file: None,
            child_env: super::ChildEnv::default(),
        }
    }
}

impl Settings {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("valor.db")
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen_addr()?;
        if self.server.api_tokens.iter().any(|token| token.expose_secret().trim().is_empty()) {
            return Err(invalid("server.api_tokens", "(or VALOR_API_TOKENS) holds an empty or blank token"));
        }
        for origin in &self.server.allowed_origins {
            if serialized_origin(origin).is_none() {
                let why = format!("lists {origin:?}, which is not an origin like `https://chat.example.com`");
                return Err(invalid("server.allowed_origins", &why));
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if self.agent.max_steps == 0 {
            return Err(invalid("agent.max_steps", "must be at least 1"));
        }
        if self.context.budget_tokens < 500 {
            return Err(invalid("context.budget_tokens", "must be at least 500"));
        }
        if self.context.summary_tokens >= self.context.budget_tokens {
            return Err(invalid("context.summary_tokens", "must be smaller than context.budget_tokens"));
        }
        if let Err(error) = self.log.level.parse::<tracing_subscriber::filter::Targets>() {
            let why = format!(
                "(also set by RUST_LOG) is not a log filter ({error}); use a level or a target=level list like `info` or `valor=debug,info`"
            );
            return Err(invalid("log.level", &why));
        }
        if self.llm.first_byte_timeout_secs == 0 || self.llm.request_timeout_secs == 0 {
            return Err(invalid("llm.first_byte_timeout_secs/request_timeout_secs", "must be at least 1"));
        }
        if self.llm.max_tokens == 0 {
            return Err(invalid("llm.max_tokens", "must be at least 1"));
        }
        if self.openai.transcription_model.trim().is_empty() {
            return Err(invalid("openai.transcription_model", "must name a model, e.g. whisper-1"));
        }
        for (key, url) in [
            ("anthropic.base_url", &self.anthropic.base_url),
            ("openai.base_url", &self.openai.base_url),
            ("perplexity.base_url", &self.perplexity.base_url),
            ("notion.base_url", &self.notion.base_url),
            ("telegram.api_url", &self.telegram.api_url),
        ] {
            check_http_url(key, url)?;
        }
        if let Some(host) = &self.ollama.host {
            check_http_url("ollama.host", &self.ollama.normalized_host(host))?;
        }
        self.tools.validate()?;
        self.jobs.validate()?;
        self.resources.validate()?;
        validate_schedules(&self.schedules)?;
        self.daydream.validate()?;
        self.gemini.validate()?;
        self.routing.validate()?;
        super::mcp_library::validate_mcp_servers(&self.mcp_servers)?;
        self.mcp_client.validate()?;
        if self.git.author_parts().is_none() {
            return Err(invalid("git.author", "must look like `Name <name@example.com>`"));
        }
        let prefix = &self.git.branch_prefix;
        if prefix.is_empty()
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
            || prefix.contains("..")
            || prefix.starts_with(['/', '-', '.'])
        {
            return Err(invalid("git.branch_prefix", "must be letters, digits, `/`, `-`, `_` or `.` (e.g. `valor/`)"));
        }
        if self.claude.approval_timeout_secs == 0 {
            return Err(invalid("claude.approval_timeout_secs", "must be at least 1"));
        }
        if self.telegram.rate_limit_per_minute == 0 || self.telegram.rate_limit_burst == 0 {
            return Err(invalid("telegram.rate_limit_per_minute/rate_limit_burst", "must be at least 1"));
        }
        if let Some(url) = &self.telegram.webhook_url {
            if !url.starts_with("https://") || url.len() <= "https://".len() {
                return Err(invalid("telegram.webhook_url", "must be an https:// URL (Telegram only posts to HTTPS)"));
            }
            let secret_ok = self.telegram.webhook_secret.as_ref().is_some_and(|secret| {
                let secret = secret.expose_secret();
                (MIN_WEBHOOK_SECRET_CHARS..=256).contains(&secret.len())
                    && secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if !secret_ok {
                return Err(invalid(
                    "telegram.webhook_secret",
                    "must be set with webhook_url: 16–256 characters of A–Z, a–z, 0–9, _ and - \
                     (e.g. `openssl rand -hex 24`)",
                ));
            }
        }
        if self.telegram.poll_timeout_secs > 50 {
            return Err(invalid("telegram.poll_timeout_secs", "must be at most 50"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, workspace) in self.workspaces.iter().enumerate() {
            if workspace.name.trim().is_empty() {
                return Err(invalid(&format!("workspace[{index}].name"), "must not be empty"));
            }
            if !names.insert(workspace.name.as_str()) {
                return Err(invalid(&format!("workspace[{index}].name"), "is used by two workspaces"));
            }
            if !workspace.path.is_absolute() {
                return Err(invalid(&format!("workspace[{index}].path"), "must be an absolute path"));
            }
        }
        Ok(())
    }
}

/// An IANA time zone name (`"Europe/Berlin"`, `"UTC"`), as `[[schedule]]`
/// and `[daydream]` take it; the error text follows the key it belongs to.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| format!("is not an IANA time zone name (e.g. \"Europe/Berlin\" or \"UTC\"): {name:?}"))
}

/// `scheme://host[:port]` (lower-case, no default port) of an http(s)
/// origin; `None` for anything else (a path, a query, userinfo).
pub fn serialized_origin(text: &str) -> Option<String> {
    let parsed = url::Url::parse(text.trim()).ok()?;
    let is_origin = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && matches!(parsed.path(), "" | "/")
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    is_origin.then(|| parsed.origin().ascii_serialization())
}

pub(super) fn invalid(key: &str, why: &str) -> ConfigError {
    ConfigError::Invalid(format!("`{key}` {why}"))
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let ok = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).is_some_and(|rest| !rest.is_empty());
    if ok { Ok(()) } else { Err(invalid(key, &format!("must be an http:// or https:// URL, got {url:?}"))) }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address (`VALOR_HTTP_ADDR`). `:PORT` means `127.0.0.1:PORT`; port 0 picks a free port.
    pub addr: String,
    /// Bearer tokens (`VALOR_API_TOKENS`, comma-separated). Empty: loopback-only, no auth.
    pub api_tokens: Vec<SecretString>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest accepted chat message, in characters.
    pub max_message_chars: usize,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Origins (`https://chat.example.com`) besides valor's own whose pages may
    /// send state-changing requests (a web front end served elsewhere).
    pub allowed_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            api_tokens: Vec::new(),
            max_body_bytes: 1024 * 1024,
            max_message_chars: 32_000,
            shutdown_grace_secs: 10,
            allowed_origins: Vec::new(),
        }
    }
}

impl ServerSettings {
    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let text = self.addr.trim();
        let text = if text.starts_with(':') { format!("127.0.0.1{text}") } else { text.to_owned() };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let resolved = text.to_socket_addrs().ok().and_then(|mut addrs| addrs.next());
        resolved.ok_or_else(|| {
            invalid("server.addr", &format!("(VALOR_HTTP_ADDR) is not a host:port address: {:?}", self.addr))
        })
    }

    pub fn auth_required(&self) -> bool {
        !self.api_tokens.is_empty()
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Whether an address only accepts connections from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4: Ipv4Addr| v4.is_loopback()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A log filter: a level or `target=level` list, e.g. `info` or `valor=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

/// Which provider answers chat turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// Anthropic if its key is set, else OpenAI-compatible if its key is set, else none.
    #[default]
    Auto,
    Anthropic,
    /// Any OpenAI-compatible endpoint at `openai.base_url` (OpenAI, Ollama `/v1`, vLLM, llama.cpp).
    Openai,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    pub provider: ProviderChoice,
    /// Whole answer of a non-streamed call; for a streamed answer, the longest
    /// silence between two chunks.
    pub request_timeout_secs: u64,
    /// A streamed call whose provider sends nothing (not even headers) for
    /// this long counts as hung: it is retried, then fails.
    pub first_byte_timeout_secs: u64,
    /// After this long without the model's first word, the chat is told
    /// "still waiting for the model…".
    pub waiting_notice_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_tokens: u32,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            provider: ProviderChoice::Auto,
            request_timeout_secs: 120,
            first_byte_timeout_secs: 30,
            waiting_notice_secs: 8,
            connect_timeout_secs: 10,
            max_retries: 3,
            retry_base_ms: 500,
            retry_max_ms: 30_000,
            max_tokens: 4096,
        }
    }
}

/// The concrete model name for each tier.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TierModels {
    pub small: String,
    pub medium: String,
    pub large: String,
}

impl TierModels {
    pub fn for_tier(&self, tier: Tier) -> &str {
        match tier {
            Tier::Small => &self.small,
            Tier::Medium => &self.medium,
            Tier::Large => &self.large,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicSettings {
    pub api_key: Option<SecretString>,
    pub base_url: String,
    pub models: TierModels,
}

impl Default for AnthropicSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.anthropic.com".into(),
            models: TierModels {
                small: "claude-haiku-4-5".into(),
                medium: "claude-sonnet-4-5".into(),
                large: "claude-opus-4-1".into(),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiSettings {
    pub api_key: Option<SecretString>,
    pub base_url: String,
    pub models: TierModels,
    /// Speech-to-text model for Telegram voice notes (`/audio/transcriptions`),
    /// e.g. `whisper-1` or `gpt-4o-mini-transcribe`. Used when `api_key` is set.
    pub transcription_model: String,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.openai.com/v1".into(),
            models: TierModels { small: "gpt-4o-mini".into(), medium: "gpt-4o".into(), large: "gpt-4.1".into() },
            transcription_model: "whisper-1".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerplexitySettings {
    pub api_key: Option<SecretString>,
    pub base_url: String,
    pub model: String,
}

impl Default for PerplexitySettings {
    fn default() -> Self {
        Self { api_key: None, base_url: "https://api.perplexity.ai".into(), model: "sonar".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaSettings {
    /// `OLLAMA_HOST`, e.g. `http://127.0.0.1:11434` or `127.0.0.1:11434`. Unset: off.
    pub host: Option<String>,
    /// The local model used for intent classification.
    pub intent_model: String,
}

impl Default for OllamaSettings {
    fn default() -> Self {
        Self { host: None, intent_model: "llama3.2:1b".into() }
    }
}

impl OllamaSettings {
    /// Ollama accepts `OLLAMA_HOST` without a scheme; we add `http://`.
    pub fn normalized_host(&self, host: &str) -> String {
        let host = host.trim_end_matches('/');
        if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        }
    }

    pub fn base_url(&self) -> Option<String> {
        self.host.as_deref().map(|h| self.normalized_host(h))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotionSettings {
    pub api_key: Option<SecretString>,
    pub base_url: String,
}

impl Default for NotionSettings {
    fn default() -> Self {
        Self { api_key: None, base_url: "https://api.notion.com".into() }
    }
}

/// A Telegram user named by id or by username.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum UserRef {
    Id(i64),
    Username(String),
}

impl UserRef {
    /// True for the user with this id or username (case-insensitive, a leading `@` ignored).
    pub fn matches(&self, id: Option<i64>, username: Option<&str>) -> bool {
        match self {
            UserRef::Id(wanted) => id == Some(*wanted),
            UserRef::Username(name) => {
                username.is_some_and(|username| username.eq_ignore_ascii_case(name.trim_start_matches('@')))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramSettings {
    pub bot_token: Option<SecretString>,
    pub api_url: String,
    pub admins: Vec<i64>,
    pub allowed_users: Vec<UserRef>,
    pub dev_groups: Vec<i64>,
    pub groups: Vec<i64>,
    pub rate_limit_per_minute: u32,
    /// Messages a user may send at once before the per-minute rate applies.
    pub rate_limit_burst: u32,
    /// How long one `getUpdates` long poll is held open.
    pub poll_timeout_secs: u64,
    /// How often the typing indicator is refreshed while working.
    pub typing_interval_ms: u64,
    /// Streaming: interval between edits of ordinary text (the optimizer's base).
    pub stream_interval_ms: u64,
    /// Streaming: replies shorter than this are sent once, at the end.
    pub stream_short_chars: usize,
    /// Streaming in private chats with `sendMessageDraft` (Bot API 9.3): the
    /// answer is animated as a draft and sent as one message at the end.
    /// Where Telegram refuses the method, valor falls back to editing a
    /// preview message by itself; `false` always edits.
    pub drafts: bool,
    /// After downtime, two or more messages of a chat older than this are
    /// answered together ("while I was away…"); 0 answers each one.
    pub away_after_secs: u64,
    /// Webhook mode: the public HTTPS URL Telegram posts updates to (it must
    /// reach this server's `/telegram/webhook`). Unset = long polling.
    pub webhook_url: Option<String>,
    /// Webhook mode: the `secret_token` Telegram sends back with every update.
    pub webhook_secret: Option<SecretString>,
}

/// A webhook secret shorter than this is guessable; Telegram allows 1–256.
const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

impl TelegramSettings {
    /// Webhook mode: the URL and secret to register. `None` is long polling,
    /// and then no webhook route exists at all (validation guarantees a
    /// strong secret whenever `webhook_url` is set).
    pub fn webhook(&self) -> Option<(&str, &SecretString)> {
        Some((self.webhook_url.as_deref()?, self.webhook_secret.as_ref()?))
    }
}

impl Default for TelegramSettings {
    fn default() -> Self {
        Self {
            bot_token: None,
            api_url: "https://api.telegram.org".into(),
            admins: Vec::new(),
            allowed_users: Vec::new(),
            dev_groups: Vec::new(),
            groups: Vec::new(),
            rate_limit_per_minute: 10,
            rate_limit_burst: 5,
            poll_timeout_secs: 30,
            typing_interval_ms: 4000,
            stream_interval_ms: 2500,
            stream_short_chars: 300,
            drafts: true,
            away_after_secs: 900,
            webhook_url: None,
            webhook_secret: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaudeSettings {
    /// The Claude Code executable (`VALOR_CLAUDE_BIN`).
    pub bin: String,
    /// A delegated run is stopped (its process group killed) after this long.
    pub time_limit_secs: u64,
    /// `--permission-mode` for runs (empty: the CLI's default).
    pub permission_mode: String,
    /// `--allowedTools` for runs, e.g. `["Bash", "Write"]` (empty: none).
    pub allowed_tools: Vec<String>,
    /// Extra environment for the CLI, on top of valor's own (e.g. `ANTHROPIC_BASE_URL`).
    pub env: std::collections::BTreeMap<String, String>,
    /// Route the CLI's permission requests to the chat (`--permission-prompt-tool mcp__valor__approve`).
    pub approvals: bool,
    /// An unanswered permission request is denied after this long.
    pub approval_timeout_secs: u64,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            bin: "claude".into(),
            time_limit_secs: 1800,
            permission_mode: "acceptEdits".into(),
            allowed_tools: Vec::new(),
            env: std::collections::BTreeMap::new(),
            approvals: true,
            approval_timeout_secs: 600,
        }
    }
}

/// `[git]`: how code runs' branches and commits are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitSettings {
    /// Author and committer of valor's commits, "Name <email>".
    pub author: String,
    /// Commit with `--no-verify` (skip the repository's commit hooks).
    pub no_verify: bool,
    /// Run branches are `<prefix><job>-<slug>`.
    pub branch_prefix: String,
}

impl GitSettings {
    /// `author` split into name and email; `None` when it is not "Name <email>".
    pub fn author_parts(&self) -> Option<(String, String)> {
        let (name, rest) = self.author.trim().split_once('<')?;
        let email = rest.strip_suffix('>')?.trim();
        let name = name.trim();
        (!name.is_empty() && email.contains('@') && !email.contains(['<', '>']))
            .then(|| (name.to_owned(), email.to_owned()))
    }
}

impl Default for GitSettings {
    fn default() -> Self {
        Self { author: "valor <valor@localhost>".into(), no_verify: false, branch_prefix: "valor/".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// A Markdown file replacing the embedded Valor persona.
    pub persona_file: Option<PathBuf>,
    /// Model calls per turn before the turn stops.
    pub max_steps: u32,
    /// Longest a single tool call may run.
    pub tool_timeout_secs: u64,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self { persona_file: None, max_steps: 8, tool_timeout_secs: 60 }
    }
}

/// How much history a turn sends and how dropped history is summarised.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextSettings {
    /// Estimated tokens of history per turn (system prompt and tools excluded).
    pub budget_tokens: u32,
    /// The newest user turns always sent in full.
    pub keep_recent_turns: u32,
    /// Most stored messages considered for one turn.
    pub max_loaded_messages: u32,
    /// Tokens set aside for the rolling summary of dropped history.
    pub summary_tokens: u32,
    /// Let the small model tier fold new turns into the rolling summary
    /// (else the folds are extractive).
    pub summarize_with_model: bool,
    /// Longest a model fold may take before the extractive one is used.
    pub summary_timeout_ms: u64,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            budget_tokens: 24_000,
            keep_recent_turns: 2,
            max_loaded_messages: 2_000,
            summary_tokens: 600,
            summarize_with_model: true,
            summary_timeout_ms: 4_000,
        }
    }
}

/// A model size class; each provider maps tiers to concrete models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[serde(alias = "haiku")]
    Small,
    #[serde(alias = "sonnet")]
    Medium,
    #[serde(alias = "opus")]
    Large,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Small => "small",
            Tier::Medium => "medium",
            Tier::Large => "large",
        }
    }
}

/// Intent label → tier. One field per label, so a misspelt label is an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentRoutes {
    pub chat: Tier,
    pub question: Tier,
    pub search: Tier,
    pub image: Tier,
    pub code_task: Tier,
    pub project_management: Tier,
    pub admin: Tier,
}

impl Default for IntentRoutes {
    fn default() -> Self {
        Self {
            chat: Tier::Small,
            question: Tier::Medium,
            search: Tier::Medium,
            image: Tier::Medium,
            code_task: Tier::Large,
            project_management: Tier::Medium,
            admin: Tier::Small,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentSettings {
    /// Use a model to classify; when false only the deterministic fallback runs.
    pub use_model: bool,
    /// Strict limit for one classification call.
    pub timeout_ms: u64,
    pub routes: IntentRoutes,
}

impl Default for IntentSettings {
    fn default() -> Self {
        Self { use_model: true, timeout_ms: 1500, routes: IntentRoutes::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub chats: Vec<i64>,
    #[serde(default)]
    pub notion_database: Option<String>,
    #[serde(default)]
    pub allowed_users: Vec<UserRef>,
    /// The branch runs start from and merge into (default: `origin/HEAD`'s, else `main`/`master`).
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// `[jobs]`: the durable background queue and its workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSettings {
    /// Worker tasks inside `valor serve` (0: the queue only fills, nothing runs).
    pub workers: u32,
    /// The longest an idle worker sleeps without a signal. Jobs enqueued in
    /// this process wake it at once and a scheduled job's due time sets its
    /// alarm; this only catches jobs another process put in the database.
    pub poll_interval_ms: u64,
    /// How long a claim holds a job; renewed while it runs, so only a dead worker's lease expires.
    pub lease_secs: u64,
    /// Finished jobs are deleted this many days after they finished.
    pub retention_days: u32,
    /// Claims before a job fails for good (per job; tools may ask for fewer).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (plus up to 10 % jitter) up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Most jobs of a kind running at once, e.g. `agent_task = 2`; kinds not listed are unlimited.
    pub concurrency: std::collections::BTreeMap<String, u32>,
    /// Most jobs a worker claims in one statement while jobs finish fast (1–1000).
    pub claim_batch: u32,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            poll_interval_ms: 5000,
            lease_secs: 60,
            retention_days: 7,
            max_attempts: 3,
            backoff_base_ms: 2_000,
            backoff_max_ms: 600_000,
            concurrency: std::collections::BTreeMap::from([
                ("agent_task".to_owned(), 2),
                ("claude_code".to_owned(), 1),
                ("gemini_cli".to_owned(), 1),
            ]),
            claim_batch: 64,
        }
    }
}

impl JobsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval_ms < 10 {
            return Err(invalid("jobs.poll_interval_ms", "must be at least 10"));
        }
        if self.lease_secs == 0 {
            return Err(invalid("jobs.lease_secs", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("jobs.max_attempts", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.claim_batch) {
            return Err(invalid("jobs.claim_batch", "must be between 1 and 1000"));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(invalid("jobs.backoff_max_ms", "must not be smaller than jobs.backoff_base_ms"));
        }
        Ok(())
    }
}

/// `[[schedule]]`: a cron expression (with seconds: `sec min hour day month weekday`)
/// in `timezone` (default UTC) that enqueues a job of `kind` with `payload` at every slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub name: String,
    pub cron: String,
    /// Job kind to enqueue (default `agent_task`, whose payload is `{ task = "…" }`).
    #[serde(default = "default_schedule_kind")]
    pub kind: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Conversation id or title told about each run's outcome.
    #[serde(default)]
    pub conversation: Option<String>,
    #[serde(default)]
    pub priority: i64,
    /// IANA time zone the cron fields are read in (None: UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

fn default_schedule_kind() -> String {
    "agent_task".into()
}

fn validate_schedules(schedules: &[ScheduleSettings]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (index, schedule) in schedules.iter().enumerate() {
        if schedule.name.trim().is_empty() {
            return Err(invalid(&format!("schedule[{index}].name"), "must not be empty"));
        }
        if !names.insert(schedule.name.as_str()) {
            return Err(invalid(&format!("schedule[{index}].name"), "is used by two schedules"));
        }
        if let Err(error) = <cron::Schedule as std::str::FromStr>::from_str(&schedule.cron) {
            return Err(invalid(
                &format!("schedule[{index}].cron"),
                &format!("is not a cron expression (sec min hour day month weekday): {error}"),
            ));
        }
        if let Some(name) = &schedule.timezone
            && let Err(why) = parse_timezone(name)
        {
            return Err(invalid(&format!("schedule[{index}].timezone"), &why));
        }
    }
    Ok(())
}
