//! `valor doctor`: checks configuration, the database and each external
//! service, and reports one row per part: ready, off, misconfigured or
//! unreachable. Probes are cheap authenticated GETs with a short timeout.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::providers::resolve_provider;
use crate::config::{ProviderChoice, Settings};
use crate::llm::transport::client_builder;
use crate::storage::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoctorState {
    Ready,
    Off,
    Misconfigured,
    Unreachable,
}

impl DoctorState {
    pub fn as_str(self) -> &'static str {
        match self {
            DoctorState::Ready => "ready",
            DoctorState::Off => "off",
            DoctorState::Misconfigured => "misconfigured",
            DoctorState::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DoctorRow {
    pub part: String,
    pub state: DoctorState,
    pub detail: String,
}

fn row(part: &str, state: DoctorState, detail: impl Into<String>) -> DoctorRow {
    DoctorRow { part: part.into(), state, detail: detail.into() }
}

/// Run every check. Never fails: problems are rows.
pub async fn doctor(settings: &Settings) -> Vec<DoctorRow> {
    // The model names `serve` would use (a local server's own, when OpenAI's defaults are left).
    let mut settings = settings.clone();
    super::providers::adopt_served_models(&mut settings).await;
    let settings = &settings;
    let mut rows = Vec::new();
    let source = settings
        .source_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults + environment".into());
    rows.push(row("config", DoctorState::Ready, source));
    let database = settings.database_path();
    // Looking never creates one: an empty database would hide that this is the wrong folder.
    rows.push(if !database.is_file() {
        row(
            "database",
            DoctorState::Off,
            format!("{} (`valor serve` creates it on first start)", super::missing_database(&database)),
        )
    } else {
        database_row(&database).await
    });
    let http = client_builder().timeout(Duration::from_secs(5)).build();
    let Ok(http) = http else {
        rows.push(row("network", DoctorState::Misconfigured, "could not build an HTTP client"));
        return rows;
    };
    rows.push(match resolve_provider(settings) {
        ProviderChoice::Anthropic => {
            let url = format!("{}/v1/models", settings.anthropic.base_url.trim_end_matches('/'));
            let key = settings.anthropic.api_key.as_ref().map(|k| ("x-api-key", k));
            probe(&http, "model (anthropic)", &url, key, &[("anthropic-version", "2023-06-01")]).await
        }
        ProviderChoice::Openai => {
            let url = format!("{}/models", settings.openai.base_url.trim_end_matches('/'));
            let key = settings.openai.api_key.as_ref().map(|k| ("authorization", k));
            let probed = probe(&http, "model (openai-compatible)", &url, key, &[]).await;
            match probed.state {
                DoctorState::Ready => model_names_row(settings, &url).await.unwrap_or(probed),
                _ => probed,
            }
        }
        ProviderChoice::Auto | ProviderChoice::None => {
            row("model", DoctorState::Off, "set ANTHROPIC_API_KEY or OPENAI_API_KEY (and OPENAI_BASE_URL)")
        }
    });
    rows.push(match settings.ollama.base_url() {
        Some(base) => probe(&http, "ollama", &format!("{base}/api/tags"), None, &[]).await,
        None => row("ollama", DoctorState::Off, "set OLLAMA_HOST for local intent classification"),
    });
    rows.push(match &settings.telegram.bot_token {
        Some(token) => telegram_row(&settings.telegram.api_url, token.clone()).await,
        None => row("telegram", DoctorState::Off, "set TELEGRAM_BOT_TOKEN"),
    });
    rows.push(http_row(settings, &http).await);
    rows.extend(workspace_rows(settings).await);
    rows.extend(cli_rows(settings).await);
    rows.push(schedule_row(settings));
    for (part, key, variable) in [
        ("web search", &settings.perplexity.api_key, "PERPLEXITY_API_KEY"),
        ("notion", &settings.notion.api_key, "NOTION_API_KEY"),
    ] {
        rows.push(match key {
            Some(_) => row(part, DoctorState::Off, "key set; the tool arrives in a later build"),
            None => row(part, DoctorState::Off, format!("set {variable}")),
        });
    }
    rows
}

/// The worst state among `rows` as the process exit code: 0 when every
/// part is ready or off, 1 when one is misconfigured, 3 when one is
/// unreachable (and none misconfigured). 2 is every command's "the
/// configuration cannot be loaded".
pub fn exit_code(rows: &[DoctorRow]) -> u8 {
    if rows.iter().any(|r| r.state == DoctorState::Misconfigured) {
        1
    } else if rows.iter().any(|r| r.state == DoctorState::Unreachable) {
        3
    } else {
        0
    }
}

/// Are the tier model names served? (OpenAI-compatible `/models` lists
/// them: Ollama, vLLM, llama.cpp, OpenAI.) `None` when the list cannot be read.
async fn model_names_row(settings: &Settings, url: &str) -> Option<DoctorRow> {
    let base = settings.openai.base_url.trim_end_matches('/');
    let served = super::providers::served_models(base, settings.openai.api_key.as_ref()).await?;
    let tiers = &settings.openai.models;
    let mut missing: Vec<&str> = [tiers.small.as_str(), tiers.medium.as_str(), tiers.large.as_str()]
        .into_iter()
        .filter(|name| !served.iter().any(|served| served == name))
        .collect();
    missing.dedup();
    let part = "model (openai-compatible)";
    if missing.is_empty() {
        return Some(row(
            part,
            DoctorState::Ready,
            format!("{url} serves {} / {} / {}", tiers.small, tiers.medium, tiers.large),
        ));
    }
    let offer = if served.is_empty() {
        "nothing".to_owned()
    } else {
        served.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
    };
    Some(row(
        part,
        DoctorState::Misconfigured,
        format!(
            "{url} does not serve {}; it has {offer}. Set the names in [openai.models] \
             (VALOR__OPENAI__MODELS__SMALL, …__MEDIUM, …__LARGE)",
            missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// The HTTP address: free, already served by a valor (which one), or taken.
async fn http_row(settings: &Settings, http: &reqwest::Client) -> DoctorRow {
    let addr = match settings.server.listen_addr() {
        Ok(addr) => addr,
        Err(error) => return row("http", DoctorState::Misconfigured, error.to_string()),
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => row("http", DoctorState::Ready, format!("{addr} is free")),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            let health = http.get(format!("http://{addr}/health")).send().await;
            let version = match health {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|body| body["version"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            match version {
                Some(version) => {
                    row("http", DoctorState::Ready, format!("{addr} is served by valor {version} (running)"))
                }
                None => row(
                    "http",
                    DoctorState::Misconfigured,
                    format!("{addr} is taken by another program; set VALOR_HTTP_ADDR (e.g. 127.0.0.1:8081)"),
                ),
            }
        }
        Err(error) => row("http", DoctorState::Misconfigured, format!("{addr}: {error}")),
    }
}

/// One row per `[[workspace]]`: the path is a directory and a git repository.
async fn workspace_rows(settings: &Settings) -> Vec<DoctorRow> {
    let mut rows = Vec::new();
    for workspace in &settings.workspaces {
        let part = format!("workspace {}", workspace.name);
        let path = &workspace.path;
        if !path.is_dir() {
            rows.push(row(&part, DoctorState::Misconfigured, format!("{} is not a directory", path.display())));
            continue;
        }
        let limit = Duration::from_secs(5);
        let git = |args: &'static [&'static str]| {
            crate::workspace::child::read_only_git(path, &settings.child_env, args, limit)
        };
        let inside = git(&["rev-parse", "--is-inside-work-tree"]).await;
        rows.push(match inside {
            Ok(_) => {
                // A branch with no commit yet has a name too; a detached HEAD has none.
                let branch = git(&["symbolic-ref", "--short", "-q", "HEAD"]).await;
                let on = branch.map_or_else(|_| "a detached HEAD".to_owned(), |name| name.trim().to_owned());
                let configured = workspace.default_branch.as_deref();
                match crate::workspace::git::default_branch(path, &settings.child_env, configured).await {
                    Some(base) => row(
                        &part,
                        DoctorState::Ready,
                        format!("{} (git, on {on}; runs branch from {base})", path.display()),
                    ),
                    None => row(
                        &part,
                        DoctorState::Misconfigured,
                        match configured {
                            Some(name) => format!(
                                "{}: default_branch {name:?} does not exist; runs would work in the checkout",
                                path.display()
                            ),
                            None => format!(
                                "{} has no commit yet: runs would work in the checkout; commit once",
                                path.display()
                            ),
                        },
                    ),
                }
            }
            Err(why) => row(
                &part,
                DoctorState::Misconfigured,
                format!("{} is not a git repository ({why}); run `git init` there", path.display()),
            ),
        });
    }
    rows
}

/// The code-work CLIs: found and their version, when something uses them.
async fn cli_rows(settings: &Settings) -> Vec<DoctorRow> {
    let claude = if settings.workspaces.is_empty() {
        row("claude", DoctorState::Off, "no [[workspace]] configured: code work is off")
    } else {
        cli_row(
            settings,
            "claude",
            &settings.claude.bin,
            "`npm install -g @anthropic-ai/claude-code`) or set VALOR_CLAUDE_BIN",
        )
        .await
    };
    let gemini = if settings.gemini.enabled {
        cli_row(settings, "gemini", &settings.gemini.bin, "`npm install -g @google/gemini-cli`) or set [gemini] bin")
            .await
    } else {
        row("gemini", DoctorState::Off, "[gemini] enabled = false")
    };
    vec![claude, gemini]
}

/// `bin --version` answers: ready with the version; else how to install it (`fix`).
async fn cli_row(settings: &Settings, part: &str, bin: &str, fix: &str) -> DoctorRow {
    let limit = Duration::from_secs(10);
    match crate::workspace::child::program_version(bin, &settings.child_env, limit).await {
        Ok(version) => row(part, DoctorState::Ready, format!("{bin} ({version})")),
        Err(why) => row(part, DoctorState::Misconfigured, format!("{why}: install it ({fix}")),
    }
}

/// What runs on a schedule (`[[schedule]]` and `[daydream]`).
fn schedule_row(settings: &Settings) -> DoctorRow {
    let mut names: Vec<String> = settings.schedules.iter().map(|s| format!("{} ({})", s.name, s.cron)).collect();
    if settings.daydream.enabled {
        names.push("daydream".into());
    }
    if names.is_empty() {
        row("schedules", DoctorState::Off, "no [[schedule]] and [daydream] is off")
    } else {
        row("schedules", DoctorState::Ready, names.join(", "))
    }
}

/// Probe the bot token with `getMe`.
async fn telegram_row(api_url: &str, token: SecretString) -> DoctorRow {
    use crate::channels::telegram::{ApiError, BotApi};
    let api = match BotApi::new(api_url, token) {
        Ok(api) => api,
        Err(error) => return row("telegram", DoctorState::Misconfigured, error.to_string()),
    };
    match api.get_me().await {
        Ok(bot) => row("telegram", DoctorState::Ready, format!("@{} via {api_url}", bot.username)),
        Err(ApiError::Refused { code: 401 | 404, .. }) => {
            row("telegram", DoctorState::Misconfigured, format!("{api_url} rejected the bot token"))
        }
        Err(error @ ApiError::Refused { .. }) => row("telegram", DoctorState::Misconfigured, error.to_string()),
        Err(error) => row("telegram", DoctorState::Unreachable, error.to_string()),
    }
}

/// GET `url`; 2xx = ready, 401/403 = misconfigured (bad key), other answers
/// = ready but odd (reported), no answer = unreachable. The key never appears in a row.
async fn probe(
    http: &reqwest::Client,
    part: &str,
    url: &str,
    key: Option<(&str, &SecretString)>,
    extra: &[(&str, &str)],
) -> DoctorRow {
    let mut request = http.get(url);
    if let Some((header, secret)) = key {
        let value = if header == "authorization" {
            format!("Bearer {}", secret.expose_secret())
        } else {
            secret.expose_secret().to_owned()
        };
        request = request.header(header, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => row(part, DoctorState::Ready, url.to_owned()),
        Ok(response) if matches!(response.status().as_u16(), 401 | 403) => row(
            part,
            DoctorState::Misconfigured,
            format!("{url} rejected the credentials (HTTP {})", response.status().as_u16()),
        ),
        Ok(response) => row(part, DoctorState::Ready, format!("{url} answered HTTP {}", response.status().as_u16())),
        Err(error) if error.is_timeout() => row(part, DoctorState::Unreachable, format!("{url}: no answer within 5 s")),
        Err(_) => row(part, DoctorState::Unreachable, format!("{url}: cannot connect")),
    }
}

/// The database row for a file that exists: it opens and answers.
async fn database_row(database: &std::path::Path) -> DoctorRow {
    match Store::open(database).await {
        Ok(store) => {
            let ping = store.ping().await;
            store.close().await;
            match ping {
                Ok(()) => row("database", DoctorState::Ready, database.display().to_string()),
                Err(error) => row("database", DoctorState::Misconfigured, error.to_string()),
            }
        }
        Err(error) => row("database", DoctorState::Misconfigured, format!("{}: {error}", database.display())),
    }
}
