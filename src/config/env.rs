//! The environment as a value, so tests never mutate process state, and the
//! mapping of contract variable names onto settings keys.

use std::collections::BTreeMap;
use std::str::FromStr;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Value;

use super::ConfigError;

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
}

impl EnvSource {
    /// The real process environment (after `.env` has been loaded by `main`).
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    pub(super) fn vars(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.vars.iter().map(|(name, value)| (name.clone(), value.clone()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Contract names (PRODUCT.md §12) → settings keys. Values are taken as strings.
const CONTRACT: &[(&str, &str)] = &[
    ("VALOR_DATA_DIR", "data_dir"),
    ("VALOR_HTTP_ADDR", "server.addr"),
    ("ANTHROPIC_API_KEY", "anthropic.api_key"),
    ("ANTHROPIC_BASE_URL", "anthropic.base_url"),
    ("OPENAI_API_KEY", "openai.api_key"),
    ("OPENAI_BASE_URL", "openai.base_url"),
    ("PERPLEXITY_API_KEY", "perplexity.api_key"),
    ("PERPLEXITY_BASE_URL", "perplexity.base_url"),
    ("OLLAMA_HOST", "ollama.host"),
    ("NOTION_API_KEY", "notion.api_key"),
    ("NOTION_BASE_URL", "notion.base_url"),
    ("TELEGRAM_BOT_TOKEN", "telegram.bot_token"),
    ("TELEGRAM_API_URL", "telegram.api_url"),
    ("VALOR_CLAUDE_BIN", "claude.bin"),
    ("RUST_LOG", "log.level"),
];

/// `SECTION__KEY` (after `VALOR__`) as the settings key `section.key`.
fn settings_key(rest: &str) -> String {
    rest.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".")
}

/// Which environment variable set each settings key (for error messages).
pub(super) fn keys_from_environment(env: &EnvSource) -> std::collections::BTreeMap<String, String> {
    let mut keys = std::collections::BTreeMap::new();
    for name in env.vars.keys() {
        if let Some(rest) = name.strip_prefix("VALOR__") {
            keys.insert(settings_key(rest), name.clone());
        }
    }
    for (name, key) in CONTRACT {
        if env.get(name).is_some() {
            keys.insert((*key).to_owned(), (*name).to_owned());
        }
    }
    if env.get("VALOR_API_TOKENS").is_some() {
        keys.insert("server.api_tokens".into(), "VALOR_API_TOKENS".into());
    }
    keys
}

pub(super) fn merge_environment(mut figment: Figment, env: &EnvSource) -> Result<Figment, ConfigError> {
    // VALOR__SECTION__KEY=value for every key of valor.toml.
    for (name, raw) in &env.vars {
        let Some(rest) = name.strip_prefix("VALOR__") else { continue };
        let key = settings_key(rest);
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::Invalid(format!("environment variable {name} does not name a settings key")));
        }
        let value = Value::from_str(raw).unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(&key, value));
    }
    for (name, key) in CONTRACT {
        if let Some(value) = env.get(name) {
            figment = figment.merge(Serialized::default(key, value));
        }
    }
    if let Some(tokens) = env.get("VALOR_API_TOKENS") {
        let list: Vec<String> = tokens.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
        if list.is_empty() {
            // Blank tokens are no protection; a typo must not look like a configured API.
            return Err(ConfigError::Invalid(
                "VALOR_API_TOKENS is set but holds no token (only spaces or commas): give a token or unset it".into(),
            ));
        }
        figment = figment.merge(Serialized::default("server.api_tokens", list));
    }
    Ok(figment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = EnvSource::from_pairs([("ANTHROPIC_API_KEY", "")]);
        assert_eq!(env.get("ANTHROPIC_API_KEY"), None);
    }
}
