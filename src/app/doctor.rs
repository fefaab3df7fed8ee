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
            probe(&http, "model (openai-compatible)", &url, key, &[]).await
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
