//! `[gemini]` (the Gemini CLI executor) and `[routing]` (which executor and
//! model a delegated code task gets): interactive work goes to Claude Code,
//! batch/background maintenance to the Gemini CLI when it is enabled.
//!
//! Invariant: `validate` names the key of any empty model name, a zero time
//! limit or an approval mode the Gemini CLI does not know.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, Tier, TierModels};

/// An empty model name for any tier is refused, naming the key.
fn validate_models(models: &TierModels, key: &str) -> Result<(), ConfigError> {
    for (tier, name) in [("small", &models.small), ("medium", &models.medium), ("large", &models.large)] {
        if name.trim().is_empty() {
            return Err(super::settings::invalid(&format!("{key}.{tier}"), "must name a model"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiSettings {
    /// Route background/batch code work to the Gemini CLI.
    pub enabled: bool,
    /// The Gemini CLI executable (npm `@google/gemini-cli`).
    pub bin: String,
    /// A run is stopped (its process group killed) after this long.
    pub time_limit_secs: u64,
    /// `--approval-mode`: `auto_edit` (file edits allowed, shell refused) or `yolo` (everything).
    pub approval_mode: String,
    /// The model passed with `-m` per tier (always explicit: the CLI's own choice is slow to make).
    pub models: TierModels,
    /// Extra environment for the CLI, e.g. `GEMINI_API_KEY`, `GOOGLE_GEMINI_BASE_URL`, `HOME`.
    pub env: BTreeMap<String, String>,
}

impl Default for GeminiSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            bin: "gemini".into(),
            time_limit_secs: 1800,
            approval_mode: "auto_edit".into(),
            models: TierModels {
                small: "gemini-2.5-flash-lite".into(),
                medium: "gemini-2.5-flash".into(),
                large: "gemini-2.5-pro".into(),
            },
            env: BTreeMap::new(),
        }
    }
}

impl GeminiSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.time_limit_secs == 0 {
            return Err(super::settings::invalid("gemini.time_limit_secs", "must be at least 1"));
        }
        if !["default", "auto_edit", "yolo"].contains(&self.approval_mode.as_str()) {
            return Err(super::settings::invalid("gemini.approval_mode", "must be default, auto_edit or yolo"));
        }
        if self.enabled && self.bin.trim().is_empty() {
            return Err(super::settings::invalid("gemini.bin", "must name the Gemini CLI"));
        }
        validate_models(&self.models, "gemini.models")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// Claude Code's model per tier (`--model` aliases or full names).
    pub claude_models: TierModels,
    /// The tier of background work that does not ask for more.
    pub background_tier: Tier,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            claude_models: TierModels { small: "haiku".into(), medium: "sonnet".into(), large: "opus".into() },
            background_tier: Tier::Small,
        }
    }
}

impl RoutingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_models(&self.claude_models, "routing.claude_models")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<super::super::Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valor.toml");
        std::fs::write(&path, toml).unwrap();
        super::super::load(Some(&path), &super::super::EnvSource::default())
    }

    #[test]
    fn gemini_and_routing_load_from_toml_and_bad_values_name_their_key() {
        let settings = load(
            "[gemini]\nenabled = true\napproval_mode = \"yolo\"\n\
             models = { small = \"a\", medium = \"b\", large = \"c\" }\n\
             [routing]\nbackground_tier = \"medium\"\n",
        )
        .unwrap();
        assert!(settings.gemini.enabled);
        assert_eq!(settings.gemini.models.for_tier(Tier::Large), "c");
        assert_eq!(settings.routing.background_tier, Tier::Medium);
        assert_eq!(settings.routing.claude_models.small, "haiku");
        let cases = [
            ("[gemini]\napproval_mode = \"always\"\n", "gemini.approval_mode"),
            ("[gemini]\ntime_limit_secs = 0\n", "gemini.time_limit_secs"),
            ("[gemini]\nenabled = true\nbin = \" \"\n", "gemini.bin"),
            ("[gemini]\nmodels = { small = \"\", medium = \"b\", large = \"c\" }\n", "gemini.models.small"),
            (
                "[routing]\nclaude_models = { small = \"a\", medium = \"b\", large = \" \" }\n",
                "routing.claude_models.large",
            ),
            ("[routing]\nbackground_tier = \"huge\"\n", "background_tier"),
            ("[gemini]\nmodle = \"x\"\n", "modle"),
        ];
        for (toml, key) in cases {
            let error = load(toml).unwrap_err().to_string();
            assert!(error.contains(key), "{toml:?}: {error}");
        }
    }
}
