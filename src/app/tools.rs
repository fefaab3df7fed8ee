//! Builds the tool registry from settings: the built-in tools, plus each
//! external tool only when what it needs is configured (no tool that cannot
//! work is offered), all sharing one set of circuit breakers.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::ModelSet;
use crate::agent::media::vision_capable;
use crate::agent::tools::analyze_image::VisionModel;
use crate::agent::tools::generate_image::GenerateImageConfig;
use crate::agent::tools::notion_query::NotionConfig;
use crate::agent::tools::read_link::{ReadLinkLimits, Summarizer};
use crate::agent::tools::resilience::{CallPolicy, ExternalService};
use crate::agent::tools::web_search::WebSearchConfig;
use crate::agent::tools::{AnalyzeImage, GenerateImage, NotionQuery, ReadLink, ToolPolicy, ToolRegistry, WebSearch};
use crate::config::Settings;
use crate::llm::transport::client_builder;
use crate::monitoring::breaker::{BreakerConfig, CircuitBreakers, SystemClock};

/// The call policy every external tool call uses.
pub fn call_policy(settings: &Settings) -> CallPolicy {
    let tools = &settings.tools;
    CallPolicy {
        attempt_timeout: Duration::from_secs(tools.request_timeout_secs),
        max_retries: tools.max_retries,
        retry_base: Duration::from_millis(tools.retry_base_ms),
        retry_max: Duration::from_millis(tools.retry_max_ms),
    }
}

/// The process's circuit breakers: every external service, and the model.
pub fn build_breakers(settings: &Settings) -> CircuitBreakers {
    CircuitBreakers::new(
        BreakerConfig {
            failure_threshold: settings.tools.breaker_failure_threshold,
            cool_down: Duration::from_secs(settings.tools.breaker_cooldown_secs),
        },
        Arc::new(SystemClock),
    )
}

pub fn build_tools(
    settings: &Settings,
    models: Option<&ModelSet>,
    breakers: CircuitBreakers,
) -> anyhow::Result<ToolRegistry> {
    let policy = ToolPolicy::from_settings(&settings.tools);
    let mut registry = ToolRegistry::new(policy, breakers.clone());
    registry.register_builtin_tools(settings.jobs.max_attempts);
    let call_policy = call_policy(settings);
    let client = client_builder().connect_timeout(Duration::from_secs(settings.llm.connect_timeout_secs)).build()?;

    if let Some(api_key) = &settings.perplexity.api_key {
        let config = WebSearchConfig {
            base_url: settings.perplexity.base_url.clone(),
            api_key: api_key.clone(),
            model: settings.perplexity.model.clone(),
        };
        let service = ExternalService::new("web_search", "web search", breakers.clone(), call_policy);
        registry.register(Arc::new(WebSearch::new(config, client.clone(), service)));
    }

    if let Some(api_key) = &settings.notion.api_key {
        let databases: Vec<&String> =
            settings.workspaces.iter().filter_map(|workspace| workspace.notion_database.as_ref()).collect();
        let config = NotionConfig {
            base_url: settings.notion.base_url.clone(),
            api_key: api_key.clone(),
            // Until chats map to workspaces, a single configured database is the default.
            default_database: if databases.len() == 1 { databases.first().map(|id| (*id).clone()) } else { None },
        };
        let service = ExternalService::new("notion", "Notion", breakers.clone(), call_policy);
        registry.register(Arc::new(NotionQuery::new(config, client.clone(), service)));
    }

    if !settings.workspaces.is_empty() {
        let workspaces = crate::workspace::Workspaces::new(settings.workspaces.clone(), &settings.data_dir);
        registry.register(Arc::new(crate::agent::tools::ProjectContext::new(
            workspaces.clone(),
            settings.child_env.clone(),
        )));
        // Offered only when the CLI is there: otherwise the agent would say "on it" and the run fail.
        let bin = &settings.claude.bin;
        let found = |program: &str| crate::workspace::child::find_program(program, &settings.child_env).is_some();
        // Either executor will do: background work may go to the Gemini CLI alone.
        if found(bin) || (settings.gemini.enabled && found(&settings.gemini.bin)) {
            let router = crate::workspace::router::Router::new(settings.routing.clone(), settings.gemini.clone());
            let limits = settings.jobs.concurrency.clone();
            registry.register(Arc::new(crate::agent::tools::DelegateCodeTask::new(workspaces, router, limits)));
        } else {
            let why = format!(
                "Claude Code is not installed on the server running valor (`{bin}` was not found), so code runs \
                 cannot start; the owner can install it (`npm install -g @anthropic-ai/claude-code`) or set \
                 VALOR_CLAUDE_BIN"
            );
            tracing::warn!("code work is off: {why}");
            registry.mark_unavailable("code work (delegate_code_task)", why);
        }
    }

    if let Some(api_key) = &settings.openai.api_key {
        let config = GenerateImageConfig {
            base_url: settings.openai.base_url.clone(),
            api_key: api_key.clone(),
            data_dir: settings.data_dir.clone(),
        };
        let service = ExternalService::new("image_generation", "image generation", breakers.clone(), call_policy);
        registry.register(Arc::new(GenerateImage::new(config, client.clone(), service)));
    }

    let limits =
        ReadLinkLimits { max_bytes: settings.tools.read_link_max_bytes, max_chars: settings.tools.read_link_max_chars };
    let summarizer =
        models.map(|models| Summarizer { model: models.client.clone(), model_name: models.tiers.small.clone() });
    let service = ExternalService::new("read_link", "reading links", breakers.clone(), call_policy);
    let read_link = ReadLink::new(limits, service, summarizer);
    registry.register(Arc::new(read_link.clone()));

    if let Some(models) = models.filter(|models| vision_capable(models.client.provider_name())) {
        let model = VisionModel { client: models.client.clone(), model_name: models.tiers.medium.clone() };
        let service = ExternalService::new("vision", "image analysis", breakers, call_policy);
        registry.register(Arc::new(AnalyzeImage::new(settings.data_dir.clone(), model, service, read_link)));
    }
    Ok(registry)
}
