//! Builds model clients and the intent classifier from settings, and says
//! which provider is in use or how to configure one.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::agent::{ClassifierBackend, IntentClassifier, ModelEndpoint, ModelSet};
use crate::config::{OpenAiSettings, ProviderChoice, Settings, TierModels};
use crate::llm::anthropic::AnthropicClient;
use crate::llm::ollama::OllamaClient;
use crate::llm::openai::OpenAiClient;
use crate::llm::transcription::Transcriber;
use crate::llm::transport::TransportConfig;
use crate::llm::watched::WatchedModel;
use crate::llm::{ChatModel, LlmError};
use crate::monitoring::ComponentStatus;
use crate::monitoring::breaker::CircuitBreakers;

/// Which provider the settings select, after resolving `auto`: a key, or
/// an OpenAI-compatible address of its own (a local server such as Ollama
/// needs no key).
pub fn resolve_provider(settings: &Settings) -> ProviderChoice {
    match settings.llm.provider {
        ProviderChoice::Auto if settings.anthropic.api_key.is_some() => ProviderChoice::Anthropic,
        ProviderChoice::Auto if settings.openai.api_key.is_some() => ProviderChoice::Openai,
        ProviderChoice::Auto if uses_own_openai_server(settings) => ProviderChoice::Openai,
        ProviderChoice::Auto => ProviderChoice::None,
        explicit => explicit,
    }
}

fn uses_own_openai_server(settings: &Settings) -> bool {
    settings.openai.base_url.trim_end_matches('/') != OpenAiSettings::default().base_url
}

/// A keyless server of the user's own (Ollama, llama.cpp, vLLM) with
/// OpenAI's default model names left in place: ask it what it serves and,
/// when those names are not among them, use its first model for every tier
/// (logged, and shown on the model line). Names set in `[openai.models]`
/// are never changed, nor are they for a server that needs a key (a hosted
/// gateway lists hundreds of models; its first is no choice); an
/// unreachable server changes nothing.
pub async fn adopt_served_models(settings: &mut Settings) {
    if resolve_provider(settings) != ProviderChoice::Openai
        || !uses_own_openai_server(settings)
        || settings.openai.api_key.is_some()
        || settings.openai.models != OpenAiSettings::default().models
    {
        return;
    }
    let base = settings.openai.base_url.trim_end_matches('/').to_owned();
    let Some(served) = served_models(&base, None).await else { return };
    let models = &settings.openai.models;
    if [&models.small, &models.medium, &models.large].iter().all(|name| served.contains(name)) {
        return;
    }
    let Some(first) = served.first().cloned() else {
        tracing::warn!("the model server at {base} serves no model yet; pull one (e.g. `ollama pull llama3.2`)");
        return;
    };
    tracing::info!(
        "the model server at {base} does not serve OpenAI's model names; using `{first}` for every tier \
         (it serves {}; choose with [openai.models] or VALOR__OPENAI__MODELS__SMALL/MEDIUM/LARGE)",
        served.join(", ")
    );
    settings.openai.models = TierModels { small: first.clone(), medium: first.clone(), large: first };
}

/// The model ids an OpenAI-compatible `GET {base}/models` lists (with
/// `key` as the bearer token), or `None` when it does not answer in 3 s.
pub(super) async fn served_models(base: &str, key: Option<&SecretString>) -> Option<Vec<String>> {
    use secrecy::ExposeSecret as _;
    let http = crate::llm::transport::client_builder().timeout(Duration::from_secs(3)).build().ok()?;
    let mut request = http.get(format!("{base}/models"));
    if let Some(key) = key {
        request = request.bearer_auth(key.expose_secret());
    }
    let response = request.send().await.ok()?.error_for_status().ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    Some(body["data"].as_array()?.iter().filter_map(|model| model["id"].as_str().map(str::to_owned)).collect())
}

fn transport(settings: &Settings, base_url: &str, api_key: Option<&SecretString>, max_retries: u32) -> TransportConfig {
    TransportConfig {
        base_url: base_url.trim_end_matches('/').to_owned(),
        api_key: api_key.cloned(),
        request_timeout: Duration::from_secs(settings.llm.request_timeout_secs),
        first_byte_timeout: Duration::from_secs(settings.llm.first_byte_timeout_secs),
        connect_timeout: Duration::from_secs(settings.llm.connect_timeout_secs),
        max_retries,
        retry_base: Duration::from_millis(settings.llm.retry_base_ms),
        retry_max: Duration::from_millis(settings.llm.retry_max_ms),
    }
}

fn client(
    settings: &Settings,
    choice: ProviderChoice,
    max_retries: u32,
) -> Result<Option<Arc<dyn ChatModel>>, LlmError> {
    Ok(match choice {
        ProviderChoice::Anthropic => {
            let config =
                transport(settings, &settings.anthropic.base_url, settings.anthropic.api_key.as_ref(), max_retries);
            Some(Arc::new(AnthropicClient::new(config)?))
        }
        ProviderChoice::Openai => {
            let config = transport(settings, &settings.openai.base_url, settings.openai.api_key.as_ref(), max_retries);
            Some(Arc::new(OpenAiClient::new(config)?))
        }
        ProviderChoice::Auto | ProviderChoice::None => None,
    })
}

/// The chat model for turns, watched by the model breaker in `breakers`,
/// or `None` when nothing is configured.
pub fn build_models(settings: &Settings, breakers: &CircuitBreakers) -> Result<Option<ModelSet>, LlmError> {
    let choice = resolve_provider(settings);
    let tiers = tier_models(settings, choice).clone();
    Ok(client(settings, choice, settings.llm.max_retries)?.map(|client| {
        let watch = Arc::new(WatchedModel::new(client, breakers.clone()));
        ModelSet { client: watch.clone(), watch, tiers, endpoint: endpoint(settings, choice) }
    }))
}

/// The provider's address (user name and password removed) and where it is configured.
fn endpoint(settings: &Settings, choice: ProviderChoice) -> ModelEndpoint {
    let (base, key_variable, models_section) = match choice {
        ProviderChoice::Anthropic => (&settings.anthropic.base_url, "ANTHROPIC_API_KEY", "[anthropic.models]"),
        _ => (&settings.openai.base_url, "OPENAI_API_KEY", "[openai.models]"),
    };
    let url = match reqwest::Url::parse(base) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => "(an address valor cannot parse)".to_owned(),
    };
    ModelEndpoint { url, key_variable, models_section }
}

/// Speech to text (Telegram voice notes) when an OpenAI key is set.
pub fn build_transcriber(settings: &Settings) -> Result<Option<Transcriber>, LlmError> {
    let Some(api_key) = &settings.openai.api_key else { return Ok(None) };
    let config = transport(settings, &settings.openai.base_url, Some(api_key), settings.llm.max_retries);
    Ok(Some(Transcriber::new(config, settings.openai.transcription_model.trim())?))
}

/// The tier → model-name map of a provider.
fn tier_models(settings: &Settings, choice: ProviderChoice) -> &TierModels {
    match choice {
        ProviderChoice::Anthropic => &settings.anthropic.models,
        _ => &settings.openai.models,
    }
}

/// Ollama when configured, else the main provider's small tier (no retries),
/// else the deterministic rule.
pub fn build_classifier(settings: &Settings) -> Result<IntentClassifier, LlmError> {
    let limit = Duration::from_millis(settings.intent.timeout_ms.max(1));
    let backend = if !settings.intent.use_model {
        ClassifierBackend::Fallback
    } else if let Some(base) = settings.ollama.base_url() {
        ClassifierBackend::Ollama {
            client: OllamaClient::new(base, limit)?,
            model: settings.ollama.intent_model.clone(),
        }
    } else {
        let choice = resolve_provider(settings);
        match client(settings, choice, 0)? {
            Some(model) => ClassifierBackend::Model { model, model_name: tier_models(settings, choice).small.clone() },
            None => ClassifierBackend::Fallback,
        }
    };
    Ok(IntentClassifier::new(backend, limit))
}

/// One status line for the model provider.
pub fn model_status(settings: &Settings) -> ComponentStatus {
    match resolve_provider(settings) {
        ProviderChoice::Anthropic => {
            let m = &settings.anthropic.models;
            ComponentStatus::on(
                "model",
                format!("anthropic at {} ({} / {} / {})", settings.anthropic.base_url, m.small, m.medium, m.large),
            )
        }
        ProviderChoice::Openai => {
            let m = &settings.openai.models;
            ComponentStatus::on(
                "model",
                format!("openai-compatible at {} ({} / {} / {})", settings.openai.base_url, m.small, m.medium, m.large),
            )
        }
        ProviderChoice::Auto | ProviderChoice::None => ComponentStatus::off(
            "model",
            "no provider — set ANTHROPIC_API_KEY, or OPENAI_API_KEY, or OPENAI_BASE_URL alone for a local \
             OpenAI-compatible server (Ollama: http://127.0.0.1:11434/v1)",
        ),
    }
}
